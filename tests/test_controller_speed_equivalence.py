"""The controller's fast paths compute the same numbers as the plain implementations they replaced.

The 50 Hz controller (policy_runtime.LowLevelController.step, N = 1) spends its time in numpy calls on
tiny arrays, so the hot functions were rewritten with fewer calls: the rotation vector without scipy's
Rotation object, the leg FK with all joints at once, the arm FK as a product by pairs, the IK seed with
cached constants, observations scaled in one product, the flat-ground reference without its height
terms. Each is compared here with a straightforward reference (scipy, or the joint-by-joint code it
replaced, kept below) on random inputs and on the corner cases (rotation angles 0 and pi). The one-row
(N = 1) paths in Python floats (the IK seed, the reference frame, rotation vectors of up to four matrices)
are compared with the batched numpy code the other rows take. Timing is `refine-dp bench controller`'s
business; these tests only check the numbers.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from loco_manip_controller import policy_io as pio
from loco_manip_controller.footstep_planner import Footstep, FootstepPlanner
from loco_manip_controller.gait import SWING_LEFT, SWING_NONE, SWING_RIGHT, min_jerk, swing_phase, unit_clip
from loco_manip_controller.reference_motion import ReferenceMotion, ReferenceMotionConfig, StanceFrameReference
from t1_description import kinematics as K
from t1_description.joint_table import load_joint_table

KIN = K.T1LegKinematics()
ATOL = 1e-12


# ---------------------------------------------------------------------- references: the plain code
def ref_leg_frames(q, side, kin=KIN):
    """Joint by joint, with rot_x / rot_y / rot_z (the implementation before the batched one)."""
    v = kin.side_vectors(side)
    r1 = K.rot_y(q[..., 0])
    r12 = r1 @ K.rot_x(q[..., 1])
    r123 = r12 @ K.rot_z(q[..., 2])
    r1234 = r123 @ K.rot_y(q[..., 3])
    r12345 = r1234 @ K.rot_y(q[..., 4])
    mv = lambda r, x: np.einsum("...ij,...j->...i", r, x)  # noqa: E731
    p1 = np.broadcast_to(v["hip"], q.shape[:-1] + (3,))
    p2 = p1 + mv(r1, v["pitch_to_roll"])
    p3 = p2 + mv(r12, v["roll_to_yaw"])
    p4 = p3 + mv(r123, v["yaw_to_knee"])
    p5 = p4 + mv(r1234, v["knee_to_ankle"])
    p6 = p5 + mv(r12345, v["ankle_pitch_to_roll"])
    axes = np.stack([np.broadcast_to([0.0, 1.0, 0.0], p1.shape), r1[..., :, 0], r12[..., :, 2], r123[..., :, 1],
                     r1234[..., :, 1], r12345[..., :, 0]], axis=-2)
    return np.stack([p1, p2, p3, p4, p5, p6], axis=-2), axes, p6, r12345 @ K.rot_x(q[..., 5])


def ref_ik_seed(pos, rot, side, kin=KIN, hip_pitch=0.0, ankle_roll=0.0):
    """Kajita's closed form as first written (rot_x / rot_y matrices, np.clip, einsum)."""
    v = kin.side_vectors(side)
    thigh = v["roll_to_yaw"] + v["yaw_to_knee"]
    l1, l2 = np.hypot(thigh[..., 0], thigh[..., 2]), -v["knee_to_ankle"][..., 2]
    beta = np.arctan2(-thigh[..., 0], -thigh[..., 2])
    hip = v["hip"] + np.einsum("...ij,...j->...i", K.rot_y(hip_pitch), v["pitch_to_roll"])
    ankle = pos - np.einsum("...ij,...j->...i", rot @ K.rot_x(-np.asarray(ankle_roll)), v["ankle_pitch_to_roll"])
    r = np.einsum("...ji,...j->...i", rot, hip - ankle)
    c = np.clip(np.linalg.norm(r, axis=-1), abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    knee_v = np.pi - np.arccos(np.clip((l1 * l1 + l2 * l2 - c * c) / (2 * l1 * l2), -1.0, 1.0))
    alpha = np.arcsin(np.clip(l1 * np.sin(np.pi - knee_v) / c, -1.0, 1.0))
    ankle_pitch = -np.arctan2(r[..., 0], np.sign(r[..., 2]) * np.hypot(r[..., 1], r[..., 2])) - alpha
    ankle_roll = np.arctan2(r[..., 1], r[..., 2])
    knee = knee_v + beta
    r_hip = rot @ K.rot_x(-ankle_roll) @ K.rot_y(-(ankle_pitch + knee))
    hip_roll = np.arcsin(np.clip(-r_hip[..., 1, 2], -1.0, 1.0))
    hip_pitch = np.arctan2(r_hip[..., 0, 2], r_hip[..., 2, 2])
    hip_yaw = np.arctan2(r_hip[..., 1, 0], r_hip[..., 1, 1])
    return np.stack([hip_pitch, hip_roll, hip_yaw, knee, ankle_pitch, ankle_roll], axis=-1)


def ref_leg_ik(pos, rot, side, iterations=2, seed_refinements=2, damping=1e-8, max_step=0.3):
    q = ref_ik_seed(pos, rot, side)
    for _ in range(seed_refinements):
        q = ref_ik_seed(pos, rot, side, hip_pitch=q[..., 0], ankle_roll=q[..., 5])
    for _ in range(iterations):
        joints, axes, p, r = ref_leg_frames(q, side)
        e = rot @ np.swapaxes(r, -1, -2)
        rot_err = 0.5 * np.stack([e[..., 2, 1] - e[..., 1, 2], e[..., 0, 2] - e[..., 2, 0],
                                  e[..., 1, 0] - e[..., 0, 1]], axis=-1)
        err = np.concatenate([pos - p, rot_err], axis=-1)
        jac = np.swapaxes(np.concatenate([np.cross(axes, p[..., None, :] - joints), axes], axis=-1), -1, -2)
        jjt = jac @ np.swapaxes(jac, -1, -2) + damping * np.eye(6)
        dq = np.einsum("...ji,...j->...i", jac, np.linalg.solve(jjt, err[..., None])[..., 0])
        q = q + dq * np.minimum(1.0, max_step / np.maximum(np.abs(dq).max(axis=-1, keepdims=True), 1e-12))
    return q


WALK_LO = np.array([-1.0, -0.2, -0.5, 0.2, -0.8, -0.4])  # joint ranges of a walking left leg (knee bent)
WALK_HI = np.array([0.6, 0.4, 0.5, 1.8, 0.3, 0.4])
MIRROR = np.array([1, -1, -1, 1, 1, -1])  # left -> right


def walking_leg_q(rng, shape, side):
    """Leg joints [*shape, 6] of `side` (BOTH: shape ends with 2, left and right) in the walking ranges."""
    q = rng.uniform(WALK_LO, WALK_HI, tuple(shape) + (6,))
    if side == K.RIGHT:
        return q * MIRROR
    if side == K.BOTH:
        q[..., 1, :] *= MIRROR
    return q


# ---------------------------------------------------------------------- rotation vectors
def rotations_near(angles, rng):
    axis = rng.normal(size=(len(angles), 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return Rotation.from_rotvec(axis * np.asarray(angles)[:, None]).as_matrix()


def test_rotvec_from_matrix_equals_scipy_on_random_rotations_and_any_batch_shape():
    rng = np.random.default_rng(0)
    m = Rotation.random(6000, random_state=1).as_matrix()
    np.testing.assert_allclose(K.rotvec_from_matrix(m), Rotation.from_matrix(m).as_rotvec(), rtol=0, atol=ATOL)
    batch = m[:24].reshape(3, 4, 2, 3, 3)
    expected = Rotation.from_matrix(m[:24]).as_rotvec().reshape(3, 4, 2, 3)
    np.testing.assert_allclose(K.rotvec_from_matrix(batch), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(K.rotvec_from_matrix(m[0]), Rotation.from_matrix(m[0]).as_rotvec(), atol=ATOL)
    near = rotations_near(rng.uniform(0, np.pi, 1000), rng)  # every angle
    np.testing.assert_allclose(K.rotvec_from_matrix(near), Rotation.from_matrix(near).as_rotvec(), atol=ATOL)


def test_rotvec_from_matrix_equals_scipy_near_angle_zero():
    rng = np.random.default_rng(2)
    small = np.concatenate([np.logspace(-14, -1, 300), [0.0, 1e-3, 1e-3 * (1 - 1e-12), 1e-3 * (1 + 1e-12)]])
    m = np.concatenate([rotations_near(small, rng), np.eye(3)[None]])
    np.testing.assert_allclose(K.rotvec_from_matrix(m), Rotation.from_matrix(m).as_rotvec(), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(K.rotvec_from_matrix(np.eye(3)), np.zeros(3))


def test_rotvec_from_matrix_equals_scipy_near_and_at_angle_pi():
    rng = np.random.default_rng(3)
    near = rotations_near(np.pi - np.concatenate([np.logspace(-13, -1, 300), np.zeros(50)]), rng)
    # exactly pi about the axes and about axes with negative and zero components (scipy's canonical sign)
    axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, -2, 0], [0, 1, -1], [-1, -1, 1], [1, 1, 1], [0, -3, 4]],
                    dtype=float)
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    exact = 2.0 * axes[:, :, None] * axes[:, None, :] - np.eye(3)  # R = 2 a a^T - I: the half turn about a
    exact = np.concatenate([exact, np.diag([1.0, -1, -1])[None], np.diag([-1.0, 1, -1])[None],
                            np.diag([-1.0, -1, 1])[None]])
    for m in (near, exact):
        np.testing.assert_allclose(K.rotvec_from_matrix(m), Rotation.from_matrix(m).as_rotvec(), rtol=0, atol=1e-12)
    assert np.allclose(np.linalg.norm(K.rotvec_from_matrix(exact), axis=-1), np.pi)


def batched_rotvec(m):
    """rotvec_from_matrix through its batched numpy path (more than four matrices: pad with identities)."""
    m = np.asarray(m, dtype=np.float64).reshape(-1, 3, 3)
    return K.rotvec_from_matrix(np.concatenate([m, np.broadcast_to(np.eye(3), (5, 3, 3))]))[:len(m)]


def test_rotvec_of_up_to_four_matrices_equals_the_batched_path():
    """The float path (<= 4 matrices, the controller's two hands) against the numpy path, one matrix at a time and
    in pairs, on random rotations, angles near 0 and pi, exact half turns and Shepperd's ties (equal diagonals)."""
    rng = np.random.default_rng(20)
    axes = rng.normal(size=(8, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    half_turns = np.concatenate([2.0 * axes[:, :, None] * axes[:, None, :] - np.eye(3),
                                 [np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)]])
    angles = np.concatenate([rng.uniform(0, np.pi, 300), np.logspace(-14, -1, 60), np.pi - np.logspace(-13, -1, 60),
                             [0.0, 1e-3, 1e-3 * (1 - 1e-12), 1e-3 * (1 + 1e-12), np.pi]])
    mats = np.concatenate([Rotation.random(300, random_state=21).as_matrix(), rotations_near(angles, rng), half_turns])
    want = batched_rotvec(mats)
    for i, m in enumerate(mats):
        np.testing.assert_allclose(K.rotvec_from_matrix(m), want[i], rtol=0, atol=ATOL)
    pairs = mats[:len(mats) // 2 * 2].reshape(-1, 1, 2, 3, 3)  # the controller's shape [1, 2, 3, 3]
    for i, m in enumerate(pairs):
        np.testing.assert_allclose(K.rotvec_from_matrix(m), want[2 * i:2 * i + 2][None], rtol=0, atol=ATOL)
        np.testing.assert_allclose(K.rotvec_from_matrix(m), Rotation.from_matrix(m[0]).as_rotvec()[None], atol=ATOL)


def test_rotvec_of_a_few_invalid_matrices_still_goes_to_scipy():
    m = Rotation.random(2, random_state=22).as_matrix()
    skewed = m + 1e-6 * np.random.default_rng(23).normal(size=m.shape)
    np.testing.assert_allclose(K.rotvec_from_matrix(skewed[0]), Rotation.from_matrix(skewed[0]).as_rotvec(),
                               atol=ATOL)
    mixed = np.stack([m[0], skewed[1]])  # one bad matrix sends the whole call to scipy, as in the batched path
    np.testing.assert_allclose(K.rotvec_from_matrix(mixed), Rotation.from_matrix(mixed).as_rotvec(), atol=ATOL)
    with pytest.raises(ValueError, match="determinant"):
        K.rotvec_from_matrix(-m[0])


def test_rotvec_from_matrix_leaves_invalid_matrices_to_scipy():
    m = Rotation.random(4, random_state=4).as_matrix()
    skewed = m + 1e-6 * np.random.default_rng(5).normal(size=m.shape)  # not orthonormal: scipy orthogonalises
    np.testing.assert_allclose(K.rotvec_from_matrix(skewed), Rotation.from_matrix(skewed).as_rotvec(), atol=ATOL)
    with pytest.raises(ValueError, match="determinant"):
        K.rotvec_from_matrix(-m)  # left-handed: scipy's error


def test_pose_errors_rotation_part_is_scipys_rotation_vector():
    rng = np.random.default_rng(6)
    target, current = Rotation.random(40, random_state=7), Rotation.random(40, random_state=8)
    tp, cp = rng.normal(size=(20, 2, 3)), rng.normal(size=(20, 2, 3))
    dp, drot = K.pose_errors(tp, target.as_matrix().reshape(20, 2, 3, 3), cp, current.as_matrix().reshape(20, 2, 3, 3))
    np.testing.assert_array_equal(dp, tp - cp)
    np.testing.assert_allclose(drot.reshape(40, 3), (target * current.inv()).as_rotvec(), atol=1e-12)


# ---------------------------------------------------------------------- leg kinematics
@pytest.mark.parametrize("shape", [(2,), (1, 2), (3, 2), (64, 2), (256, 2)])  # both sides of the batch-size switch
def test_rotations_by_patterns_are_rot_x_y_z_to_the_last_bit(shape):
    angles = np.random.default_rng(9).uniform(-4.0, 4.0, shape)
    angles.flat[0] = 0.0
    for axes, patterns in (((1, 0), K._Y_X_ROT), ((0, 1), K._X_Y_ROT)):
        got = K._rotations(patterns, angles)
        for n, axis in enumerate(axes):
            np.testing.assert_array_equal(got[..., n, :, :], K._rot(axis, angles[..., n]))


@pytest.mark.parametrize("side,shape", [(K.LEFT, ()), (K.LEFT, (5,)), (K.RIGHT, (3, 4)), (K.BOTH, (2,)),
                                        (K.BOTH, (7, 2)), (K.BOTH, (1, 3, 2))])
def test_leg_frames_equal_the_joint_by_joint_walk(side, shape):
    q = walking_leg_q(np.random.default_rng(10), shape, side)
    for got, want in zip(K._leg_frames(q, side, KIN), ref_leg_frames(q, side)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("side,shape", [(K.LEFT, (6,)), (K.RIGHT, ()), (K.BOTH, (1, 2)), (K.BOTH, (200, 2))])
def test_ik_seed_and_leg_ik_equal_the_first_implementation(side, shape):
    q = walking_leg_q(np.random.default_rng(11), shape, side)
    pos, rot = ref_leg_frames(q, side)[2:]
    seed = K._ik_seed(pos, rot, side, KIN)
    np.testing.assert_allclose(seed, ref_ik_seed(pos, rot, side), rtol=0, atol=ATOL)
    np.testing.assert_allclose(K._ik_seed(pos, rot, side, KIN, guess=seed),
                               ref_ik_seed(pos, rot, side, hip_pitch=seed[..., 0], ankle_roll=seed[..., 5]),
                               rtol=0, atol=ATOL)
    q_ik = K.leg_ik(pos, rot, side, KIN)
    np.testing.assert_allclose(q_ik, ref_leg_ik(pos, rot, side), rtol=0, atol=1e-11)
    np.testing.assert_allclose(q_ik, q, atol=1e-8)  # and the round trip itself


def reach_test_poses(rng, n):
    """Foot poses [n, 2, 3] / [n, 2, 3, 3] of walking legs, and some beyond reach and tucked in (the clips)."""
    q = walking_leg_q(rng, (n, 2), K.BOTH)
    pos, rot = ref_leg_frames(q, K.BOTH)[2:]
    pos = pos.copy()
    pos[: n // 4, :, 2] -= 0.2    # out of reach: the knee stretches (c clipped to l1 + l2)
    pos[n // 4: n // 3, :, 2] += 0.25  # foot up at the hip (c clipped below)
    return pos, rot


@pytest.mark.parametrize("iterations", [0, 2])
def test_leg_ik_of_one_pose_per_leg_equals_the_batched_path(iterations):
    """leg_ik's seeds in floats (one pose per leg: the controller) against the numpy seeds of a batch."""
    rng = np.random.default_rng(24)
    pos, rot = reach_test_poses(rng, 400)
    batched = K.leg_ik(pos, rot, K.BOTH, KIN, iterations=iterations)  # [400, 2, 6]: the numpy seed
    seed = K._ik_seed(pos, rot, K.BOTH, KIN)
    for _ in range(2):
        seed = K._ik_seed(pos, rot, K.BOTH, KIN, guess=seed)
    for i in range(len(pos)):
        np.testing.assert_allclose(K.leg_ik(pos[i:i + 1], rot[i:i + 1], K.BOTH, KIN, iterations=iterations),
                                   batched[i:i + 1], rtol=0, atol=ATOL)
        for side in (K.LEFT, K.RIGHT):
            np.testing.assert_allclose(K.leg_ik(pos[i, side], rot[i, side], side, KIN, iterations=iterations),
                                       batched[i, side], rtol=0, atol=ATOL)
            got = K._ik_seed_one(pos[i, side].tolist(), rot[i, side].tolist(), side, KIN, 2)
            np.testing.assert_allclose(got, seed[i, side], rtol=0, atol=ATOL)


def test_arm_fk_by_pairs_equals_the_walk_along_each_chain():
    arm = K.arm_kinematics()
    q = np.random.default_rng(12).uniform(-1.5, 1.5, (50, 14))
    for rows in (q, q[:1]):
        (pos, rot), (ref_pos, ref_rot) = arm.fk(rows), arm._fk_chains(rows)
        np.testing.assert_allclose(pos, ref_pos, rtol=0, atol=ATOL)
        np.testing.assert_allclose(rot, ref_rot, rtol=0, atol=ATOL)


# ---------------------------------------------------------------------- observations, actions, reference
def test_unit_clip_is_np_clip():
    x = np.array([-np.inf, -1.0, -0.0, 0.0, 0.3, 1.0, 2.0, np.inf, np.nan])
    np.testing.assert_array_equal(unit_clip(x), np.clip(x, 0.0, 1.0))
    assert unit_clip(0.5) == 0.5 and min_jerk(2.0) == 1.0
    np.testing.assert_array_equal(swing_phase([0.1, 0.5, 0.0], [0.4, 0.4, 0.0]), [0.75, 0.0, 0.0])


def test_obs_build_is_the_concatenation_of_scaled_fields_with_the_same_training_noise():
    spec = pio.LEG_OBS_RESIDUAL_STEP
    rng = np.random.default_rng(13)
    values = {f.name: rng.normal(size=(4, f.size)) for f in spec.fields}
    expected = np.concatenate([f.scale * values[f.name] for f in spec.fields], axis=-1).astype(np.float32)
    np.testing.assert_array_equal(spec.build(values), expected)
    noise_rng = np.random.default_rng(14)  # noise drawn field by field, in field order, as before
    noisy = [f.scale * (values[f.name] + noise_rng.normal(0.0, f.noise_std * 0.5, (4, f.size)))
             if f.noise_std > 0 else f.scale * values[f.name] for f in spec.fields]
    np.testing.assert_array_equal(spec.build(values, np.random.default_rng(14), noise_scale=0.5),
                                  np.concatenate(noisy, axis=-1).astype(np.float32))
    assert not spec.scales.flags.writeable and spec.scales.shape == (spec.dim,)


def test_action_to_targets_is_the_clipped_affine_map():
    table = load_joint_table()
    rng = np.random.default_rng(15)
    for spec in (pio.ARM_ACTION, pio.LEG_ACTION_RESIDUAL):
        action = rng.normal(0.0, 10.0, (6, spec.dim))
        idx = spec.indices(table)
        base = table.default_q[idx] + rng.normal(0.0, 0.5, (6, spec.dim)) if spec.base == "reference" else None
        zero = table.default_q[idx] if base is None else base
        expected = np.clip(zero + spec.scale * np.clip(action, -spec.clip, spec.clip), table.lower[idx],
                           table.upper[idx])
        np.testing.assert_array_equal(pio.action_to_targets(spec, action, table, base), expected)


def walking_commands(n, steps=60, seed=16):
    planner = FootstepPlanner(n)
    vel = np.random.default_rng(seed).uniform([-0.2, -0.1, -0.3], [0.4, 0.1, 0.3], (n, 3))
    return [planner.update(0.02, vel) for _ in range(steps)]


def test_flat_ground_reference_equals_the_reference_with_zero_heights():
    motion = ReferenceMotion()
    for cmds in walking_commands(5)[::7]:
        f = cmds.footstep
        args = (f.swing_foot, f.phase, f.step_duration, cmds.feet_world, cmds.target_world)
        flat = motion.compute(*args, with_velocity=True)
        zero = motion.compute(*args, with_velocity=True, feet_z=np.zeros((5, 2)), target_z=np.zeros(5))
        for name in ("joint_pos", "trunk_pos", "trunk_quat", "foot_pos", "foot_yaw", "com_pos", "joint_vel",
                     "trunk_lin_vel", "foot_lin_vel"):
            np.testing.assert_array_equal(getattr(flat, name), getattr(zero, name), err_msg=name)


FRAME_FIELDS = ("joint_pos", "trunk_pos", "trunk_quat", "trunk_yaw", "foot_pos", "foot_yaw", "com_pos")


@pytest.mark.parametrize("iterations", [0, 2])
def test_reference_frame_of_one_row_equals_the_batched_frame(iterations):
    """ReferenceMotion._frame_one (N = 1, floats) against the batched _frame, row by row: walking at several
    velocities, standing rows, flat ground and ground heights (steps up and down), with velocities."""
    motion = ReferenceMotion(ReferenceMotionConfig(ik_iterations=iterations))
    n, rng = 6, np.random.default_rng(25)
    planner = FootstepPlanner(n)
    vel = rng.uniform([-0.2, -0.1, -0.3], [0.4, 0.1, 0.3], (n, 3))
    vel[:2] = 0.0  # two rows stand
    phases_seen = set()
    for step in range(150):
        if step == 75:
            vel[2] = 0.0  # and one stops walking
        cmds = planner.update(0.02, vel)
        f = cmds.footstep
        phases_seen |= set(np.asarray(f.swing_foot).tolist())
        if step % 3:
            continue  # every third step: the phases of a 0.5 s step in 0.06 s strides
        heights = {"feet_z": rng.uniform(-0.1, 0.1, (n, 2)), "target_z": rng.uniform(-0.1, 0.1, n)}
        for kw in ({}, heights):
            batch = motion.compute(f.swing_foot, f.phase, f.step_duration, cmds.feet_world, cmds.target_world,
                                   with_velocity=True, **kw)
            for i in range(n):
                row = {k: v[i:i + 1] for k, v in kw.items()}
                one = motion.compute(f.swing_foot[i:i + 1], f.phase[i:i + 1], f.step_duration[i:i + 1],
                                     cmds.feet_world[i:i + 1], cmds.target_world[i:i + 1], with_velocity=True, **row)
                for name in FRAME_FIELDS + ("trunk_lin_vel", "foot_lin_vel"):
                    want = getattr(batch, name)[i:i + 1]
                    assert getattr(one, name).shape == want.shape, name
                    np.testing.assert_allclose(getattr(one, name), want, rtol=0, atol=ATOL, err_msg=name)
                # joint velocities are differences of joint angles over 2 x velocity_dt: 1e-12 / 0.01
                np.testing.assert_allclose(one.joint_vel, batch.joint_vel[i:i + 1], rtol=0, atol=100 * ATOL)
    assert phases_seen == {SWING_NONE, SWING_LEFT, SWING_RIGHT}


def test_stance_frame_reference_of_all_rows_equals_that_of_the_listed_rows():
    n = 4
    table = load_joint_table()
    legs = pio.LEG_ACTION.indices(table)
    every, listed = StanceFrameReference(n, heights=True), StanceFrameReference(n, heights=True)
    rng = np.random.default_rng(17)
    for cmds in walking_commands(n, 80):
        f = cmds.footstep
        f = Footstep(f.swing_foot, f.countdown, f.step_duration, f.target, f.step_index, rng.uniform(-0.05, 0.05, n))
        q12 = table.default_q[legs] + rng.normal(0.0, 0.05, (n, 12))
        gravity = np.array([0.0, 0.0, -1.0]) + rng.normal(0.0, 0.03, (n, 3))
        a = every.update_frame(q12, gravity, f)
        b = listed.update_frame(q12, gravity, f, rows=np.arange(n))
        np.testing.assert_array_equal(a.joint_pos, b.joint_pos)
        np.testing.assert_array_equal(a.foot_pos, b.foot_pos)


def test_bench_controller_runs_and_prints_its_figures(capsys, tmp_path):
    """`refine-dp bench controller` end to end on a few steps (figures printed, never asserted)."""
    from refine_dp.cli import build_parser

    out = tmp_path / "controller.json"
    args = build_parser().parse_args(["bench", "controller", "--steps", "5", "--batch", "3", "--batch-steps", "2",
                                      "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "refine-dp bench controller" in printed and "N = 1 (5 steps)" in printed and "N = 3 (2 steps)" in printed
    assert "load average" in printed and out.is_file()
    assert "ONNX Runtime alone" in printed and "step / ONNX" in printed and "node cycle" in printed
