"""The hardware node end to end over DDS on loopback, against a fake robot made with rclpy.

The node runs as its own process with the vendor SDK on "lo". This test plays the robot: it
publishes booster_interface/LowState on `low_state` (best effort, 200 Hz) with joint positions that
track the last LowCmd exactly (an ideal robot), and subscribes booster_interface/LowCmd on
`joint_ctrl` and RobotState on `robot_state`. It checks the start-up ramp, following a
JointCommand, HOLD then DAMPING once the commands stop, reset, e-stop, and NO_STATE when the
robot goes silent. Timing is asserted loosely (2 shared
cores): order, and thresholds within a few hundred ms.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from procs import python_process, wait_for
from t1_hardware_interface import hardware_node
from t1_hardware_interface.hardware_node import default_parameters
from t1_description.joint_table import load_joint_table

pytestmark = pytest.mark.ros
TABLE = load_joint_table()
CONFIG = Path(hardware_node.__file__).parent / "config" / "hardware_interface.yaml"  # after the package split
WAIST = TABLE.index("Waist")
SAFETY = {"WAITING": 0, "RAMPING": 1, "READY": 2, "ACTIVE": 3, "HOLD": 4, "DAMPING": 5, "FALLEN": 6, "NO_STATE": 7}


def test_config_file_lists_every_parameter_with_its_default():
    params = yaml.safe_load(CONFIG.read_text())["t1_hardware_interface"]["ros__parameters"]
    flat = {k: v for k, v in params.items() if k != "damping_kd"}
    flat.update({f"damping_kd.{g}": kd for g, kd in params["damping_kd"].items()})
    assert flat == default_parameters()


class FakeRobot:
    """Publishes LowState whose joints track the last LowCmd (q where kp > 0); records what it hears."""

    def __init__(self, q0: np.ndarray):
        from booster_interface.msg import LowCmd, LowState, MotorState
        from refine_dp_msgs.msg import JointCommand, RobotState

        self.LowState, self.MotorState, self.JointCommand = LowState, MotorState, JointCommand
        self.q = q0.copy()
        self.lock = threading.Lock()
        self.cmds: list[tuple[float, np.ndarray, np.ndarray]] = []    # (time, q, kp) in SDK order
        self.states: list[tuple[float, int, str]] = []                 # (time, safety_state, reason)
        self.node = rclpy.create_node("fake_t1")
        self.state_pub = self.node.create_publisher(
            LowState, "low_state", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.cmd_pub = self.node.create_publisher(
            JointCommand, "joint_command", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(LowCmd, "joint_ctrl", self._on_cmd, 10)
        self.node.create_subscription(RobotState, "robot_state", self._on_state,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.executor.spin, daemon=True),
                        threading.Thread(target=self._publish_loop, daemon=True)]
        for t in self.threads:
            t.start()

    def _on_cmd(self, msg) -> None:
        q = np.array([m.q for m in msg.motor_cmd])
        kp = np.array([m.kp for m in msg.motor_cmd])
        with self.lock:
            self.cmds.append((time.monotonic(), q, kp))
            if len(q) == len(self.q):
                self.q = np.where(kp > 0, TABLE.sdk_to_model(q), self.q)

    def _on_state(self, msg) -> None:
        with self.lock:
            self.states.append((time.monotonic(), msg.safety_state, msg.safety_reason))

    def _publish_loop(self) -> None:
        msg = self.LowState()
        msg.imu_state.acc = [0.0, 0.0, 9.81]
        msg.motor_state_parallel = [self.MotorState() for _ in TABLE.names]
        msg.motor_state_serial = [self.MotorState() for _ in TABLE.names]
        while not self.stop.is_set():
            with self.lock:
                q_sdk = TABLE.model_to_sdk(self.q)
            for m, q in zip(msg.motor_state_serial, q_sdk):
                m.q = float(q)
            self.state_pub.publish(msg)
            time.sleep(0.005)

    def send_command(self, q: np.ndarray) -> None:
        msg = self.JointCommand()
        msg.name = list(TABLE.names)
        msg.position, msg.kp, msg.kd = q.tolist(), TABLE.kp.tolist(), TABLE.kd.tolist()
        self.cmd_pub.publish(msg)

    def first_time(self, state: str, after: float = 0.0) -> float | None:
        with self.lock:
            return next((t for t, s, _ in self.states if s == SAFETY[state] and t >= after), None)

    def latest_cmd(self):
        with self.lock:
            return self.cmds[-1] if self.cmds else None

    def close(self) -> None:
        self.stop.set()
        self.executor.shutdown()
        for t in self.threads:
            t.join(timeout=2)
        self.node.destroy_node()


def _call(node, srv_type, name: str, timeout: float = 5.0):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
    future = client.call_async(srv_type.Request())
    assert wait_for(future.done, timeout), f"service {name} did not answer"
    return future.result()


def test_node_ramps_follows_commands_then_holds_and_damps():
    from std_srvs.srv import Trigger

    q0 = TABLE.default_q.copy()
    q0[TABLE.indices("left_arm")] += 0.2
    q0[WAIST] = -0.3
    output: list[str] = []
    args = ["-m", "t1_hardware_interface.hardware_node", "--ros-args",
            "-p", "state_timeout:=0.3",   # robust to a stalled fake robot; NO_STATE is unit-tested
            "-p", "stats_period_s:=1.0"]
    rclpy.init()
    robot = None
    try:
        with python_process(args) as proc:
            threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
            robot = FakeRobot(q0)

            def log() -> str:
                return "node output:\n" + "".join(output[-40:])

            # 1. ramp from the measured pose to the default pose
            assert wait_for(lambda: robot.first_time("RAMPING") is not None, 30), log()
            assert wait_for(lambda: len(robot.cmds) > 0, 10), "RAMPING reported but no LowCmd arrived\n" + log()
            t_ramp = robot.first_time("RAMPING")
            with robot.lock:
                first_q = robot.cmds[0][1]
            assert np.max(np.abs(TABLE.sdk_to_model(first_q) - q0)) < 0.05, "ramp must start at the measured pose"
            assert wait_for(lambda: robot.first_time("READY") is not None, 10), log()
            assert robot.first_time("READY") > t_ramp
            # The ramp's pace, read off the LowCmd stream (500 Hz, so it does not depend on when
            # the best-effort robot_state subscription happened to match): the smoothstep weight
            # crosses 0.1 at 0.196 ramp_time and 0.9 at 0.804 ramp_time, 0.61 s apart for 1 s.
            with robot.lock:
                t_cmd = np.array([t for t, _, _ in robot.cmds])
                w = np.array([(TABLE.sdk_to_model(q)[WAIST] - q0[WAIST]) / (TABLE.default_q[WAIST] - q0[WAIST])
                              for _, q, _ in robot.cmds])
            assert w[0] < 0.1, "the first LowCmd seen must be early in the ramp"
            ramp_s = t_cmd[np.argmax(w >= 0.9)] - t_cmd[np.argmax(w >= 0.1)]
            assert 0.45 < ramp_s < 1.2, f"10-90 % of the ramp took {ramp_s:.2f} s (0.61 s for ramp_time 1.0)"
            time.sleep(0.1)
            np.testing.assert_allclose(TABLE.sdk_to_model(robot.latest_cmd()[1]), TABLE.default_q, atol=1e-4)

            # 2. follow a JointCommand at 50 Hz
            target = TABLE.default_q.copy()
            target[WAIST] = 0.1
            t_end = time.monotonic() + 0.8
            while time.monotonic() < t_end:
                robot.send_command(target)
                t_last = time.monotonic()
                time.sleep(0.02)
            assert robot.first_time("ACTIVE") is not None, log()
            _, q_sent, kp_sent = robot.latest_cmd()
            assert TABLE.sdk_to_model(q_sent)[WAIST] == pytest.approx(0.1, abs=1e-4)
            assert np.all(kp_sent > 0)
            with robot.lock:
                n_active = sum(1 for t, _, _ in robot.cmds if t_end - 0.5 <= t < t_end)
            assert n_active > 100, f"only {n_active} LowCmd in 0.5 s while ACTIVE (500 Hz expected)"

            # 3. commands stop: HOLD after ~0.1 s, DAMPING after ~0.5 s
            assert wait_for(lambda: robot.first_time("DAMPING", t_last) is not None, 5), log()
            t_hold, t_damp = robot.first_time("HOLD", t_last), robot.first_time("DAMPING", t_last)
            assert t_hold is not None and t_hold < t_damp, log()
            assert 0.08 < t_hold - t_last < 0.4, f"HOLD {t_hold - t_last:.3f} s after the last command"
            assert 0.45 < t_damp - t_last < 0.9, f"DAMPING {t_damp - t_last:.3f} s after the last command"
            time.sleep(0.05)
            _, _, kp_damp = robot.latest_cmd()
            assert np.all(kp_damp == 0), "DAMPING must send kp = 0"

            # 4. reset: ramp again
            resp = _call(robot.node, Trigger, "/t1_hardware_interface/reset")
            assert resp.success, resp.message
            assert wait_for(lambda: robot.first_time("RAMPING", t_damp) is not None, 5), log()
            resp = _call(robot.node, Trigger, "/t1_hardware_interface/estop")
            assert resp.success
            assert wait_for(lambda: robot.first_time("DAMPING", robot.first_time("RAMPING", t_damp)) is not None, 5)

            # 5. the robot goes silent: NO_STATE is reported (at 10 Hz, stale stamp) and no LowCmd is sent
            robot.stop.set()
            t_silent = time.monotonic()
            assert wait_for(lambda: robot.first_time("NO_STATE", t_silent) is not None, 5), log()
            time.sleep(0.2)
            n_cmds = len(robot.cmds)
            time.sleep(0.3)
            assert len(robot.cmds) == n_cmds, "LowCmd must stop without LowState"
    finally:
        if robot is not None:
            robot.close()
        rclpy.try_shutdown()
    text = "".join(output)
    for line in ("safety ACTIVE -> HOLD", "safety HOLD -> DAMPING", "-> NO_STATE: no LowState"):
        assert line in text, text[-3000:]


def test_a_23_motor_robot_is_refused_at_start_up_by_name():
    """The interface drives the joint table's 29-motor T1; a 23-DoF T1's LowState stops it at once."""
    from booster_interface.msg import LowState, MotorState
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    msg = LowState(motor_state_parallel=[MotorState() for _ in range(23)],
                   motor_state_serial=[MotorState() for _ in range(23)])
    msg.imu_state.acc = [0.0, 0.0, 9.81]
    rclpy.init()
    try:
        node = rclpy.create_node("fake_23dof_robot")
        pub = node.create_publisher(LowState, "low_state", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        with python_process(["-m", "t1_hardware_interface.hardware_node"]) as proc:
            assert wait_for(lambda: proc.poll() is not None, timeout=40,
                            spin=lambda: (pub.publish(msg), time.sleep(0.002))), "the node kept running"
            out = proc.stdout.read()
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    assert proc.returncode == 1, out[-3000:]
    assert "23 motors" in out and "23-DoF T1" in out and "29-DoF T1" in out, out[-3000:]


def test_on_simulated_time_low_states_wait_for_the_clock():
    """use_sim_time: the SDK's LowState stream can reach the interface seconds before /clock does
    (DDS discovery). The interface must not ramp on a clock stuck at 0: when /clock then jumped, it
    read the gap as a LowState outage and ramped a second time from the measured pose, which drops
    the legs' holding torque (the walking chain fell at start-up). It waits, sending nothing (sim_t1
    holds physics until the first LowCmd), and ramps once /clock arrives."""
    from rosgraph_msgs.msg import Clock

    args = ["-m", "t1_hardware_interface.hardware_node", "--ros-args", "-p", "use_sim_time:=true",
            "-p", "state_timeout:=0.3"]
    output: list[str] = []
    rclpy.init()
    robot = None
    try:
        with python_process(args) as proc:
            threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
            robot = FakeRobot(TABLE.default_q.copy())
            assert wait_for(lambda: any("waiting for LowState" in line for line in output), 30), "".join(output)
            # LowState flowing, no /clock: the node says so and sends nothing
            assert wait_for(lambda: any("(/clock) not yet" in line for line in output) or robot.latest_cmd(),
                            15), "".join(output)
            time.sleep(0.5)
            assert robot.latest_cmd() is None, "a LowCmd was sent before simulated time reached the node"
            assert robot.first_time("RAMPING") is None

            clock_pub = robot.node.create_publisher(Clock, "/clock", 1)
            t0 = time.monotonic()
            msg = Clock()
            while robot.first_time("READY") is None and time.monotonic() - t0 < 15:
                t = time.monotonic() - t0 + 0.01
                msg.clock.sec, msg.clock.nanosec = int(t), int((t % 1) * 1e9)
                clock_pub.publish(msg)
                time.sleep(0.01)
            assert robot.first_time("READY") is not None, "".join(output[-40:])
            with robot.lock:
                states = [s for _, s, _ in robot.states]
            assert SAFETY["NO_STATE"] not in states, "".join(output[-40:])
    finally:
        if robot is not None:
            robot.close()
        rclpy.try_shutdown()
