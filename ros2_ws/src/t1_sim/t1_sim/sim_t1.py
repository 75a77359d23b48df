"""sim_t1: the MuJoCo T1 behaving like the robot at the wire.

Publishes booster_interface/LowState on /low_state (DDS rt/low_state, best effort) at 500 Hz,
consumes LowCmd on /joint_ctrl (DDS rt/joint_ctrl, SERIAL) and applies it per motor as the
robot does (SimCore); falls back to damping when no command arrives for `command_timeout` s
(0.5 s: an assumption, the vendor does not document its drivers' timeout).
It paces itself against the wall clock, logs its real-time factor, and serves MoCap over NatNet
(trunk + the scene's tracked objects, parameter mocap_bodies) as a lab's Motive would. Sim-only tools (not on the robot): ~/push
(geometry_msgs/Wrench on the trunk for `push_duration` s) and ~/set_object_pose
(geometry_msgs/PoseStamped, frame_id = body name). With wait_for_command (default) physics
starts with the first LowCmd, as a robot held in the vendor's prepare mode. On exit it writes
$REFINE_DP_RUN_DIR/reports/sim_t1.json (ground truth: fell, trunk height, real-time factor)
and a PNG snapshot of the scene.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless snapshots; must precede the first mujoco import

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from t1_sim.natnet_server import NatNetServer, ServedBody  # noqa: E402
from t1_description.run_report import run_dir, write_node_report  # noqa: E402
from t1_description.robot_types import MotorCommand  # noqa: E402
from t1_sim.sim_core import SimCore  # noqa: E402
from t1_sim.wire import LowStateWriter, parse_low_cmd  # noqa: E402

CMD_TYPE_SERIAL = 1  # booster_interface/LowCmd.CMD_TYPE_SERIAL

TRUNK_BODY = "Trunk"


class SimT1Node(Node):
    def __init__(self) -> None:
        super().__init__("sim_t1")
        from booster_interface.msg import LowCmd, LowState
        from geometry_msgs.msg import PoseStamped, Wrench

        p = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        self.scene = p("scene", "floor")
        self.realtime = p("realtime", True)
        self.rate_hz = p("low_state_rate_hz", 500.0)
        # The vendor does not document how long the motor drivers keep the last LowCmd; sim_t1 holds
        # it for command_timeout, then damps. The interface's own watchdog is the real protection.
        self.command_timeout = p("command_timeout", 0.5)
        self.push_duration = p("push_duration", 0.2)
        self.snapshot = p("snapshot", True)
        # as a robot held in the vendor's prepare mode: physics waits for the first LowCmd
        self.wait_for_command = p("wait_for_command", True)
        self.mocap_trunk_name = p("mocap_trunk_name", "t1_trunk")
        # bodies a lab would put markers on; those missing from the scene are skipped
        self.mocap_bodies = list(p("mocap_bodies", [TRUNK_BODY, "box", "door"]))
        natnet = dict(rate_hz=p("natnet_rate_hz", 90.0), command_port=p("natnet_command_port", 1510),
                      data_port=p("natnet_data_port", 1511), noise_pos_std=p("natnet_noise_pos_std", 0.0),
                      noise_rot_std_deg=p("natnet_noise_rot_std_deg", 0.0),
                      dropout_prob=p("natnet_dropout_prob", 0.0), seed=p("natnet_seed", 0))

        self.sim = SimCore(self.scene)
        self.physics_per_state = max(1, round(1.0 / (self.rate_hz * self.sim.model.opt.timestep)))
        self._lock = threading.Lock()
        self._pending_cmd: MotorCommand | None = None
        self._last_cmd_time = -1.0
        self._bodies: list[ServedBody] = []
        self.path: list[tuple] = []  # trunk (t, x, y, yaw), every PATH_PERIOD_S of simulated time
        self._next_path_t = 0.0
        self.stats = {"commands": 0, "parallel_commands_ignored": 0, "min_trunk_height_m": self.sim.trunk_height(),
                      "fell": False, "pushes": 0, "late_cycles": 0, "low_state_published": 0,
                      "low_state_published_while_running": 0}

        self.state_pub = self.create_publisher(
            LowState, "low_state", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        # raw: LowState/LowCmd go to and from CDR bytes with numpy (wire.py), not 58 Python objects per message
        self.create_subscription(LowCmd, "joint_ctrl", self._on_low_cmd,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT), raw=True)
        self.create_subscription(Wrench, "~/push", self._on_push, 10)
        self.create_subscription(PoseStamped, "~/set_object_pose", self._on_set_pose, 10)
        self._writer = LowStateWriter(len(self.sim.jt.names))
        self._update_bodies()
        self.natnet = NatNetServer(self._bodies_snapshot, time_provider=lambda: self.sim.data.time, **natnet)
        self.natnet.start()
        self.get_logger().info(
            f"scene {self.scene}: LowState at {self.rate_hz:g} Hz ({self.physics_per_state} physics steps each), "
            f"NatNet on 127.0.0.1:{self.natnet.command_port}/{self.natnet.data_port} at {natnet['rate_hz']:g} Hz")

    # ---------------------------------------------------------------- inputs (executor thread)
    def _on_low_cmd(self, data: bytes) -> None:
        try:
            cmd_type, motors = parse_low_cmd(data)
        except ValueError as e:
            self.get_logger().warn(f"malformed LowCmd ignored: {e}", throttle_duration_sec=5.0)
            return
        if cmd_type != CMD_TYPE_SERIAL:
            self.stats["parallel_commands_ignored"] += 1
            self.get_logger().warn("LowCmd in PARALLEL space ignored: sim_t1 models serial ankles; "
                                   "send cmd_type SERIAL", throttle_duration_sec=5.0)
            return
        n = len(self.sim.jt.names)
        if len(motors) != n:
            self.get_logger().warn(f"LowCmd with {len(motors)} motors ignored (the T1 has {n})",
                                   throttle_duration_sec=5.0)
            return
        command = MotorCommand(*(motors[f].astype(float) for f in ("q", "dq", "tau", "kp", "kd")))
        with self._lock:
            self._pending_cmd = command
            self._last_cmd_time = time.monotonic()
            self.stats["commands"] += 1

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
        self.state_pub.publish(self._writer.fill(s.rpy, s.gyro, s.acc, s.q, s.dq, s.ddq, s.tau))

    def _update_bodies(self) -> None:
        bodies = []
        for i, (name, pos, quat) in enumerate(self.sim.body_poses(self.mocap_bodies)):
            bodies.append(ServedBody(self.mocap_trunk_name if name == TRUNK_BODY else name, i + 1, pos, quat))
        self._bodies = bodies

    def _bodies_snapshot(self) -> list[ServedBody]:
        return self._bodies

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
        while not stop.is_set() and rclpy.ok():
            with self._lock:
                if self._pending_cmd is not None:
                    self.sim.set_command(self._pending_cmd)
                    self._pending_cmd = None
                if self._last_cmd_time < 0 or time.monotonic() - self._last_cmd_time > self.command_timeout:
                    self.sim.set_damping()
                running = not (self.wait_for_command and self._last_cmd_time < 0)
                if running:
                    self.sim.step(self.physics_per_state)
                height = self.sim.trunk_height()
                if cycles % 5 == 0:
                    self._update_bodies()
                if self.sim.data.time >= self._next_path_t:
                    self._record_path()
            self.stats["min_trunk_height_m"] = min(self.stats["min_trunk_height_m"], height)
            self.stats["fell"] |= self.sim.has_fallen()
            self._publish_state()
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

    def report(self, run_dir: Path | None) -> dict:
        pos, quat = self.sim.trunk_pose()
        report = dict(self.stats, scene=self.scene, final_trunk_height_m=round(float(pos[2]), 4),
                      final_trunk_position_m=[round(float(v), 4) for v in pos],
                      final_trunk_quat_wxyz=[round(float(v), 5) for v in quat],
                      natnet=self.natnet.stats() if hasattr(self.natnet, "stats") else None,
                      walk=self.walk_summary())
        if run_dir is not None and self.snapshot:
            try:
                from t1_sim.snapshot import render_png
                report["snapshot_png"] = str(render_png(self.sim.model, self.sim.data, run_dir / "sim_t1.png"))
            except Exception as e:  # a missing GL must not lose the report
                report["snapshot_error"] = f"{type(e).__name__}: {e} (set MUJOCO_GL=egl or osmesa)"
        return report


def _spin_quietly(executor) -> None:
    try:
        executor.spin()
    except (ExternalShutdownException, KeyboardInterrupt):
        pass  # shutdown is handled by main()
    except Exception:
        if rclpy.ok():
            raise  # a real failure; otherwise the context went down under a spin in progress


def main(args=None) -> None:
    # A 500 Hz loop shares the GIL with the executor thread: with Python's default 5 ms switch
    # interval it can wait a whole period for the GIL. 0.5 ms keeps it on time.
    sys.setswitchinterval(0.0005)
    rclpy.init(args=args)
    node = SimT1Node()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=_spin_quietly, args=(executor,), daemon=True)
    spin.start()
    stop = threading.Event()
    try:
        node.run(stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        node.natnet.stop()
        report = node.report(run_dir())
        write_node_report("sim_t1", report)
        print(f"sim_t1 report: fell={report['fell']} final trunk height {report['final_trunk_height_m']} m, "
              f"real-time factor {report.get('real_time_factor')}", flush=True)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
