"""The MoCap world's up axis: the one place where poses change between Y-up and Z-up.

Motive's default is Y-up (its ground plane is x-z); ROS (REP-103) and the rest of refine-dp are
Z-up. A Y-up pose becomes Z-up by a +90 degree rotation C about x:
    (x, y, z)_Y-up -> (x, -z, y)_Z-up           p_Z = C p_Y
    R_Z = C R_Y C^-1                            (the body's own axes are renamed the same way, so
                                                 a body created level in Motive is level here)
mocap_bridge's tracker converts every received pose with `to_z_up` (bodies.yaml `up_axis`), and
sim_t1's NatNet server can serve Y-up with `from_z_up` (parameter natnet_up_axis), so the
conversion is tested end to end. Quaternions are x, y, z, w (NatNet and scipy order).
Values: "z_up" or "y_up" ("z"/"y" are accepted too; ROS parameter files and --ros-args read a
bare y as a boolean, hence the longer names).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

UP_AXES = ("z_up", "y_up")
_Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True)


def check_up_axis(up_axis: str) -> str:
    """The canonical name ("z_up" or "y_up") of an up-axis setting; ValueError names the choices."""
    axis = str(up_axis).strip().lower()
    axis = {"z": "z_up", "y": "y_up"}.get(axis, axis)
    if axis not in UP_AXES or isinstance(up_axis, bool):
        raise ValueError(f"up_axis must be one of {UP_AXES} (Motive's default is y_up), got {up_axis!r}")
    return axis


def to_z_up(position, quat_xyzw, up_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """A pose in the MoCap world of `up_axis` -> Z-up (position m, quaternion x, y, z, w)."""
    p, q = np.asarray(position, dtype=float), np.asarray(quat_xyzw, dtype=float)
    if check_up_axis(up_axis) == "z_up":
        return p, q
    c = _Y_UP_TO_Z_UP
    return c.apply(p), (c * Rotation.from_quat(q) * c.inv()).as_quat()


def from_z_up(position, quat_xyzw, up_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """A Z-up pose -> the MoCap world of `up_axis` (inverse of to_z_up)."""
    p, q = np.asarray(position, dtype=float), np.asarray(quat_xyzw, dtype=float)
    if check_up_axis(up_axis) == "z_up":
        return p, q
    c = _Y_UP_TO_Z_UP
    return c.inv().apply(p), (c.inv() * Rotation.from_quat(q) * c).as_quat()
