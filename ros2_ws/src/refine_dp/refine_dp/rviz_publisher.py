"""rviz_publisher: the robot on the ROS graph for rviz (and any ROS tool): description, TF, markers.

  /robot_description  std_msgs/String, the T1 URDF, reliable + transient-local (late joiners get it)
  /tf_static          the URDF's fixed joints (hands, feet, imu) and base_link -> Trunk, transient-local
  /tf                 world -> base_link and every movable joint from `joint_states`
                      (refine_dp.robot_tf: our robot_state_publisher), at most `rate_hz`
  /refine_dp/markers  visualization_msgs/MarkerArray at `rate_hz` / `marker_decimation`: footstep target
                      and landed steps, commanded (base_link) and measured (FK) hand poses, the planner's
                      current chunk (LINE_STRIPs in base_link: base path and hand paths, from its
                      planner_chunk/base, left_hand, right_hand PoseArrays), tracked objects, status text.
                      A commander that publishes no chunk (the scripted commander): the commanded base
                      velocity integrated over `chunk_s` and a trail of the commanded hand positions instead.
world -> base_link: the MoCap trunk body (`trunk_object` in `objects`: Motive, or sim_t1's ground truth
served over NatNet) while tracked; its last pose while lost; before any, upright at the origin with
the lower sole on the floor (no odometry is published on the graph to use instead).
Every subscription is best effort, depth 1 and only stores the message: the work is in the timer, at a
viewer's rate, so a loaded machine drops frames here rather than slowing the control nodes.
`enabled: false` leaves the node idle (the graph runs without it).
"""
from __future__ import annotations

import collections
import time

import numpy as np
import rclpy
from geometry_msgs.msg import Point, PoseArray, TransformStamped
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from refine_dp_msgs.msg import ControllerStatus, FootstepCommand, HighLevelCommand, ObjectStateArray, PlannerStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from refine_dp_planner.messages import CHUNK_TOPICS
from refine_dp_planner.planner_io import integrate_base
from refine_dp.robot_tf import RobotTF, Transform, level_base_pose, planar, pose_matrix
from t1_description.model_paths import urdf_path
from t1_description.run_report import write_node_report
from t1_description.ros_runtime import spin
from t1_description.urdf_kinematics import parse_urdf_string

FEET = ("left_foot", "right_foot")
HANDS = ("left_hand", "right_hand")
PARAMETERS = {  # name: (default, description)
    "enabled": (True, "false: publish nothing (the graph runs without the viewer)"),
    "urdf_file": ("", "URDF to publish; empty: t1_description's t1.urdf"),
    "rate_hz": (20.0, "TF at most this often (a viewer's rate; joint_states come at 50 Hz)"),
    "marker_decimation": (4, "markers on every Nth TF tick"),
    "world_frame": ("world", "fixed frame (MoCap world)"),
    "base_frame": ("base_link", "robot root frame (= the URDF root link's pose)"),
    "trunk_object": ("t1_trunk", "object in `objects` that is the robot root (mocap_bridge trunk_body)"),
    "landed_steps": (12, "landed footsteps kept as markers"),
    "chunk_s": (1.2, "no planner chunk published: the commanded base velocity is drawn integrated over this long"),
    "hand_trail": (30, "no planner chunk published: commanded hand positions kept as a trail"),
}
COLOURS = {"target": (1.0, 0.55, 0.0, 0.8), "landed": (0.3, 0.5, 0.9, 0.6), "cmd": (0.1, 0.8, 0.2, 1.0),
           "chunk": (0.1, 0.8, 0.8, 1.0),
           "measured": (0.2, 0.4, 1.0, 1.0), "object": (0.9, 0.8, 0.2, 0.9), "lost": (0.5, 0.5, 0.5, 0.5),
           "text": (1.0, 1.0, 1.0, 1.0)}


def _transform_msg(t: Transform, stamp) -> TransformStamped:
    m = TransformStamped()
    m.header.stamp, m.header.frame_id, m.child_frame_id = stamp, t.parent, t.child
    tr, r = m.transform.translation, m.transform.rotation
    tr.x, tr.y, tr.z = t.xyz.tolist()
    r.x, r.y, r.z, r.w = t.quat_xyzw.tolist()
    return m


def _marker(frame: str, ns: str, mid: int, mtype: int, colour: str, scale) -> Marker:
    m = Marker()
    m.header.frame_id, m.ns, m.id, m.type, m.action = frame, ns, mid, mtype, Marker.ADD
    m.scale.x, m.scale.y, m.scale.z = (float(s) for s in scale)
    m.color.r, m.color.g, m.color.b, m.color.a = COLOURS[colour]
    m.pose.orientation.w = 1.0
    return m


def _set_pose(m: Marker, pose: np.ndarray) -> None:
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in pose[:3, 3])
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in Rotation.from_matrix(pose[:3, :3]).as_quat())


def _planar_pose(x: float, y: float, yaw: float, z: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = x, y, z
    return pose


def base_path(vx: float, vy: float, wz: float, duration: float, n: int = 12) -> np.ndarray:
    """(n+1, 2) points of the base's path in base_link when (vx, vy, wz) is held for `duration` (the
    fallback when no planner chunk is published)."""
    return integrate_base(np.tile([vx, vy, wz], (n, 1)), duration / n)[:, :2]


class RvizPublisher(Node):
    def __init__(self) -> None:
        super().__init__("rviz_publisher")
        self.p = {k: self.declare_parameter(k, d).value for k, (d, _) in PARAMETERS.items()}
        self.stats = {"tf_published": 0, "markers_published": 0, "tick_ms_max": 0.0, "tick_ms_total": 0.0,
                      "base_pose": "none"}
        if not self.p["enabled"]:
            self.get_logger().info("enabled is false: publishing nothing")
            return
        path = self.p["urdf_file"] or str(urdf_path())
        with open(path) as f:
            urdf_text = f.read()
        self.tree = RobotTF(parse_urdf_string(urdf_text, source=path))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_publisher(String, "/robot_description", latched).publish(String(data=urdf_text))
        now = self.get_clock().now().to_msg()
        base = self.p["base_frame"]
        static = [_transform_msg(t, now) for t in self.tree.fixed]
        if base != self.tree.root:  # base_link is the URDF root link's frame (REP-105 name for it)
            static.append(_transform_msg(Transform(base, self.tree.root, np.zeros(3), np.array([0, 0, 0, 1.0])), now))
        self.create_publisher(TFMessage, "/tf_static", latched).publish(TFMessage(transforms=static))
        self.tf_pub = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.marker_pub = self.create_publisher(MarkerArray, "/refine_dp/markers", QoSProfile(depth=1))

        newest = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
        self.latest: dict[str, object] = {}
        for msg_type, topic in ((JointState, "joint_states"), (ObjectStateArray, "objects"),
                                (FootstepCommand, "footstep_command"), (HighLevelCommand, "high_level_command"),
                                (PlannerStatus, "planner_status"), (ControllerStatus, "controller_status")):
            self.create_subscription(msg_type, topic, lambda m, k=topic: self.latest.__setitem__(k, m), newest)
        for topic in CHUNK_TOPICS:  # the planner's current chunk (the refine_dp_planner node publishes it)
            self.create_subscription(PoseArray, topic, lambda m, k=topic: self.latest.__setitem__(k, m), newest)
        self.joint_msg = None  # the JointState last drawn
        self.q = np.zeros(len(self.tree.joint_names))
        self.base_pose: np.ndarray | None = None  # world <- base_link from MoCap, held while lost
        self.poses: dict[str, np.ndarray] = {}
        self.landed = collections.deque(maxlen=int(self.p["landed_steps"]))
        self.hand_trail = collections.deque(maxlen=int(self.p["hand_trail"]))
        self.step: FootstepCommand | None = None
        self.ticks = 0
        self.create_timer(1.0 / self.p["rate_hz"], self._tick)
        self.get_logger().info(f"{path}: {len(self.tree.joint_names)} movable, {len(self.tree.fixed)} fixed joints; "
                               f"TF at <= {self.p['rate_hz']:g} Hz, markers on /refine_dp/markers")

    # ------------------------------------------------------------------ per tick
    def _tick(self) -> None:
        js = self.latest.get("joint_states")
        if js is None or js is self.joint_msg:
            return  # nothing new to draw
        t0 = time.perf_counter()
        self.joint_msg = js
        try:
            self.q = self.tree.positions(js.name, js.position)
        except KeyError as exc:
            self.get_logger().error(f"joint_states: {exc}", throttle_duration_sec=5.0)
            return
        base = self._base_pose()
        stamp = js.header.stamp
        edges = self.tree.movable(self.q)
        msgs = [_transform_msg(Transform(self.p["world_frame"], self.p["base_frame"], base[:3, 3],
                                         _quat(base)), stamp)]
        msgs += [_transform_msg(t, stamp) for t in edges]
        self.tf_pub.publish(TFMessage(transforms=msgs))
        self.stats["tf_published"] += 1
        self.ticks += 1
        if self.ticks % max(1, int(self.p["marker_decimation"])) == 0:
            self.poses = self.tree.link_poses(self.q, base)
            self.marker_pub.publish(MarkerArray(markers=self._markers()))
            self.stats["markers_published"] += 1
        ms = (time.perf_counter() - t0) * 1e3
        self.stats["tick_ms_total"] += ms
        self.stats["tick_ms_max"] = max(self.stats["tick_ms_max"], ms)

    def _base_pose(self) -> np.ndarray:
        objects = self.latest.get("objects")
        for o in objects.objects if objects is not None else ():
            if o.name == self.p["trunk_object"] and o.tracked:
                p, r = o.pose.position, o.pose.orientation
                self.base_pose = pose_matrix([p.x, p.y, p.z], [r.x, r.y, r.z, r.w])
                self.stats["base_pose"] = "mocap"
        if self.base_pose is not None:
            return self.base_pose
        self.stats["base_pose"] = "level"
        return level_base_pose(self.q, self.tree, FEET)

    # ------------------------------------------------------------------ markers
    def _markers(self) -> list[Marker]:
        world, base = self.p["world_frame"], self.p["base_frame"]
        clear = Marker()
        clear.action = Marker.DELETEALL  # objects and steps come and go: redraw everything each time
        out = [clear]
        out += self._footsteps(world)
        for i, hand in enumerate(HANDS):  # measured: FK of the measured joints
            m = _marker(world, "hand_measured", i, Marker.ARROW, "measured", (0.12, 0.015, 0.015))
            _set_pose(m, self.poses[hand])
            out.append(m)
        cmd = self.latest.get("high_level_command")
        if cmd is not None:
            for i, pose in enumerate((cmd.left_hand_pose, cmd.right_hand_pose)):
                m = _marker(base, "hand_command", i, Marker.ARROW, "cmd", (0.12, 0.015, 0.015))
                m.pose = pose
                out.append(m)
                self.hand_trail.append((i, pose.position))
        chunk = [self.latest.get(t) for t in CHUNK_TOPICS]
        if all(m is not None for m in chunk):  # the planner's own chunk: base path and hand paths
            for ns, i, msg, width in (("chunk_base", 0, chunk[0], 0.02), ("chunk_hands", 0, chunk[1], 0.008),
                                      ("chunk_hands", 1, chunk[2], 0.008)):
                line = _marker(base, ns, i, Marker.LINE_STRIP, "chunk", (width, 0, 0))
                line.points = [Point(x=p.position.x, y=p.position.y, z=p.position.z) for p in msg.poses]
                if len(line.points) > 1:
                    out.append(line)
        elif cmd is not None:  # a commander without chunks: the held command integrated, the executed trail
            path = _marker(base, "base_command", 0, Marker.LINE_STRIP, "cmd", (0.02, 0, 0))
            path.points = [Point(x=float(x), y=float(y)) for x, y in base_path(cmd.vx, cmd.vy, cmd.wz, self.p["chunk_s"])]
            out.append(path)
            for i in (0, 1):
                trail = _marker(base, "hand_command_trail", i, Marker.LINE_STRIP, "cmd", (0.008, 0, 0))
                trail.points = [Point(x=p.x, y=p.y, z=p.z) for side, p in self.hand_trail if side == i]
                if len(trail.points) > 1:
                    out.append(trail)
        out += self._objects(world)
        out.append(self._status_text(world))
        return out

    def _footsteps(self, world: str) -> list[Marker]:
        step = self.latest.get("footstep_command")
        if step is not None and self.step is not None and step.step_index != self.step.step_index \
                and self.step.swing_foot != FootstepCommand.SWING_NONE:  # the previous swing foot has landed
            self.landed.append(self.poses[FEET[self.step.swing_foot - 1]].copy())
        self.step = step if step is not None else self.step
        out = []
        for i, pose in enumerate(self.landed):
            m = _marker(world, "landed_steps", i, Marker.CUBE, "landed", (0.22, 0.09, 0.01))
            _set_pose(m, _planar_pose(*planar(pose), pose[2, 3]))
            out.append(m)
        if step is not None and step.swing_foot != FootstepCommand.SWING_NONE:
            stance = self.poses[FEET[2 - step.swing_foot]]  # SWING_LEFT (1): the right foot stands
            x, y, yaw = planar(stance)
            c, s = np.cos(yaw), np.sin(yaw)
            m = _marker(world, "footstep_target", 0, Marker.CUBE, "target", (0.22, 0.09, 0.01))
            _set_pose(m, _planar_pose(x + c * step.target_x - s * step.target_y, y + s * step.target_x + c * step.target_y,
                                      yaw + step.target_yaw, stance[2, 3] + step.target_z))
            out.append(m)
        return out

    def _objects(self, world: str) -> list[Marker]:
        objects = self.latest.get("objects")
        out = []
        for i, o in enumerate(objects.objects if objects is not None else ()):
            if o.name == self.p["trunk_object"]:
                continue  # drawn as the robot
            m = _marker(world, "objects", i, Marker.CUBE, "object" if o.tracked else "lost", (0.08, 0.08, 0.08))
            m.pose = o.pose
            label = _marker(world, "object_names", i, Marker.TEXT_VIEW_FACING, "text", (0, 0, 0.06))
            label.pose.position.x, label.pose.position.y = o.pose.position.x, o.pose.position.y
            label.pose.position.z = o.pose.position.z + 0.12
            label.text = o.name if o.tracked else f"{o.name} (lost)"
            out += [m, label]
        return out

    def _status_text(self, world: str) -> Marker:
        lines = []
        ps, cs, step = (self.latest.get(k) for k in ("planner_status", "controller_status", "footstep_command"))
        if ps is not None:
            lines.append(f"planner {ps.engine}: chunk {ps.chunk_id}.{ps.chunk_index}, {ps.inference_ms:.0f} ms"
                         + (" STALE" if ps.stale else "") + (f" {ps.message}" if ps.message else ""))
        if cs is not None:
            lines.append(f"controller {'active' if cs.active else 'inactive'}, step {cs.footstep_index}"
                         + (f": {cs.message}" if cs.message else ""))
        if step is not None:
            lines.append(f"footstep {step.step_index} ({('stand', 'left', 'right')[min(step.swing_foot, 2)]})")
        m = _marker(world, "status", 0, Marker.TEXT_VIEW_FACING, "text", (0, 0, 0.07))
        trunk = self.poses[self.tree.root]
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in trunk[:3, 3] + [0, 0, 0.6])
        m.text = "\n".join(lines) or "waiting for the graph"
        return m

    def report(self) -> dict:
        n = max(1, self.stats["tf_published"])
        return {**{k: v for k, v in self.stats.items() if k != "tick_ms_total"},
                "tick_ms_mean": self.stats["tick_ms_total"] / n, "parameters": self.p}


def _quat(pose: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(pose[:3, :3]).as_quat()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = RvizPublisher()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            write_node_report("rviz_publisher", node.report())
            stats = node.report()
            print(f"[rviz_publisher] {stats['tf_published']} TF, {stats['markers_published']} marker arrays, "
                  f"tick {stats['tick_ms_mean']:.2f} ms mean / {stats['tick_ms_max']:.2f} ms max, "
                  f"world->base_link: {stats['base_pose']}", flush=True)
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
