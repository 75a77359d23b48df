"""t1_hardware_interface node: JointCommand -> safety layer -> LowCmd at 500 Hz over the vendor SDK.

Wiring only; the logic is in safety.py (state machine, clamps) and low_state.py (conversions).
  robot  --rt/low_state (SDK subscriber thread)--> latest MeasuredState (under a lock)
  a dedicated thread on a monotonic clock, `send_rate_hz`: SafetyController.step -> LowCmd
         (B1LowCmdPublisher); logs every safety transition; publishes RobotState (`robot_state`,
         best effort depth 1) and sensor_msgs/JointState (`joint_states`) on new LowStates,
         decimated. A thread, not an rclpy timer: rclpy timers on a loaded 2-core machine do not
         hold 500 Hz, and the loop must not wait behind subscription callbacks.
  `joint_command` (JointCommand, reliable depth 1) -> SafetyController.on_command
  services `~/estop`, `~/reset` (std_srvs/Trigger)
Time (t1_description.ros_runtime.LoopClock): on the robot, wall time: the loop runs on the monotonic
clock at `send_rate_hz` and every safety time (watchdogs, ramp, LowState age) is monotonic. In
simulation (use_sim_time, sim_t1's /clock) every safety time is simulated time, and the loop runs
one cycle per LowState (sim_t1 publishes one per 2 ms of simulated time), or one per 50 ms of
simulated time if LowStates stop, so the watchdogs still see a silent link. The cycle that answers
a LowState runs in the SDK's callback thread (no hand-off to the loop thread per LowState: two
thread wake-ups and GIL switches every 2 ms); the loop thread runs only the silent cycles. The vendor SDK itself
knows no ROS time: its LowState stream is the simulated robot's own tick, which is what the loop
follows; the SDK path (B1LowCmdPublisher, B1LowStateSubscriber) is the robot's, unchanged.
Scheduling: `realtime_priority` > 0 asks for SCHED_FIFO at that priority for the whole process
(nice -10 where refused); what it got is logged and in the report (`scheduling`).
Grippers (`grippers`, default true, in simulation too): JointCommand's left_gripper/right_gripper
(0 open .. 1 closed; NaN = none) of accepted commands go to the robot's grippers through the vendor
SDK's Loco API, B1LocoClient.ControlGripper (an RPC on rt/LocoApiTopicReq/Resp that waits up to 1 s
for the robot's answer; sim_t1 serves it too), from a worker thread (grippers.GripperSender): only on
a change beyond `gripper_threshold`, at most `gripper_rate_hz` per hand, never from the send loop.
The position mapping and its assumed units are t1_description/gripper.py's. The loco client for the
grippers is created whether or not use_loco_client is set (that flag only adds the ChangeMode
prepare/custom handshake). Grippers are left as they are on exit. Counts of calls sent and failed
are in the report (`grippers`).
On exit: with use_loco_client and a standing robot, ChangeMode(prepare) (the robot's own
controller holds it); otherwise a burst of damping LowCmds (then ChangeMode(damping) with the loco client).
Variants: the robot must be the joint table's (29 motors). A LowState of another motor count (the
23-DoF T1) stops the node at start-up with exit status 1 and a message naming the variant; no
LowCmd is ever sent to it (the safety layer sends nothing before a valid LowState).

Run: python -m t1_hardware_interface.hardware_node --ros-args -p network_interface:=lo
Defaults: config/hardware_interface.yaml (identical to the declared defaults below).
"""
from __future__ import annotations

import collections
import dataclasses
import os
import sys
import threading
import time

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from refine_dp_msgs.msg import JointCommand, RobotState
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from t1_description.joint_table import load_joint_table
from t1_description.ros_runtime import LoopClock, request_realtime, spin
from t1_hardware_interface.low_state import (LowCmdWriter, VariantMismatch, joint_state_msg,
                                             measured_from_low_state, request_from_joint_command,
                                             robot_state_msg)
from t1_description.gripper import FORCE_RANGE, SPEED_RANGE, clamp_int
from t1_description.run_report import write_node_report
from t1_hardware_interface.grippers import GripperSender
from t1_hardware_interface.safety import Safety, SafetyConfig, SafetyController

NODE_PARAMETERS = {  # name: (default, description); SafetyConfig fields are declared beside these
    "network_interface": ("lo", "network interface of the robot's DDS ('lo' in simulation)"),
    "domain_id": (-1, "DDS domain of the SDK; -1 = ROS_DOMAIN_ID (0 if unset)"),
    "use_loco_client": (False, "real robot: ChangeMode prepare -> custom at start, back on exit"),
    "prepare_wait_s": (3.0, "with use_loco_client: time in prepare mode before switching to custom"),
    "send_rate_hz": (500.0, "LowCmd rate"),
    "robot_state_decimation": (1, "publish RobotState on every Nth LowState"),
    "joint_state_decimation": (10, "publish sensor_msgs/JointState on every Nth LowState"),
    "stats_period_s": (5.0, "period of the send-rate/jitter log line"),
    "realtime_priority": (0, "SCHED_FIFO priority (1-99) of the process where permitted (else nice -10); 0: none"),
    "grippers": (True, "send JointCommand's gripper commands to the robot (B1LocoClient.ControlGripper RPC)"),
    "gripper_rate_hz": (10.0, "at most this many ControlGripper calls per second per hand"),
    "gripper_threshold": (0.02, "send a gripper command when it moved more than this fraction of the stroke"),
    "gripper_force": (500, "ControlGripper force, 50-1000 (SDK units, assumed: see t1_description/gripper.py)"),
    "gripper_speed": (500, "ControlGripper speed, 1-1000 (SDK units, assumed)"),
}
_POSE_STATES = (Safety.RAMPING, Safety.READY, Safety.ACTIVE, Safety.HOLD)
# simulated time: without LowStates the loop still cycles every 50 ms of /clock, so the LowState
# watchdog fires (longer than /clock's 20 ms step, so a LowState-paced loop sees no extra cycles)
SIM_SILENCE_CYCLE_S = 0.05


def default_parameters() -> dict:
    """Every parameter and its default (config/hardware_interface.yaml lists the same)."""
    params = {k: v for k, (v, _) in NODE_PARAMETERS.items()}
    cfg = SafetyConfig()
    for f in dataclasses.fields(SafetyConfig):
        if f.name == "damping_kd":
            params.update({f"damping_kd.{g}": kd for g, kd in cfg.damping_kd.items()})
        else:
            params[f.name] = getattr(cfg, f.name)
    return params


def _import_sdk():
    try:
        import booster_robotics_sdk_python as sdk
    except ImportError as exc:
        raise ImportError("the vendor SDK is missing: pip install booster-robotics-sdk-python==1.6.3 "
                          "(see requirements.txt)") from exc
    return sdk


class HardwareNode(Node):
    def __init__(self):
        super().__init__("t1_hardware_interface")
        p = {name: self.declare_parameter(name, default, ParameterDescriptor(
                description=NODE_PARAMETERS.get(name, (None, "safety: see SafetyConfig in safety.py"))[1])).value
             for name, default in default_parameters().items()}
        self.p = p
        self.table = load_joint_table()
        kd = {k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("damping_kd.")}
        self.safety = SafetyController(self.table, SafetyConfig(**{
            f.name: kd if f.name == "damping_kd" else p[f.name] for f in dataclasses.fields(SafetyConfig)}))
        self._lock = threading.Lock()
        self._cycle_lock = threading.Lock()  # simulated time: one cycle at a time (SDK thread or loop)
        self._latest = None       # (MeasuredState, rclpy Time of receipt), the newest LowState
        self._seq = 0             # LowStates received
        self._stop = threading.Event()
        self._sent_intervals: list[float] = []   # wall s between LowCmds, for the stats line
        self._gaps: collections.deque = collections.deque(maxlen=30000)  # wall s between LowCmds, report
        self._cmd_latency: collections.deque = collections.deque(maxlen=5000)  # JointCommand -> LowCmd, wall s
        self._cmd_received_wall: float | None = None  # receipt of a JointCommand no LowCmd carried yet
        self.loop_clock = LoopClock(self)
        self._now = self.loop_clock.now  # monotonic (robot) or simulated (use_sim_time) seconds
        self._low_state_times: collections.deque = collections.deque(maxlen=5000)  # for the run report
        self._states_before_clock = 0  # LowStates ignored while simulated time had not reached this node
        self._transitions: list[dict] = []
        self._low_cmd_sent = 0
        self._t0 = time.monotonic()
        self.fatal: str | None = None  # set when the robot is another variant: main() exits 1
        self.fatal_event = threading.Event()

        # the cycle's state (the loop thread's, and in simulation the SDK thread's: see _sim_cycle)
        start = self._now()
        self._last_send = time.monotonic()
        self._last_stats, self._published_seq, self._last_publish = start, 0, start
        self._period, self._cycle_seq, self._tick, self._sim_next_t = 1.0 / p["send_rate_hz"], -1, start, start

        sdk = self.sdk = _import_sdk()
        domain = p["domain_id"] if p["domain_id"] >= 0 else int(os.environ.get("ROS_DOMAIN_ID", "0"))
        sdk.ChannelFactory.Instance().Init(domain, p["network_interface"])
        self._cmd_pub = sdk.B1LowCmdPublisher()
        self._cmd_pub.InitChannel()
        self._writer = LowCmdWriter(self.table)
        self._state_sub = sdk.B1LowStateSubscriber(self._on_low_state)
        self._state_sub.InitChannel()

        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self._robot_state_pub = self.create_publisher(RobotState, "robot_state", best_effort)
        self._robot_state_msg = None
        self._joint_state_pub = self.create_publisher(JointState, "joint_states", best_effort)
        self.create_subscription(JointCommand, "joint_command", self._on_joint_command,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)

        self._loco = None
        if p["use_loco_client"]:
            self._loco = sdk.B1LocoClient()
            self._loco.Init()
            self.get_logger().info(f"loco client: prepare mode, custom in {p['prepare_wait_s']:g} s")
            self._loco.ChangeMode(sdk.RobotMode.kPrepare)
            time.sleep(p["prepare_wait_s"])
            self._loco.ChangeMode(sdk.RobotMode.kCustom)
        self._grippers = None
        if p["grippers"]:
            self._gripper_loco = self._loco
            if self._gripper_loco is None:  # simulation: no mode handshake, but the grippers' RPC all the same
                self._gripper_loco = sdk.B1LocoClient()
                self._gripper_loco.Init()
            self._grippers = GripperSender(self._control_gripper, rate_hz=p["gripper_rate_hz"],
                                           threshold=p["gripper_threshold"])
        self._thread = threading.Thread(target=self._loop, name="lowcmd_loop", daemon=True)
        self._thread.start()
        self.scheduling = request_realtime(int(p["realtime_priority"]))  # every thread, the SDK's too
        self.get_logger().info(f"SDK on domain {domain} '{p['network_interface']}', LowCmd at "
                               f"{p['send_rate_hz']:g} Hz on {self.loop_clock.kind} time; scheduling "
                               f"{self.scheduling['got']} ({self.scheduling['detail']}); waiting for LowState")

    def _control_gripper(self, hand: int, position: int) -> None:
        """One ControlGripper RPC (the gripper worker thread; blocks up to the SDK's 1 s timeout)."""
        sdk = self.sdk
        param = sdk.GripperMotionParameter(position, clamp_int(self.p["gripper_force"], FORCE_RANGE),
                                           clamp_int(self.p["gripper_speed"], SPEED_RANGE))
        self._gripper_loco.ControlGripper(param, sdk.GripperControlMode.kPosition,
                                          sdk.HandIndex.kLeftHand if hand == 0 else sdk.HandIndex.kRightHand)

    # ---- callbacks ----------------------------------------------------------------------------
    def _on_low_state(self, msg) -> None:  # SDK thread: never let an exception escape into C++
        try:
            if not self.loop_clock.started:
                # Simulation: the SDK's stream can arrive seconds before /clock does. A LowState stamped
                # at simulated time 0 would start the ramp on a stopped clock, and the jump when /clock
                # arrives would read as a LowState outage (NO_STATE, then a second ramp from the
                # measured pose that drops the legs' holding torque). sim_t1 holds physics meanwhile.
                self._states_before_clock += 1
                if self._states_before_clock == 1:
                    self.get_logger().info("LowState flows, simulated time (/clock) not yet: waiting for it")
                return
            stamp = self.get_clock().now()  # the message's stamp (to_msg() only when published)
            # simulated time: the same clock, read once per LowState
            s = measured_from_low_state(msg, self.table, stamp.nanoseconds * 1e-9 if self.loop_clock.sim else self._now())
            with self._lock:
                self.safety.on_state(s)
                self._latest = (s, stamp)
                self._seq += 1
                self._low_state_times.append(s.stamp)
            if self.loop_clock.sim and not self._stop.is_set():
                self._sim_cycle()  # the simulated robot's tick: one LowCmd cycle, in this thread
        except VariantMismatch as exc:
            if self.fatal is None:
                self.fatal = str(exc)
                self.fatal_event.set()
                self.get_logger().fatal(f"{exc} The hardware interface stops.")
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"bad LowState: {exc}", throttle_duration_sec=1.0)

    def _on_joint_command(self, msg: JointCommand) -> None:
        received = time.monotonic()
        with self._lock:
            verdict = self.safety.on_command(request_from_joint_command(msg), self._now())
            counts = dict(self.safety.counts)
            if verdict.accepted:
                self._cmd_received_wall = received
        if verdict.accepted and self._grippers is not None:
            self._grippers.set(msg.left_gripper, msg.right_gripper)  # only stores it: the RPC is the worker's
        if verdict.ignored:
            self.get_logger().info(f"{verdict.reason} ({counts['ignored']} so far)", throttle_duration_sec=1.0)
        elif not verdict.accepted:
            self.get_logger().warning(f"{verdict.reason} ({counts['rejected']} so far)", throttle_duration_sec=1.0)

    def _on_estop(self, _req, resp):
        with self._lock:
            self.safety.estop(self._now(), "e-stop service")
            resp.success, resp.message = True, f"safety state {self.safety.state.name}"
        return resp

    def _on_reset(self, _req, resp):
        with self._lock:
            resp.success, resp.message = self.safety.reset(self._now())
        return resp

    # ---- the send loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        period = 1.0 / self.p["send_rate_hz"]
        next_t = self._now()
        overruns = 0
        if self.loop_clock.sim:
            self._sim_cycle()  # as the loop did: one cycle at the start
        while not self._stop.is_set() and self.context.ok():  # Ctrl-C: shutdown() sends the damping
            if self.loop_clock.sim:  # one cycle per LowState (in the SDK thread), or per period of simulated time without
                if self.loop_clock.wait_for(lambda: self._now() >= self._sim_next_t or self._stop.is_set(),
                                            max_wall_s=0.1) and not self._stop.is_set():
                    self._sim_cycle()
                continue
            else:
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -period:  # more than a period late: resynchronise instead of bursting
                    next_t, overruns = time.monotonic(), overruns + 1
                now = self._now()
            if not self._run_cycle(now, True, overruns):
                break
            overruns = 0 if now == self._last_stats else overruns

    def _sim_cycle(self) -> None:
        """Simulated time: one cycle if a LowState came since the last one (the SDK thread) or the
        silence period passed (the loop thread)."""
        with self._cycle_lock:
            seq, clock, cycle_seq = self._seq, self._now(), self._cycle_seq
            if seq == cycle_seq and clock < self._sim_next_t:
                return  # the other thread answered that LowState
            # a cycle without a new LowState only runs the watchdogs: a LowCmd answers a LowState
            # (sim_t1 holds physics for that answer; one sent blind would let it run on unseen)
            send, ticks = seq != cycle_seq, (max(1, seq - cycle_seq) if cycle_seq >= 0 else 1)
            self._cycle_seq = seq
            # /clock comes at 50 Hz: between its messages each cycle advances by the LowStates it
            # answers (2 ms each; a loaded machine may skip some), so the ramp and the step limit see
            # the simulated time that passed, not 20 ms jumps (never more than 20 ms ahead)
            self._tick = now = max(clock, min(self._tick + self._period * ticks, clock + 0.02))
            self._sim_next_t = clock + SIM_SILENCE_CYCLE_S
            self._run_cycle(now, send, 0)

    def _run_cycle(self, now: float, send: bool, overruns: int) -> bool:
        """One cycle and the stats line when due; False when the context is gone (Ctrl-C)."""
        try:
            self._cycle(now, send)
            if now - self._last_stats >= self.p["stats_period_s"]:
                self._log_stats(now - self._last_stats, self._period, overruns)
                self._last_stats = now
        except Exception as exc:  # noqa: BLE001 - keep the loop alive; no LowCmd = robot's own timeout
            if not self.context.ok():
                return False  # publishing raced with Ctrl-C's context shutdown
            self.get_logger().error(f"send loop: {exc!r}", throttle_duration_sec=1.0)
        return True

    def _cycle(self, now: float, send: bool = True) -> None:
        with self._lock:
            out = self.safety.step(now)
            transitions = self.safety.drain_transitions()
            state, reason, seq, latest = self.safety.state, self.safety.reason, self._seq, self._latest
            received, self._cmd_received_wall = self._cmd_received_wall, None
        if out is not None and send:
            self._cmd_pub.Write(self._writer.build(out))
            wall = time.monotonic()
            self._low_cmd_sent += 1
            self._sent_intervals.append(wall - self._last_send)
            self._gaps.append(wall - self._last_send)
            self._last_send = wall
            if received is not None:  # the first LowCmd that carries the newest JointCommand
                self._cmd_latency.append(wall - received)
        for tr in transitions:
            self._log_transition(tr)
        # on each new LowState; and at 10 Hz while NO_STATE, so that consumers see why it stopped
        stale = state == Safety.NO_STATE and now - self._last_publish > 0.1
        if latest is not None and (seq != self._published_seq or stale):
            previous, self._published_seq = self._published_seq, seq
            self._publish(latest, seq, previous, state, reason, now, force=stale)

    def _log_transition(self, tr) -> None:
        text = f"safety {tr.old.name} -> {tr.new.name}: {tr.reason}"
        self._transitions.append({"t": round(time.monotonic() - self._t0, 3), "t_clock": round(tr.time, 3),
                                  "from": tr.old.name.lower(),
                                  "to": tr.new.name.lower(), "reason": tr.reason})
        if tr.new in (Safety.DAMPING, Safety.FALLEN, Safety.NO_STATE):  # rclpy: one severity per call site
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def _publish(self, latest, seq: int, previous: int, state: Safety, reason: str, now: float, force: bool) -> None:
        """Publish on every Nth LowState: when a multiple of N lies in (previous, seq], so that a cycle
        that answers several LowStates at once (a loaded machine) does not skip one."""
        s, stamp = latest  # stamp: receipt of that LowState (old while NO_STATE)
        crossed = lambda n: seq // n != previous // n  # noqa: E731
        robot_state = force or crossed(self.p["robot_state_decimation"])
        joint_state = not force and crossed(self.p["joint_state_decimation"])
        if robot_state or joint_state:
            stamp = stamp.to_msg()
        if robot_state:
            self._last_publish = now
            mode = RobotState.MODE_DAMPING if state in (Safety.DAMPING, Safety.FALLEN) else RobotState.MODE_CUSTOM
            self._robot_state_msg = robot_state_msg(s, self.table.names, stamp, mode, state, reason,
                                                    self._robot_state_msg)  # one message, refilled
            self._robot_state_pub.publish(self._robot_state_msg)
        if joint_state:
            self._joint_state_pub.publish(joint_state_msg(s, self.table.names, stamp))

    def _log_stats(self, window: float, period: float, overruns: int) -> None:
        intervals, self._sent_intervals = np.array(self._sent_intervals[1:]), []
        if len(intervals) == 0:
            return
        jitter = np.abs(intervals - period) * 1e3
        self.get_logger().info(
            f"LowCmd {len(intervals) / window:.1f} Hz (target {1 / period:g}); interval jitter ms: "
            f"mean {jitter.mean():.3f} p99 {np.percentile(jitter, 99):.3f} max {jitter.max():.3f}; "
            f"overruns {overruns}; commands {self.safety.counts}")

    def report(self) -> dict:
        """What the interface saw, for the bringup summary: LowState rate over the last 5000 states."""
        times = np.array(self._low_state_times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        wall = time.monotonic() - self._t0
        gaps = np.array(self._gaps) * 1e3
        latency = np.array(self._cmd_latency) * 1e3
        watchdog = collections.Counter(t["to"] for t in self._transitions if t["to"] in ("hold", "damping", "no_state"))
        return {"clock": self.loop_clock.kind, "scheduling": self.scheduling,
                "low_state_received": self._seq, "low_state_before_clock": self._states_before_clock, "low_state_rate_hz": round(float(rate), 1),
                "low_cmd_sent": self._low_cmd_sent, "low_cmd_rate_hz": round(self._low_cmd_sent / wall, 1),
                "low_cmd_gap_ms": _percentiles(gaps), "joint_command_to_low_cmd_ms": _percentiles(latency),
                "watchdog_events": dict(watchdog),
                "final_safety_state": self.safety.state.name.lower(), "safety_transitions": self._transitions,
                "command_counts": dict(self.safety.counts), "clamp_counts": dict(self.safety.clamp_counts),
                "grippers": self._grippers.report() if self._grippers is not None else {"enabled": False}}

    # ---- exit ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the loop; hand the robot back standing (loco client) or damped; close the SDK channels."""
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self._grippers is not None:
            self._grippers.close()  # a call in flight ends within the SDK's 1 s timeout
        self._state_sub.CloseChannel()  # no SDK callbacks into a finalizing interpreter (it segfaults)
        with self._lock:
            state, damping = self.safety.state, self.safety.damping_command()
        if self._loco is not None and state in _POSE_STATES:
            self._loco.ChangeMode(self.sdk.RobotMode.kPrepare)
        else:
            with self._cycle_lock:  # after a cycle still running in the SDK thread (simulated time)
                for _ in range(10 if damping is not None else 0):
                    self._cmd_pub.Write(self._writer.build(damping))
                    time.sleep(0.002)
            if self._loco is not None:
                self._loco.ChangeMode(self.sdk.RobotMode.kDamping)
        self._cmd_pub.CloseChannel()


def _percentiles(ms: np.ndarray) -> dict:
    if ms.size == 0:
        return {"n": 0}
    return {"n": int(ms.size), "p50": round(float(np.percentile(ms, 50)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3), "max": round(float(ms.max()), 3)}


def main(args=None) -> None:
    # A 500 Hz loop shares the GIL with the executor thread: with Python's default 5 ms switch
    # interval it can wait a whole period for the GIL. 0.5 ms keeps it on time.
    sys.setswitchinterval(0.0005)
    rclpy.init(args=args)
    node = HardwareNode()
    try:
        spin(node, node.fatal_event)  # until Ctrl-C, or until the robot turns out another variant
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        write_node_report("t1_hardware_interface", dict(node.report(), fatal=node.fatal))
        node.destroy_node()
        rclpy.try_shutdown()
    if node.fatal:
        sys.exit(1)


if __name__ == "__main__":
    main()
