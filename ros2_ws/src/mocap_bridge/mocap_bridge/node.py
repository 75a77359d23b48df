"""mocap_bridge node: NatNet (OptiTrack Motive, or sim_t1) -> refine_dp_msgs/ObjectStateArray.

Thin wrapper: NatNetClient (client.py) receives frames on its own thread, ObjectTracker
(tracker.py) turns each into object states, and this node publishes one ObjectStateArray per
MoCap frame on `objects` (best effort, depth 1: only the newest state matters) and logs the
client's counters every `diagnostics_period_s`.

Run: python -m mocap_bridge.node --ros-args -p server_address:=192.168.1.10
Quaternions in the message are geometry_msgs order (x, y, z, w), as NatNet sends them.
"""

from __future__ import annotations

import math
import sys

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from mocap_bridge.client import NatNetClient, NatNetClientConfig
from mocap_bridge.tracker import ObjectTracker, load_tracker_config
from t1_description.ros_runtime import request_realtime, spin
from refine_dp_msgs.msg import ObjectState, ObjectStateArray

PARAMETERS = {  # name: (default, description)
    "server_address": ("127.0.0.1", "NatNet server (Motive or sim_t1) IPv4 address"),
    "local_address": ("0.0.0.0", "local interface address (for multicast: required, not 0.0.0.0)"),
    "command_port": (1510, "NatNet command port"),
    "data_port": (1511, "NatNet data port (multicast only)"),
    "multicast_group": ("", "multicast group, e.g. 239.255.42.99; empty = unicast"),
    "trunk_body": ("", "MoCap body that is the robot root; empty = from body_map_file"),
    "up_axis": ("", "MoCap world's up axis 'z_up' or 'y_up' (Motive's default); empty = from body_map_file"),
    "body_map_file": ("", "YAML MoCap body -> object map; empty = packaged config/bodies.yaml"),
    "velocity_time_constant_s": (-1.0, "velocity low-pass tau; < 0 = from body_map_file"),
    "frame_id": ("world", "frame of pose and twist"),
    "stamp_source": ("receipt", "'receipt': ROS time at receipt (comparable with other nodes' clocks); "
                               "'source': MoCap frame time (Motive: seconds since it started)"),
    "diagnostics_period_s": (5.0, "period of the counters log line and log rate limit"),
    "realtime_priority": (0, "SCHED_FIFO priority (1-99) of the process where permitted (else nice -10); 0: none"),
}


class MocapBridgeNode(Node):
    def __init__(self):
        super().__init__("mocap_bridge")
        p = {
            name: self.declare_parameter(name, default, ParameterDescriptor(description=desc)).value
            for name, (default, desc) in PARAMETERS.items()
        }
        if p["stamp_source"] not in ("source", "receipt"):
            raise ValueError(f"stamp_source must be 'source' or 'receipt', got {p['stamp_source']!r}")
        self.frame_id = p["frame_id"]
        self.stamp_source = p["stamp_source"]
        tracker_cfg = load_tracker_config(
            p["body_map_file"] or None,
            trunk_body=p["trunk_body"] or None,
            up_axis=p["up_axis"] or None,
            velocity_time_constant_s=(
                p["velocity_time_constant_s"] if p["velocity_time_constant_s"] >= 0 else None
            ),
        )
        self.tracker = ObjectTracker(tracker_cfg)
        qos = QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT
        )
        self.pub = self.create_publisher(ObjectStateArray, "objects", qos)
        self.client = NatNetClient(
            NatNetClientConfig(
                server_address=p["server_address"],
                local_address=p["local_address"],
                command_port=int(p["command_port"]),
                data_port=int(p["data_port"]),
                multicast_group=p["multicast_group"],
                log_period_s=float(p["diagnostics_period_s"]),
            ),
            on_frame=self._on_frame,
            log_sink=self._log,
        )
        self._last_counts = {}
        self._last_unmapped = []
        self.create_timer(float(p["diagnostics_period_s"]), self._diagnostics)
        self.get_logger().info(
            f"NatNet {'multicast ' + p['multicast_group'] if p['multicast_group'] else 'unicast'} "
            f"from {p['server_address']}:{p['command_port']}; trunk body "
            f"'{tracker_cfg.trunk_body}', objects {tracker_cfg.body_to_object}, MoCap world "
            f"{tracker_cfg.up_axis}, offsets for {sorted(tracker_cfg.body_offsets)}"
        )
        self.client.start()
        # a starved bridge falls behind the 90 Hz stream and publishes seconds-old poses (queued in
        # the socket): where permitted it runs ahead of ordinary processes; the log says what it got
        self.scheduling = request_realtime(int(p["realtime_priority"]))
        self.get_logger().info(f"scheduling: {self.scheduling['got']} ({self.scheduling['detail']})")

    def _log(self, level: str, message: str) -> None:
        # One call site per severity: rclpy refuses a severity change at the same line.
        logger = self.get_logger()
        if level == "debug":
            logger.debug(message)
        elif level == "info":
            logger.info(message)
        elif level == "warn":
            logger.warning(message)
        else:
            logger.error(message)

    def _on_frame(self, frame, names_by_id: dict, _receive_time: float) -> None:
        if not self.context.ok():
            return  # shutting down (Ctrl-C shuts the context before the client thread stops)
        estimates = self.tracker.update(frame, names_by_id)
        if self.stamp_source == "source":
            stamp = _to_time(frame.timestamp)
        else:
            stamp = self.get_clock().now().to_msg()
        msg = ObjectStateArray()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        for e in estimates:
            s = ObjectState()
            s.header = msg.header
            s.name = e.name
            s.tracked = e.tracked
            _set_pose(s.pose, e.position, e.quat_xyzw)
            s.twist.linear.x, s.twist.linear.y, s.twist.linear.z = map(float, e.linear_velocity)
            s.twist.angular.x, s.twist.angular.y, s.twist.angular.z = map(float, e.angular_velocity)
            _set_pose(s.pose_in_root, e.position_in_root, e.quat_in_root_xyzw)
            s.root_valid = e.root_valid
            s.frame_number = max(0, int(e.frame_number))
            s.mean_error = float(e.mean_error)
            s.source_timestamp = float(e.source_time)
            msg.objects.append(s)
        try:
            self.pub.publish(msg)
        except Exception:
            if self.context.ok():
                raise  # a real failure: the client counts and logs it

    def _diagnostics(self) -> None:
        counts = self.client.counters.as_dict()
        counts["unmapped_bodies"] = len(self.tracker.unmapped_bodies)
        counts["nonfinite_poses"] = self.tracker.nonfinite_poses
        delta = {k: v - self._last_counts.get(k, 0) for k, v in counts.items()}
        self._last_counts = counts
        bad = {k: v for k, v in delta.items() if v and k not in ("packets", "frames", "modeldefs", "connects")}
        text = f"NatNet: {delta['frames']} frames in the last period; totals {counts}"
        if not self.client.connected:
            self.get_logger().warning("NatNet not connected; " + text)
        elif bad:
            self.get_logger().warning(f"NatNet problems in the last period {bad}; " + text)
        else:
            self.get_logger().info(text)
        unmapped = sorted(self.tracker.unmapped_bodies)
        if unmapped != self._last_unmapped:
            self._last_unmapped = unmapped
            self.get_logger().warning(
                f"MoCap bodies not in the body map (ignored): {unmapped}; add them to "
                "body_map_file to publish them"
            )

    def destroy_node(self):
        self.client.stop()
        super().destroy_node()


def _to_time(t: float) -> Time:
    t = max(0.0, float(t)) if math.isfinite(t) else 0.0
    sec = int(t)
    return Time(sec=sec, nanosec=min(999_999_999, int(round((t - sec) * 1e9))))


def _set_pose(pose, position, quat_xyzw) -> None:
    pose.position.x, pose.position.y, pose.position.z = map(float, position)
    q = pose.orientation
    q.x, q.y, q.z, q.w = map(float, quat_xyzw)


def main(args=None) -> None:
    rclpy.init(args=args if args is not None else sys.argv)
    node = MocapBridgeNode()
    try:
        spin(node)  # events executor: the client thread publishes, the executor only serves the timer
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
