"""Gripper commands reach the (simulated) robot's grippers the robot's way: the vendor SDK's
B1LocoClient.ControlGripper RPC (rt/LocoApiTopicReq/Resp), served by sim_t1; and the mapping
between the project's fraction of the stroke and the SDK's position."""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time

import numpy as np
import pytest

from procs import SUPPORT, free_udp_ports, python_process, ros_args, wait_for
from t1_description.gripper import (POSITION_CLOSED, POSITION_OPEN, gripper_fraction, gripper_position,
                                    parse_control_gripper)


def test_fraction_position_mapping():
    assert gripper_position(0.0) == POSITION_OPEN == 0
    assert gripper_position(1.0) == POSITION_CLOSED == 1000
    assert gripper_position(0.5) == 500
    assert gripper_position(-0.3) == 0 and gripper_position(1.7) == 1000  # clamped
    for f in np.linspace(0, 1, 11):
        assert gripper_fraction(gripper_position(f)) == pytest.approx(f, abs=1e-3)
    assert gripper_fraction(1500) == 1.0 and gripper_fraction(-5) == 0.0
    with pytest.raises(ValueError, match="finite"):
        gripper_position(math.nan)
    # the body the SDK 1.6.3 puts on the wire (recorded from B1LocoClient.ControlGripper)
    req = parse_control_gripper('{"hand_index":1,"mode":0,"motion_param":{"force":50,"position":1000,"speed":500}}')
    assert (req.hand, req.mode, req.position, req.force, req.speed) == (1, 0, 1000, 50, 500)
    with pytest.raises(ValueError, match="hand_index"):
        parse_control_gripper('{"hand_index":2,"mode":0,"motion_param":{"position":0}}')


def test_gripper_sender_sends_changes_only_newest_first_rate_limited():
    from t1_hardware_interface.grippers import GripperSender

    calls: list[tuple[float, int, int]] = []
    slow = threading.Event()

    def send(hand: int, position: int) -> None:
        calls.append((time.monotonic(), hand, position))
        if slow.is_set():
            time.sleep(0.2)  # a slow RPC: set() must not wait for it

    g = GripperSender(send, rate_hz=10.0, threshold=0.02)
    try:
        g.set(math.nan, 1.0)
        assert wait_for(lambda: len(calls) == 1, 2)
        assert calls[0][1:] == (1, 1000)
        g.set(math.nan, 0.99)  # within the threshold: nothing
        slow.set()
        for f in (0.1, 0.2, 0.3):  # in one period: only the newest goes out, after the rate limit
            t0 = time.monotonic()
            g.set(0.0, f)
            assert time.monotonic() - t0 < 0.05
        assert wait_for(lambda: len(calls) == 3, 2)  # left 0 (its first command), right 0.3
        time.sleep(0.3)
        assert sorted(c[1:] for c in calls[1:]) == [(0, 0), (1, 300)], calls
        right = [t for t, h, _ in calls if h == 1]
        assert right[1] - right[0] >= 0.09, "at most rate_hz calls per hand"
    finally:
        g.close()
    rep = g.report()
    assert rep["sent"] == {"left": 1, "right": 2} and rep["failed"] == {"left": 0, "right": 0}, rep


def _stop(proc, timeout: float = 15) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=timeout)


@pytest.mark.ros
def test_sdk_control_gripper_closes_the_simulated_gripper(tmp_path, ros_domain_id):
    """B1LocoClient.ControlGripper from another process: sim_t1 answers promptly, its right gripper closes."""
    (tmp_path / "reports").mkdir()
    cmd_port, = free_udp_ports(1)
    with python_process(["-m", "t1_sim.sim_t1", *ros_args(scene="floor", natnet_command_port=cmd_port,
                                                          snapshot=False, wait_for_command=False)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        with python_process([str(SUPPORT / "gripper_client.py"), str(ros_domain_id), "1", "1000"]) as client:
            out, _ = client.communicate(timeout=60)
        results = {r["call"]: r for r in map(json.loads, out.strip().splitlines()[-3:])}
        time.sleep(1.5)  # the fingers travel
        _stop(sim)
        report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    grip, mode = results["ControlGripper"], results["ChangeMode"]
    assert results["ControlGripper_first"]["ok"] and grip["ok"], results
    assert grip["ms"] < 500, f"the SDK waited {grip['ms']} ms for sim_t1's answer"
    assert not mode["ok"] and "code = 400" in mode["error"], mode  # refused at once, not a 1 s timeout
    right, left = report["grippers"]["right"], report["grippers"]["left"]
    assert right["calls"] == 2 and right["last_position"] == 1000 and right["ctrl"] == 1.0, report["grippers"]
    assert right["closure"] > 0.9, report["grippers"]
    assert left["calls"] == 0 and left["ctrl"] == 0.0 and left["closure"] < 0.05, report["grippers"]


@pytest.mark.ros
def test_hardware_interface_closes_the_simulated_gripper_from_joint_command(tmp_path):
    """JointCommand.right_gripper = 1 -> t1_hardware_interface -> ControlGripper RPC -> sim_t1's gripper closed,
    on simulated time as `refine-dp bringup --sim` runs them; the 500 Hz LowCmd stream carries on."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from refine_dp_msgs.msg import JointCommand, RobotState
    from t1_description.joint_table import load_joint_table

    from procs import spinning_node

    jt = load_joint_table()
    (tmp_path / "reports").mkdir()
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    cmd_port, = free_udp_ports(1)
    states: list[int] = []
    with spinning_node("gripper_test") as node:
        pub = node.create_publisher(JointCommand, "joint_command",
                                    QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(RobotState, "robot_state", lambda m: states.append(m.safety_state),
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        msg = JointCommand(name=list(jt.names), position=jt.default_q.tolist(), kp=jt.kp.tolist(),
                           kd=jt.kd.tolist(), left_gripper=0.0, right_gripper=1.0)
        with python_process(["-m", "t1_sim.sim_t1", *ros_args(scene="floor", natnet_command_port=cmd_port,
                                                              snapshot=False)], env=env) as sim, \
             python_process(["-m", "t1_hardware_interface.hardware_node",
                             *ros_args(use_sim_time=True, robot_state_decimation=5, state_timeout=0.3,
                                       no_state_recovery="ramp")], env=env) as hw:
            accepting = {RobotState.SAFETY_READY, RobotState.SAFETY_ACTIVE, RobotState.SAFETY_HOLD}
            assert wait_for(lambda: any(s in accepting for s in states), 40), f"interface never READY: {states[-5:]}"
            t_end = time.monotonic() + 3.0
            while time.monotonic() < t_end:  # a 50 Hz controller
                pub.publish(msg)
                time.sleep(0.02)
            _stop(sim)  # the world first: without the interface's LowCmds the robot would damp and fall
            _stop(hw)
    sim_report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    hw_report = json.loads((tmp_path / "reports" / "t1_hardware_interface.json").read_text())
    g = hw_report["grippers"]
    assert g["sent"]["right"] >= 1 and g["sent"]["left"] >= 1 and g["failed"] == {"left": 0, "right": 0}, g
    assert g["last_position"] == {"left": 0, "right": 1000}, g
    right = sim_report["grippers"]["right"]
    assert right["ctrl"] == 1.0 and right["closure"] > 0.9, sim_report["grippers"]
    assert sim_report["grippers"]["left"]["closure"] < 0.05, sim_report["grippers"]
    assert not sim_report["fell"], "the LowCmd stream must not stall while the RPC runs"
