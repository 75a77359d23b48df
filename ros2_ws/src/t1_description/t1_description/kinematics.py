"""Kinematics of the T1, in one place: leg FK/IK, arm FK, planar feet and poses, rotation helpers.

The controller (policy observations, reference motion, its own tracking measurements), the
training envs and evaluation, and the planner (hand poses in its observation) import these, so
there is one definition of where a foot or a hand is. ROS-free numpy, batched over leading axes.

Leg kinematics: the T1 leg is hip pitch (y) -> hip roll (x) -> hip yaw (z) -> knee (y) ->
ankle pitch (y) -> ankle roll (x) with small offsets (0.02 m between hip pitch and roll,
0.014 m knee set-back, 0.012 m between ankle pitch and roll), so its hip and ankle axes do
not intersect and the textbook closed form (Kajita et al.) is not exact. `leg_ik` uses that
closed form on the idealised leg as the seed and polishes it with a few damped Newton steps
on the exact forward kinematics; the round trip is exact to ~1e-10 m within reach
(tests/test_reference_motion.py), and both legs of N envs are solved in one batch.

Arm kinematics: `ArmKinematics` walks the URDF (the one rviz shows) from the Trunk to the hand
grip sites.

Frames: trunk = base_link (x forward, y left, z up). Foot pose = the ankle-roll link frame
(left_foot_link / right_foot_link). Planar poses are (x, y, yaw). Quaternions here are MuJoCo
order (w, x, y, z); geometry_msgs (x, y, z, w) callers reorder at their boundary.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

# leg / foot indices: 0 = left, 1 = right; BOTH solves both legs at once (leg axis second to last)
LEFT = 0
RIGHT = 1
BOTH = 2

LEG_JOINT_NAMES = (
    "Left_Hip_Pitch", "Left_Hip_Roll", "Left_Hip_Yaw", "Left_Knee_Pitch", "Left_Ankle_Pitch", "Left_Ankle_Roll",
    "Right_Hip_Pitch", "Right_Hip_Roll", "Right_Hip_Yaw", "Right_Knee_Pitch", "Right_Ankle_Pitch", "Right_Ankle_Roll",
)


# ---------------------------------------------------------------------- angles and rotations
def wrap_angle(a):
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation matrices about a principal axis (0 x, 1 y, 2 z)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def rot_x(a):
    return _rot(0, a)


def rot_y(a):
    return _rot(1, a)


def rot_z(a):
    return _rot(2, a)


def _mv(rot: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """rot [..., 3, 3] @ vec [..., 3] (matmul: einsum's parsing costs more than the product on small batches)."""
    return (rot @ vec[..., None])[..., 0]


def _norm(x: np.ndarray) -> np.ndarray:
    """np.linalg.norm(x, axis=-1) of a real array, the same sum in the same order, without its Python checks."""
    return np.sqrt(np.add.reduce(x * x, axis=-1))


def quat_wxyz_to_matrix(quat_wxyz) -> np.ndarray:
    """[..., 4] (w, x, y, z) -> [..., 3, 3]."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([  # the standard unit-quaternion matrix (analytic: scipy's Rotation costs 10x per call)
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def yaw_of_matrix(rot) -> np.ndarray:
    """Heading [...] of rotations [..., 3, 3]: the angle of the rotated x axis about the vertical."""
    rot = np.asarray(rot)
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def yaw_of_quat(quat_wxyz) -> np.ndarray:
    """Heading [...] of quaternions [..., 4] (w, x, y, z) (z-y-x Euler yaw)."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def rot6d(rot) -> np.ndarray:
    """[..., 3, 3] -> [..., 6]: first two columns of the rotation matrix (column-major; Zhou et al.)."""
    rot = np.asarray(rot)
    return np.concatenate([rot[..., :, 0], rot[..., :, 1]], axis=-1)


def _shepperd_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shepperd's method as linear maps of the flattened matrix m9 [9]. The candidate quaternions (x, y, z, w) of
    a rotation matrix m are the rows of the symmetric table
        [[1 - tr + 2 m00, m10 + m01,      m20 + m02,      m21 - m12],
         [m10 + m01,      1 - tr + 2 m11, m21 + m12,      m02 - m20],
         [m20 + m02,      m21 + m12,      1 - tr + 2 m22, m10 - m01],
         [m21 - m12,      m02 - m20,      m10 - m01,      1 + tr   ]]
    (each is 4 q_i q), and row i is the best conditioned where the i-th of (m00, m11, m22, tr) is largest.
    Returns (W [16, 9], c [16]) with table = m9 @ W.T + c, and D [9, 4] with (m00, m11, m22, tr) = m9 @ D."""
    w, c, d = np.zeros((16, 9)), np.zeros(16), np.zeros((9, 4))
    diag = [0, 4, 8]  # m00, m11, m22 in m9
    for i in range(3):
        w[5 * i, diag] = -1.0  # 1 - tr + 2 m_ii
        w[5 * i, diag[i]] += 2.0
        c[5 * i] = 1.0
    for i, j in ((0, 1), (0, 2), (1, 2)):  # m_ij + m_ji
        w[4 * i + j, [3 * i + j, 3 * j + i]] = 1.0
        w[4 * j + i] = w[4 * i + j]
    for i, (plus, minus) in enumerate(((7, 5), (2, 6), (3, 1))):  # m21 - m12, m02 - m20, m10 - m01
        w[4 * i + 3, plus], w[4 * i + 3, minus] = 1.0, -1.0
        w[12 + i] = w[4 * i + 3]
    w[15, diag], c[15] = 1.0, 1.0  # 1 + tr
    d[diag, [0, 1, 2]] = 1.0
    d[diag, 3] = 1.0
    return w, c, d


_SHEPPERD, _SHEPPERD_ONE, _DIAG_TRACE = _shepperd_tables()
_ORTHONORMAL_TOL = 1e-12 + 1e-5 * np.eye(3)  # scipy's test: isclose(m m^T, I, atol=1e-12) with numpy's rtol 1e-5


def rotvec_from_matrix(rot) -> np.ndarray:
    """Rotation vectors [..., 3] of rotation matrices [..., 3, 3]: scipy's `Rotation.from_matrix(rot).as_rotvec()`
    written out in a few batched numpy calls (scipy's object costs ~0.1 ms per call, and the 50 Hz controller
    needs this every cycle for two hands). The same algorithm as scipy's, so the same numbers (tests compare
    them, also near angle 0 and pi): Shepperd's method to a unit quaternion, made canonical (w >= 0), then
    angle / sin(angle / 2) times its vector part, with scipy's series below 1e-3 rad. Matrices that are not
    orthonormal to 1e-12 or not right-handed go to scipy itself, which orthogonalises them or raises."""
    m = np.asarray(rot, dtype=np.float64)
    if m.size <= 36:  # up to four matrices (the controller's two hands): per matrix in Python floats
        out = [_rotvec_one(r) for r in m.reshape(-1, 3, 3).tolist()]
        if None not in out:
            return np.array(out).reshape(m.shape[:-1])
    gram = m @ np.swapaxes(m, -1, -2)
    if not (np.abs(gram - np.eye(3)) <= _ORTHONORMAL_TOL).all() or not (np.linalg.det(m) > 0).all():
        return Rotation.from_matrix(m.reshape(-1, 3, 3)).as_rotvec().reshape(m.shape[:-1])
    m9 = m.reshape(m.shape[:-2] + (9,))
    table = (m9 @ _SHEPPERD.T + _SHEPPERD_ONE).reshape(m.shape[:-2] + (4, 4))
    choice = np.argmax(m9 @ _DIAG_TRACE, axis=-1).reshape(-1)
    quat = table.reshape(-1, 4, 4)[np.arange(choice.shape[0]), choice].reshape(m.shape[:-2] + (4,))
    quat = quat / _norm(quat)[..., None]
    w = quat[..., 3]
    if (w <= 0.0).any():  # canonical as scipy's: w > 0, or at w = 0 the first non-zero component positive
        x, y, z = quat[..., 0], quat[..., 1], quat[..., 2]
        flip = (w < 0) | ((w == 0) & ((x < 0) | ((x == 0) & ((y < 0) | ((y == 0) & (z < 0))))))
        quat = np.where(flip[..., None], -quat, quat)
        w = quat[..., 3]
    vec = quat[..., :3]
    angle = 2.0 * np.arctan2(_norm(vec), w)
    small = angle <= 1e-3
    angle2 = angle * angle
    scale = np.where(small, 2.0 + angle2 / 12.0 + 7.0 * angle2 * angle2 / 2880.0,
                     angle / (np.sin(angle / 2.0) + small))  # + small: no 0 / 0 where the series is used
    return scale[..., None] * vec


def _rotvec_one(m) -> list[float] | None:
    """rotvec_from_matrix of one matrix m [3][3] (Python floats), step for step; None where rotvec_from_matrix
    would hand the matrix to scipy (not orthonormal to scipy's tolerance, or not right-handed)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m
    for i, (a0, a1, a2) in enumerate(m):  # |m m^T - I| <= 1e-12 + 1e-5 I, row i against rows i..2
        for j in range(i, 3):
            b0, b1, b2 = m[j]
            if not abs(a0 * b0 + a1 * b1 + a2 * b2 - (i == j)) <= 1e-12 + 1e-5 * (i == j):
                return None
    if not m00 * (m11 * m22 - m12 * m21) - m01 * (m10 * m22 - m12 * m20) + m02 * (m10 * m21 - m11 * m20) > 0:
        return None
    tr = m00 + m11 + m22
    best = max(m00, m11, m22, tr)  # Shepperd's best-conditioned row (the first of equals, as np.argmax)
    if m00 == best:
        x, y, z, w = 1.0 - tr + 2.0 * m00, m10 + m01, m20 + m02, m21 - m12
    elif m11 == best:
        x, y, z, w = m10 + m01, 1.0 - tr + 2.0 * m11, m21 + m12, m02 - m20
    elif m22 == best:
        x, y, z, w = m20 + m02, m21 + m12, 1.0 - tr + 2.0 * m22, m10 - m01
    else:
        x, y, z, w = m21 - m12, m02 - m20, m10 - m01, 1.0 + tr
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    if w < 0 or (w == 0 and (x < 0 or (x == 0 and (y < 0 or (y == 0 and z < 0))))):
        x, y, z, w = -x, -y, -z, -w
    angle = 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), w)
    if angle <= 1e-3:
        angle2 = angle * angle
        scale = 2.0 + angle2 / 12.0 + 7.0 * angle2 * angle2 / 2880.0
    else:
        scale = angle / math.sin(angle / 2.0)
    return [scale * x, scale * y, scale * z]


def pose_errors(target_pos, target_rot, pos, rot) -> tuple[np.ndarray, np.ndarray]:
    """(position error [..., 3], rotation error as a rotation vector [..., 3]) = target relative to
    current, in the frame both are given in (hand poses: the root frame)."""
    dp = np.asarray(target_pos) - np.asarray(pos)
    r = np.asarray(target_rot) @ np.swapaxes(np.asarray(rot), -1, -2)
    return dp, rotvec_from_matrix(r).reshape(dp.shape)


def level_rotation(gravity) -> np.ndarray:
    """[N, 3, 3] rotation from the trunk frame to its yaw-aligned level frame, from the projected gravity
    [N, 3] (unit, trunk frame): the smallest rotation that turns `gravity` into (0, 0, -1)."""
    g = np.asarray(gravity, dtype=np.float64).reshape(-1, 3)
    g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-9)
    down = np.array([0.0, 0.0, -1.0])
    axis = np.cross(g, down)
    s, c = np.linalg.norm(axis, axis=-1), g @ down
    k = axis / np.maximum(s, 1e-12)[:, None]
    kx, ky, kz = k[:, 0], k[:, 1], k[:, 2]
    zero = np.zeros_like(kx)
    skew = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1),
                     np.stack([-ky, kx, zero], -1)], -2)
    return np.eye(3) + s[:, None, None] * skew + (1.0 - c)[:, None, None] * (skew @ skew)


# ---------------------------------------------------------------------- planar poses
def planar_compose(base: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Planar pose composition base (+) rel, both [..., 3] as (x, y, yaw)."""
    c, s = np.cos(base[..., 2]), np.sin(base[..., 2])
    x = base[..., 0] + c * rel[..., 0] - s * rel[..., 1]
    y = base[..., 1] + s * rel[..., 0] + c * rel[..., 1]
    return np.stack([x, y, wrap_angle(base[..., 2] + rel[..., 2])], axis=-1)


def planar_relative(base: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Planar pose of `pose` expressed in the frame of `base`, both [..., 3] as (x, y, yaw)."""
    c, s = np.cos(base[..., 2]), np.sin(base[..., 2])
    dx, dy = pose[..., 0] - base[..., 0], pose[..., 1] - base[..., 1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(pose[..., 2] - base[..., 2])], axis=-1)


# ---------------------------------------------------------------------- leg kinematics
@dataclass(frozen=True)
class T1LegKinematics:
    """Kinematic constants of the Booster T1 leg (m, rad), from the vendor URDF (T1_29dof.urdf).

    Vectors are for the left leg; the right leg mirrors y. The authoritative model is this
    package's model/t1.urdf and joint_table.yaml: `T1LegKinematics.from_model()` reads these
    numbers from it, and a test checks that the defaults here still match.
    The hip-roll limits and the ankle-roll y offset of the right leg are the left's mirrored.
    """

    trunk_to_waist: tuple = (0.0625, 0.0, -0.1155)  # Trunk -> Waist joint (waist yaw held at 0)
    hip_y: float = 0.106  # Waist -> hip pitch joint, +y for the left leg
    pitch_to_roll: tuple = (0.0, 0.0, -0.02)  # hip pitch -> hip roll
    roll_to_yaw: tuple = (0.0, 0.0, -0.081854)  # hip roll -> hip yaw
    yaw_to_knee: tuple = (-0.014, 0.0, -0.134)  # hip yaw -> knee
    knee_to_ankle: tuple = (0.0, 0.0, -0.28)  # knee -> ankle pitch
    ankle_pitch_to_roll: tuple = (0.0, 0.00025, -0.012)  # ankle pitch -> ankle roll (foot link), +y left
    sole_height: float = 0.030  # foot link origin above the sole (collision box 0.223 x 0.100 x 0.030)
    default_leg_pose: tuple = (-0.2, 0.0, 0.0, 0.4, -0.25, 0.0)  # hip pitch, roll, yaw, knee, ankle pitch, roll
    # joint limits (left leg; the right leg mirrors hip roll), URDF / joint table
    lower: tuple = (-3.002, -0.2, -1.0, 0.0, -0.87, -0.44)
    upper: tuple = (2.2166, 1.57, 1.0, 2.1817, 0.35, 0.44)

    @classmethod
    def from_model(cls) -> "T1LegKinematics":
        """Read the constants from the URDF and joint table (the authoritative model).

        Raises FileNotFoundError naming what is missing, and ValueError if the model's leg is not
        the pitch-roll-yaw / knee / pitch-roll chain with unrotated origins that this class describes.
        """
        from t1_description.joint_table import load_joint_table
        from t1_description.model_paths import urdf_path
        from t1_description.urdf_kinematics import parse_urdf

        urdf = parse_urdf(urdf_path())
        table = load_joint_table()

        def origin(name: str, axis) -> tuple:
            joint = urdf.joint(name)
            if not np.allclose(joint.origin[:3, :3], np.eye(3)) or not np.allclose(joint.axis, axis):
                raise ValueError(f"URDF joint {name}: expected an unrotated origin and axis {axis}, "
                                 f"got rotation {joint.origin[:3, :3].tolist()} and axis {joint.axis.tolist()}")
            return tuple(float(v) for v in joint.origin[:3, 3])

        chain = [("Left_Hip_Pitch", (0, 1, 0)), ("Left_Hip_Roll", (1, 0, 0)), ("Left_Hip_Yaw", (0, 0, 1)),
                 ("Left_Knee_Pitch", (0, 1, 0)), ("Left_Ankle_Pitch", (0, 1, 0)), ("Left_Ankle_Roll", (1, 0, 0))]
        o = [origin(name, axis) for name, axis in chain]
        rows = [table.index(name) for name, _ in chain]
        return cls(
            trunk_to_waist=origin("Waist", (0, 0, 1)),
            hip_y=o[0][1],
            pitch_to_roll=o[1], roll_to_yaw=o[2], yaw_to_knee=o[3], knee_to_ankle=o[4], ankle_pitch_to_roll=o[5],
            default_leg_pose=tuple(float(table.default_q[i]) for i in rows),
            lower=tuple(float(table.lower[i]) for i in rows),
            upper=tuple(float(table.upper[i]) for i in rows),
        )

    def side_vectors(self, side: int) -> dict:
        """Offsets of leg `side` as arrays, y mirrored for the right leg.

        side = LEFT or RIGHT gives [3] vectors; side = BOTH gives [2, 3] (left, right) that
        broadcast against [..., 2, 3] batches, so both legs are solved in one call. Cached per
        instance (the dataclass is frozen; the reference calls this thousands of times a second):
        do not modify the returned arrays.
        """
        cache = self.__dict__.setdefault("_side_vectors_cache", {})
        if side not in cache:
            cache[side] = self._side_vectors(side)
        return cache[side]

    def _side_vectors(self, side: int) -> dict:
        if side == BOTH:
            left, right = self.side_vectors(LEFT), self.side_vectors(RIGHT)
            return {k: np.stack([left[k], right[k]]) for k in left}
        m = np.array([1.0, 1.0 if side == LEFT else -1.0, 1.0])
        hip = np.asarray(self.trunk_to_waist) + m * np.array([0.0, self.hip_y, 0.0])
        return {
            "hip": hip,
            "pitch_to_roll": m * np.asarray(self.pitch_to_roll),
            "roll_to_yaw": m * np.asarray(self.roll_to_yaw),
            "yaw_to_knee": m * np.asarray(self.yaw_to_knee),
            "knee_to_ankle": m * np.asarray(self.knee_to_ankle),
            "ankle_pitch_to_roll": m * np.asarray(self.ankle_pitch_to_roll),
        }

    def limits(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.array(self.lower), np.array(self.upper)
        if side == RIGHT:  # hip roll mirrors
            lo[1], hi[1] = -self.upper[1], -self.lower[1]
        return lo, hi

    def limits12(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower [12], upper [12]) in LEG_JOINT_NAMES order."""
        (ll, lh), (rl, rh) = self.limits(LEFT), self.limits(RIGHT)
        return np.concatenate([ll, rl]), np.concatenate([lh, rh])


# Rotation about a principal axis as cos(a) * COS + sin(a) * SIN + ONE with constant 0 / +-1 patterns: the
# products and sums with 0 and 1 are exact, so this is rot_x / rot_y / rot_z to the last bit, for several
# joints (one axis each) in a handful of numpy calls where _rot needs seven per matrix.
def _rot_patterns(axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    cos, sin, one = (np.zeros((len(axes), 3, 3)) for _ in range(3))
    for n, axis in enumerate(axes):
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        one[n, axis, axis] = 1.0
        cos[n, i, i] = cos[n, j, j] = 1.0
        sin[n, i, j], sin[n, j, i] = -1.0, 1.0
    return cos, sin, one, tuple(axes)


def _rotations(patterns, angles: np.ndarray) -> np.ndarray:
    """[..., k, 3, 3] rotations by angles [..., k] about the k axes of `patterns` (_rot_patterns).

    Few angles (the controller's one row): by the patterns, four array operations. Many (training batches): as
    _rot does, by filling a zero array, because broadcasting [..., k, 1, 1] against [k, 3, 3] runs numpy's inner
    loop over three elements at a time. The same numbers either way (the pattern products are exact)."""
    angles = np.asarray(angles, dtype=np.float64)
    cos, sin, one, axes = patterns
    c, s = np.cos(angles), np.sin(angles)
    if angles.size <= 32:
        return c[..., None, None] * cos + s[..., None, None] * sin + one
    out = np.zeros(angles.shape + (3, 3))
    for n, axis in enumerate(axes):
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        out[..., n, axis, axis] = 1.0
        out[..., n, i, i] = out[..., n, j, j] = c[..., n]
        out[..., n, i, j] = -s[..., n]
        out[..., n, j, i] = s[..., n]
    return out


_LEG_ROT = _rot_patterns((1, 0, 2, 1, 1, 0))  # hip pitch y, roll x, yaw z, knee y, ankle pitch y, roll x
_Y_X_ROT = _rot_patterns((1, 0))               # the seed's guesses: R_y(hip pitch), R_x(-ankle roll)
_X_Y_ROT = _rot_patterns((0, 1))
_SEED_GUESS, _SEED_SIGN = [0, 5], np.array([1.0, -1.0])
_LEG_AXIS_ROWS = [0, 1, 2, 3, 4]
_LEG_AXIS_COLS = [0, 2, 1, 1, 0]  # joint k + 1 turns about column _LEG_AXIS_COLS[k] of the rotation before it


def _leg_layout(kin: T1LegKinematics, side: int, ndim: int) -> tuple:
    """_leg_frames' constants for q [..., 6] of `ndim` dimensions, joint axis first, cached like side_vectors:
    hip [(2,) 3]; the five link offsets hip pitch -> ... -> foot link as columns [5, 1.., (2,) 3, 1]; the
    rotation patterns _LEG_ROT [6, 1.., 3, 3]; the axis orders [..., 6] -> [6, ...] and [6, ..., 3] -> [..., 6, 3]."""
    cache = kin.__dict__.setdefault("_leg_layout_cache", {})
    if (side, ndim) not in cache:
        v = kin.side_vectors(side)
        names = ("pitch_to_roll", "roll_to_yaw", "yaw_to_knee", "knee_to_ankle", "ankle_pitch_to_roll")
        links = np.stack([v[n] for n in names])  # [5, (2,) 3]
        batch = ndim - 1 - (links.ndim - 2)      # leading dims of q before the side axis
        links = links.reshape((5,) + (1,) * batch + links.shape[1:] + (1,))
        patterns = tuple(p.reshape((6,) + (1,) * (ndim - 1) + (3, 3)) for p in _LEG_ROT[:3])
        first, last = (ndim - 1,) + tuple(range(ndim - 1)), tuple(range(1, ndim)) + (0, ndim)
        cache[(side, ndim)] = (v["hip"], links) + patterns + (first, last)
    return cache[(side, ndim)]


def _leg_frames(q: np.ndarray, side: int, kin: T1LegKinematics):
    """Joint positions [..., 6, 3], joint axes [..., 6, 3], foot position and rotation, in the trunk frame.

    All six joint rotations at once, their running product (r1, r1 r2, ..., the foot's) in place, each
    link offset turned by the rotation before it in one matmul and summed up the chain with one cumsum:
    the numbers of the joint-by-joint walk (tests/test_controller_speed_equivalence.py) in ~20 numpy
    calls where that takes ~70 (the reference motion's IK runs this twice per control cycle). The joint
    axis leads while computing, so that each matmul works on contiguous blocks."""
    q = np.asarray(q, dtype=np.float64)
    hip, links, cos, sin, one, first, last = _leg_layout(kin, side, q.ndim)
    angles = q.transpose(first)[..., None, None]  # [6, ..., 1, 1]
    cum = np.cos(angles) * cos + np.sin(angles) * sin + one  # [6, ..., 3, 3]: joint k's rotation, then r1 .. rk
    for k in range(1, 6):
        np.matmul(cum[k - 1], cum[k], out=cum[k])
    joints = np.empty((6,) + q.shape[:-1] + (3,))
    joints[0] = hip
    joints[1:] = (cum[:5] @ links)[..., 0]
    np.cumsum(joints, axis=0, out=joints)
    axes = np.empty_like(joints)
    axes[0] = (0.0, 1.0, 0.0)
    axes[1:] = cum[_LEG_AXIS_ROWS, ..., _LEG_AXIS_COLS]
    joints, axes = joints.transpose(last), axes.transpose(last)  # [..., 6, 3] views
    return joints, axes, joints[..., 5, :], cum[5]


def leg_fk(q, side: int, kin: T1LegKinematics | None = None):
    """Foot-link pose in the trunk frame for leg joint angles q [..., 6] -> (pos [..., 3], rot [..., 3, 3])."""
    _, _, pos, rot = _leg_frames(q, side, kin or T1LegKinematics())
    return pos, rot


def _ik_seed(pos: np.ndarray, rot: np.ndarray, side: int, kin: T1LegKinematics, guess=None) -> np.ndarray:
    """Closed-form IK of the idealised leg (spherical hip at the roll joint, ankle axes meeting).

    Kajita et al., Introduction to Humanoid Robotics, ch. 2 (legIK), adapted to the T1's
    pitch-roll-yaw hip order and its set-back knee. The hip-roll and ankle-pitch joint
    positions depend on the hip pitch and ankle roll (the offsets): they are placed with those of
    `guess` [..., 6] (None: zero), so calling this again with its own output shrinks the error quadratically.
    """
    v, k = _ik_constants(kin, side)
    # (np.minimum(np.maximum(..)) below is np.clip without its Python wrappers: this runs 3x per control cycle)
    if guess is None:  # R_y(0) = R_x(0) = I exactly
        hip, ankle = k["hip_roll_at_zero"], pos - _mv(rot, v["ankle_pitch_to_roll"])
    else:  # R_y(hip pitch), R_x(-ankle roll)
        turn = _rotations(_Y_X_ROT, guess[..., _SEED_GUESS] * _SEED_SIGN)
        hip = v["hip"] + _mv(turn[..., 0, :, :], v["pitch_to_roll"])
        ankle = pos - _mv(rot @ turn[..., 1, :, :], v["ankle_pitch_to_roll"])
    l1, beta = k["l1"], k["beta"]
    r = ((hip - ankle)[..., None, :] @ rot)[..., 0, :]  # hip seen from the ankle, foot frame (rot^T (hip - ankle))
    c = np.minimum(np.maximum(_norm(r), k["reach_min"]), k["reach_max"])
    knee_v = np.pi - np.arccos(np.minimum(np.maximum((k["l1l1_l2l2"] - c * c) / k["2l1l2"], -1.0), 1.0))
    alpha = np.arcsin(np.minimum(np.maximum(l1 * np.sin(np.pi - knee_v) / c, -1.0), 1.0))
    ankle_pitch = -np.arctan2(r[..., 0], np.sign(r[..., 2]) * np.hypot(r[..., 1], r[..., 2])) - alpha
    ankle_roll = np.arctan2(r[..., 1], r[..., 2])
    knee = knee_v + beta
    # hip-yaw frame = foot * Rx(-roll) * Ry(-(ankle_pitch + knee)) = Ry(q1) Rx(q2) Rz(q3)
    foot_to_hip = _rotations(_X_Y_ROT, np.stack([-ankle_roll, -(ankle_pitch + knee)], axis=-1))
    r_hip = rot @ foot_to_hip[..., 0, :, :] @ foot_to_hip[..., 1, :, :]
    q = np.empty(knee.shape + (6,))  # hip pitch, roll, yaw, knee, ankle pitch, roll (filled: np.stack costs more)
    q[..., 0] = np.arctan2(r_hip[..., 0, 2], r_hip[..., 2, 2])
    q[..., 1] = np.arcsin(np.minimum(np.maximum(-r_hip[..., 1, 2], -1.0), 1.0))
    q[..., 2] = np.arctan2(r_hip[..., 1, 0], r_hip[..., 1, 1])
    q[..., 3], q[..., 4], q[..., 5] = knee, ankle_pitch, ankle_roll
    return q


def _ik_seed_one(pos, rot, side: int, kin: T1LegKinematics, refinements: int) -> list[float]:
    """_ik_seed of ONE leg pose with `refinements` re-seeds (the first seed's guess is zero), in Python floats.

    pos [3] and rot [3][3] as Python sequences (side LEFT or RIGHT); returns the 6 joint angles. The same
    closed form, operation for operation, as _ik_seed: at N = 1 each of its ~60 numpy calls on 3-element arrays
    costs a microsecond or two, the float arithmetic here a few tens of nanoseconds (the controller solves six
    seeds per cycle). math's functions are numpy's to the bit on this machine (hypot to an ulp); the tests
    compare the two (tests/test_controller_speed_equivalence.py)."""
    v, k = _ik_constants_one(kin, side)
    hx, hy, hz = v["hip"]
    prx, pry, prz = v["pitch_to_roll"]
    ax_, ay_, az_ = v["ankle_pitch_to_roll"]
    l1, beta, l1l1_l2l2, two_l1l2, reach_min, reach_max = k
    px, py, pz = pos
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = rot
    q = None
    for _ in range(refinements + 1):
        if q is None:  # R_y(0) = R_x(0) = I
            hipx, hipy, hipz = hx + prx, hy + pry, hz + prz
            bx, by, bz = ax_, ay_, az_
        else:  # hip = hip + R_y(q0) pitch_to_roll; ankle offset = rot R_x(-q5) ankle_pitch_to_roll
            c, s = math.cos(q[0]), math.sin(q[0])
            hipx, hipy, hipz = hx + (c * prx + s * prz), hy + pry, hz + (-s * prx + c * prz)
            c, s = math.cos(-q[5]), math.sin(-q[5])
            bx, by, bz = ax_, c * ay_ - s * az_, s * ay_ + c * az_
        ankx = px - (r00 * bx + r01 * by + r02 * bz)
        anky = py - (r10 * bx + r11 * by + r12 * bz)
        ankz = pz - (r20 * bx + r21 * by + r22 * bz)
        dx, dy, dz = hipx - ankx, hipy - anky, hipz - ankz
        rx = dx * r00 + dy * r10 + dz * r20  # rot^T (hip - ankle)
        ry = dx * r01 + dy * r11 + dz * r21
        rz = dx * r02 + dy * r12 + dz * r22
        c = min(max(math.sqrt(rx * rx + ry * ry + rz * rz), reach_min), reach_max)
        knee_v = math.pi - math.acos(min(max((l1l1_l2l2 - c * c) / two_l1l2, -1.0), 1.0))
        alpha = math.asin(min(max(l1 * math.sin(math.pi - knee_v) / c, -1.0), 1.0))
        sign = (rz > 0.0) - (rz < 0.0)
        ankle_pitch = -math.atan2(rx, sign * math.hypot(ry, rz)) - alpha
        ankle_roll = math.atan2(ry, rz)
        knee = knee_v + beta
        # r_hip = rot R_x(-ankle_roll) R_y(-(ankle_pitch + knee)): its column 2 and row 1
        ca, sa = math.cos(-ankle_roll), math.sin(-ankle_roll)
        cb, sb = math.cos(-(ankle_pitch + knee)), math.sin(-(ankle_pitch + knee))
        m01, m02 = r01 * ca + r02 * sa, -r01 * sa + r02 * ca  # rot R_x: columns 1 and 2 (column 0 is rot's)
        m11, m12 = r11 * ca + r12 * sa, -r11 * sa + r12 * ca
        m21, m22 = r21 * ca + r22 * sa, -r21 * sa + r22 * ca
        h02, h12, h22 = r00 * sb + m02 * cb, r10 * sb + m12 * cb, r20 * sb + m22 * cb
        h10, h11 = r10 * cb - m12 * sb, m11
        q = [math.atan2(h02, h22), math.asin(min(max(-h12, -1.0), 1.0)), math.atan2(h10, h11),
             knee, ankle_pitch, ankle_roll]
    return q


def _ik_constants_one(kin: T1LegKinematics, side: int) -> tuple[dict, tuple]:
    """_ik_constants of one side (LEFT or RIGHT) as Python floats, for _ik_seed_one."""
    cache = kin.__dict__.setdefault("_ik_constants_one_cache", {})
    if side not in cache:
        v, k = _ik_constants(kin, side)
        cache[side] = ({n: tuple(float(x) for x in v[n]) for n in ("hip", "pitch_to_roll", "ankle_pitch_to_roll")},
                       tuple(float(k[n]) for n in ("l1", "beta", "l1l1_l2l2", "2l1l2", "reach_min", "reach_max")))
    return cache[side]


def _ik_constants(kin: T1LegKinematics, side: int) -> tuple[dict, dict]:
    """side_vectors and the idealised leg's lengths and thigh lean, cached on the (frozen) kinematics object:
    the reference motion solves the seed three times per control step."""
    cache = kin.__dict__.setdefault("_ik_constants_cache", {})
    if side not in cache:
        v = kin.side_vectors(side)
        thigh = v["roll_to_yaw"] + v["yaw_to_knee"]  # hip roll -> knee in the hip-yaw frame (knee straight)
        l1 = np.hypot(thigh[..., 0], thigh[..., 2])
        l2 = -v["knee_to_ankle"][..., 2]
        beta = np.arctan2(-thigh[..., 0], -thigh[..., 2])  # the thigh leans back by beta: virtual thigh = R_y(beta) e_-z
        cache[side] = (v, {"l1": l1, "l2": l2, "beta": beta, "hip_roll_at_zero": v["hip"] + v["pitch_to_roll"],
                           "l1l1_l2l2": l1 * l1 + l2 * l2, "2l1l2": 2 * l1 * l2,
                           "reach_min": abs(l1 - l2) + 1e-9, "reach_max": l1 + l2 - 1e-9})
    return cache[side]


_VEE_PLUS, _VEE_MINUS = [7, 2, 3], [5, 6, 1]  # flat indices of (e21, e02, e10) and (e12, e20, e01)
_CROSS_A, _CROSS_B = [1, 2, 0], [2, 0, 1]   # (a x b)_i = a_(i+1) b_(i+2) - a_(i+2) b_(i+1)


def leg_ik(pos, rot, side: int, kin: T1LegKinematics | None = None, iterations: int = 2,
           seed_refinements: int = 2, damping: float = 1e-8, max_step: float = 0.3,
           return_error: bool = False):
    """Leg joint angles [..., 6] that put the foot link at (pos [..., 3], rot [..., 3, 3]) in the trunk frame.

    side: LEFT, RIGHT, or BOTH (then pos [..., 2, 3], rot [..., 2, 3, 3] -> q [..., 2, 6]).

    Closed-form seed on the idealised leg (refined `seed_refinements` times), then
    `iterations` damped Newton steps on the exact kinematics (quadratic convergence). Out-of-reach targets give
    the nearest stretched pose; return_error=True also returns the remaining position (m)
    and orientation (rad) error so callers can detect that. Joint limits are not applied.
    """
    kin = kin or T1LegKinematics()
    pos = np.asarray(pos, dtype=np.float64)
    rot = np.asarray(rot, dtype=np.float64)
    if pos.size == (6 if side == BOTH else 3):  # one pose per leg (the controller): the seeds in floats
        p, r = pos.reshape(-1, 3).tolist(), rot.reshape(-1, 3, 3).tolist()
        sides = (LEFT, RIGHT) if side == BOTH else (side,)
        q = np.array([_ik_seed_one(p[i], r[i], s, kin, seed_refinements) for i, s in enumerate(sides)])
        q = q.reshape(pos.shape[:-1] + (6,))
    else:
        q = _ik_seed(pos, rot, side, kin)
        for _ in range(seed_refinements):
            q = _ik_seed(pos, rot, side, kin, guess=q)
    damped = damping * np.eye(6)
    for _ in range(iterations):
        joints, axes, p, r = _leg_frames(q, side, kin)
        # orientation error: vee of the skew part of R_des R^T (= rotation vector to first order;
        # the seed already gets the orientation nearly exact, and it vanishes only at R_des = R)
        e = (rot @ np.swapaxes(r, -1, -2)).reshape(r.shape[:-2] + (9,))
        rot_err = 0.5 * (e[..., _VEE_PLUS] - e[..., _VEE_MINUS])  # (e21 - e12, e02 - e20, e10 - e01) / 2
        err = np.concatenate([pos - p, rot_err], axis=-1)
        lever = p[..., None, :] - joints
        lin = axes[..., _CROSS_A] * lever[..., _CROSS_B] - axes[..., _CROSS_B] * lever[..., _CROSS_A]  # axes x lever
        jac = np.swapaxes(np.concatenate([lin, axes], axis=-1), -1, -2)  # [..., 6 task, 6 joints]
        # damped least squares: dq = J^T (J J^T + lambda I)^-1 e (== J^-1 e away from singularities)
        jjt = jac @ np.swapaxes(jac, -1, -2) + damped
        dq = (np.linalg.solve(jjt, err[..., None])[..., 0][..., None, :] @ jac)[..., 0, :]  # J^T (..)
        # near a straight knee the step can blow up: shorten it to max_step (rad, largest joint)
        largest = np.maximum.reduce(np.abs(dq), axis=-1, keepdims=True)  # = np.abs(dq).max(-1), fewer wrappers
        q = q + dq * np.minimum(1.0, max_step / np.maximum(largest, 1e-12))
    if not return_error:
        return q
    p, r = leg_fk(q, side, kin)
    pos_err = _norm(pos - p)
    rot_err = _norm(rotvec_from_matrix(rot @ np.swapaxes(r, -1, -2)))
    return q, pos_err, rot_err


def legs_fk(q12, kin: T1LegKinematics | None = None):
    """Both feet for q12 [..., 12] (LEG_JOINT_NAMES order) -> (pos [..., 2, 3], rot [..., 2, 3, 3])."""
    q12 = np.asarray(q12, dtype=np.float64)
    return leg_fk(q12.reshape(q12.shape[:-1] + (2, 6)), BOTH, kin)


def legs_ik(pos, rot, kin: T1LegKinematics | None = None, iterations: int = 2):
    """q12 [..., 12] (LEG_JOINT_NAMES order) for foot poses pos [..., 2, 3], rot [..., 2, 3, 3]."""
    q = leg_ik(pos, rot, BOTH, kin, iterations)
    return q.reshape(q.shape[:-2] + (12,))


def feet_planar(q12, trunk_rot, trunk_pos=None, kin: T1LegKinematics | None = None) -> np.ndarray:
    """Planar poses (x, y, yaw) [N, 2, 3] of both foot links, by leg FK of q12 [N, 12].

    trunk_rot [N, 3, 3] (and trunk_pos [N, 3], default 0): the trunk's pose in the frame wanted.
    World frame: the trunk's world orientation and position (simulation). The trunk's level frame
    (what the robot can measure without MoCap): `level_rotation(projected gravity)`, no position.
    """
    pos, rot = legs_fk(q12, kin)
    trunk_rot = np.asarray(trunk_rot, dtype=np.float64)[:, None]
    pos = _mv(trunk_rot, pos)
    if trunk_pos is not None:
        pos = pos + np.asarray(trunk_pos, dtype=np.float64)[:, None]
    return np.concatenate([pos[..., :2], yaw_of_matrix(trunk_rot @ rot)[..., None]], axis=-1)


# ---------------------------------------------------------------------- arm kinematics
class ArmKinematics:
    """Batched forward kinematics of both arms, Trunk (root) -> hand grip sites, from the URDF.

    The controller has no MoCap for the hands: the current hand poses it observes are FK of the
    measured arm joints. The same URDF that rviz uses (and that a test compares with the MJCF)
    is the source. `fk(q_arm [N, 14]) -> pos [N, 2, 3], rot [N, 2, 3, 3]` (left, right); the 14 arm
    joints are the joint table's left_arm then right_arm groups, in table order.
    """

    HAND_FRAMES = ("left_hand", "right_hand")

    def __init__(self):
        from t1_description.joint_table import load_joint_table
        from t1_description.model_paths import urdf_path
        from t1_description.urdf_kinematics import parse_urdf

        table = load_joint_table()
        urdf = parse_urdf(urdf_path())
        if urdf.root != "Trunk":
            raise ValueError(f"ArmKinematics expects the URDF root link 'Trunk', got {urdf.root!r}")
        by_child = {j.child: j for j in urdf.joints}
        arms = [tuple(table.names[i] for i in table.indices(group)) for group in table.ARM_GROUPS]
        self.chains = []
        for frame, arm_names in zip(self.HAND_FRAMES, arms):
            chain, link = [], frame
            while link != urdf.root:
                if link not in by_child:
                    raise ValueError(f"URDF has no chain from Trunk to {frame!r}")
                j = by_child[link]
                chain.append(j)
                link = j.parent
            chain.reverse()
            steps = []
            for j in chain:
                if j.type == "fixed":
                    steps.append((j.origin, None, None))
                elif j.type == "revolute":
                    if j.name not in arm_names:
                        raise ValueError(f"joint {j.name!r} on the path to {frame!r} is not an arm joint")
                    steps.append((j.origin, j.axis, arm_names.index(j.name)))
                else:
                    raise ValueError(f"unsupported joint type {j.type!r} ({j.name}) in the arm chain")
            self.chains.append(steps)
        self._both = self._fold_chains()

    def _fold_chains(self):
        """Both arms as one batch, if their chains have the same shape (the T1's do): per joint the fixed
        transform before it (consecutive fixed joints folded into one 4x4) and Rodrigues' K, K^2 of its
        axis, stacked over the arms, and the fixed transform after the last joint. None: chains differ."""
        folded = []
        for steps in self.chains:
            pre, joints = np.eye(4), []
            for origin, axis, k in steps:
                pre = pre @ origin
                if axis is not None:
                    kx, ky, kz = axis
                    skew = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
                    joints.append((pre, skew, k))
                    pre = np.eye(4)
            folded.append((joints, pre))
        if len({len(j) for j, _ in folded}) != 1 or len({tuple(k for _, _, k in j) for j, _ in folded}) != 1:
            return None
        pre = np.array([[p for p, _, _ in j] for j, _ in folded])        # [2, J, 4, 4]
        skew = np.array([[sk for _, sk, _ in j] for j, _ in folded])     # [2, J, 3, 3]
        post = np.array([p for _, p in folded])                          # [2, 4, 4]
        joints = len(folded[0][0])
        # the chain as transforms (rotation, translation): (pre_rot_j rot(q_j), pre_pos_j) per joint, then post,
        # padded with identities to a power of two so that it composes by pairs in log2 steps (_fk_both)
        links = 1 << int(np.ceil(np.log2(joints + 1)))
        tail = np.concatenate([post[:, None], np.broadcast_to(np.eye(4), (2, links - joints - 1, 4, 4))], axis=1)
        pre_rot = pre[..., :3, :3]  # joint j turns by pre_rot (I + sin q K + (1 - cos q) K^2) (Rodrigues)
        return {"pre_rot": np.ascontiguousarray(pre_rot), "pre_k": pre_rot @ skew, "pre_k2": pre_rot @ skew @ skew,
                "tail_rot": np.ascontiguousarray(tail[..., :3, :3]),
                "pos": np.concatenate([pre[..., :3, 3], tail[..., :3, 3]], axis=1),  # [2, L, 3], constant
                "k": [k for _, _, k in folded[0][0]], "links": links}

    def fk(self, q_arm) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q_arm, dtype=np.float64)
        if q.ndim == 1:
            q = q[None]
        if q.shape[-1] != 14:
            raise ValueError(f"ArmKinematics.fk expects [N, 14] arm joints (table order), got {q.shape}")
        if self._both is not None:
            return self._fk_both(q)
        return self._fk_chains(q)

    def _fk_chains(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fk() walking each chain joint by joint (any URDF; the reference that _fk_both is tested against)."""
        n = q.shape[0]
        pos_out, rot_out = np.zeros((n, 2, 3)), np.zeros((n, 2, 3, 3))
        for h, steps in enumerate(self.chains):
            qa = q[:, 7 * h:7 * h + 7]
            rot = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
            pos = np.zeros((n, 3))
            for origin, axis, k in steps:
                pos = pos + rot @ origin[:3, 3]
                rot = rot @ origin[:3, :3]
                if axis is not None:
                    rot = rot @ _axis_rotation(axis, qa[:, k])
            pos_out[:, h], rot_out[:, h] = pos, rot
        return pos_out, rot_out

    def _fk_both(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """fk() with both arms and all joints in one batch: every joint's transform at once (Rodrigues), then
        composed by pairs, (T0 T1)(T2 T3)..., in log2(links) steps with (R, p)(R', p') = (R R', p + R p') - about
        twenty numpy calls where a joint-by-joint walk costs about ten per joint (the 50 Hz controller runs this
        every cycle), and no more matrix products than that walk for large batches."""
        b, n, joints = self._both, q.shape[0], len(self._both["k"])
        angle = q.reshape(n, 2, 7)[:, :, b["k"], None, None]                      # [N, 2, J, 1, 1]
        rot = np.empty((n, 2, b["links"], 3, 3))
        rot[:, :, :joints] = b["pre_rot"] + np.sin(angle) * b["pre_k"] + (1.0 - np.cos(angle)) * b["pre_k2"]
        rot[:, :, joints:] = b["tail_rot"]
        pos = b["pos"]
        while rot.shape[2] > 1:
            pos = pos[..., 0::2, :] + (rot[:, :, 0::2] @ pos[..., 1::2, :, None])[..., 0]
            rot = rot[:, :, 0::2] @ rot[:, :, 1::2]
        return pos[:, :, 0], rot[:, :, 0]


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: [N, 3, 3] rotations by `angle` [N] about the unit `axis` [3]."""
    kx, ky, kz = axis
    k = np.array([[0, -kz, ky], [kz, 0, -kx], [-ky, kx, 0]])
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


@functools.lru_cache(maxsize=1)
def arm_kinematics() -> ArmKinematics:
    return ArmKinematics()
