"""sim_t1: the MuJoCo T1 behaving like the robot at the wire.

Publishes booster_interface/LowState on /low_state (DDS rt/low_state, best effort) at 500 Hz
(motor_state_serial in joint space; motor_state_parallel with the ankles in motor space, the two
crank motors of t1_description/ankle.py), consumes LowCmd on /joint_ctrl (DDS rt/joint_ctrl) of
either command type, PARALLEL (the message's default; ankles in motor space) or SERIAL, and
applies it per motor as the robot does (SimCore); falls back to damping when no command arrives
for `command_timeout` s (0.5 s: an assumption, the vendor does not document its drivers' timeout).
Variants: the 29-motor T1 of the joint table. If the first LowCmd has another motor count (the
SDK's default 23 is the 23-DoF T1), sim_t1 exits with status 1 and a message naming the variant;
after a valid command, such LowCmds (and unknown cmd_types) are rejected with an error log and
counted in the report (`commands_rejected`), never dropped silently.
Start-up: the robot is settled on the floor under the default-pose hold (the IMU then reads
gravity, ~9.8 m/s^2 up) before the first LowState. With wait_for_command (default) physics then
waits for the first LowCmd, as a robot held in the vendor's prepare mode.
Time: it paces physics against the wall clock (real-time factor <= 1; slower when the machine is
too slow) and publishes the simulated time on /clock (rosgraph_msgs/Clock, `clock_rate_hz`), which
the other nodes follow with use_sim_time (`refine-dp bringup --sim` sets it), so a slow machine runs
the world slower instead of starving the controller. Optionally the world also waits for its
controllers (`sync_low_cmd_lead_s`, `sync_joint_command_lead_s`, 0 = off): physics does not run
more than that far (simulated s) ahead of the newest LowCmd / JointCommand (its header stamp),
for at most `sync_timeout_s` of wall time per wait (a dead controller then meets the interface's
watchdog as on the robot). The command timeout counts simulated time.
It logs its real-time factor, and serves MoCap over NatNet
(trunk + the scene's tracked objects, parameter mocap_bodies) as a lab's Motive would: unicast
or multicast (natnet_transport, natnet_multicast_group), on natnet_bind_address, Z-up or Y-up
(natnet_up_axis). Sim-only tools (not on the robot): ~/push (geometry_msgs/Wrench on the trunk
for `push_duration` s) and ~/set_object_pose (geometry_msgs/PoseStamped, frame_id = body name).
SIGINT/SIGTERM stop it cleanly (exit status 0): the loop ends, then the NatNet server, the report,
the executor and the ROS context are closed in that order. On exit it writes
$REFINE_DP_RUN_DIR/reports/sim_t1.json (ground truth: fell, trunk height, real-time factor,
commands by type, NatNet frames/clients/drops, the scene's objects: start, final and highest
position and their height every 0.05 s) and a PNG snapshot of the scene (RUN/sim_t1.png); with
video:=true also RUN/sim_t1.gif, a 320x240 frame every video_period_s of simulated time, rendered
off the physics thread (t1_sim.snapshot.VideoRecorder).
Grippers (serve_loco_api, default true): sim_t1 serves the robot's Loco API RPC for the grippers as
the robot does: booster_msgs/RpcReqMsg on /LocoApiTopicReq (DDS rt/LocoApiTopicReq), the vendor SDK's
B1LocoClient.ControlGripper (api_id 2010, kPosition mode), sets the hand's MuJoCo gripper actuator
(ctrl 0 open .. 1 closed, from the SDK position by t1_description/gripper.py) and answers on
/LocoApiTopicResp with the request's uuid and status 0 (the SDK's call returns then; without an
answer it raises after 1 s). Other APIs (ChangeMode, Move, ...) and kForce mode are answered with
status 400, logged and counted. The report's `grippers` gives per hand the calls, the last SDK
position, the final ctrl and finger closure (fraction of the stroke), their maxima and the
simulated seconds spent commanded closed (ctrl >= 0.5).
Start pose: robot_start [x, y, yaw] (world, m and rad; default the stand keyframe's [0.0, 0.0, 0.0]) moves
the settled robot there before anything is served (a task's start relative to its objects).
"""
from __future__ import annotations

import collections
import math
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless snapshots; must precede the first mujoco import

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402

from t1_sim.natnet_server import NatNetServer, ServedBody  # noqa: E402
from t1_description import gripper as gripper_wire  # noqa: E402
from t1_description.joint_table import variant_mismatch_message  # noqa: E402
from t1_description.ros_runtime import spin  # noqa: E402
from t1_description.run_report import run_dir, write_node_report  # noqa: E402
from t1_description.robot_types import MotorCommand  # noqa: E402
from t1_sim.sim_core import SimCore  # noqa: E402
from t1_sim.wire import LowStateWriter, parse_low_cmd  # noqa: E402

CMD_TYPE_PARALLEL = 0  # booster_interface/LowCmd.CMD_TYPE_PARALLEL (the message's default)
CMD_TYPE_SERIAL = 1  # booster_interface/LowCmd.CMD_TYPE_SERIAL
NATNET_TRANSPORTS = ("unicast", "multicast")

TRUNK_BODY = "Trunk"


class SimT1Node(Node):
    def __init__(self, stop: threading.Event | None = None) -> None:
        super().__init__("sim_t1")
        self.stop_event = stop or threading.Event()
        self.fatal: str | None = None  # set when the node must exit with an error (a variant mismatch)
        from booster_interface.msg import LowCmd, LowState
        from geometry_msgs.msg import PoseStamped, Wrench

        p = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        self.scene = p("scene", "floor")
        self.realtime = p("realtime", True)
        self.rate_hz = p("low_state_rate_hz", 500.0)
        # The vendor does not document how long the motor drivers keep the last LowCmd; sim_t1 holds
        # it for command_timeout, then damps. The interface's own watchdog is the real protection.
        self.command_timeout = p("command_timeout", 0.5)  # simulated s
        self.publish_clock = p("publish_clock", True)
        self.clock_rate_hz = p("clock_rate_hz", 50.0)  # every Python node pays a callback per /clock
        self.sync_low_cmd_lead = p("sync_low_cmd_lead_s", 0.0)
        self.sync_joint_command_lead = p("sync_joint_command_lead_s", 0.0)
        self.sync_timeout = p("sync_timeout_s", 0.5)
        self.push_duration = p("push_duration", 0.2)
        self.snapshot = p("snapshot", True)
        # as a robot held in the vendor's prepare mode: physics waits for the first LowCmd
        self.wait_for_command = p("wait_for_command", True)
        self.mocap_trunk_name = p("mocap_trunk_name", "t1_trunk")
        # bodies a lab would put markers on; those missing from the scene are skipped
        self.mocap_bodies = list(p("mocap_bodies", [TRUNK_BODY, "box", "door", "place_target"]))
        transport = p("natnet_transport", "unicast")  # Motive's default is multicast
        if transport not in NATNET_TRANSPORTS:
            raise ValueError(f"natnet_transport must be one of {NATNET_TRANSPORTS}, got {transport!r}")
        natnet = dict(rate_hz=p("natnet_rate_hz", 90.0), command_port=p("natnet_command_port", 1510),
                      data_port=p("natnet_data_port", 1511), noise_pos_std=p("natnet_noise_pos_std", 0.0),
                      noise_rot_std_deg=p("natnet_noise_rot_std_deg", 0.0),
                      dropout_prob=p("natnet_dropout_prob", 0.0), seed=p("natnet_seed", 0),
                      host=p("natnet_bind_address", "127.0.0.1"),  # 0.0.0.0 or a LAN address for other hosts
                      multicast=p("natnet_multicast_group", "239.255.42.99") if transport == "multicast" else None,
                      up_axis=p("natnet_up_axis", "z_up"))  # "y_up": Motive's default world

        self.sim = SimCore(self.scene)
        settle_s = self.sim.settle() if p("settle", True) else 0.0
        robot_start = [float(v) for v in p("robot_start", [0.0, 0.0, 0.0])]  # x, y, yaw after the settle
        if len(robot_start) != 3:
            raise ValueError(f"robot_start must be [x, y, yaw], got {robot_start}")
        if any(robot_start):
            self.sim.place_trunk(*robot_start)
        self.robot_start = robot_start
        self.physics_per_state = max(1, round(1.0 / (self.rate_hz * self.sim.model.opt.timestep)))
        self._lock = threading.Lock()
        self._pending_cmd: tuple[MotorCommand, bool] | None = None  # (command, PARALLEL)
        self._last_cmd_time = -1.0     # simulated time of the newest LowCmd (-1: none yet)
        self._last_joint_command_stamp = -1.0  # header stamp (simulated s) of the newest JointCommand
        self._last_joint_command_wall = -1.0
        self._last_low_cmd_wall = -1.0
        self._inputs = threading.Condition(self._lock)  # notified by LowCmd / JointCommand
        self._low_cmd_gaps: collections.deque = collections.deque(maxlen=20000)  # wall s between LowCmds
        self._bodies: list[ServedBody] = []
        self.path: list[tuple] = []  # trunk (t, x, y, yaw), every PATH_PERIOD_S of simulated time
        self._next_path_t = 0.0
        # the scene's objects (MoCap bodies other than the trunk): start pose, highest point, height track
        self.objects = {name: {"start_pos_m": [round(float(v), 4) for v in pos], "max_z_m": float(pos[2]),
                               "max_z_time_s": 0.0, "height": []}
                        for name, pos, _ in self.sim.body_poses(self.mocap_bodies) if name != TRUNK_BODY}
        self._object_ids = {name: self.sim.model.body(name).id for name in self.objects}
        self._next_object_t = 0.0
        self.video = None
        if p("video", False):  # off by default: tests and benchmarks do not pay for it
            from t1_sim.snapshot import VideoRecorder, scene_view
            self.video = VideoRecorder(self.sim.model, period_s=p("video_period_s", 0.2), view=scene_view(self.scene))
        self.stats = {"commands": 0, "commands_parallel": 0, "commands_serial": 0, "commands_rejected": {},
                      "settle_time_s": round(settle_s, 3), "min_trunk_height_m": self.sim.trunk_height(),
                      "fell": False, "pushes": 0, "late_cycles": 0, "low_state_published": 0,
                      "low_state_published_while_running": 0, "sync_waits": 0, "sync_wait_s": 0.0,
                      "sync_timeouts": 0}

        self.state_pub = self.create_publisher(
            LowState, "low_state", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        # raw: LowState/LowCmd go to and from CDR bytes with numpy (wire.py), not 58 Python objects per message
        self.create_subscription(LowCmd, "joint_ctrl", self._on_low_cmd,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT), raw=True)
        if self.publish_clock:  # sim_t1 is the clock of the simulated graph
            from rosgraph_msgs.msg import Clock
            self.clock_pub = self.create_publisher(Clock, "/clock", QoSProfile(depth=1))
            self._clock_every = max(1, round(self.rate_hz / self.clock_rate_hz))
            self._clock_buf = bytearray(b"\x00\x01\x00\x00" + bytes(8))  # CDR of builtin_interfaces/Time
        if self.sync_joint_command_lead > 0:  # raw: only the header stamp is read
            from refine_dp_msgs.msg import JointCommand
            self.create_subscription(JointCommand, "joint_command", self._on_joint_command,
                                     QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE), raw=True)
        self.grippers = {h: {"calls": 0, "last_position": None, "max_ctrl": 0.0, "max_closure": 0.0,
                             "closed_s": 0.0} for h in gripper_wire.HANDS}
        self.rpc_stats = {"requests": 0, "control_gripper": 0, "refused": {}}
        if p("serve_loco_api", True):  # the robot's Loco API, ControlGripper only (booster_msgs: the SDK's types)
            from booster_msgs.msg import RpcReqMsg, RpcRespMsg
            self._RpcRespMsg = RpcRespMsg
            rpc_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.rpc_pub = self.create_publisher(RpcRespMsg, gripper_wire.LOCO_API_TOPIC_RESP, rpc_qos)
            self.create_subscription(RpcReqMsg, gripper_wire.LOCO_API_TOPIC_REQ, self._on_rpc, rpc_qos)
        self.create_subscription(Wrench, "~/push", self._on_push, 10)
        self.create_subscription(PoseStamped, "~/set_object_pose", self._on_set_pose, 10)
        self._writer = LowStateWriter(len(self.sim.jt.names))
        self._update_bodies()
        self._natnet_every = max(1, round(self.rate_hz / natnet["rate_hz"]))  # cycles per frame while waiting
        self._natnet_period, self._next_natnet_t = 1.0 / natnet["rate_hz"], 0.0  # with /clock: simulated time
        self.natnet = NatNetServer(self._bodies_snapshot, time_provider=lambda: self.sim.data.time,
                                   paced_externally=self.publish_clock, **natnet)
        self.natnet.start()
        nn = self.natnet
        where = f"multicast {nn.multicast}:{nn.data_port}" if nn.multicast else "unicast"
        self.get_logger().info(
            f"scene {self.scene}: settled on the floor in {settle_s:.2f} s; LowState at {self.rate_hz:g} Hz "
            f"({self.physics_per_state} physics steps each); LowCmd PARALLEL or SERIAL, {len(self.sim.jt.names)} "
            f"motors; NatNet {'.'.join(map(str, nn.natnet_version[:2]))} on {nn.host}:{nn.command_port} ({where}, "
            f"{nn.up_axis}) at {natnet['rate_hz']:g} Hz")

    # ---------------------------------------------------------------- inputs (executor thread)
    def _reject(self, reason: str, message: str) -> None:
        rejected = self.stats["commands_rejected"]
        rejected[reason] = rejected.get(reason, 0) + 1
        self.get_logger().error(f"LowCmd rejected ({rejected[reason]} so far): {message}", throttle_duration_sec=1.0)

    def _on_low_cmd(self, data: bytes) -> None:
        try:
            cmd_type, motors = parse_low_cmd(data)
        except ValueError as e:
            self._reject("malformed", str(e))
            return
        if cmd_type not in (CMD_TYPE_PARALLEL, CMD_TYPE_SERIAL):
            self._reject("cmd_type", f"cmd_type {cmd_type} is neither PARALLEL ({CMD_TYPE_PARALLEL}) "
                                     f"nor SERIAL ({CMD_TYPE_SERIAL})")
            return
        jt = self.sim.jt
        if len(motors) != len(jt.names):
            message = variant_mismatch_message(len(motors), jt, "LowCmd")
            if self.stats["commands"] == 0:  # at start-up: refuse the session, loudly
                self.fatal = message
                self.get_logger().fatal(message + " sim_t1 stops.")
                self.stop_event.set()
            else:
                self._reject(f"{len(motors)}_motors", message)
            return
        parallel = cmd_type == CMD_TYPE_PARALLEL
        command = MotorCommand(*(jt.sdk_to_model(motors[f].astype(float)) for f in ("q", "dq", "tau", "kp", "kd")))
        wall = time.perf_counter()
        with self._lock:
            self._pending_cmd = (command, parallel)
            self._last_cmd_time = self.sim.data.time
            if self._last_low_cmd_wall >= 0:
                self._low_cmd_gaps.append(wall - self._last_low_cmd_wall)
            self._last_low_cmd_wall = wall
            self.stats["commands"] += 1
            self.stats["commands_parallel" if parallel else "commands_serial"] += 1
            self._inputs.notify_all()

    def _on_joint_command(self, data: bytes) -> None:
        """JointCommand's header stamp (the controller's simulated time), for sync_joint_command_lead_s."""
        if len(data) < 12:
            return
        sec, nanosec = struct.unpack_from("<iI", data, 4)
        with self._lock:
            self._last_joint_command_stamp = sec + nanosec * 1e-9
            self._last_joint_command_wall = time.perf_counter()
            self._inputs.notify_all()

    def _on_rpc(self, req) -> None:
        """A Loco API request (executor thread): ControlGripper sets the gripper; every request is answered."""
        self.rpc_stats["requests"] += 1
        status, message = gripper_wire.RPC_STATUS_SUCCESS, ""
        try:
            api_id = int(gripper_wire.parse_rpc_header(req.header)["api_id"])
            if api_id != gripper_wire.LOCO_API_CONTROL_GRIPPER:
                raise ValueError(f"sim_t1 serves only ControlGripper ({gripper_wire.LOCO_API_CONTROL_GRIPPER}) "
                                 f"of the Loco API, not api_id {api_id}")
            g = gripper_wire.parse_control_gripper(req.body)
            if g.mode != gripper_wire.GRIPPER_MODE_POSITION:
                raise ValueError(f"sim_t1 serves ControlGripper in kPosition mode only, not mode {g.mode}")
            fraction = gripper_wire.gripper_fraction(g.position)
            with self._lock:
                self.sim.set_gripper(g.hand, fraction)
            hand = self.grippers[gripper_wire.HANDS[g.hand]]
            hand["calls"] += 1
            hand["last_position"] = g.position
            self.rpc_stats["control_gripper"] += 1
            self.get_logger().info(f"ControlGripper {gripper_wire.HANDS[g.hand]}: position {g.position} "
                                   f"-> ctrl {fraction:.3f}", throttle_duration_sec=0.5)
        except ValueError as e:
            status, message = gripper_wire.RPC_STATUS_BAD_REQUEST, str(e)
            refused = self.rpc_stats["refused"]
            refused[message[:80]] = refused.get(message[:80], 0) + 1
            self.get_logger().error(f"Loco API request refused: {message}", throttle_duration_sec=1.0)
        self.rpc_pub.publish(self._RpcRespMsg(uuid=req.uuid, header=gripper_wire.rpc_response_header(status, message),
                                              body=""))

    def _on_push(self, msg) -> None:
        with self._lock:
            f, t = msg.force, msg.torque
            self.sim.push([f.x, f.y, f.z], [t.x, t.y, t.z], self.push_duration)
            self.stats["pushes"] += 1
        self.get_logger().info(f"push: force ({f.x:.0f}, {f.y:.0f}, {f.z:.0f}) N for {self.push_duration} s")

    def _on_set_pose(self, msg) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        try:
            with self._lock:
                self.sim.set_body_pose(msg.header.frame_id, [p.x, p.y, p.z], [q.w, q.x, q.y, q.z])
        except (KeyError, ValueError) as e:
            self.get_logger().error(f"set_object_pose: {e}")

    # ---------------------------------------------------------------- outputs
    def _publish_state(self) -> None:
        s = self.sim.low_state()
        self.state_pub.publish(self._writer.fill(s.rpy, s.gyro, s.acc, s.q, s.dq, s.ddq, s.tau, s.parallel))

    def _update_bodies(self) -> None:
        bodies = []
        for i, (name, pos, quat) in enumerate(self.sim.body_poses(self.mocap_bodies)):
            bodies.append(ServedBody(self.mocap_trunk_name if name == TRUNK_BODY else name, i + 1, pos, quat))
        self._bodies = bodies

    def _bodies_snapshot(self) -> list[ServedBody]:
        return self._bodies

    def _publish_clock(self) -> None:
        t = self.sim.data.time
        sec = int(t)
        struct.pack_into("<iI", self._clock_buf, 4, sec, min(999_999_999, int(round((t - sec) * 1e9))))
        self.clock_pub.publish(bytes(self._clock_buf))

    def _behind(self, now_wall: float) -> str | None:
        """Which controller physics must wait for (caller holds the lock), or None."""
        t = self.sim.data.time
        fresh = lambda wall: wall >= 0 and now_wall - wall < self.sync_timeout  # noqa: E731
        if self.sync_low_cmd_lead > 0 and fresh(self._last_low_cmd_wall) \
                and t - self._last_cmd_time > self.sync_low_cmd_lead:
            return "LowCmd"
        if self.sync_joint_command_lead > 0 and fresh(self._last_joint_command_wall) \
                and t - self._last_joint_command_stamp > self.sync_joint_command_lead:
            return "JointCommand"
        return None

    def _wait_for_controllers(self, stop: threading.Event) -> bool:
        """Hold physics while a controller is behind (at most sync_timeout_s of wall time). Caller holds
        the lock. True if it waited."""
        start = time.perf_counter()
        if self._behind(start) is None:
            return False
        while not stop.is_set():
            now = time.perf_counter()
            if now - start > self.sync_timeout:
                self.stats["sync_timeouts"] += 1
                break
            if self._behind(now) is None:
                break
            self._inputs.wait(0.002)
        self.stats["sync_waits"] += 1
        self.stats["sync_wait_s"] += time.perf_counter() - start
        return True

    # ---------------------------------------------------------------- main loop (main thread)
    def run(self, stop: threading.Event) -> None:
        period = 1.0 / self.rate_hz
        t_start = time.perf_counter()
        next_tick, cycles, rtf_t, rtf_sim = t_start, 0, t_start, self.sim.data.time
        try:
            self._loop(stop, period, next_tick, cycles, rtf_t, rtf_sim)
        finally:
            wall = time.perf_counter() - t_start
            self.stats["sim_time_s"] = round(self.sim.data.time, 3)
            self.stats["wall_time_s"] = round(wall, 3)
            self.stats["real_time_factor"] = round(self.sim.data.time / wall, 4) if wall > 0 else None

    def _loop(self, stop, period, next_tick, cycles, rtf_t, rtf_sim) -> None:
        while not stop.is_set():
            with self._lock:
                if self._pending_cmd is not None:
                    self.sim.set_command(*self._pending_cmd)
                    self._pending_cmd = None
                if self._last_cmd_time < 0 or self.sim.data.time - self._last_cmd_time > self.command_timeout:
                    self.sim.set_damping()
                running = not (self.wait_for_command and self._last_cmd_time < 0)
                waited = running and self._wait_for_controllers(stop)
                if running:
                    self.sim.step(self.physics_per_state)
                height = self.sim.trunk_height()
                if cycles % 5 == 0:
                    self._update_bodies()
                if self.sim.data.time >= self._next_path_t:
                    self._record_path()
                if running and self.sim.data.time >= self._next_object_t:
                    self._record_objects()
                if running and self.video is not None:
                    self.video.capture(self.sim.data)
            self.stats["min_trunk_height_m"] = min(self.stats["min_trunk_height_m"], height)
            self.stats["fell"] |= self.sim.has_fallen()
            self._publish_state()
            if self.publish_clock:
                if cycles % self._clock_every == 0:
                    self._publish_clock()
                if running and self.sim.data.time >= self._next_natnet_t:  # natnet_rate_hz of simulated time
                    self.natnet.send_frame()
                    self._next_natnet_t = max(self._next_natnet_t + self._natnet_period,
                                              self.sim.data.time - self._natnet_period)
                elif not running and cycles % self._natnet_every == 0:  # waiting for LowCmd: a static world
                    self.natnet.send_frame()
            self.stats["low_state_published"] += 1
            self.stats["low_state_published_while_running"] += running
            cycles += 1
            now = time.perf_counter()
            if now - rtf_t >= 5.0:
                rtf = (self.sim.data.time - rtf_sim) / (now - rtf_t)
                self.get_logger().info(f"real-time factor {rtf:.3f}, trunk height {height:.3f} m, "
                                       f"late cycles {self.stats['late_cycles']}")
                rtf_t, rtf_sim = now, self.sim.data.time
            if self.realtime:
                if waited:  # a controller held the world: restart the pacing, no catch-up burst
                    next_tick = time.perf_counter()
                next_tick += period
                delay = next_tick - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.05:  # far behind (e.g. a stall): do not try to catch up in a burst
                    self.stats["late_cycles"] += 1
                    next_tick = time.perf_counter()

    PATH_PERIOD_S = 0.5  # one gait step: the walking sway averages out of the distance walked

    def _record_path(self) -> None:
        pos, quat = self.sim.trunk_pose()
        w, x, y, z = quat
        yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        self.path.append((round(self.sim.data.time, 3), float(pos[0]), float(pos[1]), yaw))
        self._next_path_t = self.sim.data.time + self.PATH_PERIOD_S

    OBJECT_PERIOD_S = 0.05  # the objects' height track: fine enough for a task's "held 1 s"

    def _record_objects(self) -> None:
        t = self.sim.data.time
        ctrl, closure = self.sim.gripper_state()
        for h, name in enumerate(gripper_wire.HANDS):
            g = self.grippers[name]
            g["max_ctrl"], g["max_closure"] = max(g["max_ctrl"], float(ctrl[h])), max(g["max_closure"], float(closure[h]))
            if ctrl[h] >= 0.5 and self._next_object_t > 0:
                g["closed_s"] += t - (self._next_object_t - self.OBJECT_PERIOD_S)
        for name, obj in self.objects.items():
            z = float(self.sim.data.xpos[self._object_ids[name], 2])
            obj["height"].append((round(t, 3), round(z, 4)))
            if z > obj["max_z_m"]:
                obj["max_z_m"], obj["max_z_time_s"] = z, round(t, 3)
        self._next_object_t = t + self.OBJECT_PERIOD_S

    def objects_summary(self) -> dict:
        """Per scene object: start, final and highest position (m), and its height track [[t, z]]."""
        out = {}
        for name, obj in self.objects.items():
            (_, pos, _), = self.sim.body_poses([name])
            out[name] = dict(obj, final_pos_m=[round(float(v), 4) for v in pos], max_z_m=round(obj["max_z_m"], 4),
                             height=[list(row) for row in obj["height"]])
        return out

    def walk_summary(self) -> dict:
        """Ground truth of where the trunk went: distance walked (sum of 0.5 s displacements),
        net displacement, yaw change (unwrapped), and the sampled path [t, x, y, yaw]."""
        if len(self.path) < 2:
            return {"distance_walked_m": 0.0, "net_displacement_m": 0.0, "yaw_change_deg": 0.0, "path": self.path}
        p = np.array(self.path)
        steps = np.hypot(np.diff(p[:, 1]), np.diff(p[:, 2]))
        return {"distance_walked_m": round(float(steps.sum()), 4),
                "net_displacement_m": round(float(np.hypot(p[-1, 1] - p[0, 1], p[-1, 2] - p[0, 2])), 4),
                "yaw_change_deg": round(float(np.degrees(np.unwrap(p[:, 3])[-1] - p[0, 3])), 2),
                "path": [[round(v, 4) for v in row] for row in self.path]}

    def low_cmd_timing(self) -> dict:
        """LowCmds as the robot's side of the wire sees them: wall-clock gaps between receipts."""
        gaps = np.array(self._low_cmd_gaps) * 1e3
        if gaps.size < 2:
            return {"n": int(gaps.size)}
        return {"n": int(gaps.size), "rate_hz": round(float(1e3 / gaps.mean()), 1),
                "gap_p50_ms": round(float(np.percentile(gaps, 50)), 3),
                "gap_p99_ms": round(float(np.percentile(gaps, 99)), 3), "gap_max_ms": round(float(gaps.max()), 3)}

    def grippers_summary(self) -> dict:
        """Per hand: ControlGripper calls, last SDK position, final ctrl and finger closure (0 open .. 1
        closed), their maxima, and simulated seconds commanded closed; plus the RPC counts."""
        ctrl, closure = self.sim.gripper_state()
        out = {}
        for h, name in enumerate(gripper_wire.HANDS):
            g = self.grippers[name]
            out[name] = dict(g, ctrl=round(float(ctrl[h]), 4), closure=round(float(closure[h]), 4),
                             max_ctrl=round(max(g["max_ctrl"], float(ctrl[h])), 4),
                             max_closure=round(max(g["max_closure"], float(closure[h])), 4),
                             closed_s=round(g["closed_s"], 3))
        return dict(out, rpc=self.rpc_stats)

    def report(self, run_dir: Path | None) -> dict:
        pos, quat = self.sim.trunk_pose()
        self.stats["sync_wait_s"] = round(self.stats["sync_wait_s"], 3)
        report = dict(self.stats, low_cmd_timing=self.low_cmd_timing(), scene=self.scene, final_trunk_height_m=round(float(pos[2]), 4),
                      final_trunk_position_m=[round(float(v), 4) for v in pos],
                      final_trunk_quat_wxyz=[round(float(v), 5) for v in quat],
                      natnet=self.natnet.stats(), fatal=self.fatal, robot_start=self.robot_start,
                      objects=self.objects_summary(), walk=self.walk_summary(), grippers=self.grippers_summary())
        if run_dir is not None and self.snapshot:
            try:
                from t1_sim.snapshot import render_png, scene_view
                report["snapshot_png"] = str(render_png(self.sim.model, self.sim.data, run_dir / "sim_t1.png",
                                                        **scene_view(self.scene)))
            except Exception as e:  # a missing GL must not lose the report
                report["snapshot_error"] = f"{type(e).__name__}: {e} (set MUJOCO_GL=egl or osmesa)"
        return report


def _spin_quietly(node, stop: threading.Event) -> None:
    try:
        spin(node, stop)  # events executor (t1_description.ros_runtime)
    except (ExternalShutdownException, KeyboardInterrupt):
        pass  # shutdown is handled by main()
    except Exception:
        if rclpy.ok():
            raise  # a real failure; otherwise the context went down under a spin in progress


def main(args=None) -> None:
    # SIGINT/SIGTERM only set `stop`: the loop finishes its cycle and everything closes in order.
    # (rclpy's own handler shut the context down under the running loop, whose next publish then
    # raised "publisher's context is invalid" and the process exited 1.)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A 500 Hz loop shares the GIL with the executor thread: with Python's default 5 ms switch
    # interval it can wait a whole period for the GIL. 0.5 ms keeps it on time.
    sys.setswitchinterval(0.0005)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = SimT1Node(stop)
    except (ValueError, OSError) as e:  # bad parameter, NatNet port taken: say so, exit 1
        print(f"sim_t1: {e}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        sys.exit(1)
    spinner = threading.Thread(target=_spin_quietly, args=(node, stop), daemon=True)
    spinner.start()
    try:
        node.run(stop)
    finally:
        stop.set()
        node.natnet.stop()
        report = node.report(run_dir())
        write_node_report("sim_t1", report)
        if node.video is not None and run_dir() is not None:  # after the report: a slow GIF loses only itself
            report["video"] = node.video.finish(run_dir() / "sim_t1.gif")
            write_node_report("sim_t1", report)
        print(f"sim_t1 report: fell={report['fell']} final trunk height {report['final_trunk_height_m']} m, "
              f"real-time factor {report.get('real_time_factor')}", flush=True)
        spinner.join(timeout=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    if node.fatal:
        sys.exit(1)


if __name__ == "__main__":
    main()
