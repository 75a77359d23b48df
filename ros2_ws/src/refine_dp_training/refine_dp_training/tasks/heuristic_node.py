"""refine_dp_heuristic node: a task's heuristic demonstration planner behind the planner's own topics.

For recording demonstrations on the ROS graph (`refine-dp record`, then `refine-dp dataset from-bags`):
start the graph with this node in place of refine_dp_planner. It subscribes robot_state (RobotState)
and objects (ObjectStateArray) and publishes high_level_command (HighLevelCommand) with the planner
node's topics and QoS, at the planner's rate (10 Hz) on the node's clock (so with use_sim_time it
follows /clock). The observation is the planner node's: the same converters (refine_dp_planner.messages)
and planner_io.build_observation, with the grippers of the previous command; the heuristic's action
goes through the planner's own clamps (planner_io.clamp_action, Clamps from the same parameters).
Without fresh observations (`stale_after_s` on the node's clock) it commands a stop, hands held, as
the planner does.

    python -m refine_dp_training.tasks.heuristic_node --ros-args -p task:=pickup -p seed:=3 -p use_sim_time:=true

Parameters: task (a refine_dp_training.tasks name, default pickup), seed (the heuristic's per-episode
draw), objects (the observation's objects; default: the task's), rate_hz (10), stale_after_s, and the
planner's clamps (max_base_speed, max_yaw_rate, max_hand_speed, max_hand_angular_speed).
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from refine_dp_planner.messages import high_level_command, objects_from_msg, robot_observation
from refine_dp_planner.planner_io import Clamps, PlannerAction, build_observation, clamp_action
from t1_description.ros_runtime import run_node

PLANNER_RATE_HZ = 10.0  # the planner's (and the heuristics' planner_dt 0.1 s)


class HeuristicNode(Node):
    def __init__(self) -> None:
        super().__init__("refine_dp_heuristic")
        from dataclasses import replace

        from refine_dp_msgs.msg import HighLevelCommand, ObjectStateArray, RobotState
        from t1_description.joint_table import ARM_GROUPS, load_joint_table

        from refine_dp_training.tasks import get_task, make_heuristic

        p = lambda name, default: self.declare_parameter(name, default).value  # noqa: E731
        try:
            spec = get_task(p("task", "pickup"))
        except KeyError as e:
            raise SystemExit(f"refine_dp_heuristic: {e.args[0]}") from e
        objects = tuple(p("objects", list(spec.objects)))
        spec = replace(spec, objects=objects)
        self.objects = objects
        rate = float(p("rate_hz", PLANNER_RATE_HZ))
        self.dt = 1.0 / rate
        self.stale_after_s = float(p("stale_after_s", 0.5))
        self.clamps = Clamps.from_parameters(p)
        self.heuristic = make_heuristic(spec, 1, seed=int(p("seed", 0)), clamps=self.clamps, planner_dt=self.dt)
        self.heuristic.reset()
        self.jt = load_joint_table()
        self.arm_idx = self.jt.indices(*ARM_GROUPS)
        self.robot = None            # (arm_q [14], gravity [3], receive time s on the node's clock)
        self.objects_msg, self.objects_t = {}, -np.inf
        self.previous: PlannerAction | None = None
        self.grippers = np.zeros(2)
        self.commands, self.stage = 0, -1
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(RobotState, "robot_state", self._on_robot_state, best_effort)
        self.create_subscription(ObjectStateArray, "objects", self._on_objects, best_effort)
        self.cmd_pub = self.create_publisher(HighLevelCommand, "high_level_command",
                                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.create_timer(self.dt, self._tick)
        self.get_logger().info(f"task {spec.name}: heuristic {spec.heuristic}, objects {list(objects)}, {rate:g} Hz")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_robot_state(self, msg) -> None:
        robot = robot_observation(msg, self.arm_idx, len(self.jt.names))
        if robot is None:
            self.get_logger().warn(f"RobotState with {len(msg.position)} joints ignored", throttle_duration_sec=5.0)
            return
        self.robot = (*robot, self._now())

    def _on_objects(self, msg) -> None:
        self.objects_msg, self.objects_t = objects_from_msg(msg), self._now()

    def _tick(self) -> None:
        if self.robot is None:
            return
        now = self._now()
        arm_q, gravity, t_robot = self.robot
        age = max(now - t_robot, now - self.objects_t if self.objects else 0.0)
        if age > self.stale_after_s:  # as PlannerCore: stop, hands where they were commanded
            if self.previous is None:
                return
            self.get_logger().warn(f"observations stale ({age:.2f} s): holding", throttle_duration_sec=5.0)
            action = PlannerAction(np.zeros(3), self.previous.hand_pos, self.previous.hand_rot, self.grippers.copy())
        else:
            obs = build_observation(arm_q, self.grippers, gravity, self.objects_msg, self.objects)
            action = PlannerAction.from_vector(self.heuristic.act(obs[None])[0])
            stage = int(getattr(self.heuristic, "stage", [0])[0])
            if stage != self.stage and hasattr(self.heuristic, "stage_names"):
                self.get_logger().info(f"stage {self.heuristic.stage_names[stage]} at t {now:.1f} s")
            self.stage = stage
            action, _ = clamp_action(action, self.previous, self.dt, self.clamps)
        self.previous, self.grippers = action, action.grippers.copy()
        self.cmd_pub.publish(high_level_command(action, self.get_clock().now().to_msg()))
        self.commands += 1


def main(args=None) -> None:
    run_node(HeuristicNode, args)


if __name__ == "__main__":
    main()
