"""scripted_commander: a fixed velocity script as HighLevelCommand, standing in for the planner.

Parameter `script` is a flat list of [duration_s, vx, vy, wz] groups, run once, then zero. The
hands are commanded at their default-pose positions (FK of the default arm joints), grippers open.
The default script turns ~180 degrees in place (away from the table of the default table_box scene,
whose near edge is 0.5 m in front of the robot), walks 1 m forward at 0.2 m/s, turns ~90 degrees
and stops. Turns go at 0.25 rad/s, the footstep planner's limit (max_turn / (2 step_period)).
The script runs on the node's clock from its first tick: simulated time with use_sim_time.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from refine_dp_planner.messages import high_level_command
from refine_dp_planner.planner_io import PlannerAction
from t1_description.ros_runtime import LoopClock, run_node

DEFAULT_SCRIPT = [3.0, 0.0, 0.0, 0.0,      # stand (let the ramp finish)
                  12.6, 0.0, 0.0, 0.25,    # turn ~180 degrees: the table is straight ahead
                  5.0, 0.2, 0.0, 0.0,      # 1 m forward, away from the table
                  6.3, 0.0, 0.0, 0.25,     # turn ~90 degrees
                  2.0, 0.0, 0.0, 0.0]      # stop


def parse_script(flat) -> list[tuple[float, float, float, float]]:
    flat = list(flat)
    if len(flat) % 4:
        raise ValueError(f"script needs groups of 4 values [duration, vx, vy, wz], got {len(flat)} values")
    return [tuple(float(v) for v in flat[i:i + 4]) for i in range(0, len(flat), 4)]


def command_at(script, t: float) -> tuple[float, float, float]:
    for duration, vx, vy, wz in script:
        if t < duration:
            return vx, vy, wz
        t -= duration
    return 0.0, 0.0, 0.0


class ScriptedCommander(Node):
    def __init__(self) -> None:
        super().__init__("scripted_commander")
        from refine_dp_msgs.msg import HighLevelCommand

        from t1_description.joint_table import load_joint_table
        from t1_description.kinematics import arm_kinematics

        self.script = parse_script(self.declare_parameter("script", DEFAULT_SCRIPT).value)
        self.start_delay = self.declare_parameter("start_delay_s", 0.0).value
        jt = load_joint_table()
        pos, rot = arm_kinematics().fk(jt.default_q[jt.indices(*jt.ARM_GROUPS)])
        self.hands = PlannerAction(np.zeros(3), pos[0], rot[0], np.zeros(2))
        self.pub = self.create_publisher(HighLevelCommand, "high_level_command",
                                         QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.clock = LoopClock(self)
        self.t0: float | None = None  # the script starts at the first tick (+ start_delay_s)
        self.create_timer(0.1, self._tick)
        total = sum(s[0] for s in self.script)
        self.get_logger().info(f"script of {len(self.script)} segments, {total:g} s")

    def _tick(self) -> None:
        now = self.clock.now()
        if self.t0 is None:
            self.t0 = now + self.start_delay
        t = now - self.t0
        velocity = command_at(self.script, t) if t >= 0 else (0.0, 0.0, 0.0)
        action = PlannerAction(np.array(velocity), self.hands.hand_pos, self.hands.hand_rot, self.hands.grippers)
        self.pub.publish(high_level_command(action, self.get_clock().now().to_msg()))


def main(args=None) -> None:
    run_node(ScriptedCommander, args)


if __name__ == "__main__":
    main()
