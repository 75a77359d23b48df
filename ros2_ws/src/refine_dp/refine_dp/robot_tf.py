"""The robot's TF from joint positions: what robot_state_publisher does, for our URDF, ROS-free.

Why our own: robot_state_publisher (C++) is not obtainable from the PyPI ROS wheels this project
runs on. The URDF is parsed once (t1_description.urdf_kinematics, stdlib xml); each joint then
gives one parent -> child transform, as robot_state_publisher publishes it:

    translation = origin.xyz (+ R_origin axis q, prismatic)
    rotation    = R_origin R(axis, q)      (revolute/continuous; R_origin only, fixed and prismatic)

Fixed joints never change: they go on /tf_static once. Movable joints are computed for all joints
in one batched scipy call per message. Quaternions here are x, y, z, w (geometry_msgs and scipy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from t1_description.urdf_kinematics import UrdfModel


@dataclass(frozen=True)
class Transform:
    """One TF edge: the child frame's pose in the parent frame."""
    parent: str
    child: str
    xyz: np.ndarray  # 3
    quat_xyzw: np.ndarray  # 4


def matrix(t: Transform) -> np.ndarray:
    """4x4 homogeneous matrix of a Transform."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(t.quat_xyzw).as_matrix()
    m[:3, 3] = t.xyz
    return m


class RobotTF:
    """TF edges of a URDF's kinematic tree for given joint positions (missing joints: 0)."""

    def __init__(self, urdf: UrdfModel):
        self.root = urdf.root
        fixed = [j for j in urdf.joints if j.type == "fixed"]
        self.fixed = [Transform(j.parent, j.child, j.origin[:3, 3].copy(),
                                Rotation.from_matrix(j.origin[:3, :3]).as_quat()) for j in fixed]
        moving = list(urdf.movable_joints)
        self.joint_names = tuple(j.name for j in moving)
        self.parents = tuple(j.parent for j in moving)
        self.children = tuple(j.child for j in moving)
        self._index = {n: i for i, n in enumerate(self.joint_names)}
        self._xyz = np.array([j.origin[:3, 3] for j in moving])
        self._rot = Rotation.from_matrix(np.array([j.origin[:3, :3] for j in moving]))
        self._axis = np.array([j.axis for j in moving])
        self._revolute = np.array([j.type in ("revolute", "continuous") for j in moving])
        # world order for composing poses: URDF joints come parents first
        self._edges_in_order = [(j.parent, j.child) for j in urdf.joints]
        self._fixed_matrices = {j.child: j.origin for j in fixed}

    def positions(self, names, values) -> np.ndarray:
        """Joint positions in this tree's order from a JointState's (name, position) lists.

        Joints not named stay at 0 (the T1's JointState carries the 29 motors, not the gripper
        fingers); a name the URDF does not have raises, naming it, so a renamed joint is not
        silently drawn at zero."""
        q = np.zeros(len(self.joint_names))
        for name, value in zip(names, values):
            i = self._index.get(name)
            if i is None:
                raise KeyError(f"joint {name!r} is not a movable joint of the URDF (root {self.root!r})")
            q[i] = value
        return q

    def _movable_arrays(self, q: np.ndarray) -> tuple[np.ndarray, Rotation]:
        q = np.asarray(q, dtype=float)
        rev = self._revolute[:, None]
        rot = self._rot * Rotation.from_rotvec(np.where(rev, self._axis * q[:, None], 0.0))
        xyz = self._xyz + np.where(rev, 0.0, self._rot.apply(self._axis * q[:, None]))
        return xyz, rot

    def movable(self, q: np.ndarray) -> list[Transform]:
        """parent -> child transforms of the movable joints at positions `q` (this tree's order)."""
        xyz, rot = self._movable_arrays(q)
        quats = rot.as_quat()
        return [Transform(p, c, xyz[i], quats[i]) for i, (p, c) in enumerate(zip(self.parents, self.children))]

    def link_poses(self, q: np.ndarray, root_pose: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """World 4x4 pose of every link: the TF edges composed from the root (`root_pose`, identity)."""
        xyz, rot = self._movable_arrays(q)
        local = np.tile(np.eye(4), (len(xyz), 1, 1))
        local[:, :3, :3], local[:, :3, 3] = rot.as_matrix(), xyz
        edges = dict(self._fixed_matrices)
        edges.update(zip(self.children, local))
        poses = {self.root: np.eye(4) if root_pose is None else np.asarray(root_pose, dtype=float)}
        for parent, child in self._edges_in_order:
            poses[child] = poses[parent] @ edges[child]
        return poses


def planar(pose: np.ndarray) -> tuple[float, float, float]:
    """x, y and yaw of a 4x4 pose (yaw of its x axis projected on the ground)."""
    return float(pose[0, 3]), float(pose[1, 3]), float(np.arctan2(pose[1, 0], pose[0, 0]))


def level_base_pose(q: np.ndarray, tree: RobotTF, feet: tuple[str, str]) -> np.ndarray:
    """base_link in world when nothing measures it: upright at the origin, the lower sole on z = 0."""
    poses = tree.link_poses(q)
    pose = np.eye(4)
    pose[2, 3] = -min(poses[f][2, 3] for f in feet)
    return pose


def pose_matrix(position: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """4x4 pose from a position and an x, y, z, w quaternion."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(quat_xyzw).as_matrix()
    m[:3, 3] = position
    return m
