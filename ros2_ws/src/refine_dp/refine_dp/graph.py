"""The node graph of config/bringup.yaml: one description for `ros2 launch` and `refine-dp bringup`.

Kept free of launch/rclpy imports so that both the launch file and the runner can use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

def _config_dir() -> Path:
    """config/ beside the package source (pip/editable install), else the ROS share directory."""
    source_tree = Path(__file__).resolve().parent.parent / "config"
    if source_tree.is_dir():
        return source_tree
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("refine_dp")) / "config"


CONFIG_DIR = _config_dir()
DEFAULT_GRAPH = CONFIG_DIR / "bringup.yaml"
TARGETS = ("sim", "robot")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    package: str
    executable: str
    module: str
    when: str = "always"
    required: bool = True
    commander: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)

    def ros_args(self, params_file: Path | None = None) -> list[str]:
        """--ros-args for this node: its name, its remappings and its parameters file."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for src, dst in self.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        return args


class GraphError(ValueError):
    """A bringup graph file that cannot be used; the message names the file and the entry."""


def load_graph(target: str, path: Path | str = DEFAULT_GRAPH, overrides: dict[str, dict] | None = None,
               commander: str | None = None, task: str | None = None) -> list[NodeSpec]:
    """Nodes of the graph for `target` ("sim" or "robot"), parameters resolved for that target.

    `overrides` maps node name -> parameters that replace the file's (e.g. from the command line).
    `commander`: which of the nodes that publish the high-level command runs. Nodes with a
    `commander: NAME` field are kept only when NAME is the chosen one (None: the file's
    `default_commander`); nodes without the field always are.
    `task`: one of the file's `tasks` (None: its `default_task`); that task's per-node parameters
    (scene, start, planner engine, observed objects) apply before `overrides`.
    The chosen commander's per-node parameters (the file's `commanders` section) apply after the
    task's and before `overrides`.
    """
    if target not in TARGETS:
        raise GraphError(f"unknown target {target!r}; use one of {TARGETS}")
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GraphError(f"bringup graph {path} not found") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list):
        raise GraphError(f"{path}: expected a mapping with a 'nodes' list")
    commander = resolve_commander(raw, path, commander)
    task_params = resolve_task(raw, path, task)
    commander_params = resolve_commander_parameters(raw, path, commander)
    clock_node = sim_clock_node(raw) if target == "sim" else None
    nodes, seen = [], set()
    for i, entry in enumerate(raw["nodes"]):
        where = f"{path}: nodes[{i}]"
        missing = [k for k in ("name", "package", "executable", "module") if k not in entry]
        if missing:
            raise GraphError(f"{where}: missing {', '.join(missing)}")
        name = entry["name"]
        if name in seen:
            raise GraphError(f"{where}: duplicate node name {name!r}")
        seen.add(name)
        when = entry.get("when", "always")
        if when not in ("always", *TARGETS):
            raise GraphError(f"{where} ({name}): 'when' must be always, sim or robot, not {when!r}")
        if when not in ("always", target):
            continue
        if entry.get("commander") is not None and entry["commander"] != commander:
            continue
        params = dict(entry.get("parameters") or {})
        if clock_node is not None and name != clock_node:
            params["use_sim_time"] = True  # the ROS convention: follow the simulator's /clock
        params.update(entry.get(f"{target}_parameters") or {})
        params.update(task_params.get(name) or {})
        params.update(commander_params.get(name) or {})
        params.update((overrides or {}).get(name, {}))
        nodes.append(NodeSpec(name=name, package=entry["package"], executable=entry["executable"],
                              module=entry["module"], when=when, required=bool(entry.get("required", True)),
                              commander=entry.get("commander"), parameters=params,
                              remappings=dict(entry.get("remappings") or {})))
    return nodes


def commanders(raw: dict) -> list[str]:
    """The commanders a graph offers: the `commander` fields of its nodes, in file order."""
    return list(dict.fromkeys(str(e["commander"]) for e in raw.get("nodes") or []
                              if isinstance(e, dict) and e.get("commander") is not None))


def resolve_commander(raw: dict, path: Path | str, commander: str | None) -> str | None:
    """The chosen commander (None: the file's `default_commander`), checked against the graph's."""
    choices = commanders(raw)
    if commander is None:
        commander = raw.get("default_commander")
        if commander is None and choices:
            raise GraphError(f"{path}: nodes name commanders {choices} but the file sets no default_commander")
    if commander is not None and commander not in choices:
        raise GraphError(f"{path}: no commander {commander!r}; this graph offers {choices or 'none'}")
    return commander


def resolve_commander_parameters(raw: dict, path: Path | str, commander: str | None) -> dict[str, dict]:
    """Node name -> parameters of the chosen commander (the file's `commanders` section; {} for a
    commander it does not list). The whole section is checked against the graph's commanders and
    nodes, so a misspelt name fails whichever commander runs instead of silently doing nothing."""
    section = raw.get("commanders") or {}
    if not isinstance(section, dict):
        raise GraphError(f"{path}: 'commanders' must map a commander name to {{node name: parameters}}")
    choices = commanders(raw)
    unknown = sorted(set(section) - set(choices))
    if unknown:
        raise GraphError(f"{path}: commanders: lists unknown commanders {unknown}; use the nodes' "
                         f"commander names {choices or '(none in this graph)'}")
    names = [e.get("name") for e in raw["nodes"] if isinstance(e, dict)]
    for name, params in section.items():
        params = params or {}
        if not isinstance(params, dict) or not all(isinstance(p or {}, dict) for p in params.values()):
            raise GraphError(f"{path}: commanders: {name}: expected {{node name: {{parameter: value}}}}")
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise GraphError(f"{path}: commanders: {name} sets parameters of unknown nodes {unknown}; "
                             f"use node names from 'nodes' {names}")
    return {node: dict(p or {}) for node, p in (section.get(commander) or {}).items()}


def graph_tasks(path: Path | str = DEFAULT_GRAPH) -> tuple[list[str], str | None]:
    """The tasks a graph file offers (its `tasks` section, in file order) and its `default_task`."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return list(raw.get("tasks") or {}), raw.get("default_task")


def resolve_task(raw: dict, path: Path | str, task: str | None) -> dict[str, dict]:
    """Node name -> parameters of the chosen task (None: the file's `default_task`; {} without a
    `tasks` section), checked against the graph's tasks and nodes."""
    tasks = raw.get("tasks") or {}
    if task is None:
        task = raw.get("default_task")
        if task is None:
            if tasks:
                raise GraphError(f"{path}: the file lists tasks {list(tasks)} but sets no default_task")
            return {}
    if task not in tasks:
        raise GraphError(f"{path}: no task {task!r}; this graph offers {list(tasks) or 'none'}")
    params = tasks[task] or {}
    names = {e.get("name") for e in raw["nodes"] if isinstance(e, dict)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise GraphError(f"{path}: task {task!r} sets parameters of unknown nodes {unknown}")
    return {name: dict(p or {}) for name, p in params.items()}


def sim_clock_node(raw: dict) -> str | None:
    """The node that publishes /clock in simulation (`sim_time: {clock: NAME}`), or None."""
    sim_time = raw.get("sim_time") or {}
    return sim_time.get("clock") if isinstance(sim_time, dict) else None


def graph_uses_sim_time(target: str, path: Path | str = DEFAULT_GRAPH) -> bool:
    """Whether the graph's nodes run on simulated time for `target` (the monitor then does too)."""
    return target == "sim" and sim_clock_node(yaml.safe_load(Path(path).read_text()) or {}) is not None


def recorder_node(bag_dir: Path | str) -> NodeSpec:
    """The rosbag2 recorder of the planner's inputs and outputs, as one more (not required) node."""
    return NodeSpec(name="refine_dp_recorder", package="refine_dp", executable="recorder", module="refine_dp.recorder",
                    required=False, parameters={"out": str(bag_dir)})


def view_node(port: int, scene: str, sim_time: bool) -> NodeSpec:
    """The live web view (refine_dp.view) beside the graph, as one more (not required) node."""
    return NodeSpec(name="refine_dp_view", package="refine_dp", executable="view", module="refine_dp.view",
                    required=False, parameters={"port": int(port), "scene": scene, "use_sim_time": bool(sim_time)})


def params_file_content(nodes: list[NodeSpec]) -> dict:
    """A ROS 2 parameters file (node name -> ros__parameters) for all nodes."""
    return {n.name: {"ros__parameters": dict(n.parameters)} for n in nodes}
