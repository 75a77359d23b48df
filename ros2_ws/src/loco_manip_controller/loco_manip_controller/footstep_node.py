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

Stance-foot pose: RobotState carries no foot poses. With `measured_feet` (default false) the node
measures them as the legs were trained (refine-dp eval controller does too): both feet by leg
forward kinematics (t1_description.kinematics.feet_planar) of RobotState's leg joint angles, placed
by the trunk's MoCap pose (`objects`, body `trunk_object`); the planner then re-expresses its targets
on the measured stance foot and places them along the commanded path with the legs' bounded catch-up
(FootstepPlannerConfig.catch_up / catch_up_yaw), restarting the path when the command changes by more
than `reanchor_change` (default 0: any change, as `refine-dp eval controller` does). A stale or untracked trunk (> `feet_timeout_s`) falls back to dead reckoning.
Without it the footholds are the planner's own dead reckoning (each swing foot assumed to land on its
target): the relative targets the policy sees do not depend on that world estimate, but an under-turn
is never caught up.

Run: python -m loco_manip_controller.footstep_node --ros-args -p legs_policy:=legs.onnx
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from refine_dp_msgs.msg import FootstepCommand, HighLevelCommand, ObjectStateArray, RobotState

from loco_manip_controller import contract
from loco_manip_controller.footstep_planner import REANCHOR_CHANGE, FootstepPlannerConfig, SingleFootstepPlanner
from loco_manip_controller.policy_io import CONTROL_HZ
from loco_manip_controller.policy_runtime import check_metadata, read_metadata, resolve_model
from t1_description.kinematics import LEG_JOINT_NAMES, feet_planar, quat_wxyz_to_matrix
from t1_description.ros_runtime import LoopClock, spin

NODE_PARAMETERS = {  # name: (default, description); FootstepPlannerConfig fields are declared beside these
    "legs_policy": ("", "legs policy (path or shipped model name) whose footstep planner config is run; "
                        "empty: FootstepPlannerConfig defaults"),
    "rate_hz": (0.0, "FootstepCommand publish rate; 0: the legs policy's control_hz"),
    "command_timeout_s": (0.5, "a HighLevelCommand older than this counts as zero velocity (stop)"),
    "max_tick_s": (0.1, "cap on the planner time step when a tick comes late"),
    "measured_feet": (False, "measure the feet (leg FK of robot_state placed by the trunk's MoCap pose in objects) "
                             "so the planner catches up on the commanded path as in training"),
    "trunk_object": ("t1_trunk", "with measured_feet: the MoCap body of the trunk in objects"),
    "feet_timeout_s": (0.1, "with measured_feet: a trunk pose or joint state older than this is not used"),
    "reanchor_change": (REANCHOR_CHANGE, "with measured_feet: a command change (m/s or rad/s, any axis) beyond this "
                              "restarts the commanded path on the feet (0: any change)"),
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


class MeasuredFeet:
    """Both feet's planar world poses [2, 3] (left, right; x, y, yaw) from the latest leg joint angles
    (RobotState) and trunk pose (ObjectStateArray), or None when either is missing, stale or untracked.
    ROS-free but for the messages' fields, so it is tested without a graph."""

    def __init__(self, trunk_object: str, timeout_s: float):
        self.trunk_object, self.timeout = trunk_object, float(timeout_s)
        self.leg_names = LEG_JOINT_NAMES
        self._q, self._q_t = None, -math.inf
        self._trunk, self._trunk_t = None, -math.inf
        self._index = None  # RobotState name order -> leg joints

    def on_robot_state(self, msg, now: float) -> None:
        if self._index is None or len(msg.name) != self._index[0]:
            names = list(msg.name)
            try:
                self._index = (len(names), [names.index(n) for n in self.leg_names])
            except ValueError as e:
                raise ValueError(f"robot_state lacks a leg joint the feet are measured from: {e}") from None
        self._q = [msg.position[i] for i in self._index[1]]
        self._q_t = now

    def on_objects(self, msg, now: float) -> None:
        for o in msg.objects:
            if o.name == self.trunk_object:
                if o.tracked:
                    p, q = o.pose.position, o.pose.orientation
                    self._trunk, self._trunk_t = ((p.x, p.y, p.z), (q.w, q.x, q.y, q.z)), now
                return

    def pose(self, now: float):
        if self._q is None or self._trunk is None or now - min(self._q_t, self._trunk_t) > self.timeout:
            return None
        pos, quat = self._trunk
        rot = quat_wxyz_to_matrix(np.asarray(quat, dtype=np.float64)[None])
        return feet_planar(np.asarray(self._q, dtype=np.float64)[None], rot, np.asarray(pos)[None])[0]


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
        # validates the config, naming a bad field; measured feet: stop on the planned stance (FootstepPlanner)
        self.planner = SingleFootstepPlanner(config, stop_on_plan=bool(p["measured_feet"]))
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
        self.feet = MeasuredFeet(p["trunk_object"], p["feet_timeout_s"]) if p["measured_feet"] else None
        self.reanchor_change = float(p["reanchor_change"])
        self._feet_started = False
        if self.feet is not None:
            best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            self.create_subscription(RobotState, "robot_state",
                                     lambda m: self.feet.on_robot_state(m, self.clock.now()), best_effort)
            self.create_subscription(ObjectStateArray, "objects",
                                     lambda m: self.feet.on_objects(m, self.clock.now()), best_effort)
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
        feet = self.feet.pose(now) if self.feet is not None else None
        if feet is not None and not self._feet_started:
            self.planner.reset(feet_pose=feet)  # the plan starts on the measured feet (in the MoCap world)
            self._feet_started = True
        step = self.planner.update(dt, *cmd, feet_pose=feet)
        if feet is not None:  # a new command: a new commanded path from where the robot is
            self.planner.reanchor_on_change(*cmd, self.reanchor_change)
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
