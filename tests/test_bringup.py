"""`refine-dp bringup` starts the graph as processes, stops it on time or when a node dies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from procs import SUPPORT

pytestmark = pytest.mark.ros
REFINE_DP = Path(sys.executable).parent / "refine-dp"


def _graph(tmp_path: Path, exit_after: float) -> Path:
    nodes = [{"name": "alpha", "package": "x", "executable": "x", "module": "dummy_node", "when": "always",
              "parameters": {"exit_after": -1.0}},
             {"name": "beta", "package": "x", "executable": "x", "module": "dummy_node", "when": "sim",
              "parameters": {"exit_after": exit_after}}]
    path = tmp_path / "graph.yaml"
    path.write_text(yaml.safe_dump({"nodes": nodes}))
    return path


def _bringup(tmp_path: Path, graph: Path, duration: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(SUPPORT))
    proc = subprocess.run([str(REFINE_DP), "bringup", "--sim", "--graph", str(graph), "--duration", str(duration),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=60)
    return proc, json.loads((out / "summary.json").read_text())


def test_graph_resolves_target_parameters():
    from refine_dp.graph import load_graph
    sim = {n.name: n for n in load_graph("sim")}
    robot = {n.name: n for n in load_graph("robot")}
    assert "sim_t1" in sim and "sim_t1" not in robot
    assert sim["t1_hardware_interface"].parameters["network_interface"] == "lo"
    assert robot["t1_hardware_interface"].parameters["use_loco_client"] is True


def test_graph_runs_the_chosen_commander_only(tmp_path):
    from refine_dp.graph import GraphError, load_graph
    names = lambda nodes: [n.name for n in nodes]  # noqa: E731
    sim = names(load_graph("sim"))  # the file's default: the diffusion planner, not the scripted sequence
    assert "refine_dp_planner" in sim and "scripted_commander" not in sim
    scripted = names(load_graph("sim", commander="scripted"))
    assert "scripted_commander" in scripted and "refine_dp_planner" not in scripted
    assert "refine_dp_planner" in names(load_graph("robot", commander="planner"))
    heuristic = names(load_graph("sim", commander="heuristic"))
    assert "refine_dp_heuristic" in heuristic and not {"refine_dp_planner", "scripted_commander"} & set(heuristic)
    planner = next(n for n in load_graph("sim") if n.name == "refine_dp_planner")
    assert planner.parameters["engine_dir"] == "pickup_dit" and planner.parameters["objects"] == ["box"]
    with pytest.raises(GraphError, match=r"no commander 'joystick'.*\['planner', 'scripted', 'heuristic'\]"):
        load_graph("sim", commander="joystick")
    # a graph file of its own: nodes without the field always run; the default is the file's
    path = tmp_path / "graph.yaml"
    nodes = [{"name": "a", "package": "p", "executable": "e", "module": "m"},
             {"name": "b", "package": "p", "executable": "e", "module": "m", "commander": "one"},
             {"name": "c", "package": "p", "executable": "e", "module": "m", "commander": "two"}]
    path.write_text(yaml.safe_dump({"default_commander": "two", "nodes": nodes}))
    assert names(load_graph("sim", path)) == ["a", "c"]
    assert names(load_graph("sim", path, commander="one")) == ["a", "b"]
    path.write_text(yaml.safe_dump({"nodes": nodes}))
    with pytest.raises(GraphError, match="no default_commander"):
        load_graph("sim", path)


def test_graph_task_sets_the_scene_start_engine_and_objects(tmp_path):
    from refine_dp.graph import GraphError, graph_tasks, load_graph
    tasks, default = graph_tasks()
    assert {"pickup", "door"} <= set(tasks) and default == "pickup"
    by_name = lambda nodes: {n.name: n.parameters for n in nodes}  # noqa: E731
    pickup = by_name(load_graph("sim"))  # the default task
    assert pickup["sim_t1"]["scene"] == "table_box" and pickup["refine_dp_planner"]["objects"] == ["box"]
    door = by_name(load_graph("sim", task="door"))
    assert door["sim_t1"]["scene"] == "door" and door["refine_dp_planner"]["engine_dir"] == "door_mlp"
    assert door["refine_dp_planner"]["objects"] == ["door"]
    heuristic = by_name(load_graph("sim", task="door", commander="heuristic"))
    assert heuristic["refine_dp_heuristic"]["task"] == "door"
    # the door's start lies inside the door task's pre-training starts (radial distance to the opening)
    from refine_dp_training.tasks import door as door_task
    x, y, _ = door["sim_t1"]["robot_start"]
    radial = ((door_task.FACTS.door_plane_x - x) ** 2 + y ** 2) ** 0.5
    lo, hi = door_task.TASK.initial_state.pretrain.radial
    assert lo <= radial <= hi
    # command-line overrides still win over the task's parameters
    over = by_name(load_graph("sim", task="door", overrides={"refine_dp_planner": {"engine_dir": "x"}}))
    assert over["refine_dp_planner"]["engine_dir"] == "x" and over["refine_dp_planner"]["objects"] == ["door"]
    with pytest.raises(GraphError, match=r"no task 'stairs'.*\['pickup', 'door'\]"):
        load_graph("sim", task="stairs")
    path = tmp_path / "graph.yaml"
    node = {"name": "a", "package": "p", "executable": "e", "module": "m"}
    path.write_text(yaml.safe_dump({"nodes": [node], "tasks": {"t": {"a": {"k": 1}}}}))
    with pytest.raises(GraphError, match="no default_task"):
        load_graph("sim", path)
    assert load_graph("sim", path, task="t")[0].parameters["k"] == 1
    path.write_text(yaml.safe_dump({"nodes": [node], "default_task": "t", "tasks": {"t": {"zz": {"k": 1}}}}))
    with pytest.raises(GraphError, match=r"unknown nodes \['zz'\]"):
        load_graph("sim", path)


def test_graph_commander_sets_its_parameters(tmp_path):
    """The open-loop scripted commander walks on measured feet; the planners, trained on dead reckoning, do not."""
    from refine_dp.graph import GraphError, load_graph
    feet = lambda target, **kw: next(n.parameters for n in load_graph(target, **kw)  # noqa: E731
                                     if n.name == "footstep_planner")["measured_feet"]
    assert feet("sim", commander="scripted") is True
    assert feet("sim", commander="scripted", task="door") is True  # after the task's parameters
    assert feet("sim", commander="planner") is False and feet("sim", commander="heuristic") is False
    assert feet("sim") is False and feet("robot", commander="planner") is False  # the default commander
    # command-line overrides still win over the commander's parameters
    assert feet("sim", commander="scripted", overrides={"footstep_planner": {"measured_feet": False}}) is False
    # a graph file of its own: the section is checked whichever commander runs
    path = tmp_path / "graph.yaml"
    nodes = [{"name": "a", "package": "p", "executable": "e", "module": "m", "parameters": {"k": 0}},
             {"name": "b", "package": "p", "executable": "e", "module": "m", "commander": "one"},
             {"name": "c", "package": "p", "executable": "e", "module": "m", "commander": "two"}]
    graph = {"default_commander": "two", "nodes": nodes, "default_task": "t", "tasks": {"t": {"a": {"k": 1}}}}
    path.write_text(yaml.safe_dump({**graph, "commanders": {"one": {"a": {"k": 2}}}}))
    assert load_graph("sim", path)[0].parameters["k"] == 1  # the task's: commander two sets nothing
    assert load_graph("sim", path, commander="one")[0].parameters["k"] == 2
    path.write_text(yaml.safe_dump({**graph, "commanders": {"won": {"a": {"k": 2}}}}))
    with pytest.raises(GraphError, match=r"unknown commanders \['won'\]; use .*\['one', 'two'\]"):
        load_graph("sim", path)
    path.write_text(yaml.safe_dump({**graph, "commanders": {"one": {"zz": {"k": 2}}}}))
    with pytest.raises(GraphError, match=r"one sets parameters of unknown nodes \['zz'\]; use .*\['a', 'b', 'c'\]"):
        load_graph("sim", path, commander="two")
    path.write_text(yaml.safe_dump({**graph, "commanders": ["one"]}))
    with pytest.raises(GraphError, match="'commanders' must map"):
        load_graph("sim", path)


def test_graph_errors_name_the_problem(tmp_path):
    from refine_dp.graph import GraphError, load_graph
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"nodes": [{"name": "a", "package": "p", "executable": "e"}]}))
    with pytest.raises(GraphError, match="missing module"):
        load_graph("sim", bad)
    with pytest.raises(GraphError, match="unknown target"):
        load_graph("moon", bad)


def test_runs_for_duration_and_stops_cleanly(tmp_path):
    proc, summary = _bringup(tmp_path, _graph(tmp_path, exit_after=-1.0), duration=3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["nodes_started"] == ["alpha", "beta"]
    assert summary["stop_reason"].startswith("duration")
    assert summary["reports"] == {"alpha": {"stopped_cleanly": True}, "beta": {"stopped_cleanly": True}}
    assert "[alpha] dummy alpha up" in proc.stdout  # logs are prefixed and forwarded
    assert (tmp_path / "run" / "logs" / "beta.log").read_text().count("dummy beta up") == 1


def test_a_dying_node_stops_the_graph_with_nonzero_status(tmp_path):
    proc, summary = _bringup(tmp_path, _graph(tmp_path, exit_after=1.0), duration=30)
    assert proc.returncode != 0
    assert "node beta exited with status 3" in summary["stop_reason"]
    assert summary["wall_time_s"] < 15
    assert summary["reports"] == {"alpha": {"stopped_cleanly": True}}  # the others were stopped, not killed


def test_task_summary_says_whether_the_box_was_lifted_by_the_pickup_tasks_numbers():
    from refine_dp.bringup import task_summary

    def sim(heights, scene="table_box"):
        track = [[round(0.05 * i, 3), z] for i, z in enumerate(heights)]
        return {"scene": scene, "robot_start": [-0.3, 0.0, 0.0],
                "objects": {"box": {"start_pos_m": [0.6, 0.0, 0.765], "final_pos_m": [0.6, 0.0, track[-1][1]],
                                    "max_z_m": max(heights), "height": track}}}

    rest, up = 0.765, 0.765 + 0.11
    # lifted at t = 1.0 s and held: success once it has held 1 s (TASK.success_hold_s), at t = 2.0 s
    held = task_summary(sim([rest] * 20 + [up] * 30))
    assert held["task"] == "pickup" and held["box_lifted"] and held["box_lift_time_s"] == pytest.approx(2.0)
    assert held["box_max_height_above_table_m"] == pytest.approx(0.11)  # box bottom over the table top (0.74 m)
    assert "0.1 m above its start" in held["criterion"] and "held 1 s" in held["criterion"]
    # lifted for 0.5 s only, and 9 cm for long: not a success
    for heights in ([rest] * 20 + [up] * 10 + [rest] * 30, [rest] * 5 + [rest + 0.09] * 60):
        out = task_summary(sim(heights))
        assert not out["box_lifted"] and out["box_lift_time_s"] is None
    assert task_summary(sim([rest] * 5, scene="floor")) is None
    assert held["success"] and held["success_time_s"] == held["box_lift_time_s"]


def test_task_summary_says_whether_the_robot_walked_through_the_door():
    from refine_dp.bringup import task_summary

    def sim(xs):  # sim_t1's trunk path [t, x, y, yaw] every 0.5 s
        return {"scene": "door", "robot_start": [-0.2, 0.0, 0.0], "objects": {},
                "walk": {"path": [[0.5 * i, x, 0.0, 0.0] for i, x in enumerate(xs)]}}

    through = task_summary(sim([-0.2, 0.3, 0.9, 1.45, 1.55, 1.6]))  # past x = 1.5 (plane 1.0 + 0.5) at t = 2.0
    assert through["task"] == "door" and through["success"] and through["success_time_s"] == pytest.approx(2.0)
    assert "0.5 m past the door plane" in through["criterion"] and through["trunk_max_x_m"] == pytest.approx(1.6)
    short = task_summary(sim([-0.2, 0.5, 0.6, 1.2, 1.5]))  # 1.5 is on the line, not past it
    assert not short["success"] and short["success_time_s"] is None
