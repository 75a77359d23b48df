"""refine_dp_planner node: the diffusion planner (PlannerCore behind ROS topics).

Subscribes robot_state (RobotState) and objects (ObjectStateArray); publishes
high_level_command (HighLevelCommand) and planner_status (PlannerStatus), and, whenever a new chunk
is sampled, the planner's current chunk as three geometry_msgs/PoseArray in base_link at the chunk's
start (messages.chunk_pose_arrays): planner_chunk/base (its clamped base velocities integrated at the
engine's rate from the identity: Ta + 1 poses), planner_chunk/left_hand and planner_chunk/right_hand
(the Ta hand targets). The whole chunk is published (Ta actions), not only the replan_every executed:
rviz_publisher and `refine-dp view` draw it.

The engine's metadata.json is the contract: horizons, act_steps (-> replan_every) and rate_hz
(-> the timer) come from it, nobody retypes them. obs_horizon, action_horizon, rate_hz and
replan_every may still be given (0: unset), but only to check: a value that contradicts the
engine is refused, naming both values (replan_every may differ with override_act_steps:=true).
The observation layout follows the objects parameter and must equal the engine's obs_fields.
engine_dir: an export folder, or the name of an engine shipped in refine_dp_planner/shipped/
(`pickup_dit`); neither: the node exits naming the shipped ones.
"""
from __future__ import annotations

import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from refine_dp_planner.messages import (CHUNK_TOPICS, chunk_pose_arrays, high_level_command, objects_from_msg,
                                        robot_observation)
from refine_dp_planner.planner_core import PlannerCore
from refine_dp_planner.planner_io import ACTION_DIM, ACTION_FIELDS, Clamps, observation_fields


class PlannerNode(Node):
    def __init__(self) -> None:
        super().__init__("refine_dp_planner")
        from geometry_msgs.msg import PoseArray
        from refine_dp_msgs.msg import HighLevelCommand, ObjectStateArray, PlannerStatus, RobotState

        from refine_dp_planner.engines import MetadataMismatchError, make_engine, resolve_engine_dir
        from t1_description.joint_table import ARM_GROUPS, load_joint_table

        p = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        engine_dir = p("engine_dir", "")
        backend = p("backend", "onnxruntime")
        self.objects = tuple(p("objects", ["box"]))
        clamps = Clamps.from_parameters(p)
        if not engine_dir:
            raise SystemExit("refine_dp_planner: parameter engine_dir is empty; point it at an exported engine "
                             "folder (refine-dp export planner writes one, with metadata.json) or name a shipped one")
        if backend != "torch":  # an export folder: a path, or the name of an engine in refine_dp_planner/shipped/
            try:
                engine_dir = str(resolve_engine_dir(engine_dir))
            except FileNotFoundError as e:
                raise SystemExit(f"refine_dp_planner: {e}") from e
        expected = {"obs_dim": sum(n for _, n in observation_fields(self.objects)), "action_dim": ACTION_DIM}
        checks = {"obs_horizon": p("obs_horizon", 0), "action_horizon": p("action_horizon", 0),
                  "rate_hz": p("rate_hz", 0.0)}   # 0: take the engine's
        expected |= {k: v for k, v in checks.items() if v}
        try:
            engine = make_engine(backend, engine_dir, expected=expected, seed=p("seed", 0))
        except MetadataMismatchError as e:
            raise SystemExit(f"refine_dp_planner: {e} (unset the parameter to use the engine's value)") from e
        fields = engine.metadata.get("obs_fields")
        if fields is not None and [list(f) for f in fields] != [list(f) for f in observation_fields(self.objects)]:
            raise SystemExit(f"refine_dp_planner: engine observation fields {fields} differ from this planner's "
                             f"{observation_fields(self.objects)} (objects parameter {list(self.objects)})")
        afields = engine.metadata.get("action_fields")
        if afields is not None and [list(f) for f in afields] != [list(f) for f in ACTION_FIELDS]:
            raise SystemExit(f"refine_dp_planner: engine action fields {afields} differ from {ACTION_FIELDS}")
        try:
            self.core = PlannerCore(engine, self.objects, p("replan_every", 0) or None, clamps,
                                    p("stale_after_s", 0.5), override_act_steps=p("override_act_steps", False))
        except ValueError as e:
            raise SystemExit(f"refine_dp_planner: {e}") from e
        rate = engine.rate_hz
        self.jt = load_joint_table()
        self.arm_idx = self.jt.indices(*ARM_GROUPS)
        self.PlannerStatus = PlannerStatus
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(RobotState, "robot_state", self._on_robot_state, best_effort)
        self.create_subscription(ObjectStateArray, "objects", self._on_objects, best_effort)
        self.cmd_pub = self.create_publisher(HighLevelCommand, "high_level_command",
                                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.status_pub = self.create_publisher(PlannerStatus, "planner_status", 10)
        self.clamps = clamps
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.chunk_pubs = {t: self.create_publisher(PoseArray, t, reliable) for t in CHUNK_TOPICS}
        self.backend = backend
        self.engine_dir = engine_dir
        self.stats = {"commands_published": 0, "stale_ticks": 0, "chunks": 0, "clamped": 0}
        self._inference_ms: list[float] = []
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"{backend} engine ({engine.metadata['kind']}) from {engine_dir}: "
                               f"obs {engine.obs_shape}, actions {engine.action_shape}, {self.core.replan_every} executed per chunk, "
                               f"objects {list(self.objects)}, {rate:g} Hz")

    def _on_robot_state(self, msg) -> None:
        robot = robot_observation(msg, self.arm_idx, len(self.jt.names))
        if robot is None:
            self.get_logger().warn(f"RobotState with {len(msg.position)} joints ignored", throttle_duration_sec=5.0)
            return
        self.core.observe_robot(*robot, time.monotonic())

    def _on_objects(self, msg) -> None:
        self.core.observe_objects(objects_from_msg(msg), time.monotonic())

    def _tick(self) -> None:
        action = self.core.step()
        s = self.core.status
        stamp = self.get_clock().now().to_msg()
        if action is not None:
            self.cmd_pub.publish(high_level_command(action, stamp, s.chunk_index, s.chunk_id))
            self.stats["commands_published"] += 1
            self.stats["clamped"] += bool(s.clamped)
            if s.chunk_id != self.stats["chunks"]:  # a new chunk was sampled this tick
                self.stats["chunks"] = s.chunk_id
                self._inference_ms.append(s.inference_ms)
                for topic, msg in chunk_pose_arrays(self.core.chunk, self.core.dt, self.clamps, stamp).items():
                    self.chunk_pubs[topic].publish(msg)
            if self.stats["commands_published"] == 1:
                self.get_logger().info(f"first high_level_command published (chunk {s.chunk_id}, inference "
                                       f"{s.inference_ms:.1f} ms)")
        else:
            self.stats["stale_ticks"] += 1
        status = self.PlannerStatus(engine=self.backend, inference_ms=s.inference_ms, chunk_id=s.chunk_id,
                                    chunk_index=s.chunk_index, observation_age_s=min(s.observation_age_s, 1e9),
                                    stale=s.stale, clamped=s.clamped, message=s.message)
        status.header.stamp = stamp
        self.status_pub.publish(status)
        if s.stale:
            self.get_logger().warning(f"stale: {s.message}", throttle_duration_sec=5.0)


    def report(self) -> dict:
        """What the node did (RUN/reports/refine_dp_planner.json in a bringup run)."""
        import numpy as np

        ms = np.array(self._inference_ms)
        inference = {"n": int(ms.size), **({"p50": round(float(np.percentile(ms, 50)), 2),
                                            "p99": round(float(np.percentile(ms, 99)), 2),
                                            "max": round(float(ms.max()), 2)} if ms.size else {})}
        return dict(self.stats, engine_dir=self.engine_dir, backend=self.backend, inference_ms=inference)


def main(args=None) -> None:
    from t1_description.ros_runtime import spin
    from t1_description.run_report import write_node_report

    rclpy.init(args=args)
    node = None
    try:
        node = PlannerNode()
        spin(node)  # as the other nodes: a callback racing with Ctrl-C's context shutdown is not an error
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            report = node.report()
            write_node_report("refine_dp_planner", report)
            print(f"refine_dp_planner report: {report['commands_published']} high_level_commands published, "
                  f"{report['chunks']} chunks, inference ms {report['inference_ms']}", flush=True)
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
