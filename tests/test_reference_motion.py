"""Leg kinematics (t1_description.kinematics: FK/IK, planar feet) and the lower-body reference motion
(loco_manip_controller.reference_motion)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from loco_manip_controller.footstep_planner import FootstepPlanner, FootstepPlannerConfig
from loco_manip_controller.gait import SWING_LEFT, SWING_NONE
from loco_manip_controller.reference_motion import (
    ReferenceMotion,
    ReferenceMotionConfig,
    StanceFrameReference,
    standing_posture,
)
from t1_description import urdf_kinematics
from t1_description.kinematics import (
    BOTH,
    LEFT,
    LEG_JOINT_NAMES,
    RIGHT,
    T1LegKinematics,
    feet_planar,
    leg_fk,
    leg_ik,
    legs_fk,
    legs_ik,
    level_rotation,
    planar_relative,
    quat_wxyz_to_matrix,
    rot_z,
)
from t1_description.model_paths import urdf_path

KIN = T1LegKinematics()
DT = 0.02
# joint ranges a walking T1 uses (inside the limits, knee bent)
WALK_LO = np.array([-1.0, -0.2, -0.5, 0.2, -0.8, -0.4])
WALK_HI = np.array([0.6, 0.4, 0.5, 1.8, 0.3, 0.4])


def random_leg_q(rng, n):
    left = rng.uniform(WALK_LO, WALK_HI, (n, 6))
    right = rng.uniform(WALK_LO, WALK_HI, (n, 6)) * np.array([1, -1, -1, 1, 1, -1])  # mirrored
    return np.concatenate([left, right], axis=-1)


def test_constants_match_the_robot_model():
    model_kin = T1LegKinematics.from_model()
    for name in KIN.__dataclass_fields__:
        np.testing.assert_allclose(getattr(model_kin, name), getattr(KIN, name), atol=1e-9, err_msg=name)


def test_fk_matches_the_urdf_of_the_robot_model():
    urdf = urdf_kinematics.parse_urdf(urdf_path())
    rng = np.random.default_rng(0)
    q = random_leg_q(rng, 10)
    pos, rot = legs_fk(q)
    for k in range(len(q)):
        poses = urdf_kinematics.forward_kinematics(urdf, dict(zip(LEG_JOINT_NAMES, q[k])))
        trunk_inv = np.linalg.inv(poses["Trunk"])
        for side, link in ((LEFT, "left_foot_link"), (RIGHT, "right_foot_link")):
            foot = trunk_inv @ poses[link]
            np.testing.assert_allclose(pos[k, side], foot[:3, 3], atol=1e-12)
            np.testing.assert_allclose(rot[k, side], foot[:3, :3], atol=1e-12)


def test_ik_fk_round_trip():
    rng = np.random.default_rng(1)
    q = random_leg_q(rng, 2000)
    pos, rot = legs_fk(q)
    q_ik = legs_ik(pos, rot)
    pos_ik, rot_ik = legs_fk(q_ik)
    np.testing.assert_allclose(pos_ik, pos, atol=1e-6)
    np.testing.assert_allclose(rot_ik, rot, atol=1e-6)
    np.testing.assert_allclose(q_ik, q, atol=1e-6)  # unique solution in this range
    # one leg at a time gives the same
    ql = leg_ik(pos[:, LEFT], rot[:, LEFT], LEFT)
    np.testing.assert_allclose(ql, q_ik[:, :6], atol=1e-12)
    _, err_p, err_r = leg_ik(pos, rot, BOTH, return_error=True)
    assert err_p.max() < 1e-9 and err_r.max() < 1e-9


def test_ik_reports_unreachable_targets():
    pos, rot = leg_fk(np.array(KIN.default_leg_pose), LEFT)
    far = pos + np.array([0.0, 0.0, -0.2])  # 20 cm below: beyond the stretched leg
    _, err_p, _ = leg_ik(far, rot, LEFT, return_error=True)
    assert err_p > 0.1


def test_standing_posture_and_standing_reference_is_the_default_pose():
    stand = standing_posture()
    assert 0.66 <= stand.trunk_height <= 0.68  # FACTS: ~0.665-0.68 m
    assert stand.trunk_pitch == pytest.approx(0.05)
    width = stand.feet_offset[LEFT, 1] - stand.feet_offset[RIGHT, 1]
    planner = FootstepPlanner(1, FootstepPlannerConfig(step_width=width))
    ref = ReferenceMotion(ReferenceMotionConfig(crouch=0.0)).from_commands(planner.output())
    np.testing.assert_allclose(ref.joint_pos[0], np.tile(KIN.default_leg_pose, 2), atol=1e-9)
    np.testing.assert_allclose(ref.foot_pos[0, :, 2], KIN.sole_height)
    np.testing.assert_allclose(ref.trunk_quat[0], [np.cos(0.025), 0.0, np.sin(0.025), 0.0], atol=1e-12)  # w,x,y,z


def walk(cmds, ref: ReferenceMotion | None = None, **kw):
    """Planner + reference over a command schedule [ticks, N, 3] -> list of (commands, reference)."""
    planner = FootstepPlanner(cmds.shape[1])
    ref = ref or ReferenceMotion()
    out = []
    for c in cmds:
        cmd = planner.update(DT, c)
        out.append((cmd, ref.from_commands(cmd, **kw)))
    return out


COMMANDS = np.array([[0.2, 0.0, 0.0], [-0.2, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, -0.1, 0.0], [0.0, 0.0, 0.25],
                     [0.15, 0.05, -0.2], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_swing_foot_follows_a_smooth_bump_to_the_target_at_touchdown():
    rm = ReferenceMotion()
    planner = FootstepPlanner(len(COMMANDS))
    for _ in range(30):
        cmds = planner.update(DT, COMMANDS)
    walking = cmds.footstep.swing_foot != SWING_NONE
    sw = np.where(cmds.footstep.swing_foot == SWING_LEFT, LEFT, RIGHT)
    env = np.arange(len(COMMANDS))

    def at(phase):
        return rm.compute(cmds.footstep.swing_foot, np.full(len(COMMANDS), phase), cmds.footstep.step_duration,
                          cmds.feet_world, cmds.target_world)

    end, start, mid = at(1.0), at(0.0), at(0.5)
    np.testing.assert_allclose(end.foot_pos[env, sw, :2][walking], cmds.target_world[walking, :2], atol=1e-12)
    np.testing.assert_allclose(end.foot_yaw[env, sw][walking], cmds.target_world[walking, 2], atol=1e-12)
    np.testing.assert_allclose(end.foot_pos[..., 2], KIN.sole_height, atol=1e-12)
    np.testing.assert_allclose(start.foot_pos[..., :2], cmds.feet_world[..., :2], atol=1e-12)
    np.testing.assert_allclose(mid.foot_pos[env, sw, 2][walking], KIN.sole_height + rm.config.swing_apex)
    # the stance foot never moves
    np.testing.assert_allclose(mid.foot_pos[env, 1 - sw][walking], end.foot_pos[env, 1 - sw][walking])
    # and the joint reference puts the feet there (trunk frame -> world)
    for frame in (start, mid, end):
        pos, _ = legs_fk(frame.joint_pos)
        pitch = rm.trunk_pitch
        tilt = np.array([[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0], [-np.sin(pitch), 0, np.cos(pitch)]])
        world = frame.trunk_pos[:, None] + np.einsum("nij,nkj->nki", rot_z(frame.trunk_yaw) @ tilt, pos)
        np.testing.assert_allclose(world, frame.foot_pos, atol=1e-9)


def test_swing_foot_lands_on_the_target_in_closed_run():
    run = walk(np.repeat(COMMANDS[None, :5], 150, axis=0))
    for (c0, r0), (c1, _) in zip(run, run[1:]):
        landed = c1.new_step & (c0.footstep.swing_foot != SWING_NONE)
        sw = np.where(c0.footstep.swing_foot == SWING_LEFT, LEFT, RIGHT)
        env = np.arange(len(sw))
        # the last frame before touchdown is within one tick of the target, and low
        dist = np.linalg.norm(r0.foot_pos[env, sw, :2] - c0.target_world[:, :2], axis=-1)
        assert np.all(dist[landed] < 0.01)
        assert np.all(r0.foot_pos[env, sw, 2][landed] < KIN.sole_height + 0.005)


def test_com_stays_between_the_feet_and_is_continuous():
    cmds = np.repeat(COMMANDS[None], 200, axis=0)
    run = walk(cmds)
    for (c, r), (c_next, r_next) in zip(run, run[1:]):
        walking = c.footstep.swing_foot != SWING_NONE
        env = np.arange(len(walking))
        sw = np.where(c.footstep.swing_foot == SWING_LEFT, LEFT, RIGHT)
        stance = c.feet_world[env, 1 - sw]
        com = np.concatenate([r.com_pos[:, :2], np.zeros((len(env), 1))], axis=-1)
        com_s = planar_relative(stance, com)  # CoM in the stance-foot frame
        lift_s, target_s = planar_relative(stance, c.feet_world[env, sw]), planar_relative(stance, c.target_world)
        side = np.where(sw == LEFT, 1.0, -1.0)  # towards the swing foot
        lat = side * com_s[:, 1]
        # laterally: between the stance foot and the swing foot's line, never outside the stance foot
        assert np.all(lat[walking] > 0.0)
        assert np.all(lat[walking] < np.maximum(side * lift_s[:, 1], side * target_s[:, 1])[walking] / 2 + 1e-9)
        # fore-aft: within the span of the footholds
        xs = np.stack([np.zeros(len(env)), lift_s[:, 0], target_s[:, 0]])
        assert np.all((com_s[:, 0] >= xs.min(0) - 1e-9)[walking])
        assert np.all((com_s[:, 0] <= xs.max(0) + 1e-9)[walking])
        # continuous from tick to tick (steps included): at most ~0.5 m/s
        assert np.all(np.linalg.norm(r_next.com_pos - r.com_pos, axis=-1) < 0.5 * DT + 1e-9)


def test_joint_references_stay_inside_the_limits():
    lo, hi = KIN.limits12()
    rng = np.random.default_rng(5)
    n = 32
    cmds = np.repeat(rng.uniform([-0.2, -0.1, -0.25], [0.3, 0.1, 0.25], (6, n, 3)), 40, axis=0)
    for _, ref in walk(cmds):
        assert np.all(ref.joint_pos >= lo) and np.all(ref.joint_pos <= hi)
        assert np.all(ref.joint_pos[:, [3, 9]] > 0.3)  # knees stay bent


def test_reference_velocities_match_frame_differences():
    run = walk(np.repeat(COMMANDS[None, :6], 60, axis=0), with_velocity=True)
    for (c0, r0), (c1, r1) in zip(run[20:40], run[21:41]):
        # inside a step, away from lift-off where the swing knee turns around sharply
        same_step = ~c1.new_step & (c0.footstep.swing_foot != SWING_NONE) & (c0.footstep.phase > 0.05)
        fd = (r1.joint_pos - r0.joint_pos) / DT
        mean_vel = 0.5 * (r0.joint_vel + r1.joint_vel)
        np.testing.assert_allclose(mean_vel[same_step], fd[same_step], rtol=0.03, atol=0.05)
        np.testing.assert_allclose((r1.foot_pos - r0.foot_pos)[same_step] / DT,
                                   0.5 * (r0.foot_lin_vel + r1.foot_lin_vel)[same_step], atol=0.01)


def test_reference_generation_rate_for_256_envs():
    n = 256
    rng = np.random.default_rng(2)
    planner = FootstepPlanner(n)
    rm = ReferenceMotion()
    cmds = rng.uniform([-0.2, -0.1, -0.25], [0.3, 0.1, 0.25], (n, 3))
    for _ in range(5):
        out = planner.update(DT, cmds)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        out = planner.update(DT, cmds)
        rm.from_commands(out)
    rate = n * reps / (time.perf_counter() - t0)
    print(f"reference frames/s (N={n}, planner + reference, no velocities): {rate:,.0f}")
    assert rate > 2000  # loose: a loaded 2-core machine; typically ~20-30k


def test_level_rotation_turns_gravity_down_without_yaw():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(11)
    tilt = Rotation.from_euler("xy", rng.uniform(-0.4, 0.4, (20, 2)))  # roll, pitch; trunk -> level
    gravity = tilt.inv().apply([0.0, 0.0, -1.0])  # gravity seen in the trunk frame
    level = level_rotation(gravity)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", level, gravity), np.tile([0, 0, -1.0], (20, 1)), atol=1e-12)
    axis = Rotation.from_matrix(level).as_rotvec()  # the smallest such rotation: about a horizontal axis,
    np.testing.assert_allclose(axis[:, 2], 0.0, atol=1e-12)  # so it adds no turn about the vertical
    np.testing.assert_allclose(np.linalg.norm(axis, axis=-1), np.arccos(-gravity[:, 2]), atol=1e-9)


def test_feet_planar_in_the_world_and_in_the_level_frame_agree_relative_to_the_stance_foot():
    """feet_planar is the one planar-feet function: in the world frame (simulation: trunk pose) and in the
    trunk's level frame (robot: projected gravity only) one foot's pose relative to the other is the same."""
    from scipy.spatial.transform import Rotation

    from t1_description.kinematics import yaw_of_matrix, yaw_of_quat

    rng = np.random.default_rng(12)
    n = 50
    q = random_leg_q(rng, n)
    rot = Rotation.from_euler("ZYX", np.stack([rng.uniform(-np.pi, np.pi, n), rng.uniform(-0.4, 0.4, n),
                                              rng.uniform(-0.4, 0.4, n)], -1))
    trunk_rot, trunk_pos = rot.as_matrix(), rng.normal(0.0, 1.0, (n, 3))
    gravity = rot.inv().apply([0.0, 0.0, -1.0])
    world, level = feet_planar(q, trunk_rot, trunk_pos), feet_planar(q, level_rotation(gravity))
    for feet in (world, level):
        pos, foot_rot = legs_fk(q)
        frame = trunk_rot if feet is world else level_rotation(gravity)
        np.testing.assert_allclose(feet[:, LEFT, 2], yaw_of_matrix(frame @ foot_rot[:, LEFT]), atol=1e-12)
    np.testing.assert_allclose(planar_relative(world[:, LEFT], world[:, RIGHT]),
                               planar_relative(level[:, LEFT], level[:, RIGHT]), atol=1e-12)
    np.testing.assert_allclose(world[:, :, :2] - trunk_pos[:, None, :2],
                               np.einsum("nij,nkj->nki", trunk_rot, pos)[..., :2], atol=1e-12)
    quat = rot.as_quat()[:, [3, 0, 1, 2]]  # scipy x, y, z, w -> w, x, y, z
    np.testing.assert_allclose(yaw_of_quat(quat), yaw_of_matrix(quat_wxyz_to_matrix(quat)), atol=1e-12)
    np.testing.assert_allclose(yaw_of_quat(quat), rot.as_euler("ZYX")[:, 0], atol=1e-12)  # intrinsic z-y-x yaw


def test_stance_frame_reference_equals_the_world_reference_of_the_plan():
    """The node's reference (measured legs + FootstepCommand fields only) is the training reference built
    from the planner's world footholds, when the legs are where that reference put them."""
    from loco_manip_controller.policy_io import projected_gravity

    n = 4
    motion = ReferenceMotion(ReferenceMotionConfig(ik_iterations=3))
    planner, stance_ref = FootstepPlanner(n), StanceFrameReference(n, motion)
    heading = np.array([0.3, -0.5, 1.0, 2.0])  # any heading: the stance frame does not see it
    feet = np.zeros((n, 2, 3))
    feet[:, :, :2] = np.einsum("nij,kj->nki", rot_z(heading)[:, :2, :2], motion.standing.feet_offset[:, :2])
    feet[:, :, 2] = heading[:, None]
    planner.reset(np.ones(n, bool), feet_pose=feet)
    cmd = np.array([[0.2, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, 0.0, 0.4], [0.0, 0.0, 0.0]])
    world = motion.from_commands(planner.output())
    walked = np.zeros(n, bool)
    for k in range(150):
        q, gravity = world.joint_pos, projected_gravity(world.trunk_quat)  # "measured" = the last reference
        c = planner.update(DT, cmd)
        got = stance_ref.update(q, gravity, c.footstep)
        world = motion.from_commands(c)
        np.testing.assert_allclose(got, world.joint_pos, atol=2e-3)
        walked |= c.footstep.swing_foot != SWING_NONE
    assert walked[:3].all() and not walked[3]
    # a reset forgets the segment: the next update measures the feet again
    stance_ref.reset(np.array([True, False, False, False]))
    assert not stance_ref.valid[0] and stance_ref.valid[1:].all()



def test_a_step_up_lifts_the_swing_foot_onto_the_target_height_and_the_trunk_with_the_lower_foot():
    """Swing to a target 10 cm higher: the foot ends on it, clears it early, the trunk stays over the lower
    (stance) foot during that step; the next step (stance on the platform) lifts the trunk by the 10 cm."""
    from loco_manip_controller.gait import SWING_LEFT
    motion = ReferenceMotion(ReferenceMotionConfig())
    feet = np.array([[[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]])
    target = np.array([[0.3, 0.1, 0.0]])
    sole = motion.kinematics.sole_height
    kw = dict(feet_z=np.zeros((1, 2)), target_z=np.array([0.1]))
    end = motion.compute(np.array([SWING_LEFT]), np.array([1.0]), np.array([0.5]), feet, target, **kw)
    mid = motion.compute(np.array([SWING_LEFT]), np.array([0.6]), np.array([0.5]), feet, target, **kw)
    flat = motion.compute(np.array([SWING_LEFT]), np.array([1.0]), np.array([0.5]), feet, target)
    assert end.foot_pos[0, 0, 2] == pytest.approx(sole + 0.1)
    assert mid.foot_pos[0, 0, 2] > sole + 0.1  # over the edge height before moving on
    assert end.trunk_pos[0, 2] == pytest.approx(flat.trunk_pos[0, 2])  # stance foot on the floor
    # next step: the right foot swings up, the stance (left) foot is on the platform
    feet2 = np.array([[[0.3, 0.1, 0.0], [0.0, -0.1, 0.0]]])
    up = motion.compute(np.array([2]), np.array([1.0]), np.array([0.5]), feet2, np.array([[0.3, -0.1, 0.0]]),
                        feet_z=np.array([[0.1, 0.0]]), target_z=np.array([0.1]))
    assert up.trunk_pos[0, 2] == pytest.approx(flat.trunk_pos[0, 2] + 0.1)
    assert up.foot_pos[0, :, 2] == pytest.approx([sole + 0.1, sole + 0.1])
