"""booster_interface matches the robot's DDS types: the vendor SDK and rclpy exchange
LowState (rclpy -> SDK) and LowCmd (SDK -> rclpy) over loopback with values intact."""
from __future__ import annotations

import json
import queue
import random
import threading

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from procs import SUPPORT, python_process, wait_for
from sdk_peer import MOTOR_FIELDS, NUM_MOTORS, expected_low_cmd

pytestmark = pytest.mark.ros
SEED = 1234


def _random_low_state(rng: random.Random):
    from booster_interface.msg import LowState, MotorState

    def motor():
        return MotorState(mode=rng.randint(0, 5),  # the SDK binding reads int8 fields as unsigned
                           q=rng.uniform(-3, 3), dq=rng.uniform(-9, 9),
                          ddq=rng.uniform(-50, 50), tau_est=rng.uniform(-60, 60),
                          temperature=rng.randint(20, 90), lost=rng.randint(0, 1000),
                          reserve=[rng.randint(0, 99), rng.randint(0, 99)])
    msg = LowState()
    msg.imu_state.rpy = [rng.uniform(-1, 1) for _ in range(3)]
    msg.imu_state.gyro = [rng.uniform(-5, 5) for _ in range(3)]
    msg.imu_state.acc = [rng.uniform(-20, 20) for _ in range(3)]
    msg.motor_state_parallel = [motor() for _ in range(NUM_MOTORS)]
    msg.motor_state_serial = [motor() for _ in range(NUM_MOTORS)]
    return msg


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def test_vendor_sdk_and_rclpy_exchange_low_state_and_low_cmd(ros_domain_id):
    from booster_interface.msg import LowCmd, LowState

    domain = ros_domain_id  # the SDK's ChannelFactory joins the DDS domain conftest.py gave rclpy
    state = _random_low_state(random.Random(SEED + 1))
    received_cmds: list = []
    with python_process([str(SUPPORT / "sdk_peer.py"), str(domain), str(SEED)]) as peer:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(peer.stdout, lines), daemon=True).start()
        rclpy.init()
        try:
            node = rclpy.create_node("sdk_exchange_test")
            state_pub = node.create_publisher(  # the robot's QoS for rt/low_state: best effort
                LowState, "low_state", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            node.create_subscription(LowCmd, "joint_ctrl", received_cmds.append, 10)
            sdk_states: list = []

            def spin():
                state_pub.publish(state)
                rclpy.spin_once(node, timeout_sec=0.01)
                while not lines.empty():
                    line = lines.get()
                    if line.startswith("{"):
                        sdk_states.append(json.loads(line))

            ok = wait_for(lambda: sdk_states and received_cmds, timeout=20, spin=spin)
            assert ok, f"no exchange: SDK saw {len(sdk_states)} LowState, rclpy saw {len(received_cmds)} LowCmd"
        finally:
            rclpy.try_shutdown()

    # rclpy -> SDK: LowState values intact (float32 on the wire)
    got = sdk_states[-1]
    for key in ("rpy", "gyro", "acc"):
        np.testing.assert_allclose(got["imu"][key], np.float32(getattr(state.imu_state, key)), rtol=0, atol=0)
    for arr_name, sent in (("parallel", state.motor_state_parallel), ("serial", state.motor_state_serial)):
        assert len(got[arr_name]) == NUM_MOTORS
        for g, s in zip(got[arr_name], sent):
            for f in ("q", "dq", "ddq", "tau_est"):
                assert g[f] == float(np.float32(getattr(s, f))), (arr_name, f)
            assert (g["mode"], g["temperature"], g["lost"], g["reserve"]) == (
                s.mode, s.temperature, s.lost, list(s.reserve))

    # SDK -> rclpy: LowCmd values intact
    cmd = received_cmds[-1]
    spec = expected_low_cmd(SEED)
    assert cmd.cmd_type == LowCmd.CMD_TYPE_SERIAL
    assert len(cmd.motor_cmd) == NUM_MOTORS
    for m, s in zip(cmd.motor_cmd, spec["motors"]):
        assert m.mode == s["mode"]
        for f in MOTOR_FIELDS:
            assert getattr(m, f) == float(np.float32(s[f])), f


def test_a_parallel_low_cmd_from_the_sdk_drives_sim_t1(tmp_path, ros_domain_id):
    """A vendor-style controller (SDK only, LowCmd at its default type PARALLEL) starts sim_t1's
    physics and holds the robot: the crank motors reach their targets in motor_state_parallel."""
    import os
    import signal

    from booster_interface.msg import LowState
    from procs import free_udp_ports, ros_args, spinning_node
    from rosgraph_msgs.msg import Clock

    domain = ros_domain_id
    cmd_port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    states: list = []
    with spinning_node("sdk_parallel_test") as node, \
            python_process(["-m", "t1_sim.sim_t1", *ros_args(natnet_command_port=cmd_port, snapshot=False)],
                           env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim, \
            python_process([str(SUPPORT / "sdk_parallel_peer.py"), str(domain)]) as peer:
        node.create_subscription(LowState, "low_state", states.append,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        clock: list = []
        node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec + 1e-9 * m.clock.nanosec),
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        spec = json.loads(peer.stdout.readline())
        assert spec["cmd_type"] == 0, "the SDK's LowCmd default is PARALLEL"
        assert wait_for(lambda: len(states) > 0, timeout=30), "no LowState"
        # physics runs only once the peer commands, after its own start-up (seconds on a loaded machine: a fixed
        # 3 s wait once saw 0.56 s of physics): wait for 1.5 s of simulated time on sim_t1's /clock
        assert wait_for(lambda: clock and clock[-1] >= 1.5, timeout=60), \
            f"physics did not run 1.5 s in 60 s of wall time (simulated {clock[-1] if clock else None} s)"
        msg = states[-1]
        os.killpg(sim.pid, signal.SIGINT)
        assert sim.wait(timeout=15) == 0
    report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    assert report["commands_parallel"] > 100 and report["commands_serial"] == 0, report
    assert report["sim_time_s"] > 1.0 and not report["fell"], report   # physics started and held
    assert abs(report["final_trunk_height_m"] - 0.667) < 0.03, report
    for slot, target in spec["ankle_motor_q"].items():
        assert abs(msg.motor_state_parallel[int(slot)].q - target) < 0.05, (slot, target)
