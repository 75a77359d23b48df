"""footstep_planner node: HighLevelCommand (base velocity) -> FootstepCommand at 50 Hz.

Thin wrapper around SingleFootstepPlanner (footstep_planner.py), the same planner the
training environments run batched:
  `high_level_command` (HighLevelCommand, reliable depth 1): only vx, vy, wz are used.
  `footstep_command` (FootstepCommand, reliable depth 1): published every 1/rate_hz s,
      header.frame_id = the stance foot ("left_foot" / "right_foot"; "left_foot" while standing).
A command older than `command_timeout_s` counts as zero, so the robot finishes its step,
closes its feet and stands if the planner node dies. The planner clock advances by the
measured time between ticks (capped), so countdowns stay in real time when a tick is late.
Time is the node's clock (t1_description.ros_runtime.LoopClock): monotonic on the robot, simulated
time with use_sim_time (the timer and the countdowns then follow sim_t1's /clock).

The planner runs the FootstepPlannerConfig the legs policy was trained with, read from its metadata
(`legs_policy`, the controller's file: contract.py); a planner parameter set explicitly must agree
with it (the node refuses to start otherwise, naming both values), an unset one takes the policy's.
Without a legs policy the parameters apply over FootstepPlannerConfig's defaults. `rate_hz` 0 means
the policy's control_hz.

Stance-foot pose: RobotState carries no foot poses, so the footholds are the planner's own
dead reckoning (each swing foot assumed to land on its target). The relative targets the
policy sees do not depend on that world estimate, only the optional world footholds do.

Run: python -m loco_manip_controller.footstep_node --ros-args -p legs_policy:=legs.onnx
"""

from __future__ import annotations

import dataclasses
import math

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from refine_dp_msgs.msg import FootstepCommand, HighLevelCommand

from loco_manip_controller import contract
from loco_manip_controller.footstep_planner import FootstepPlannerConfig, SingleFootstepPlanner
from loco_manip_controller.policy_io import CONTROL_HZ
from loco_manip_controller.policy_runtime import check_metadata, read_metadata, resolve_model
from t1_description.ros_runtime import LoopClock, spin

NODE_PARAMETERS = {  # name: (default, description); FootstepPlannerConfig fields are declared beside these
    "legs_policy": ("", "legs policy (path or shipped model name) whose footstep planner config is run; "
                        "empty: FootstepPlannerConfig defaults"),
    "rate_hz": (0.0, "FootstepCommand publish rate; 0: the legs policy's control_hz"),
    "command_timeout_s": (0.5, "a HighLevelCommand older than this counts as zero velocity (stop)"),
    "max_tick_s": (0.1, "cap on the planner time step when a tick comes late"),
}
_TYPES = {float: Parameter.Type.DOUBLE, int: Parameter.Type.INTEGER}


def planner_setup(legs_policy: str, rate_hz: float, planner_parameters: dict) -> tuple[FootstepPlannerConfig, float]:
    """(planner config, rate) from the legs policy's contract and the explicitly set parameters (None: unset),
    refusing a parameter that contradicts the policy. ROS-free, so it is tested without a graph."""
    meta, source = None, "footstep_planner"
    if legs_policy:
        path = resolve_model(legs_policy)
        meta, source = read_metadata(path), str(path)
        check_metadata(meta, expect_part="legs", source=source)
        contract.check_overrides(meta, {"control_hz": rate_hz or None}, source, "rate_hz parameter")
    config = contract.footstep_planner_config(meta, planner_parameters, source)
    return config, float(meta["control_hz"]) if meta else (rate_hz or CONTROL_HZ)


class FootstepNode(Node):
    def __init__(self):
        super().__init__("footstep_planner")
        p = {name: self.declare_parameter(name, default, ParameterDescriptor(description=text)).value
             for name, (default, text) in NODE_PARAMETERS.items()}
        planner_parameters = {  # declared without a value: unset unless given (then checked against the policy)
            f.name: self.declare_parameter(f.name, _TYPES[type(f.default)], ParameterDescriptor(
                description="planner: see FootstepPlannerConfig; unset: the legs policy's")).value
            for f in dataclasses.fields(FootstepPlannerConfig)}
        if not p["rate_hz"] >= 0.0:
            raise ValueError(f"parameter rate_hz must be >= 0 (0: the legs policy's), got {p['rate_hz']}")
        config, rate = planner_setup(p["legs_policy"], p["rate_hz"], planner_parameters)
        self.planner = SingleFootstepPlanner(config)  # validates the config, naming a bad field
        self.planner.reset()
        self.timeout = float(p["command_timeout_s"])
        self.max_tick = float(p["max_tick_s"])
        self.clock = LoopClock(self)
        self._cmd = (0.0, 0.0, 0.0)
        self._cmd_time = -math.inf
        self._last_tick = None

        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.create_publisher(FootstepCommand, "footstep_command", reliable)
        self.create_subscription(HighLevelCommand, "high_level_command", self._on_command, reliable)
        self.create_timer(1.0 / rate, self._tick)
        self.get_logger().info(f"footsteps at {rate:g} Hz, step period {config.step_period:g} s, "
                               f"width {config.step_width:g} m ({p['legs_policy'] or 'no legs policy: defaults'})")

    def _on_command(self, msg: HighLevelCommand) -> None:
        cmd = (msg.vx, msg.vy, msg.wz)
        if not all(math.isfinite(v) for v in cmd):
            self.get_logger().error(f"HighLevelCommand velocity {cmd} is not finite; ignored "
                                    "(the last valid command times out into a stop)", throttle_duration_sec=1.0)
            return
        self._cmd, self._cmd_time = cmd, self.clock.now()

    def _tick(self) -> None:
        now = self.clock.now()
        dt = 0.0 if self._last_tick is None else min(now - self._last_tick, self.max_tick)
        self._last_tick = now
        if dt <= 0.0:
            return
        cmd = self._cmd
        if now - self._cmd_time > self.timeout:
            if self._cmd_time > -math.inf and cmd != (0.0, 0.0, 0.0):
                self.get_logger().warning(f"no HighLevelCommand for {self.timeout:g} s: stopping",
                                          throttle_duration_sec=5.0)
            cmd = (0.0, 0.0, 0.0)
        step = self.planner.update(dt, *cmd)
        msg = FootstepCommand()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = step.frame_id
        msg.swing_foot = step.swing_foot
        msg.countdown = step.countdown
        msg.step_duration = step.step_duration
        msg.target_x, msg.target_y, msg.target_yaw = step.target_x, step.target_y, step.target_yaw
        msg.target_z = step.target_z  # 0 on flat ground (no terrain input here yet)
        msg.step_index = step.step_index
        self.pub.publish(msg)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = FootstepNode()
    try:
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
