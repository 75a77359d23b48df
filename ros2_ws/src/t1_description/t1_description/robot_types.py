"""Types shared by the hardware interface, its safety layer and the simulator (ROS-free).

`MeasuredState` is one LowState as arrays, `JointCommandRequest` one JointCommand as arrays,
`MotorCommand` the per-motor command a LowCmd carries; all joint arrays are in model (= joint
table) order. One definition, so the driver, the safety state machine and sim_t1 cannot drift.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from transforms3d.euler import euler2quat

_DOWN = np.array([0.0, 0.0, -1.0])


# transforms3d rather than scipy.spatial.transform here: these run at 500 Hz, and scipy's Rotation
# costs ~100 us per call against ~2-8 us for transforms3d. 'rzyx' = R = Rz(yaw) Ry(pitch) Rx(roll),
# the IMU's ZYX Euler convention.
def rpy_to_quat_wxyz(rpy: Sequence[float]) -> np.ndarray:
    """Trunk orientation from the IMU's roll, pitch, yaw, as a quaternion in (w, x, y, z) order."""
    roll, pitch, yaw = (float(a) for a in rpy)
    return np.asarray(euler2quat(yaw, pitch, roll, "rzyx"))


def projected_gravity(rpy: Sequence[float]) -> np.ndarray:
    """Unit gravity direction in the trunk frame: (0, 0, -1) upright, z > -0.5 when tilted > 60 deg.

    = (Rz(yaw) Ry(pitch) Rx(roll))^T (0, 0, -1): minus the third row of that matrix, written out (the
    hardware interface computes it for every LowState, 500 Hz; tests compare with transforms3d)."""
    roll, pitch = float(rpy[0]), float(rpy[1])
    cp = math.cos(pitch)
    return np.array([math.sin(pitch), -cp * math.sin(roll), -cp * math.cos(roll)])


@dataclass(frozen=True)
class MeasuredState:
    """One LowState as numpy arrays (joints in model order) with the time it was received.

    `stamp` is the receiver's clock in seconds (monotonic on the robot, simulated time in
    simulation): the safety watchdogs compare it with the `now` they are given, so both must come
    from the same clock.
    """

    q: np.ndarray          # rad
    dq: np.ndarray         # rad/s
    tau: np.ndarray        # estimated torque, N m
    rpy: np.ndarray        # roll, pitch, yaw, rad
    gyro: np.ndarray       # trunk frame, rad/s
    acc: np.ndarray        # trunk frame, m/s^2
    gravity: np.ndarray    # projected gravity, unit vector in the trunk frame
    stamp: float

    @classmethod
    def from_arrays(cls, q, dq=None, tau=None, rpy=(0.0, 0.0, 0.0), gyro=(0.0, 0.0, 0.0),
                    acc=(0.0, 0.0, 9.81), stamp: float = 0.0) -> "MeasuredState":
        """Build from plain arrays (zeros where omitted); projected gravity is derived from rpy."""
        q = np.asarray(q, dtype=np.float64)
        zeros = np.zeros_like(q)
        rpy = np.asarray(rpy, dtype=np.float64)
        return cls(q=q, dq=zeros if dq is None else np.asarray(dq, dtype=np.float64),
                   tau=zeros if tau is None else np.asarray(tau, dtype=np.float64),
                   rpy=rpy, gyro=np.asarray(gyro, dtype=np.float64), acc=np.asarray(acc, dtype=np.float64),
                   gravity=projected_gravity(rpy), stamp=float(stamp))


@dataclass(frozen=True)
class JointCommandRequest:
    """A JointCommand as arrays parallel to `names` (velocity/effort may be empty = zeros)."""

    names: Sequence[str]
    position: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    effort: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class MotorCommand:
    """Per-joint command in model order: tau = kp (q - q_meas) + kd (dq - dq_meas) + tau."""

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
