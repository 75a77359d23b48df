"""rosbag2 files of the planner's inputs and outputs: which topics, and the message types to read them.

`refine-dp record` (refine_dp.recorder) writes them; `refine-dp dataset from-bags` turns them into
demonstrations. Both need the project's message definitions in a rosbags typestore: they are read
from the installed .msg files of refine_dp_msgs and booster_interface, so the bag's embedded
definitions are exactly the ones the nodes were built with.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

# topic -> message type of what the planner sees and does (the recorder's defaults).
PLANNER_TOPICS: dict[str, str] = {
    "robot_state": "refine_dp_msgs/msg/RobotState",
    "objects": "refine_dp_msgs/msg/ObjectStateArray",
    "high_level_command": "refine_dp_msgs/msg/HighLevelCommand",
    "planner_status": "refine_dp_msgs/msg/PlannerStatus",
    "footstep_command": "refine_dp_msgs/msg/FootstepCommand",
    "joint_command": "refine_dp_msgs/msg/JointCommand",
    # the planner's current chunk (what rviz and the view draw; from-bags does not read it)
    "planner_chunk/base": "geometry_msgs/msg/PoseArray",
    "planner_chunk/left_hand": "geometry_msgs/msg/PoseArray",
    "planner_chunk/right_hand": "geometry_msgs/msg/PoseArray",
}
PROJECT_MSG_PACKAGES = ("refine_dp_msgs", "booster_interface")


def _share_dirs(package: str) -> list[Path]:
    roots = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    import sys
    roots.append(Path(sys.prefix))
    return [r / "share" / package / "msg" for r in roots if (r / "share" / package / "msg").is_dir()]


@lru_cache(maxsize=1)
def typestore():
    """rosbags typestore: ROS 2 Kilted's standard types plus the project's own messages."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for package in PROJECT_MSG_PACKAGES:
        dirs = _share_dirs(package)
        if not dirs:
            raise FileNotFoundError(f"the .msg files of {package} are not installed (looked under "
                                    f"$AMENT_PREFIX_PATH and {os.sys.prefix}/share): run `make setup`")
        for msg in sorted(dirs[0].glob("*.msg")):
            types.update(get_types_from_msg(msg.read_text(), f"{package}/msg/{msg.stem}"))
    store.register(types)
    return store


def message_class(msgtype: str):
    """'pkg/msg/Type' -> the rclpy message class."""
    import importlib

    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def find_bags(paths) -> list[Path]:
    """Every rosbag2 directory (one with metadata.yaml) at or under the given paths, in name order."""
    bags = []
    for p in map(Path, paths):
        if (p / "metadata.yaml").is_file():
            bags.append(p)
        elif p.is_dir():
            bags.extend(sorted(m.parent for m in p.rglob("metadata.yaml")))
        else:
            raise FileNotFoundError(f"{p} is not a rosbag2 directory (no metadata.yaml) nor a folder of them")
    if not bags:
        raise FileNotFoundError(f"no rosbag2 (metadata.yaml) under {[str(p) for p in paths]}")
    return bags
