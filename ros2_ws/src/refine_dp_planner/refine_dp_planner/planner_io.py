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

from dataclasses import dataclass, field, fields

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
    """Deployment limits (paper: walking 0.2 m/s, hands 0.05 m/s) and the stand deadband.

    The deadband: a base command whose |vx|, |vy| <= stand_speed and |wz| <= stand_yaw_rate is exactly zero,
    so the footstep planner stands (its own stand thresholds, 0.02 m/s and 0.05 rad/s, are part of the legs'
    contract). Why: the shipped legs hardly move on such commands (0.1 m/s walks at ~0.03 m/s), the
    heuristics' demonstrations never contain one (0 of 34.6k door and 109.6k pickup planner steps), but a
    diffusion planner's sampling noise around a stop lands there in 12-45 % of its steps (the door DiT):
    without the deadband the robot keeps stepping in place, turns, and walks into the door.
    """
    max_base_speed: float = 0.2        # m/s, norm of (vx, vy)
    max_yaw_rate: float = 0.5          # rad/s
    max_hand_speed: float = 0.05       # m/s, per hand, of the commanded target
    max_hand_angular_speed: float = 0.5  # rad/s, per hand
    stand_speed: float = 0.06          # m/s, deadband of |vx| and |vy| (0: none)
    stand_yaw_rate: float = 0.15       # rad/s, deadband of |wz| (0: none)

    @classmethod
    def from_parameters(cls, declare) -> "Clamps":
        """From ROS parameters of the same names: declare(name, default) -> value (a node's declare_parameter)."""
        return cls(**{f.name: float(declare(f.name, f.default)) for f in fields(cls)})


def clamp_actions(base_velocity, hand_pos, hand_rot, previous_pos=None, previous_rot=None, dt: float = 0.1,
                  limits: Clamps | None = None, has_previous=None):
    """Batched clamps, the one implementation (the node's PlannerCore and the training env call it).

    base_velocity [N, 3], hand_pos [N, 2, 3], hand_rot [N, 2, 3, 3]: the action; previous_pos/rot: the last
    command of each env (None, or rows where has_previous [N] is False: the hands are not limited, as
    for a planner's first command). A base command inside the stand deadband becomes zero (Clamps); base
    speed (norm of vx, vy) and |wz| are capped; each hand target
    moves at most max_hand_speed * dt from the previous one (straight line) and turns at most
    max_hand_angular_speed * dt towards the commanded rotation (slerp: R_prev exp(s log(R_prev^T R))).
    Returns (base_velocity, hand_pos, hand_rot, clamped [N] bool); the inputs are not modified.
    """
    from scipy.spatial.transform import Rotation

    limits = limits or Clamps()
    v = np.array(base_velocity, dtype=np.float64, copy=True)
    pos = np.array(hand_pos, dtype=np.float64, copy=True)
    rot = np.array(hand_rot, dtype=np.float64, copy=True)
    n = v.shape[0]
    still = (np.abs(v[:, :2]).max(axis=-1) <= limits.stand_speed) & (np.abs(v[:, 2]) <= limits.stand_yaw_rate)
    v[still] = 0.0
    speed = np.linalg.norm(v[:, :2], axis=-1)
    fast = speed > limits.max_base_speed
    v[fast, :2] *= (limits.max_base_speed / speed[fast])[:, None]
    spin = np.abs(v[:, 2]) > limits.max_yaw_rate
    v[spin, 2] = np.sign(v[spin, 2]) * limits.max_yaw_rate
    clamped = fast | spin
    if previous_pos is None or previous_rot is None:
        return v, pos, rot, clamped
    prev_pos, prev_rot = np.asarray(previous_pos, np.float64), np.asarray(previous_rot, np.float64)
    use = np.ones(n, bool) if has_previous is None else np.asarray(has_previous, bool)
    step = pos - prev_pos
    dist, max_dist = np.linalg.norm(step, axis=-1), limits.max_hand_speed * dt        # [N, 2]
    far = (dist > max_dist) & use[:, None]
    scale = np.where(far, max_dist / np.maximum(dist, 1e-300), 1.0)[..., None]
    pos = np.where(far[..., None], prev_pos + step * scale, pos)
    rel = Rotation.from_matrix((np.swapaxes(prev_rot, -1, -2) @ rot).reshape(-1, 3, 3)).as_rotvec().reshape(n, 2, 3)
    angle, max_angle = np.linalg.norm(rel, axis=-1), limits.max_hand_angular_speed * dt
    turn = (angle > max_angle) & use[:, None]
    if turn.any():
        part = Rotation.from_rotvec((rel[turn] * (max_angle / angle[turn])[:, None])).as_matrix()
        rot[turn] = prev_rot[turn] @ part
    clamped |= far.any(-1) | turn.any(-1)
    return v, pos, rot, clamped


def clamp_action(action: PlannerAction, previous: PlannerAction | None, dt: float, limits: Clamps
                 ) -> tuple[PlannerAction, bool]:
    """Limit base speed and the speed of the hand targets relative to the previous command (one robot:
    clamp_actions with N = 1)."""
    prev_pos = None if previous is None else previous.hand_pos[None]
    prev_rot = None if previous is None else previous.hand_rot[None]
    v, pos, rot, clamped = clamp_actions(action.base_velocity[None], action.hand_pos[None], action.hand_rot[None],
                                         prev_pos, prev_rot, dt, limits)
    return PlannerAction(v[0], pos[0], rot[0], action.grippers.copy()), bool(clamped[0])


def actions_from_vectors(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched PlannerAction.from_vector: [N, ACTION_DIM] -> base velocity [N, 3], hand pos [N, 2, 3],
    hand rot [N, 2, 3, 3] (Gram-Schmidt), grippers [N, 2] clipped to [0, 1]."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != ACTION_DIM:
        raise ValueError(f"planner actions must be [N, {ACTION_DIM}], got shape {a.shape}")
    hands = a[:, 3:21].reshape(-1, 2, 9)
    return a[:, :3].copy(), hands[..., :3].copy(), rot6d_to_matrix(hands[..., 3:]), np.clip(a[:, 21:23], 0.0, 1.0)


def integrate_base(base_velocity, dt: float) -> np.ndarray:
    """Base velocities [N, 3] (vx, vy, wz in the yaw-aligned root frame), each held for dt -> the base's
    planar poses [N + 1, 3] (x, y, yaw) relative to where it started (the identity, first row): each
    step moves along the heading at its start. One definition for the planner's published chunk and
    rviz_publisher's fallback path (a held command)."""
    v = np.asarray(base_velocity, dtype=np.float64).reshape(-1, 3)
    yaw = np.concatenate([[0.0], np.cumsum(v[:, 2] * dt)])
    c, s = np.cos(yaw[:-1]), np.sin(yaw[:-1])
    steps = np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], axis=1) * dt
    return np.column_stack([np.vstack([np.zeros(2), np.cumsum(steps, axis=0)]), yaw])


def chunk_paths(chunk: np.ndarray, dt: float, limits: Clamps | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sampled chunk [Ta, ACTION_DIM] -> what it plans, in base_link at the chunk's start:
    base poses [Ta + 1, 3] (x, y, yaw: its base velocities, clamped to the limits' base speed and yaw
    rate, integrated at dt from the identity), hand positions [Ta, 2, 3] and hand quaternions
    [Ta, 2, 4] (x, y, z, w) of every action, as decoded (the hand clamps act on the executed commands)."""
    from scipy.spatial.transform import Rotation

    v, pos, rot, _ = actions_from_vectors(chunk)
    v, _, _, _ = clamp_actions(v, pos, rot, limits=limits)
    quat = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_quat().reshape(len(pos), 2, 4)
    return integrate_base(v, dt), pos, quat


def actions_to_vectors(base_velocity, hand_pos, hand_rot, grippers) -> np.ndarray:
    """Batched PlannerAction.to_vector: -> [N, ACTION_DIM] float32 (ACTION_FIELDS order)."""
    n = np.shape(base_velocity)[0]
    hands = np.concatenate([hand_pos, rot6d(hand_rot)], axis=-1).reshape(n, 18)
    return np.concatenate([base_velocity, hands, grippers], axis=-1).astype(np.float32)


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
                      objects: dict, object_names: tuple[str, ...]) -> np.ndarray:
    """The observation vector(s): one definition for the node (one robot) and the training env (N robots).

    One robot: arm_q [14] (table order: left arm, right arm), grippers [2], gravity [3], objects: name ->
    (position in base_link [3], quaternion x, y, z, w [4], tracked) -> [obs_dim] float32.
    N robots: the same with a leading [N] axis on every array -> [N, obs_dim]; an object's tuple may carry a
    fourth array present [N] (False: that env has no valid pose for it, as an object missing from the node's
    dict). Missing objects are zeros, untracked. The single-robot call is the batched one with N = 1.
    """
    from scipy.spatial.transform import Rotation

    from t1_description.kinematics import arm_kinematics

    arm_q = np.asarray(arm_q, dtype=np.float64)
    single = arm_q.ndim == 1
    if single:
        arm_q, grippers, gravity = arm_q[None], np.asarray(grippers, float)[None], np.asarray(gravity, float)[None]
        objects = {k: tuple(np.asarray(v)[None] for v in val) for k, val in objects.items()}
    n = arm_q.shape[0]
    pos, rot = arm_kinematics().fk(arm_q)
    parts = [np.concatenate([pos, rot6d(rot)], axis=-1).reshape(n, 18), np.asarray(grippers, float).reshape(n, 2),
             np.asarray(gravity, float).reshape(n, 3)]
    identity = np.array([0.0, 0.0, 0.0, 1.0])
    for name in object_names:
        if name not in objects:
            parts.append(np.zeros((n, OBJECT_FEATURES)))
            continue
        p, q, tracked, *rest = objects[name]
        present = np.asarray(rest[0], bool).reshape(n) if rest else np.ones(n, bool)
        q = np.where(present[:, None], np.asarray(q, float).reshape(n, 4), identity)
        feat = np.concatenate([np.asarray(p, float).reshape(n, 3), rot6d(Rotation.from_quat(q).as_matrix()),
                               np.asarray(tracked, float).reshape(n, 1)], axis=-1)
        parts.append(np.where(present[:, None], feat, 0.0))
    out = np.concatenate(parts, axis=-1).astype(np.float32)
    return out[0] if single else out
