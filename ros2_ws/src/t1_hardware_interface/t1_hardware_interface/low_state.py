"""Conversions between the robot's low-level messages and numpy arrays.

The vendor SDK types (booster_robotics_sdk_python.LowState / LowCmd) and the ROS messages of
booster_interface have the same field names, so one reader serves both. Arrays here are in model
order (the joint table's); the SDK's order is reached only through `JointTable.model_to_sdk` /
`sdk_to_model`, so a future reordering lives in one place.

ROS and SDK modules are imported inside the functions that need them. The types themselves
(`MeasuredState`, `JointCommandRequest`, `MotorCommand`) live in `t1_description.robot_types`.
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from t1_description.robot_types import (JointCommandRequest, MeasuredState, MotorCommand, projected_gravity,
                                        rpy_to_quat_wxyz)

if TYPE_CHECKING:
    from t1_description.joint_table import JointTable

class VariantMismatch(ValueError):
    """The robot is another T1 variant than the joint table's (e.g. the 23-DoF T1): refuse to run."""


def measured_from_low_state(msg: Any, table: "JointTable", stamp: float) -> MeasuredState:
    """SDK or booster_interface LowState -> MeasuredState (serial joint space, model order).
    VariantMismatch (a ValueError) names the variant when the motor count is another T1's."""
    from t1_description.joint_table import variant_mismatch_message

    motors = msg.motor_state_serial  # the SDK binding copies the vector on each access: read it once
    if len(motors) != len(table.names):
        raise VariantMismatch(variant_mismatch_message(len(motors), table, "the robot's LowState"))
    raw = np.array([(m.q, m.dq, m.tau_est) for m in motors], dtype=np.float64)
    q, dq, tau = table.sdk_to_model(raw.T)  # [3, n], one reorder
    imu = msg.imu_state
    rpy = np.array(imu.rpy, dtype=np.float64)
    return MeasuredState(q=q, dq=dq, tau=tau, rpy=rpy, gyro=np.array(imu.gyro, dtype=np.float64),
                         acc=np.array(imu.acc, dtype=np.float64), gravity=projected_gravity(rpy), stamp=stamp)


class LowCmdWriter:
    """MotorCommand (model order) -> SDK LowCmd (SERIAL, weight 1.0), reusing the MotorCmd objects."""

    def __init__(self, table: "JointTable"):
        import booster_robotics_sdk_python as sdk

        self._table = table
        self._msg = sdk.LowCmd()
        self._msg.cmd_type = sdk.LowCmdType.SERIAL
        self._motors = [sdk.MotorCmd() for _ in table.names]
        for m in self._motors:
            m.mode = 0
            m.weight = 1.0
        self._last: np.ndarray | None = None  # [5, n] SDK-order values last written

    FIELDS = ("q", "dq", "tau", "kp", "kd")

    def build(self, cmd: "MotorCommand") -> Any:
        # 500 Hz: set only the entries that changed since the last LowCmd (gains, velocities and
        # torques rarely do), each a call into the binding
        cols = self._table.model_to_sdk(np.stack((cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd)))
        changed = np.ones(cols.shape, bool) if self._last is None else cols != self._last
        for name, row, values in zip(self.FIELDS, changed, cols):
            if row.any():
                values = values.tolist()
                for i in np.flatnonzero(row).tolist():
                    setattr(self._motors[i], name, values[i])
        self._last = cols
        self._msg.motor_cmd = self._motors  # the binding copies the list into the C++ vector
        return self._msg


def request_from_joint_command(msg: Any) -> "JointCommandRequest":
    """refine_dp_msgs/JointCommand -> JointCommandRequest (validation is the safety layer's job)."""
    return JointCommandRequest(
        names=tuple(msg.name), position=np.asarray(msg.position, dtype=np.float64),
        velocity=np.asarray(msg.velocity, dtype=np.float64), effort=np.asarray(msg.effort, dtype=np.float64),
        kp=np.asarray(msg.kp, dtype=np.float64), kd=np.asarray(msg.kd, dtype=np.float64))


def _doubles(x: np.ndarray) -> array.array:
    """A float64[] message field's value without the generated setter's per-element checks."""
    return array.array("d", np.ascontiguousarray(x, dtype=np.float64).tobytes())


def robot_state_msg(s: MeasuredState, names: Sequence[str], stamp_msg: Any, mode: int,
                    safety_state: int, safety_reason: str, msg: Any = None) -> Any:
    """MeasuredState -> refine_dp_msgs/RobotState (imu_orientation in geometry_msgs order x, y, z, w).

    The hardware measures no root pose, twist or foot contact: root_pose_valid stays false and the
    contacts false; the simulator or a MoCap-aware node fills them. `msg`: a RobotState to fill
    (a publisher may reuse one: publish() serializes it at once); its names are kept if set.
    """
    from refine_dp_msgs.msg import RobotState

    if msg is None:
        msg = RobotState()
    msg.header.stamp = stamp_msg
    msg.header.frame_id = "base_link"
    if len(msg.name) != len(names):
        msg.name = list(names)
    msg.position, msg.velocity, msg.effort = _doubles(s.q), _doubles(s.dq), _doubles(s.tau)
    w, x, y, z = rpy_to_quat_wxyz(s.rpy)  # transforms3d order w, x, y, z -> geometry_msgs x, y, z, w
    o = msg.imu_orientation
    o.x, o.y, o.z, o.w = float(x), float(y), float(z), float(w)
    for vec, arr in ((msg.imu_rpy, s.rpy), (msg.imu_angular_velocity, s.gyro),
                     (msg.imu_linear_acceleration, s.acc), (msg.projected_gravity, s.gravity)):
        vec.x, vec.y, vec.z = (float(v) for v in arr)
    msg.mode = int(mode)
    msg.safety_state = int(safety_state)
    msg.safety_reason = safety_reason
    return msg


def joint_state_msg(s: MeasuredState, names: Sequence[str], stamp_msg: Any) -> Any:
    """MeasuredState -> sensor_msgs/JointState (for robot_state_publisher / rviz)."""
    from sensor_msgs.msg import JointState

    msg = JointState()
    msg.header.stamp = stamp_msg
    msg.name = list(names)
    msg.position, msg.velocity, msg.effort = _doubles(s.q), _doubles(s.dq), _doubles(s.tau)
    return msg
