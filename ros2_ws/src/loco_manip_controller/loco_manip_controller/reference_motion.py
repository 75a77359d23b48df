"""Lower-body reference motion from footstep commands, for motion-imitation RL.

Given the footstep planner's state (swing foot, phase, planned footholds) this produces,
vectorized over N envs (numpy):
  * a centre-of-mass path: the linear inverted pendulum (LIP) with its zero-moment point
    on the stance foot, from the midpoint of the feet at lift-off to the midpoint of the
    stance foot and the swing target at touchdown. In steady walking that is the
    periodic LIP orbit, so position and velocity are continuous from step to step; the
    position is always continuous, the velocity jumps when walking starts or stops and
    when the command changes (there is no weight-shift phase: the policy smooths it);
  * the swing foot: minimum-jerk in x, y, yaw from the lift-off pose to the target, with a
    16 s^2 (1 - s)^2 height bump (zero velocity at lift-off and touchdown), feet flat;
  * the trunk: over the CoM (offset as when standing) at the pitch at which the default leg pose stands with flat
    feet and `crouch` below that height (bent knees keep reach for the steps), yaw midway
    between the feet;
  * 12 leg joint angles from inverse kinematics of the T1 leg.

Leg kinematics: the T1 leg is hip pitch (y) -> hip roll (x) -> hip yaw (z) -> knee (y) ->
ankle pitch (y) -> ankle roll (x) with small offsets (0.02 m between hip pitch and roll,
0.014 m knee set-back, 0.012 m between ankle pitch and roll), so its hip and ankle axes do
not intersect and the textbook closed form (Kajita et al.) is not exact. `leg_ik` uses that
closed form on the idealised leg as the seed and polishes it with a few damped Newton steps
on the exact forward kinematics; the round trip is exact to ~1e-10 m within reach
(tests/test_reference_motion.py), and both legs of N envs are solved in one batch.

Frames: trunk = base_link (x forward, y left, z up); world z = 0 is the ground. Foot pose =
the ankle-roll link frame (left_foot_link / right_foot_link), whose origin is
`sole_height` above the sole. Joint order per leg = the SDK / URDF order (LEG_JOINT_NAMES).
Quaternions leave this module in MuJoCo order (w, x, y, z).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .footstep_planner import relative
from .gait import LEFT, RIGHT, SWING_LEFT, SWING_NONE, min_jerk, swing_height, swing_phase, wrap_angle

BOTH = 2  # `side` value: both legs at once, leg axis second to last ([..., 2, 6] / [..., 2, 3])

LEG_JOINT_NAMES = (
    "Left_Hip_Pitch", "Left_Hip_Roll", "Left_Hip_Yaw", "Left_Knee_Pitch", "Left_Ankle_Pitch", "Left_Ankle_Roll",
    "Right_Hip_Pitch", "Right_Hip_Roll", "Right_Hip_Yaw", "Right_Knee_Pitch", "Right_Ankle_Pitch", "Right_Ankle_Roll",
)


@dataclass(frozen=True)
class T1LegKinematics:
    """Kinematic constants of the Booster T1 leg (m, rad), from the vendor URDF (T1_29dof.urdf).

    Vectors are for the left leg; the right leg mirrors y. The authoritative model is
    t1_description (model/t1.urdf, joint_table.yaml): `T1LegKinematics.from_model()`
    reads these numbers from it, and a test checks that the defaults here still match.
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
        """Read the constants from t1_description's URDF and joint table (the authoritative model).

        Raises ImportError / FileNotFoundError naming what is missing, and ValueError if the
        model's leg is not the pitch-roll-yaw / knee / pitch-roll chain with unrotated
        origins that this class describes.
        """
        try:
            from t1_description.joint_table import load_joint_table
            from t1_description.model_paths import urdf_path
            from t1_description.urdf_kinematics import parse_urdf
        except ImportError as exc:
            raise ImportError("T1LegKinematics.from_model needs the t1_description package "
                              "(pip install -e ros2_ws/src/t1_description)") from exc
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


# ---------------------------------------------------------------------- rotations (batched)
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
    return np.einsum("...ij,...j->...i", rot, vec)


# ---------------------------------------------------------------------- leg kinematics
def _leg_frames(q: np.ndarray, side: int, kin: T1LegKinematics):
    """Joint positions [..., 6, 3], joint axes [..., 6, 3], foot position and rotation, in the trunk frame."""
    v = kin.side_vectors(side)
    q = np.asarray(q, dtype=np.float64)
    r1 = rot_y(q[..., 0])
    r12 = r1 @ rot_x(q[..., 1])
    r123 = r12 @ rot_z(q[..., 2])
    r1234 = r123 @ rot_y(q[..., 3])
    r12345 = r1234 @ rot_y(q[..., 4])
    p1 = np.broadcast_to(v["hip"], q.shape[:-1] + (3,))
    p2 = p1 + _mv(r1, v["pitch_to_roll"])
    p3 = p2 + _mv(r12, v["roll_to_yaw"])
    p4 = p3 + _mv(r123, v["yaw_to_knee"])
    p5 = p4 + _mv(r1234, v["knee_to_ankle"])
    p6 = p5 + _mv(r12345, v["ankle_pitch_to_roll"])
    foot_rot = r12345 @ rot_x(q[..., 5])
    ey = np.array([0.0, 1.0, 0.0])
    axes = np.stack([
        np.broadcast_to(ey, p1.shape), r1[..., :, 0], r12[..., :, 2], r123[..., :, 1], r1234[..., :, 1],
        r12345[..., :, 0],
    ], axis=-2)
    joints = np.stack([p1, p2, p3, p4, p5, p6], axis=-2)
    return joints, axes, p6, foot_rot


def leg_fk(q, side: int, kin: T1LegKinematics | None = None):
    """Foot-link pose in the trunk frame for leg joint angles q [..., 6] -> (pos [..., 3], rot [..., 3, 3])."""
    _, _, pos, rot = _leg_frames(q, side, kin or T1LegKinematics())
    return pos, rot


def _ik_seed(pos: np.ndarray, rot: np.ndarray, side: int, kin: T1LegKinematics,
             hip_pitch=0.0, ankle_roll=0.0) -> np.ndarray:
    """Closed-form IK of the idealised leg (spherical hip at the roll joint, ankle axes meeting).

    Kajita et al., Introduction to Humanoid Robotics, ch. 2 (legIK), adapted to the T1's
    pitch-roll-yaw hip order and its set-back knee. The hip-roll and ankle-pitch joint
    positions depend on the hip pitch and ankle roll (the offsets): they are placed with the
    given guesses, so calling this again with its own output shrinks the error quadratically.
    """
    v = kin.side_vectors(side)
    hip = v["hip"] + _mv(rot_y(hip_pitch), v["pitch_to_roll"])
    ankle = pos - _mv(rot @ rot_x(-np.asarray(ankle_roll)), v["ankle_pitch_to_roll"])
    thigh = v["roll_to_yaw"] + v["yaw_to_knee"]  # hip roll -> knee in the hip-yaw frame (knee straight)
    l1 = np.hypot(thigh[..., 0], thigh[..., 2])
    l2 = -v["knee_to_ankle"][..., 2]
    beta = np.arctan2(-thigh[..., 0], -thigh[..., 2])  # the thigh leans back by beta: virtual thigh = R_y(beta) e_-z
    r = np.einsum("...ji,...j->...i", rot, hip - ankle)  # hip seen from the ankle, foot frame
    c = np.clip(np.linalg.norm(r, axis=-1), abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    knee_v = np.pi - np.arccos(np.clip((l1 * l1 + l2 * l2 - c * c) / (2 * l1 * l2), -1.0, 1.0))
    alpha = np.arcsin(np.clip(l1 * np.sin(np.pi - knee_v) / c, -1.0, 1.0))
    ankle_pitch = -np.arctan2(r[..., 0], np.sign(r[..., 2]) * np.hypot(r[..., 1], r[..., 2])) - alpha
    ankle_roll = np.arctan2(r[..., 1], r[..., 2])
    knee = knee_v + beta
    # hip-yaw frame = foot * Rx(-roll) * Ry(-(ankle_pitch + knee)) = Ry(q1) Rx(q2) Rz(q3)
    r_hip = rot @ rot_x(-ankle_roll) @ rot_y(-(ankle_pitch + knee))
    hip_roll = np.arcsin(np.clip(-r_hip[..., 1, 2], -1.0, 1.0))
    hip_pitch = np.arctan2(r_hip[..., 0, 2], r_hip[..., 2, 2])
    hip_yaw = np.arctan2(r_hip[..., 1, 0], r_hip[..., 1, 1])
    return np.stack([hip_pitch, hip_roll, hip_yaw, knee, ankle_pitch, ankle_roll], axis=-1)


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
    q = _ik_seed(pos, rot, side, kin)
    for _ in range(seed_refinements):
        q = _ik_seed(pos, rot, side, kin, hip_pitch=q[..., 0], ankle_roll=q[..., 5])
    eye = np.eye(6)
    for _ in range(iterations):
        joints, axes, p, r = _leg_frames(q, side, kin)
        # orientation error: vee of the skew part of R_des R^T (= rotation vector to first order;
        # the seed already gets the orientation nearly exact, and it vanishes only at R_des = R)
        e = rot @ np.swapaxes(r, -1, -2)
        rot_err = 0.5 * np.stack([e[..., 2, 1] - e[..., 1, 2], e[..., 0, 2] - e[..., 2, 0],
                                  e[..., 1, 0] - e[..., 0, 1]], axis=-1)
        err = np.concatenate([pos - p, rot_err], axis=-1)
        lever = p[..., None, :] - joints
        lin = np.stack([axes[..., 1] * lever[..., 2] - axes[..., 2] * lever[..., 1],
                        axes[..., 2] * lever[..., 0] - axes[..., 0] * lever[..., 2],
                        axes[..., 0] * lever[..., 1] - axes[..., 1] * lever[..., 0]], axis=-1)
        jac = np.swapaxes(np.concatenate([lin, axes], axis=-1), -1, -2)  # [..., 6 task, 6 joints]
        # damped least squares: dq = J^T (J J^T + lambda I)^-1 e (== J^-1 e away from singularities)
        jjt = jac @ np.swapaxes(jac, -1, -2) + damping * eye
        dq = np.einsum("...ji,...j->...i", jac, np.linalg.solve(jjt, err[..., None])[..., 0])
        # near a straight knee the step can blow up: shorten it to max_step (rad, largest joint)
        q = q + dq * np.minimum(1.0, max_step / np.maximum(np.abs(dq).max(axis=-1, keepdims=True), 1e-12))
    if not return_error:
        return q
    p, r = leg_fk(q, side, kin)
    pos_err = np.linalg.norm(pos - p, axis=-1)
    rot_err = np.linalg.norm(Rotation.from_matrix((rot @ np.swapaxes(r, -1, -2)).reshape(-1, 3, 3))
                             .as_rotvec(), axis=-1).reshape(pos_err.shape)
    return q, pos_err, rot_err


def legs_fk(q12, kin: T1LegKinematics | None = None):
    """Both feet for q12 [..., 12] (LEG_JOINT_NAMES order) -> (pos [..., 2, 3], rot [..., 2, 3, 3])."""
    q12 = np.asarray(q12, dtype=np.float64)
    return leg_fk(q12.reshape(q12.shape[:-1] + (2, 6)), BOTH, kin)


def legs_ik(pos, rot, kin: T1LegKinematics | None = None, iterations: int = 2):
    """q12 [..., 12] (LEG_JOINT_NAMES order) for foot poses pos [..., 2, 3], rot [..., 2, 3, 3]."""
    q = leg_ik(pos, rot, BOTH, kin, iterations)
    return q.reshape(q.shape[:-2] + (12,))


@dataclass(frozen=True)
class StandingPosture:
    """Trunk height/pitch and foot placement at which the default leg pose stands with flat feet."""

    trunk_height: float  # m, trunk frame above the ground
    trunk_pitch: float  # rad (positive: leaning forward)
    feet_offset: np.ndarray  # [2, 3] foot links relative to the trunk, in the trunk's yaw (heading) frame


def standing_posture(kin: T1LegKinematics | None = None) -> StandingPosture:
    """Solve the trunk pose that makes the default leg pose a flat-footed stance.

    The default pose (ankle pitch -0.25 vs hip pitch -0.2 and knee 0.4) tilts the feet by
    -(q_hip + q_knee + q_ankle) relative to the trunk; pitching the trunk by that much makes
    them flat. With the URDF numbers: trunk pitch 0.05 rad, trunk height ~0.67 m.
    """
    kin = kin or T1LegKinematics()
    q = np.asarray(kin.default_leg_pose, dtype=np.float64)
    pitch = -(q[0] + q[3] + q[4])
    tilt = rot_y(pitch)
    feet = np.stack([_mv(tilt, leg_fk(q, side, kin)[0]) for side in (LEFT, RIGHT)])
    height = kin.sole_height - feet[:, 2].mean()
    feet = feet.copy()
    feet[:, 2] += height
    return StandingPosture(trunk_height=float(height), trunk_pitch=float(pitch), feet_offset=feet)


# ---------------------------------------------------------------------- reference motion
@dataclass
class ReferenceMotionConfig:
    """Shape of the lower-body reference (defaults for the T1 at ~0.2 m/s)."""

    swing_apex: float = 0.07  # m, peak foot clearance at mid-swing
    com_height: float = 0.60  # m, LIP height (sets the lateral sway: ~3.6 cm at 0.5 s steps, 0.2 m width)
    gravity: float = 9.81
    trunk_height: float | None = None  # m; None: the default pose's flat-footed height minus `crouch`
    crouch: float = 0.02  # m; the default pose has almost straight legs (knee 0.4 rad leaves ~7 mm of
    # reach), so a reference at its height straightens the knee as soon as the CoM moves 4 cm over a foot
    trunk_pitch: float | None = None  # rad; None: likewise
    ik_iterations: int = 2  # Newton steps after the closed-form seed (2: ~1e-10 m on walking poses)
    velocity_dt: float = 0.005  # s, central-difference step for the reference velocities


@dataclass
class ReferenceFrame:
    """One reference frame per env (world frame unless said otherwise)."""

    joint_pos: np.ndarray  # [N, 12] rad, LEG_JOINT_NAMES order
    trunk_pos: np.ndarray  # [N, 3] m
    trunk_quat: np.ndarray  # [N, 4] (w, x, y, z), MuJoCo order
    trunk_yaw: np.ndarray  # [N]
    foot_pos: np.ndarray  # [N, 2, 3] foot links (left, right), m
    foot_yaw: np.ndarray  # [N, 2] (feet are flat)
    com_pos: np.ndarray  # [N, 3] LIP point (z = com_height)
    joint_vel: np.ndarray | None = None  # [N, 12] rad/s when requested
    trunk_lin_vel: np.ndarray | None = None  # [N, 3] m/s when requested
    foot_lin_vel: np.ndarray | None = None  # [N, 2, 3] m/s when requested


@dataclass
class ReferenceMotion:
    """Reference generator: footstep-planner state -> ReferenceFrame (vectorized over N)."""

    config: ReferenceMotionConfig = field(default_factory=ReferenceMotionConfig)
    kinematics: T1LegKinematics = field(default_factory=T1LegKinematics)

    def __post_init__(self):
        if not self.config.com_height > 0.0:
            raise ValueError(f"ReferenceMotionConfig.com_height must be > 0, got {self.config.com_height}")
        self.standing = standing_posture(self.kinematics)
        self.trunk_height = self.config.trunk_height if self.config.trunk_height is not None \
            else self.standing.trunk_height - self.config.crouch
        self.trunk_pitch = self.config.trunk_pitch if self.config.trunk_pitch is not None \
            else self.standing.trunk_pitch
        # trunk origin relative to the feet midpoint in the heading frame (so standing = default pose)
        self.trunk_from_support = -self.standing.feet_offset[:, :2].mean(axis=0)

    def from_commands(self, cmds, with_velocity: bool = False) -> ReferenceFrame:
        """Reference for a FootstepCommands batch (footstep_planner.FootstepPlanner.update's output)."""
        return self.compute(cmds.swing_foot, cmds.phase, cmds.step_duration, cmds.feet_world,
                            cmds.target_world, with_velocity=with_velocity)

    def compute(self, swing_foot, phase, step_duration, feet_world, target_world,
                with_velocity: bool = False) -> ReferenceFrame:
        """Reference at swing `phase` [N] in [0, 1] of steps of `step_duration` [N] s.

        feet_world [N, 2, 3]: (x, y, yaw) of the feet, the swing foot at its lift-off pose;
        target_world [N, 3]: the swing foot's touchdown pose. Where swing_foot is SWING_NONE
        the robot stands on feet_world.
        """
        swing_foot = np.asarray(swing_foot)
        phase = np.clip(np.asarray(phase, dtype=np.float64), 0.0, 1.0)
        step_duration = np.asarray(step_duration, dtype=np.float64)
        feet_world = np.asarray(feet_world, dtype=np.float64)
        target_world = np.asarray(target_world, dtype=np.float64)
        frame = self._frame(swing_foot, phase, step_duration, feet_world, target_world)
        if with_velocity:
            h = self.config.velocity_dt
            dur = np.where(step_duration > 0, step_duration, 1.0)
            lo, hi = np.clip(phase - h / dur, 0, 1), np.clip(phase + h / dur, 0, 1)
            span = np.where(step_duration > 0, (hi - lo) * dur, 1.0)[:, None]
            a = self._frame(swing_foot, lo, step_duration, feet_world, target_world)
            b = self._frame(swing_foot, hi, step_duration, feet_world, target_world)
            frame.joint_vel = (b.joint_pos - a.joint_pos) / span
            frame.trunk_lin_vel = (b.trunk_pos - a.trunk_pos) / span
            frame.foot_lin_vel = (b.foot_pos - a.foot_pos) / span[:, :, None]
        return frame

    def _frame(self, swing_foot, phase, step_duration, feet_world, target_world) -> ReferenceFrame:
        cfg, kin = self.config, self.kinematics
        n = swing_foot.shape[0]
        env = np.arange(n)
        walking = swing_foot != SWING_NONE
        sw = np.where(swing_foot == SWING_LEFT, LEFT, RIGHT)
        st = 1 - sw
        stance, liftoff = feet_world[env, st], feet_world[env, sw]

        # swing foot: min-jerk in x, y, yaw; height bump; standing feet stay put
        s = np.where(walking, min_jerk(phase), 0.0)
        swing_xy = liftoff[:, :2] + s[:, None] * (target_world[:, :2] - liftoff[:, :2])
        swing_yaw = wrap_angle(liftoff[:, 2] + s * wrap_angle(target_world[:, 2] - liftoff[:, 2]))
        lift = np.where(walking, swing_height(phase, cfg.swing_apex), 0.0)
        foot_xy = feet_world[:, :, :2].copy()
        foot_yaw = feet_world[:, :, 2].copy()
        foot_xy[env, sw] = np.where(walking[:, None], swing_xy, foot_xy[env, sw])
        foot_yaw[env, sw] = np.where(walking, swing_yaw, foot_yaw[env, sw])
        foot_z = np.full((n, 2), kin.sole_height)
        foot_z[env, sw] += lift
        foot_pos = np.concatenate([foot_xy, foot_z[..., None]], axis=-1)

        # CoM: LIP with the ZMP on the stance foot, midpoint at lift-off -> midpoint at touchdown
        omega = np.sqrt(cfg.gravity / cfg.com_height)
        dur = np.where(walking, step_duration, 1.0)
        zmp = stance[:, :2]
        start = 0.5 * (liftoff[:, :2] + stance[:, :2])
        end = 0.5 * (target_world[:, :2] + stance[:, :2])
        ct, st_ = np.cosh(omega * dur)[:, None], np.sinh(omega * dur)[:, None]
        v0_over_omega = (end - zmp - (start - zmp) * ct) / st_
        t = (phase * dur)[:, None]
        com_walk = zmp + (start - zmp) * np.cosh(omega * t) + v0_over_omega * np.sinh(omega * t)
        com_xy = np.where(walking[:, None], com_walk, feet_world[:, :, :2].mean(axis=1))
        com_pos = np.concatenate([com_xy, np.full((n, 1), cfg.com_height)], axis=-1)

        # trunk: yaw midway between the feet, fixed height and pitch, placed over the CoM
        trunk_yaw = wrap_angle(foot_yaw[:, LEFT] + 0.5 * wrap_angle(foot_yaw[:, RIGHT] - foot_yaw[:, LEFT]))
        yaw_rot = rot_z(trunk_yaw)
        offset = _mv(yaw_rot[:, :2, :2], np.broadcast_to(self.trunk_from_support, (n, 2)))
        trunk_pos = np.concatenate([com_xy + offset, np.full((n, 1), self.trunk_height)], axis=-1)
        trunk_rot = yaw_rot @ rot_y(np.full(n, self.trunk_pitch))

        # feet in the trunk frame (flat: world rotation = yaw only) -> joint angles
        rt = np.swapaxes(trunk_rot, -1, -2)[:, None]
        foot_in_trunk = _mv(rt, foot_pos - trunk_pos[:, None, :])
        rot_in_trunk = rt @ rot_z(foot_yaw)
        joint_pos = legs_ik(foot_in_trunk, rot_in_trunk, kin, cfg.ik_iterations)

        # quaternion of Rz(yaw) Ry(pitch), (w, x, y, z): (cy cp, -sy sp, cy sp, sy cp) of the half angles
        cy, sy = np.cos(0.5 * trunk_yaw), np.sin(0.5 * trunk_yaw)
        cp, sp = np.cos(0.5 * self.trunk_pitch), np.sin(0.5 * self.trunk_pitch)
        return ReferenceFrame(
            joint_pos=joint_pos,
            trunk_pos=trunk_pos,
            trunk_quat=np.stack([cy * cp, -sy * sp, cy * sp, sy * cp], axis=-1),
            trunk_yaw=trunk_yaw,
            foot_pos=foot_pos,
            foot_yaw=foot_yaw,
            com_pos=com_pos,
        )


# ---------------------------------------------------------------------- reference on the robot
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


def measured_feet_planar(q12, gravity, kin: T1LegKinematics | None = None) -> np.ndarray:
    """Planar foot poses (x, y, yaw) [N, 2, 3] in the trunk's level frame, by leg FK of the measured
    joints q12 [N, 12] and the trunk tilt from the projected gravity [N, 3]."""
    pos, rot = legs_fk(q12, kin)
    level = level_rotation(gravity)[:, None]
    pos = _mv(level, pos)
    rot = level @ rot
    return np.concatenate([pos[..., :2], np.arctan2(rot[..., 1, 0], rot[..., 0, 0])[..., None]], axis=-1)


class StanceFrameReference:
    """The leg reference joint angles from what the controller has on the robot, batched over N.

    Inputs per control step: the measured leg joints and projected gravity, and the
    FootstepCommand fields (swing foot, countdown, step duration, swing target in the stance
    foot's frame). No world positions are needed: the reference is computed in the stance foot's
    frame. At the start of each segment (a new step, or standing) the swing foot's lift-off pose
    relative to the stance foot is measured once by leg FK and kept for the segment, as the world
    footholds are in `ReferenceMotion.from_commands`. Standing segments are expressed in the
    left foot's frame.

    The training environment and policy_runtime.LowLevelController (the node) both call
    `update` with the same arguments, so the residual leg policy adds its action to the same
    reference in simulation and on the robot.
    """

    def __init__(self, num_envs: int, motion: ReferenceMotion | None = None):
        self.num_envs = num_envs
        self.motion = motion or ReferenceMotion()
        self.reset()

    def reset(self, mask=None) -> None:
        """Forget the segment (all envs, or the masked ones): the next update measures the feet again."""
        if mask is None:
            n = self.num_envs
            self.valid = np.zeros(n, bool)
            self.last_swing = np.zeros(n, np.uint8)
            self.last_countdown = np.zeros(n)
            self.feet_local = np.zeros((n, 2, 3))
        else:
            self.valid[np.asarray(mask)] = False

    def update(self, q12, gravity, swing_foot, countdown, step_duration, target_x, target_y, target_yaw,
               rows=None):
        """Reference leg joints [N, 12] (LEG_JOINT_NAMES order) at the command's phase.

        rows: optional env indices [M]; then the inputs are those envs' [M] rows, only their
        segments are updated, and [M, 12] is returned (the training env re-observes just the envs
        it reset)."""
        sel = np.arange(self.num_envs) if rows is None else np.asarray(rows)
        swing_foot = np.asarray(swing_foot).astype(np.uint8).reshape(-1)
        countdown = np.asarray(countdown, dtype=np.float64).reshape(-1)
        step_duration = np.asarray(step_duration, dtype=np.float64).reshape(-1)
        new = ~self.valid[sel] | (swing_foot != self.last_swing[sel]) | (countdown > self.last_countdown[sel] + 1e-6)
        if new.any():
            feet = measured_feet_planar(np.asarray(q12)[new], np.asarray(gravity)[new],
                                        self.motion.kinematics)
            stance = np.where(swing_foot[new] == SWING_LEFT, RIGHT, LEFT)
            base = feet[np.arange(len(stance)), stance]
            self.feet_local[sel[new]] = relative(base[:, None, :], feet)
            self.valid[sel[new]] = True
        self.last_swing[sel], self.last_countdown[sel] = swing_foot, countdown
        target = np.stack([np.asarray(target_x, np.float64).reshape(-1), np.asarray(target_y, np.float64).reshape(-1),
                           np.asarray(target_yaw, np.float64).reshape(-1)], -1)
        phase = swing_phase(countdown, step_duration)
        return self.motion.compute(swing_foot, phase, step_duration, self.feet_local[sel], target).joint_pos
