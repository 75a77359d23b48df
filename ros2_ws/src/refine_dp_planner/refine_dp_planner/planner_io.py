"""What the diffusion planner sees and what it outputs: one definition for training and the node.

Observation (one step; the engine gets a history of `obs_horizon` steps, oldest first):
    hands        18   left, right hand: position (3, m) + rotation 6D (6) in base_link, FK of the
                      measured arm joints (the same URDF rviz shows)
    grippers      2   last commanded left, right gripper (0 open .. 1 closed)
    gravity       3   unit gravity direction in the trunk frame (from the IMU)
    <object>     10   per task object: position (3) + rotation 6D (6) in base_link, tracked flag (1)
Action (one step of a chunk):
    base_velocity 3   vx, vy (m/s), wz (rad/s) in the yaw-aligned root frame
    left_hand     9   position (3) + rotation 6D (6) in base_link
    right_hand    9
    grippers      2   0 open .. 1 closed

Rotation 6D = first two columns of the rotation matrix (Zhou et al.); back to a matrix by
Gram-Schmidt. Quaternions cross this module's boundary only as (x, y, z, w) (geometry_msgs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from t1_description.kinematics import rot6d  # the 6D rotation of the controller too: one definition

ACTION_FIELDS: list[tuple[str, int]] = [("base_velocity", 3), ("left_hand", 9), ("right_hand", 9), ("grippers", 2)]
ACTION_DIM = sum(n for _, n in ACTION_FIELDS)
OBJECT_FEATURES = 10


def observation_fields(objects: tuple[str, ...]) -> list[tuple[str, int]]:
    return [("hands", 18), ("grippers", 2), ("gravity", 3)] + [(name, OBJECT_FEATURES) for name in objects]


def rot6d_to_matrix(r6: np.ndarray) -> np.ndarray:
    """[..., 6] -> [..., 3, 3], Gram-Schmidt (robust to the small errors a network makes)."""
    a, b = r6[..., :3], r6[..., 3:]
    x = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-9)
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    y = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-9)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


@dataclass
class PlannerAction:
    base_velocity: np.ndarray                      # vx, vy, wz
    hand_pos: np.ndarray                           # [2, 3] left, right
    hand_rot: np.ndarray                           # [2, 3, 3]
    grippers: np.ndarray                           # [2]

    @classmethod
    def from_vector(cls, a: np.ndarray) -> "PlannerAction":
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"planner action must have {ACTION_DIM} values, got shape {a.shape}")
        hands = a[3:21].reshape(2, 9)
        return cls(a[:3].copy(), hands[:, :3].copy(), rot6d_to_matrix(hands[:, 3:]),
                   np.clip(a[21:23], 0.0, 1.0))

    def to_vector(self) -> np.ndarray:
        """The action vector (ACTION_FIELDS order): what demonstrations record and the planner outputs."""
        hands = np.concatenate([self.hand_pos, rot6d(self.hand_rot)], axis=-1).reshape(-1)
        return np.concatenate([self.base_velocity, hands, self.grippers]).astype(np.float32)


@dataclass
class Clamps:
    """Deployment limits (paper: walking 0.2 m/s, hands 0.05 m/s)."""
    max_base_speed: float = 0.2        # m/s, norm of (vx, vy)
    max_yaw_rate: float = 0.5          # rad/s
    max_hand_speed: float = 0.05       # m/s, per hand, of the commanded target
    max_hand_angular_speed: float = 0.5  # rad/s, per hand


def clamp_action(action: PlannerAction, previous: PlannerAction | None, dt: float, limits: Clamps
                 ) -> tuple[PlannerAction, bool]:
    """Limit base speed and the speed of the hand targets relative to the previous command."""
    from scipy.spatial.transform import Rotation, Slerp

    clamped = False
    v = action.base_velocity.copy()
    speed = float(np.linalg.norm(v[:2]))
    if speed > limits.max_base_speed:
        v[:2] *= limits.max_base_speed / speed
        clamped = True
    if abs(v[2]) > limits.max_yaw_rate:
        v[2] = np.sign(v[2]) * limits.max_yaw_rate
        clamped = True
    pos, rot = action.hand_pos.copy(), action.hand_rot.copy()
    if previous is not None:
        for h in range(2):
            step = pos[h] - previous.hand_pos[h]
            dist, max_dist = float(np.linalg.norm(step)), limits.max_hand_speed * dt
            if dist > max_dist:
                pos[h] = previous.hand_pos[h] + step * (max_dist / dist)
                clamped = True
            r0, r1 = Rotation.from_matrix(previous.hand_rot[h]), Rotation.from_matrix(rot[h])
            angle, max_angle = float((r0.inv() * r1).magnitude()), limits.max_hand_angular_speed * dt
            if angle > max_angle:
                rot[h] = Slerp([0.0, 1.0], Rotation.concatenate([r0, r1]))([max_angle / angle]).as_matrix()[0]
                clamped = True
    return PlannerAction(v, pos, rot, action.grippers.copy()), clamped


@dataclass
class ObservationHistory:
    """The last `horizon` observations, oldest first; padded at the start by repeating the first
    (the convention of the training windows)."""
    horizon: int
    _items: list = field(default_factory=list)

    def push(self, obs: np.ndarray) -> None:
        if not self._items:
            self._items = [obs] * self.horizon
        self._items = self._items[1:] + [obs]

    def clear(self) -> None:
        self._items = []

    def array(self) -> np.ndarray:
        if not self._items:
            raise RuntimeError("no observation yet")
        return np.stack(self._items)


def build_observation(arm_q: np.ndarray, grippers: np.ndarray, gravity: np.ndarray,
                      objects: dict[str, tuple[np.ndarray, np.ndarray, bool]], object_names: tuple[str, ...],
                      ) -> np.ndarray:
    """One observation vector. arm_q: [14] table order (left arm, right arm); objects: name ->
    (position in base_link [3], quaternion x, y, z, w [4], tracked). Missing objects are zeros, untracked."""
    from scipy.spatial.transform import Rotation

    from t1_description.kinematics import arm_kinematics

    pos, rot = arm_kinematics().fk(np.asarray(arm_q, dtype=np.float64)[None])
    parts = [np.concatenate([pos[0], rot6d(rot[0])], axis=-1).reshape(-1), np.asarray(grippers, float),
             np.asarray(gravity, float)]
    for name in object_names:
        if name in objects:
            p, q, tracked = objects[name]
            parts.append(np.concatenate([p, rot6d(Rotation.from_quat(q).as_matrix()), [float(tracked)]]))
        else:
            parts.append(np.zeros(OBJECT_FEATURES))
    return np.concatenate(parts).astype(np.float32)
