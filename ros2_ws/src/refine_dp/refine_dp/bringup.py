"""`refine-dp bringup`: the node graph of config/bringup.yaml as separate processes.

    refine-dp bringup --sim --duration 45 --out runs/demo [--task pickup|door] [--commander planner|scripted|heuristic]

starts the simulated T1 and the whole stack, watches it, and writes RUN/summary.json (nodes,
rates, safety events, what the simulator saw, the task's outcome in its scene),
RUN/params.yaml and RUN/logs/<node>.log; sim_t1 adds RUN/sim_t1.png (and RUN/sim_t1.gif with
its video parameter).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

from refine_dp.cpu import ROBOT_SIDE, format_table
from refine_dp.graph import DEFAULT_GRAPH, graph_uses_sim_time, load_graph, recorder_node, view_node
from refine_dp.runner import GraphRunner, write_json_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", action="store_true", help="start the simulated T1 (sim_t1) instead of a robot")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (with --sim: of simulated time, at most 4x + 120 s wall)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/bringup-<time>)")
    parser.add_argument("--graph", type=Path, default=DEFAULT_GRAPH, help="node graph file")
    parser.add_argument("--commander", default=None,
                        help="what publishes high_level_command: planner (the diffusion planner), scripted "
                             "(a fixed velocity sequence, sim only) or heuristic (the task's heuristic planner, "
                             "for recording demos with --record); default: the graph's default_commander")
    parser.add_argument("--task", default=None,
                        help="the task the graph runs: its scene and start in sim_t1, the planner's engine and "
                             "observed objects (the graph file's tasks: pickup, door; default: its default_task)")
    parser.add_argument("--quiet", action="store_true", help="do not forward node logs to the terminal")
    parser.add_argument("--record", action="store_true",
                        help="also record the planner's inputs and outputs into RUN/bag (MCAP rosbag2 segments)")
    add_view_arguments(parser)


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--view", action="store_true",
                        help="also serve the live 3D web view (refine-dp view) and print its URL")
    parser.add_argument("--view-port", type=int, default=8080, help="HTTP port of the view (default 8080)")


def graph_view(nodes, target: str, graph, port: int):
    """The web view's node for this graph: sim_t1's scene drawn around the robot (the bare floor on the
    robot, where the lab is not modelled), on the graph's clock."""
    sim = next((n for n in nodes if n.name == "sim_t1"), None)
    scene = str(sim.parameters.get("scene", "floor")) if sim is not None else "floor"
    return view_node(port, scene, graph_uses_sim_time(target, graph))


def walk_summary(monitor_summary: dict, reports: dict) -> dict:
    """Where the robot went and how well it followed: ground truth (sim_t1), the MoCap view
    (monitor) and the controller's own tracking report, side by side."""
    walk = dict(reports.get("sim_t1", {}).get("walk") or {})
    walk.pop("path", None)
    ctrl = reports.get("loco_manip_controller", {})
    walk.update(monitor_summary.get("velocity_tracking") or {})
    for key in ("footstep_error_m", "hand_pos_error_m", "hand_rot_error_deg", "loop_jitter_ms",
                "loop_period_ms", "inference_ms", "deadline_misses", "policies"):
        if key in ctrl:
            walk[f"controller_{key}" if not key.startswith(("footstep", "hand")) else key] = ctrl[key]
    return walk


def task_summary(sim: dict) -> dict | None:
    """The task's outcome from sim_t1's ground truth, by the task's own numbers (None in a scene
    without a task): pickup_summary in the table_box scene, door_summary in the door scene.
    Each gives task, success, success_time_s (simulated s from the start of physics) and criterion."""
    scene = sim.get("scene")
    if scene == "table_box":
        return pickup_summary(sim)
    if scene == "door":
        return door_summary(sim)
    return None


def pickup_summary(sim: dict) -> dict | None:
    """Pickup from sim_t1's box height track: success is the box SUCCESS_LIFT_M above its start on
    the table, held success_hold_s (refine_dp_training/tasks/pickup.py); the table and box sizes are
    the scene's facts (t1_description/scenes.py)."""
    from refine_dp_training.tasks import pickup
    from t1_description.scenes import scene_facts

    spec = pickup.TASK
    box = (sim.get("objects") or {}).get(spec.objects[0])
    if not box:
        return None
    facts = scene_facts(spec.scene)
    z0, lift, hold = box["start_pos_m"][2], pickup.SUCCESS_LIFT_M, spec.success_hold_s
    since, done = None, None
    for t, z in box["height"]:
        if z - z0 >= lift:
            since = t if since is None else since
            if t - since >= hold:
                done = t
                break
        else:
            since = None
    return {"task": spec.name, "success": done is not None, "box_lifted": done is not None,
            "criterion": f"{spec.objects[0]} >= {lift:g} m above its start on the table, held {hold:g} s",
            "success_time_s": done, "box_lift_time_s": done,  # hold included
            "time_limit_s": spec.time_limit_s,
            "box_max_height_above_table_m": round(box["max_z_m"] - facts.box.half_size - facts.table.top_z, 4),
            "box_max_lift_m": round(box["max_z_m"] - z0, 4),
            "box_start_pos_m": box["start_pos_m"], "box_final_pos_m": box.get("final_pos_m"),
            "robot_start": sim.get("robot_start")}


def door_summary(sim: dict) -> dict:
    """Door from sim_t1's trunk path: success is the trunk walk_through_m past the door plane
    (DoorFacts.walked_through, the door task's success test; refine_dp_training/tasks/door.py)."""
    from refine_dp_training.tasks import door

    facts, spec = door.FACTS, door.TASK
    path = (sim.get("walk") or {}).get("path") or []
    done = next((row[0] for row in path if bool(facts.walked_through([row[1], row[2], 0.0]))), None)
    return {"task": spec.name, "success": done is not None, "walked_through": done is not None,
            "criterion": f"trunk {facts.walk_through_m:g} m past the door plane x = {facts.door_plane_x:g} m",
            "success_time_s": done, "time_limit_s": spec.time_limit_s,
            "trunk_max_x_m": round(max((row[1] for row in path), default=float("nan")), 4),
            "robot_start": sim.get("robot_start")}


def summarize(result, monitor_summary: dict, reports: dict, target: str) -> dict:
    sim = reports.get("sim_t1", {})
    hw = reports.get("t1_hardware_interface", {})
    return {
        "target": target,
        "exit_code": result.exit_code,
        "stop_reason": result.stop_reason,
        "wall_time_s": round(result.wall_time_s, 2),
        "nodes_started": [n["name"] for n in result.nodes],
        "nodes": result.nodes,
        "low_state_rate_hz": hw.get("low_state_rate_hz"),
        "objects_rate_hz": monitor_summary.get("objects_rate_hz"),
        "fell": sim.get("fell"),
        "final_trunk_height_m": sim.get("final_trunk_height_m"),
        "task": task_summary(sim),
        "snapshot_png": sim.get("snapshot_png"),
        "video_gif": (sim.get("video") or {}).get("path"),
        "safety_events": hw.get("safety_transitions", []),
        "cpu": result.cpu,
        "walk": walk_summary(monitor_summary, reports),
        "monitor": monitor_summary,
        "reports": reports,
        "machine": {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
    }


def run(args: argparse.Namespace) -> int:
    import rclpy

    from refine_dp.monitor import GraphMonitor

    target = "sim" if args.sim else "robot"
    nodes = load_graph(target, args.graph, commander=getattr(args, "commander", None), task=getattr(args, "task", None))
    out = args.out or Path("runs") / f"bringup-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    if getattr(args, "record", False):
        nodes.append(recorder_node(out / "bag"))
    if getattr(args, "view", False):
        nodes.append(graph_view(nodes, target, args.graph, args.view_port))
        print(f"[bringup] view: http://localhost:{args.view_port} (scene {nodes[-1].parameters['scene']}; "
              "open it in a browser)", flush=True)
    env = {}
    if args.sim:  # the simulated robot lives on this machine: keep DDS discovery on loopback
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        os.environ.update(env)
    rclpy.init()
    try:
        from rclpy.parameter import Parameter

        from t1_description.ros_runtime import make_events_spinner
        sim_time = graph_uses_sim_time(target, args.graph)  # the monitor follows the graph's clock
        node = rclpy.create_node("refine_dp_bringup_monitor",
                                 parameter_overrides=[Parameter("use_sim_time", value=sim_time)])
        monitor = GraphMonitor(node)
        runner = GraphRunner(nodes, out, env=env, echo=not args.quiet)
        # simulated time: --duration counts simulated seconds (from the first step of physics), so the
        # scripted sequence completes however slowly the machine runs it (bounded by a wall limit)
        clock = (lambda: node.get_clock().now().nanoseconds * 1e-9) if sim_time else None
        wall_limit = 4 * args.duration + 120 if sim_time and args.duration else None
        result = runner.run(args.duration, tick=make_events_spinner(node), clock=clock, wall_limit=wall_limit)
        summary = summarize(result, monitor.summary(), runner.reports(), target)
    finally:
        rclpy.try_shutdown()
    write_json_atomic(out / "summary.json", summary)
    print(f"[bringup] {result.stop_reason}; exit {result.exit_code}; summary: {out / 'summary.json'}")
    for key in ("low_state_rate_hz", "objects_rate_hz", "fell", "final_trunk_height_m"):
        print(f"[bringup]   {key}: {summary[key]}")
    task = summary["task"]
    if task:
        print(f"[bringup]   {task['task']}: success: {task['success']} ({task['criterion']})")
        for key in ("success_time_s", "box_max_height_above_table_m", "trunk_max_x_m"):
            if key in task:
                print(f"[bringup]   {key}: {task[key]}")
    planner = summary["reports"].get("refine_dp_planner")
    if planner:
        print(f"[bringup]   planner: {planner.get('commands_published')} high_level_commands published, "
              f"inference ms {planner.get('inference_ms')}")
    for key in ("snapshot_png", "video_gif"):
        if summary[key]:
            print(f"[bringup]   {key}: {summary[key]}")
    walk = summary["walk"]
    for key in ("distance_walked_m", "net_displacement_m", "yaw_change_deg", "commanded_distance_m",
                "base_velocity_error_mps", "yaw_rate_error_radps"):
        if key in walk:
            print(f"[bringup]   {key}: {walk[key]}")
    foot = walk.get("footstep_error_m")
    if foot:
        print(f"[bringup]   footstep_error_m: median {foot['median']} p90 {foot['p90']} ({foot['n']} steps)")
    for line in format_table(summary["cpu"], {"robot-side nodes": ROBOT_SIDE}):
        print(f"[bringup] {line}")
    return result.exit_code
