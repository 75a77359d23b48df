"""recorder: the planner's inputs and outputs on the ROS graph, into MCAP rosbag2 files.

    python -m refine_dp.recorder --ros-args -p out:=runs/bags/demo1      (or `refine-dp record --out ...`,
                                                                           or `refine-dp bringup --record`)

Subscribes to `topics` (default: refine_dp_planner.bags.PLANNER_TOPICS) as raw CDR, so nothing is
deserialized on the way, and writes them with rosbags into OUT/seg_00000/, OUT/seg_00001/, ...:
a new segment every `segment_s` seconds. Each closed segment is a complete rosbag2 (metadata.yaml,
one .mcap) that `ros2 bag`, rosbags and the mcap library open; SIGINT/SIGTERM close the open one,
so a kill -9 loses at most the last `segment_s` seconds. Timestamps are the receive time on this
node's clock (nanoseconds). Message definitions come from the installed .msg files.
"""
from __future__ import annotations

import threading
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from refine_dp_planner.bags import PLANNER_TOPICS, message_class, typestore
from t1_description.run_report import write_node_report


class SegmentedBagWriter:
    """rosbags Writer rolled into complete segments (MCAP storage, rosbag2 metadata version 8)."""

    def __init__(self, out: Path, topics: dict[str, str]):
        self.out, self.topics, self.index = out, topics, -1
        self.writer, self.connections = None, {}
        self.counts = {t: 0 for t in topics}
        self.segments: list[str] = []
        self.lock = threading.Lock()

    def roll(self) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        with self.lock:
            self._close()
            self.index += 1
            path = self.out / f"seg_{self.index:05d}"
            self.writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
            store = typestore()
            self.connections = {t: self.writer.add_connection(f"/{t.lstrip('/')}", msgtype, typestore=store)
                                for t, msgtype in self.topics.items()}
            self.segments.append(path.name)

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.write(self.connections[topic], stamp_ns, data)
                self.counts[topic] += 1

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def close(self) -> None:
        with self.lock:
            self._close()


class Recorder(Node):
    def __init__(self) -> None:
        super().__init__("refine_dp_recorder")
        out = self.declare_parameter("out", "").value
        if not out:
            raise SystemExit("refine_dp_recorder: parameter `out` (the recording folder) is empty")
        names = list(self.declare_parameter("topics", list(PLANNER_TOPICS)).value)
        unknown = [t for t in names if t not in PLANNER_TOPICS]
        if unknown:
            raise SystemExit(f"refine_dp_recorder: no message type known for topics {unknown}; "
                             f"record a subset of {list(PLANNER_TOPICS)}")
        self.out = Path(out)
        if self.out.exists() and any(self.out.glob("seg_*")):
            raise SystemExit(f"refine_dp_recorder: {self.out} already holds a recording; choose another `out`")
        self.out.mkdir(parents=True, exist_ok=True)
        self.bag = SegmentedBagWriter(self.out, {t: PLANNER_TOPICS[t] for t in names})
        self.bag.roll()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches reliable publishers too
        for topic in names:
            self.create_subscription(message_class(PLANNER_TOPICS[topic]), topic,
                                     lambda data, t=topic: self._on_message(t, data), qos, raw=True)
        self.create_timer(float(self.declare_parameter("segment_s", 10.0).value), self.bag.roll)
        self.get_logger().info(f"recording {names} into {self.out}")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.bag.write(topic, self.get_clock().now().nanoseconds, data)

    def finish(self) -> dict:
        self.bag.close()
        report = {"out": str(self.out), "segments": self.bag.segments, "messages": self.bag.counts}
        write_node_report("refine_dp_recorder", report)
        return report


def cli(argv=None) -> int:
    """`refine-dp record --out DIR`: record the planner's inputs and outputs until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="refine-dp record", description=cli.__doc__)
    parser.add_argument("--out", required=True, type=Path, help="recording folder (segments seg_NNNNN/ inside)")
    parser.add_argument("--topics", nargs="+", default=list(PLANNER_TOPICS), choices=list(PLANNER_TOPICS))
    parser.add_argument("--segment-s", type=float, default=10.0, help="seconds per closed bag segment")
    args = parser.parse_args(argv)
    topics = "[" + ",".join(args.topics) + "]"
    main(["--ros-args", "-p", f"out:={args.out}", "-p", f"topics:={topics}", "-p", f"segment_s:={args.segment_s}"])
    return 0


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = Recorder()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            report = node.finish()
            print(f"[recorder] {report['messages']} messages in {len(report['segments'])} segment(s) under "
                  f"{report['out']}", flush=True)
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
