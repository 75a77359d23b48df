"""Every refine_dp_msgs, booster_interface and booster_msgs message round-trips between two processes over DDS."""
from __future__ import annotations

import importlib
import random

import pytest
import rclpy

from msg_fill import assert_messages_equal, random_message
from procs import SUPPORT, python_process, wait_for

pytestmark = pytest.mark.ros

TYPES = [f"refine_dp_msgs/msg/{n}" for n in (
    "HighLevelCommand", "FootstepCommand", "ObjectState", "ObjectStateArray", "JointCommand",
    "RobotState", "PlannerStatus", "ControllerStatus")] + [
    f"booster_interface/msg/{n}" for n in ("LowCmd", "LowState", "MotorCmd", "MotorState", "ImuState")] + [
    f"booster_msgs/msg/{n}" for n in ("RpcReqMsg", "RpcRespMsg")]
MESSAGES_PER_TYPE = 3


def _cls(type_name: str):
    pkg, sub, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{sub}"), name)


def test_constants_and_units_documented():
    from booster_interface.msg import LowCmd
    from refine_dp_msgs.msg import FootstepCommand, RobotState
    assert (LowCmd.CMD_TYPE_PARALLEL, LowCmd.CMD_TYPE_SERIAL) == (0, 1)
    assert (FootstepCommand.SWING_NONE, FootstepCommand.SWING_LEFT, FootstepCommand.SWING_RIGHT) == (0, 1, 2)
    assert (RobotState.MODE_DAMPING, RobotState.MODE_PREPARE, RobotState.MODE_WALKING,
            RobotState.MODE_CUSTOM) == (0, 1, 2, 3)


def test_all_messages_round_trip_between_processes():
    rng = random.Random(7)
    sent = {t: [random_message(_cls(t), rng) for _ in range(MESSAGES_PER_TYPE)] for t in TYPES}
    received: dict[str, list] = {t: [] for t in TYPES}
    with python_process([str(SUPPORT / "echo_node.py"), *TYPES]) as echo:
        rclpy.init()
        try:
            node = rclpy.create_node("round_trip_test")
            pubs, subs = {}, []
            for t in TYPES:
                suffix = t.replace("/msg/", "_")
                pubs[t] = node.create_publisher(_cls(t), f"echo_in/{suffix}", 10)
                subs.append(node.create_subscription(
                    _cls(t), f"echo_out/{suffix}", lambda m, t=t: received[t].append(m), 10))
            spin = lambda: rclpy.spin_once(node, timeout_sec=0.02)  # noqa: E731
            matched = lambda: all(p.get_subscription_count() > 0 for p in pubs.values()) and all(  # noqa: E731
                s.get_publisher_count() > 0 for s in subs)
            assert wait_for(matched, timeout=20, spin=spin), (
                f"echo node never matched; its output:\n{echo.stdout.read() if echo.poll() is not None else ''}")
            for t in TYPES:
                for msg in sent[t]:
                    pubs[t].publish(msg)
            done = lambda: all(len(received[t]) >= MESSAGES_PER_TYPE for t in TYPES)  # noqa: E731
            assert wait_for(done, timeout=20, spin=spin), {t: len(v) for t, v in received.items()}
        finally:
            rclpy.try_shutdown()
    for t in TYPES:
        for i, (a, b) in enumerate(zip(sent[t], received[t])):
            assert_messages_equal(a, b, f"{t}#{i}")
