"""loco_manip_controller node: the 50 Hz loco-manipulation controller.

RobotState + FootstepCommand + HighLevelCommand (hand poses) -> JointCommand, through
policy_runtime.LowLevelController: the very code path `refine-dp eval controller` runs. Parts
without a policy (parameter empty) hold their joints at the default pose. Publishes
ControllerStatus (loop period, inference time, deadline misses). Sends nothing while the robot
state is stale or the hardware interface is not accepting commands, and restarts the policies'
memory (last actions) when control resumes.
Grippers: the HighLevelCommand's left_gripper/right_gripper (0 open .. 1 closed, clamped to [0, 1])
ride on every JointCommand to the hardware interface, which sends them to the robot's grippers
(the vendor SDK's ControlGripper RPC); NaN until the first HighLevelCommand (the interface then
leaves the grippers alone). A non-finite gripper value keeps the previous one.

Policy parameters take a path, or the bare file name of a model shipped in the package's
models/ directory (`legs.onnx`). The control rate is the policies' own (their metadata's
control_hz); `rate_hz` 0 takes it, any other value must equal it. Under `refine-dp bringup` the node leaves a report
(RUN/reports/loco_manip_controller.json, rewritten every 5 s and at exit): loop period and
jitter percentiles, inference time, deadline misses, and its own tracking errors (tracking.py).

Timing (t1_description.ros_runtime): the control loop runs in its own thread on the node's clock:
wall (monotonic) on the robot, simulated time with use_sim_time (sim_t1's /clock), so a slow
simulation slows the loop with it. `inference_ms` is LowLevelController.step (policies and the
Python around them); `cycle_ms` the whole cycle (inputs, step, tracking, JointCommand published).
`realtime_priority` > 0 asks for SCHED_FIFO for the process (nice -10 where refused); `ort_threads`
is ONNX Runtime's intra-op thread count (1: measured to give the lowest p99 on the 2-core
reference machine, docs/architecture.md). Both are in the report.
"""
from __future__ import annotations

import array
import math
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation

from loco_manip_controller import policy_io as pio
from loco_manip_controller.footstep_planner import Footstep
from loco_manip_controller.policy_runtime import ARM_TARGET_ALPHA, LowLevelController, OnnxPolicy, resolve_model
from loco_manip_controller.tracking import TrackingStats
from t1_description.kinematics import arm_kinematics
from t1_description.ros_runtime import LoopClock, request_realtime, spin
from t1_description.run_report import write_node_report

ACCEPTING = ("READY", "ACTIVE", "HOLD")  # RobotState.SAFETY_* in which the interface follows commands


class ControllerNode(Node):
    def __init__(self, **node_options) -> None:
        """node_options: rclpy Node keywords (context=...) for in-process use (tests, bench controller-cycle)."""
        super().__init__("loco_manip_controller", **node_options)
        from refine_dp_msgs.msg import ControllerStatus, FootstepCommand, HighLevelCommand, JointCommand, RobotState

        p = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        legs, arms = p("legs_policy", ""), p("arms_policy", "")
        rate = p("rate_hz", 0.0)  # 0: the policies' control_hz
        self.state_timeout = p("robot_state_timeout_s", 0.1)
        self.footstep_timeout = p("footstep_timeout_s", 0.2)
        self.realtime_priority = p("realtime_priority", 0)
        self.ort_threads = p("ort_threads", 1)
        legs, arms = (str(resolve_model(v)) if v else "" for v in (legs, arms))
        self.ctrl = LowLevelController(OnnxPolicy(legs, "legs", threads=self.ort_threads) if legs else None,
                                       OnnxPolicy(arms, "arms", threads=self.ort_threads) if arms else None,
                                       arm_target_alpha=p("arm_target_alpha", ARM_TARGET_ALPHA),
                                       control_hz=rate or None)  # refuses a rate_hz the policies contradict
        self.rate = self.ctrl.control_hz
        self.policies = {"legs": legs or None, "arms": arms or None}
        jt = self.ctrl.table
        self.names, self.kp, self.kd = list(jt.names), jt.kp.copy(), jt.kd.copy()
        for policy in (self.ctrl.legs, self.ctrl.arms):  # send the gains each policy was trained with
            if policy is not None:
                idx = [jt.index(n) for n in policy.meta["joints"]["names"]]
                self.kp[idx], self.kd[idx] = policy.meta["joints"]["kp"], policy.meta["joints"]["kd"]
        default_pos, default_rot = arm_kinematics().fk(jt.default_q[pio.ARM_ACTION.indices(jt)])
        self.hand_pos, self.hand_rot = default_pos, default_rot  # hand targets until a command arrives
        self.grippers = (float("nan"), float("nan"))  # left, right: 0 open .. 1 closed; NaN: no command yet
        self.accepting = {getattr(RobotState, f"SAFETY_{s}") for s in ACCEPTING}
        self.JointCommand, self.ControllerStatus = JointCommand, ControllerStatus

        self._lock = threading.Lock()
        self._state, self._state_t = None, -1.0
        self._footstep, self._footstep_t = None, -1.0
        self._was_active = False
        self._report_t = time.monotonic()
        self.stats = {"deadline_misses": 0, "steps": 0, "active_steps": 0}
        self.cycle_ms: list[float] = []  # whole-cycle compute times (the last 3000)
        self.clock = LoopClock(self)
        self.scheduling = {"requested": "none", "got": "not yet", "detail": ""}
        self.tracking = TrackingStats(jt, 1.0 / self.rate)
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(RobotState, "robot_state", self._on_state, best_effort)
        self.create_subscription(FootstepCommand, "footstep_command", self._on_footstep, reliable)
        self.create_subscription(HighLevelCommand, "high_level_command", self._on_high_level, reliable)
        self.cmd_pub = self.create_publisher(JointCommand, "joint_command", reliable)
        self.status_pub = self.create_publisher(ControllerStatus, "controller_status", 10)
        self._cmd = JointCommand(name=self.names, kp=self.kp.tolist(), kd=self.kd.tolist())  # reused: names once
        self._status = ControllerStatus()
        self.get_logger().info(f"legs: {legs or 'default pose (no policy)'}; arms: {arms or 'default pose'}; "
                               f"{self.rate:g} Hz on {self.clock.kind} time; ONNX Runtime {self.ort_threads} thread(s)")

    # ---- inputs (executor thread) -----------------------------------------------------------------
    def _on_state(self, msg) -> None:
        now = self.clock.now()
        with self._lock:
            self._state, self._state_t = msg, now

    def _on_footstep(self, msg) -> None:
        now = self.clock.now()
        with self._lock:
            self._footstep, self._footstep_t = msg, now

    def _on_high_level(self, msg) -> None:
        pos, rot = np.zeros((1, 2, 3)), np.zeros((1, 2, 3, 3))
        for h, pose in enumerate((msg.left_hand_pose, msg.right_hand_pose)):
            o = pose.orientation
            pos[0, h] = (pose.position.x, pose.position.y, pose.position.z)
            rot[0, h] = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()  # geometry_msgs: x, y, z, w
        with self._lock:
            self.grippers = tuple(min(1.0, max(0.0, float(v))) if math.isfinite(v) else old
                                  for v, old in zip((msg.left_gripper, msg.right_gripper), self.grippers))
        if not (math.isfinite(msg.left_gripper) and math.isfinite(msg.right_gripper)):
            self.get_logger().warn("HighLevelCommand with a non-finite gripper command: that gripper keeps "
                                   "its previous command", throttle_duration_sec=5.0)
        if np.all(np.isfinite(pos)) and np.all(np.isfinite(rot)):
            with self._lock:
                self.hand_pos, self.hand_rot = pos, rot
        else:
            self.get_logger().warn("HighLevelCommand with non-finite hand poses ignored", throttle_duration_sec=5.0)

    # ---- the control step (control thread) ----------------------------------------------------------
    def step(self, now: float) -> tuple[bool, float, str]:
        with self._lock:
            state, state_t, foot, foot_t = self._state, self._state_t, self._footstep, self._footstep_t
            hand_pos, hand_rot, grippers = self.hand_pos, self.hand_rot, self.grippers
        if state is None or now - state_t > self.state_timeout:
            self._was_active = False
            self.tracking.reset()
            return False, 0.0, "no fresh RobotState"
        if state.safety_state not in self.accepting:
            self._was_active = False
            self.tracking.reset()
            return False, 0.0, f"hardware interface not accepting commands ({state.safety_reason})"
        if not self._was_active:
            self.ctrl.reset()
            self._was_active = True
        g, w = state.projected_gravity, state.imu_angular_velocity
        gravity = np.array([[g.x, g.y, g.z]])
        fresh = foot is not None and now - foot_t <= self.footstep_timeout
        footstep = Footstep.from_msg(foot) if fresh else Footstep.standing(1)  # stale footsteps: stand
        t0 = time.perf_counter()
        q = np.asarray(state.position, dtype=np.float64)  # array.array: a view, not a Python list
        q_des = self.ctrl.step(q[None], np.asarray(state.velocity, dtype=np.float64)[None], gravity,
                               np.array([[w.x, w.y, w.z]]), footstep, hand_pos, hand_rot)[0]
        inference_ms = (time.perf_counter() - t0) * 1e3
        cmd = self._cmd
        cmd.position = array.array("d", q_des.tobytes())  # no per-element type checks
        cmd.left_gripper, cmd.right_gripper = grippers
        cmd.header.stamp = self.get_clock().now().to_msg()  # simulated time in simulation: sim_t1 syncs on it
        self.cmd_pub.publish(cmd)
        self.tracking.on_control_step(q, gravity[0], footstep, hand_pos, hand_rot, self.ctrl.last_hand_error)
        self.stats["active_steps"] += 1
        return True, inference_ms, "ok"

    def run(self, stop: threading.Event) -> None:
        self.scheduling = request_realtime(self.realtime_priority)  # this thread and every other one
        self.get_logger().info(f"scheduling: {self.scheduling['got']} ({self.scheduling['detail']})")
        period, clock = 1.0 / self.rate, self.clock
        while clock.sim and clock.now() <= 0.0 and not stop.is_set() and rclpy.ok():  # no /clock yet
            clock.wait_for(lambda: clock.now() > 0.0 or stop.is_set(), max_wall_s=0.5)
        next_t = last = clock.now()
        eps = 1e-7  # s: deadlines sit on /clock's grid; sums of 0.02 must not miss it by a rounding error
        while not stop.is_set() and rclpy.ok():
            next_t = round(next_t + period, 6)
            if clock.now() < next_t - eps:
                if not clock.sleep_until(next_t - eps, stop, max_wall_s=1.0):
                    next_t -= period  # stopping, or the simulation stalled: wait again
                    continue
            elif (clock.now() > next_t + eps or not clock.sim) and self._was_active:  # /clock at the deadline is on
                # time; a miss counts while commanding (before that, nothing waits for this loop)
                self.stats["deadline_misses"] += 1
                self.get_logger().warning(f"deadline missed: the cycle due at {next_t:.3f} s starts at "
                                          f"{clock.now():.3f} s ({clock.kind} time)", throttle_duration_sec=1.0)
                if clock.now() - next_t > period:
                    next_t = clock.now()
            now = clock.now()
            t_cycle = time.perf_counter()
            try:
                active, inference_ms, message = self.step(now)
                if active:
                    self.cycle_ms.append((time.perf_counter() - t_cycle) * 1e3)
                    del self.cycle_ms[:-3000]
                self.tracking.on_timing(now - last, inference_ms if active else None)
                if time.monotonic() - self._report_t >= 5.0:
                    self.write_report()
                self.stats["steps"] += 1
                status = self._status  # reused, as the JointCommand
                status.loop_period_ms, status.inference_ms = (now - last) * 1e3, inference_ms
                status.deadline_misses, status.active, status.message = self.stats["deadline_misses"], active, message
                status.footstep_index = self._footstep.step_index if self._footstep else 0
                status.header.stamp = self.get_clock().now().to_msg()
                self.status_pub.publish(status)
            except Exception:
                if not rclpy.ok():
                    break  # Ctrl-C shut the context down while this step was publishing
                raise
            last = now

    def report(self) -> dict:
        cycle = np.array(self.cycle_ms)
        cycle_ms = {"n": int(cycle.size)} if cycle.size == 0 else {
            "n": int(cycle.size), "median": round(float(np.median(cycle)), 3),
            "p90": round(float(np.percentile(cycle, 90)), 3), "p99": round(float(np.percentile(cycle, 99)), 3),
            "max": round(float(cycle.max()), 3)}
        return {"rate_hz": self.rate, "policies": self.policies, "clock": self.clock.kind,
                "scheduling": self.scheduling, "ort_threads": self.ort_threads, **self.stats,
                "cycle_ms": cycle_ms, "grippers_last_command": [None if math.isnan(v) else round(v, 3) for v in self.grippers],
                **self.tracking.summary()}

    def write_report(self) -> None:
        self._report_t = time.monotonic()
        write_node_report("loco_manip_controller", self.report())


def main(args=None) -> None:
    rclpy.init(args=args)
    node = ControllerNode()
    stop = threading.Event()
    worker = threading.Thread(target=node.run, args=(stop,), daemon=True)
    worker.start()
    try:
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        node.clock.notify()
        worker.join(timeout=1.0)
        node.write_report()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
