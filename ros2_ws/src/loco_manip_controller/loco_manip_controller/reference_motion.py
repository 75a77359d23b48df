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
    on a step (the feet's ground heights differ: `feet_z`, `target_z`) the foot rises to a higher
    target in the first 60 % of the swing and descends to a lower one in the last 60 %, the bump on top;
  * the trunk: over the CoM (offset as when standing) at the pitch at which the default leg pose stands with flat
    feet and `crouch` below that height (bent knees keep reach for the steps), yaw midway
    between the feet; on steps, above the lower of the stance foot and the swing foot (lift-off to target,
    min-jerk), so the leg on the lower ground can always reach it and the stance leg lifts the body;
  * 12 leg joint angles from inverse kinematics of the T1 leg.

Leg kinematics (FK, IK, planar feet) live in t1_description.kinematics, shared with the
controller's tracking, the training env, the evaluation and the planner.

Frames: trunk = base_link (x forward, y left, z up); world z = 0 is the ground. Foot pose =
the ankle-roll link frame (left_foot_link / right_foot_link), whose origin is
`T1LegKinematics.sole_height` above the sole. Joint order per leg = the SDK / URDF order (LEG_JOINT_NAMES).
Quaternions leave this module in MuJoCo order (w, x, y, z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from t1_description.kinematics import (
    LEFT,
    RIGHT,
    T1LegKinematics,
    feet_planar,
    leg_fk,
    legs_fk,
    legs_ik,
    level_rotation,
    planar_relative,
    rot_y,
    rot_z,
    wrap_angle,
)

from .footstep_planner import Footstep
from .gait import SWING_LEFT, SWING_NONE, min_jerk, swing_height, unit_clip


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
    feet = np.stack([tilt @ leg_fk(q, side, kin)[0] for side in (LEFT, RIGHT)])
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
        self.pitch_rot = rot_y(self.trunk_pitch)  # [3, 3]: the trunk's constant pitch, computed once
        self.half_pitch_cos_sin = np.cos(0.5 * self.trunk_pitch), np.sin(0.5 * self.trunk_pitch)
        self.pitch_cos_sin = float(np.cos(self.trunk_pitch)), float(np.sin(self.trunk_pitch))  # _frame_one's
        self.trunk_from_support_floats = tuple(float(v) for v in self.trunk_from_support)

    def from_commands(self, cmds, with_velocity: bool = False) -> ReferenceFrame:
        """Reference for a FootstepCommands batch (footstep_planner.FootstepPlanner.update's output)."""
        f = cmds.footstep
        feet_z = getattr(cmds, "feet_z", None)
        target_z = None
        if feet_z is not None:
            stance = np.where(f.swing_foot == SWING_LEFT, RIGHT, LEFT)
            target_z = feet_z[np.arange(len(stance)), stance] + f.target_z
        return self.compute(f.swing_foot, f.phase, f.step_duration, cmds.feet_world, cmds.target_world,
                            with_velocity=with_velocity, feet_z=feet_z, target_z=target_z)

    def compute(self, swing_foot, phase, step_duration, feet_world, target_world,
                with_velocity: bool = False, feet_z=None, target_z=None) -> ReferenceFrame:
        """Reference at swing `phase` [N] in [0, 1] of steps of `step_duration` [N] s.

        feet_world [N, 2, 3]: (x, y, yaw) of the feet, the swing foot at its lift-off pose;
        target_world [N, 3]: the swing foot's touchdown pose. Where swing_foot is SWING_NONE
        the robot stands on feet_world. feet_z [N, 2], target_z [N] (optional, default 0): the ground
        heights under the feet (the swing foot at lift-off) and under the target, in the same frame.
        """
        swing_foot = np.asarray(swing_foot)
        phase = unit_clip(np.asarray(phase, dtype=np.float64))
        step_duration = np.asarray(step_duration, dtype=np.float64)
        feet_world = np.asarray(feet_world, dtype=np.float64)
        target_world = np.asarray(target_world, dtype=np.float64)
        n = swing_foot.shape[0]
        if feet_z is None and target_z is None:
            heights = (None, None)  # flat ground: _frame skips the height terms, which are all 0 then
        else:
            feet_z = np.zeros((n, 2)) if feet_z is None else np.asarray(feet_z, dtype=np.float64)
            target_z = np.zeros(n) if target_z is None else np.asarray(target_z, dtype=np.float64)
            heights = (feet_z, target_z)
        frame = self._frame(swing_foot, phase, step_duration, feet_world, target_world, *heights)
        if with_velocity:
            h = self.config.velocity_dt
            dur = np.where(step_duration > 0, step_duration, 1.0)
            lo, hi = np.clip(phase - h / dur, 0, 1), np.clip(phase + h / dur, 0, 1)
            span = np.where(step_duration > 0, (hi - lo) * dur, 1.0)[:, None]
            a = self._frame(swing_foot, lo, step_duration, feet_world, target_world, *heights)
            b = self._frame(swing_foot, hi, step_duration, feet_world, target_world, *heights)
            frame.joint_vel = (b.joint_pos - a.joint_pos) / span
            frame.trunk_lin_vel = (b.trunk_pos - a.trunk_pos) / span
            frame.foot_lin_vel = (b.foot_pos - a.foot_pos) / span[:, :, None]
        return frame

    def _frame(self, swing_foot, phase, step_duration, feet_world, target_world, feet_z, target_z) -> ReferenceFrame:
        if swing_foot.shape[0] == 1:  # the controller's one row: the same numbers in Python floats (_frame_one)
            return self._frame_one(swing_foot, phase, step_duration, feet_world, target_world, feet_z, target_z)
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
        if feet_z is None:  # flat ground (compute): every height below is 0, so these are the same numbers
            foot_z = np.full((n, 2), kin.sole_height)
            foot_z[env, sw] += lift
            ground = np.zeros(n)
        else:
            # steps: the swing foot climbs to a higher target early (first 60 %), descends to a lower one late
            z_lift, z_st = feet_z[env, sw], feet_z[env, st]
            rise = np.where(walking, target_z - z_lift, 0.0)
            progress = np.where(rise > 0, min_jerk(phase / 0.6), min_jerk((phase - 0.4) / 0.6))  # min_jerk clips
            foot_z = kin.sole_height + feet_z.copy()
            foot_z[env, sw] += lift + rise * progress
            # the body rides over the lower of the stance foot and the swing foot's ground (lift-off -> target)
            m = s  # the same min-jerk progress as the swing foot's
            ground = np.minimum(z_st, z_lift) + m * (np.minimum(z_st, np.where(walking, target_z, z_lift))
                                                     - np.minimum(z_st, z_lift))
            ground = np.where(walking, ground, feet_z.min(axis=1))
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
        com_xy = np.where(walking[:, None], com_walk, (feet_world[:, 0, :2] + feet_world[:, 1, :2]) / 2)  # the mean
        com_pos = np.concatenate([com_xy, (cfg.com_height + ground)[:, None]], axis=-1)

        # trunk: yaw midway between the feet, fixed height and pitch, placed over the CoM
        trunk_yaw = wrap_angle(foot_yaw[:, LEFT] + 0.5 * wrap_angle(foot_yaw[:, RIGHT] - foot_yaw[:, LEFT]))
        yaw_rot = rot_z(trunk_yaw)
        offset = yaw_rot[:, :2, :2] @ self.trunk_from_support
        trunk_pos = np.concatenate([com_xy + offset, (self.trunk_height + ground)[:, None]], axis=-1)
        trunk_rot = yaw_rot @ self.pitch_rot

        # feet in the trunk frame (flat: world rotation = yaw only) -> joint angles
        rt = np.swapaxes(trunk_rot, -1, -2)[:, None]
        foot_in_trunk = (rt @ (foot_pos - trunk_pos[:, None, :])[..., None])[..., 0]
        rot_in_trunk = rt @ rot_z(foot_yaw)
        joint_pos = legs_ik(foot_in_trunk, rot_in_trunk, kin, cfg.ik_iterations)

        # quaternion of Rz(yaw) Ry(pitch), (w, x, y, z): (cy cp, -sy sp, cy sp, sy cp) of the half angles
        cy, sy = np.cos(0.5 * trunk_yaw), np.sin(0.5 * trunk_yaw)
        cp, sp = self.half_pitch_cos_sin
        return ReferenceFrame(
            joint_pos=joint_pos,
            trunk_pos=trunk_pos,
            trunk_quat=np.stack([cy * cp, -sy * sp, cy * sp, sy * cp], axis=-1),
            trunk_yaw=trunk_yaw,
            foot_pos=foot_pos,
            foot_yaw=foot_yaw,
            com_pos=com_pos,
        )


    def _frame_one(self, swing_foot, phase, step_duration, feet_world, target_world, feet_z, target_z
                   ) -> ReferenceFrame:
        """_frame of one row (N = 1), operation for operation, on Python floats: at N = 1 each of _frame's ~120
        numpy calls costs a microsecond or two on 1-3 element arrays, and this ran ~0.5 ms of the 50 Hz
        controller's cycle. The leg IK is the shared legs_ik (its seeds take a float path at N = 1 too).
        tests/test_controller_speed_equivalence.py compares the two on walking, standing and stepping rows."""
        cfg, kin = self.config, self.kinematics
        walking = int(swing_foot[0]) != SWING_NONE
        sw = LEFT if int(swing_foot[0]) == SWING_LEFT else RIGHT
        st = 1 - sw
        feet = feet_world[0].tolist()  # [[x, y, yaw], [x, y, yaw]]
        tx, ty, tyaw = target_world[0].tolist()
        ph = float(phase[0])  # already clipped to [0, 1] by compute
        stance, liftoff = feet[st], feet[sw]

        # swing foot: min-jerk in x, y, yaw; height bump; standing feet stay put (gait.min_jerk, swing_height)
        u = min(max(ph, 0.0), 1.0)
        s = u * u * u * (10.0 + u * (-15.0 + 6.0 * u)) if walking else 0.0
        lift = cfg.swing_apex * 16.0 * u * u * (1.0 - u) ** 2 if walking else 0.0
        foot_xy = [feet[0][:2], feet[1][:2]]
        foot_yaw = [feet[0][2], feet[1][2]]
        if walking:
            foot_xy[sw] = [liftoff[0] + s * (tx - liftoff[0]), liftoff[1] + s * (ty - liftoff[1])]
            foot_yaw[sw] = _wrap(liftoff[2] + s * _wrap(tyaw - liftoff[2]))
        if feet_z is None:  # flat ground
            foot_z = [kin.sole_height, kin.sole_height]
            foot_z[sw] += lift
            ground = 0.0
        else:
            fz = feet_z[0].tolist()
            tz = float(target_z[0])
            z_lift, z_st = fz[sw], fz[st]
            rise = tz - z_lift if walking else 0.0
            v = ph / 0.6 if rise > 0 else (ph - 0.4) / 0.6
            v = min(max(v, 0.0), 1.0)
            progress = v * v * v * (10.0 + v * (-15.0 + 6.0 * v))
            foot_z = [kin.sole_height + fz[0], kin.sole_height + fz[1]]
            foot_z[sw] += lift + rise * progress
            low = min(z_st, z_lift)
            ground = low + s * (min(z_st, tz if walking else z_lift) - low) if walking else min(fz)
        foot_pos = [foot_xy[0] + [foot_z[0]], foot_xy[1] + [foot_z[1]]]

        # CoM: LIP with the ZMP on the stance foot, midpoint at lift-off -> midpoint at touchdown
        if walking:
            omega = math.sqrt(cfg.gravity / cfg.com_height)
            dur = float(step_duration[0])
            ct, st_ = math.cosh(omega * dur), math.sinh(omega * dur)
            t = ph * dur
            cht, sht = math.cosh(omega * t), math.sinh(omega * t)
            com_xy = []
            for i, end_i in ((0, tx), (1, ty)):
                zmp = stance[i]
                start = 0.5 * (liftoff[i] + stance[i])
                end = 0.5 * (end_i + stance[i])
                v0_over_omega = (end - zmp - (start - zmp) * ct) / st_
                com_xy.append(zmp + (start - zmp) * cht + v0_over_omega * sht)
        else:
            com_xy = [(feet[0][0] + feet[1][0]) / 2, (feet[0][1] + feet[1][1]) / 2]
        com_pos = com_xy + [cfg.com_height + ground]

        # trunk: yaw midway between the feet, fixed height and pitch, placed over the CoM
        trunk_yaw = _wrap(foot_yaw[LEFT] + 0.5 * _wrap(foot_yaw[RIGHT] - foot_yaw[LEFT]))
        cy, sy = math.cos(trunk_yaw), math.sin(trunk_yaw)
        ox, oy = self.trunk_from_support_floats
        trunk_pos = [com_xy[0] + (cy * ox - sy * oy), com_xy[1] + (sy * ox + cy * oy), self.trunk_height + ground]
        cp, sp = self.pitch_cos_sin
        # trunk_rot = R_z(yaw) R_y(pitch); rt = its transpose
        rt = [[cy * cp, sy * cp, -sp], [-sy, cy, 0.0], [cy * sp, sy * sp, cp]]

        # feet in the trunk frame (flat: world rotation = yaw only) -> joint angles
        foot_in_trunk, rot_in_trunk = [], []
        for k in (0, 1):
            d = [foot_pos[k][i] - trunk_pos[i] for i in range(3)]
            foot_in_trunk.append([r[0] * d[0] + r[1] * d[1] + r[2] * d[2] for r in rt])
            cf, sf = math.cos(foot_yaw[k]), math.sin(foot_yaw[k])
            # rt @ R_z(foot_yaw): R_z's columns (cf, sf, 0), (-sf, cf, 0), (0, 0, 1)
            rot_in_trunk.append([[r[0] * cf + r[1] * sf, -r[0] * sf + r[1] * cf, r[2]] for r in rt])
        joint_pos = legs_ik(np.array([foot_in_trunk]), np.array([rot_in_trunk]), kin, cfg.ik_iterations)

        # quaternion of Rz(yaw) Ry(pitch), (w, x, y, z): (cy cp, -sy sp, cy sp, sy cp) of the half angles
        hcy, hsy = math.cos(0.5 * trunk_yaw), math.sin(0.5 * trunk_yaw)
        hcp, hsp = self.half_pitch_cos_sin
        return ReferenceFrame(
            joint_pos=joint_pos,
            trunk_pos=np.array([trunk_pos]),
            trunk_quat=np.array([[hcy * hcp, -hsy * hsp, hcy * hsp, hsy * hcp]]),
            trunk_yaw=np.array([trunk_yaw]),
            foot_pos=np.array([foot_pos]),
            foot_yaw=np.array([foot_yaw]),
            com_pos=np.array([com_pos]),
        )


def _wrap(a: float) -> float:
    """wrap_angle of one float (Python's float % is numpy's remainder: the same sign rule)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


# ---------------------------------------------------------------------- reference on the robot
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

    def __init__(self, num_envs: int, motion: ReferenceMotion | None = None, heights: bool = False):
        """heights: follow FootstepCommand.target_z and the measured height of the lift-off foot (legs trained
        for steps); False: flat ground, the reference of the legs trained before heights existed."""
        self.num_envs = num_envs
        self.heights = heights
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
            self.feet_z_local = np.zeros((n, 2))  # ground heights under the feet relative to the base foot
        else:
            self.valid[np.asarray(mask)] = False

    def update(self, q12, gravity, footstep: Footstep, rows=None):
        """Reference leg joints [N, 12] (LEG_JOINT_NAMES order) at the footstep command's phase.

        q12 [N, 12] measured leg joints, gravity [N, 3] projected gravity (trunk frame).
        rows: optional env indices [M]; then the inputs are those envs' [M] rows, only their
        segments are updated, and [M, 12] is returned (the training env re-observes just the envs
        it reset)."""
        return self.update_frame(q12, gravity, footstep, rows).joint_pos

    def update_frame(self, q12, gravity, footstep: Footstep, rows=None) -> ReferenceFrame:
        """`update`'s whole ReferenceFrame, in the frame of the segment's base foot (the stance foot; the left
        foot while standing) as measured at the segment's start: the training env turns it into the world frame
        for its rewards (`to_world`), so the rewards imitate the very reference the action is added to."""
        sel = slice(None) if rows is None else np.asarray(rows)  # all rows: views, not copies
        swing_foot = np.asarray(footstep.swing_foot).astype(np.uint8)
        countdown = np.asarray(footstep.countdown, dtype=np.float64)
        new = ~self.valid[sel] | (swing_foot != self.last_swing[sel]) | (countdown > self.last_countdown[sel] + 1e-6)
        if new.any():
            sel_new = np.flatnonzero(new) if rows is None else sel[new]
            q12, gravity = np.asarray(q12)[new], np.asarray(gravity)[new]
            level = level_rotation(gravity)
            feet = feet_planar(q12, level, kin=self.motion.kinematics)
            stance = np.where(swing_foot[new] == SWING_LEFT, RIGHT, LEFT)
            base = feet[np.arange(len(stance)), stance]
            self.feet_local[sel_new] = planar_relative(base[:, None, :], feet)
            if self.heights:  # the feet's height difference (both on the ground at a segment's start)
                pos, _ = legs_fk(q12, self.motion.kinematics)
                z = np.einsum("nj,nkj->nk", level[:, 2], pos)
                self.feet_z_local[sel_new] = z - z[np.arange(len(stance)), stance][:, None]
            self.valid[sel_new] = True
        self.last_swing[sel], self.last_countdown[sel] = swing_foot, countdown
        if not self.heights:  # flat ground: exactly the reference of the legs trained before heights existed
            return self.motion.compute(swing_foot, footstep.phase, footstep.step_duration, self.feet_local[sel],
                                       np.asarray(footstep.target, np.float64))
        return self.motion.compute(swing_foot, footstep.phase, footstep.step_duration, self.feet_local[sel],
                                   np.asarray(footstep.target, np.float64), feet_z=self.feet_z_local[sel],
                                   target_z=np.asarray(footstep.target_z, np.float64))

    @staticmethod
    def base_foot(swing_foot) -> np.ndarray:
        """Index (LEFT/RIGHT) of the foot whose frame a segment's reference is expressed in."""
        return np.where(np.asarray(swing_foot) == SWING_LEFT, RIGHT, LEFT)

    @staticmethod
    def to_world(frame: ReferenceFrame, base_pose, base_z=None) -> ReferenceFrame:
        """A base-foot-frame ReferenceFrame placed on the base foot's world planar pose base_pose [N, 3]
        (x, y, yaw) standing on ground at height base_z [N] (default 0): positions and yaws move, joint
        angles stay."""
        base_pose = np.asarray(base_pose, dtype=np.float64)
        lift = np.zeros(len(base_pose)) if base_z is None else np.asarray(base_z, dtype=np.float64)
        c, s = np.cos(base_pose[:, 2]), np.sin(base_pose[:, 2])

        def move(p):  # [N, ..., 3]
            shape = (-1,) + (1,) * (p.ndim - 2)
            cc, ss = c.reshape(shape), s.reshape(shape)
            x, y = p[..., 0], p[..., 1]
            return np.stack([base_pose[:, 0].reshape(shape) + cc * x - ss * y,
                             base_pose[:, 1].reshape(shape) + ss * x + cc * y, p[..., 2] + lift.reshape(shape)],
                            axis=-1)

        half = 0.5 * base_pose[:, 2]
        qz = np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], -1)
        w1, x1, y1, z1 = qz.T
        w2, x2, y2, z2 = frame.trunk_quat.T
        quat = np.stack([w1 * w2 - z1 * z2, w1 * x2 - z1 * y2, w1 * y2 + z1 * x2, w1 * z2 + z1 * w2], -1)
        return ReferenceFrame(joint_pos=frame.joint_pos, trunk_pos=move(frame.trunk_pos), trunk_quat=quat,
                              trunk_yaw=wrap_angle(frame.trunk_yaw + base_pose[:, 2]), foot_pos=move(frame.foot_pos),
                              foot_yaw=wrap_angle(frame.foot_yaw + base_pose[:, 2, None]), com_pos=move(frame.com_pos))
