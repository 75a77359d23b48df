"""The T1 model: joint table, generated MJCF/URDF, their agreement, and a PD stand in MuJoCo."""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
import pytest

from t1_description.joint_table import (
    ARM_GROUPS,
    LEG_GROUPS,
    NUM_JOINTS,
    JointTableError,
    load_joint_table,
    parse_joint_table,
)
from t1_description.model import generate
from t1_description.model_paths import (
    available_scenes,
    load_model,
    mjcf_path,
    robot_indices,
    urdf_path,
)
from t1_description.pd import pd_torque
from t1_description.urdf_kinematics import forward_kinematics, parse_urdf

FRAMES = ("left_hand", "right_hand", "left_foot", "right_foot")


@pytest.fixture(scope="module")
def jt():
    return load_joint_table()


@pytest.fixture(scope="module")
def model():
    return load_model("floor")


@pytest.fixture(scope="module")
def urdf():
    return parse_urdf(urdf_path())


# ----------------------------------------------------------------------------- joint table
def test_joint_table_order_and_groups(jt):
    assert NUM_JOINTS == len(jt.names) == 29
    assert jt.names[:2] == ("AAHead_yaw", "Head_pitch")
    assert jt.names[16] == "Waist"
    assert jt.names[17] == "Left_Hip_Pitch" and jt.names[28] == "Right_Ankle_Roll"
    assert jt.names[21] == "Left_Ankle_Pitch" and jt.names[22] == "Left_Ankle_Roll"
    np.testing.assert_array_equal(jt.sdk_index, np.arange(29))  # model order == SDK order
    np.testing.assert_array_equal(jt.indices("left_arm"), np.arange(2, 9))
    np.testing.assert_array_equal(jt.indices("right_arm"), np.arange(9, 16))
    np.testing.assert_array_equal(jt.indices(*LEG_GROUPS), np.arange(17, 29))
    assert len(jt.indices(*ARM_GROUPS)) == 14 and jt.LEG_GROUPS == LEG_GROUPS
    np.testing.assert_array_equal(jt.indices("Waist", "head"), [0, 1, 16])
    assert jt.index("Right_Knee_Pitch") == 26
    with pytest.raises(KeyError, match="Left_Knee"):
        jt.index("Left_Knee")
    with pytest.raises(KeyError, match="neither a joint group"):
        jt.indices("legs")
    for arr in (jt.lower, jt.upper, jt.default_q, jt.kp, jt.kd, jt.armature, jt.effort_limit, jt.velocity_limit):
        assert arr.dtype == np.float64 and arr.shape == (29,)
    assert np.all(jt.lower < jt.default_q) and np.all(jt.default_q < jt.upper)
    legs = jt.indices("left_leg")
    np.testing.assert_allclose(jt.default_q[legs], [-0.2, 0, 0, 0.4, -0.25, 0])
    np.testing.assert_allclose(jt.default_q[jt.indices("right_leg")], jt.default_q[legs])
    assert load_joint_table() is jt  # cached


def test_default_arms_hang_beside_the_body(jt, urdf):
    poses = forward_kinematics(urdf, dict(zip(jt.names, jt.default_q)))
    for side, sign in (("left", 1), ("right", -1)):
        hand = poses[f"{side}_hand"][:3, 3]
        shoulder = poses["AL1" if side == "left" else "AR1"][:3, 3]
        hip = poses["Hip_Pitch_Left" if side == "left" else "Hip_Pitch_Right"][:3, 3]
        assert shoulder[2] - hand[2] > 0.3, f"{side} hand is not hanging below the shoulder"
        assert sign * hand[1] > sign * shoulder[1] > 0, f"{side} hand is not on its own side, outside the shoulder"
        assert sign * hand[1] > sign * hip[1] + 0.1, f"{side} hand would be in front of the thigh"
    # Mirror symmetry of the pose: right = left with y negated.
    lh, rh = poses["left_hand"][:3, 3], poses["right_hand"][:3, 3]
    np.testing.assert_allclose(rh, lh * [1, -1, 1], atol=1e-3)


def test_sdk_maps_round_trip(jt):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 29))
    np.testing.assert_array_equal(jt.sdk_to_model(jt.model_to_sdk(x)), x)
    np.testing.assert_array_equal(jt.model_to_sdk(jt.sdk_to_model(x)), x)
    # The maps must really permute when the SDK order differs from the model order.
    perm = rng.permutation(29)
    shuffled = dataclasses.replace(jt, sdk_index=perm)
    v = np.arange(29.0)
    sdk = shuffled.model_to_sdk(v)
    np.testing.assert_array_equal(sdk[perm], v)
    np.testing.assert_array_equal(shuffled.sdk_to_model(sdk), v)
    with pytest.raises(ValueError, match="29 joints"):
        jt.model_to_sdk(np.zeros(28))


def test_clip_position(jt):
    q = np.stack([jt.lower - 1.0, jt.upper + 1.0, jt.default_q])
    clipped = jt.clip_position(q)
    np.testing.assert_array_equal(clipped[0], jt.lower)
    np.testing.assert_array_equal(clipped[1], jt.upper)
    np.testing.assert_array_equal(clipped[2], jt.default_q)


def test_loader_errors_name_file_and_entry(tmp_path, jt):
    text = jt.source.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("group: waist", "group: torso"))
    with pytest.raises(JointTableError, match=r"bad\.yaml.*joints\[16\] \(Waist\).*torso"):
        parse_joint_table(bad)
    bad.write_text(text.replace("sdk_index: 28", "sdk_index: 27"))
    with pytest.raises(JointTableError, match=r"bad\.yaml.*permutation.*Right_Ankle_Pitch=27"):
        parse_joint_table(bad)
    bad.write_text(text.replace("default:  0.4,", "default:  3.0,", 1))
    with pytest.raises(JointTableError, match=r"Left_Knee_Pitch.*default 3\.0 is outside"):
        parse_joint_table(bad)


def test_pd_torque():
    tau = pd_torque(q=np.array([0.0, 0.0, 1.0]), dq=np.array([0.0, 1.0, 0.0]), q_des=np.array([0.1, 0.0, 0.0]),
                    dq_des=0.0, kp=np.array([100.0, 10.0, 100.0]), kd=2.0, tau_ff=np.array([0.5, 0.0, 0.0]),
                    effort_limit=np.array([50.0, 50.0, 20.0]))
    np.testing.assert_allclose(tau, [10.5, -2.0, -20.0])


# ----------------------------------------------------------------------------- model files
def test_generated_files_are_up_to_date():
    for path, text in generate.build_all().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m t1_description.model.generate"


def test_paths_and_scene_errors():
    assert "floor" in available_scenes()
    assert mjcf_path("robot").name == "t1.xml" and urdf_path().suffix == ".urdf"
    with pytest.raises(FileNotFoundError, match="available scenes: .*floor"):
        mjcf_path("moon")


def test_mjcf_joints_in_table_order(model, jt):
    names = [model.joint(i).name for i in range(model.njnt)]
    types = model.jnt_type
    assert names[0] == "root" and types[0] == mujoco.mjtJoint.mjJNT_FREE
    hinges = [n for n, t in zip(names, types) if t == mujoco.mjtJoint.mjJNT_HINGE]
    slides = [n for n, t in zip(names, types) if t == mujoco.mjtJoint.mjJNT_SLIDE]
    assert tuple(hinges) == jt.names
    assert sorted(slides) == sorted(f"{s}_gripper_finger_{i}" for s in ("left", "right") for i in (1, 2))
    assert model.njnt == 1 + 29 + 4 and model.nq == 7 + 29 + 4
    idx = robot_indices(model)
    assert np.all(np.diff(idx.qpos) > 0), "table joints must appear in table order in qpos"
    np.testing.assert_array_equal(model.jnt_qposadr[[model.joint(n).id for n in jt.names]], idx.qpos)
    assert model.body(idx.root_body).name == "Trunk" and model.body("Trunk").parentid[0] == 0
    assert model.opt.timestep == pytest.approx(0.002)


def test_limits_axes_actuators_agree(model, urdf, jt):
    for i, name in enumerate(jt.names):
        mj = model.joint(name)
        np.testing.assert_allclose(mj.range, [jt.lower[i], jt.upper[i]], err_msg=name)
        assert mj.limited[0] == 1
        assert mj.armature[0] == pytest.approx(jt.armature[i])
        uj = urdf.joint(name)
        assert uj.type == "revolute"
        np.testing.assert_allclose([uj.lower, uj.upper, uj.effort, uj.velocity],
                                   [jt.lower[i], jt.upper[i], jt.effort_limit[i], jt.velocity_limit[i]], err_msg=name)
        np.testing.assert_allclose(mj.axis, uj.axis, atol=1e-12, err_msg=name)
        assert model.body(mj.bodyid[0]).name == uj.child
        act = model.actuator(name)
        assert act.trnid[0] == mj.id and act.gear[0] == 1.0 and act.ctrllimited[0] == 1
        np.testing.assert_allclose(act.ctrlrange, [-jt.effort_limit[i], jt.effort_limit[i]], err_msg=name)
        assert model.actuator_biastype[act.id] == mujoco.mjtBias.mjBIAS_NONE  # a pure motor
    assert model.nu == 31
    assert [model.actuator(i).name for i in range(29)] == list(jt.names)
    assert [model.actuator(i).name for i in (29, 30)] == ["left_gripper", "right_gripper"]


def test_total_mass(model):
    mass = model.body_subtreemass[model.body("Trunk").id]
    assert 30.0 <= mass <= 37.0


def test_sensors_present(model):
    dims = {"imu_quat": 4, "imu_gyro": 3, "imu_acc": 3, "left_foot_force": 1, "right_foot_force": 1,
            "trunk_pos": 3, "trunk_quat": 4, "trunk_linvel": 3, "trunk_angvel": 3}
    dims.update({f"{f}_pos": 3 for f in FRAMES})
    dims.update({f"{f}_quat": 4 for f in FRAMES})
    for name, dim in dims.items():
        assert model.sensor(name).dim[0] == dim, name
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("stand").id)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.sensor("trunk_pos").data, data.qpos[:3])
    np.testing.assert_allclose(data.sensor("trunk_quat").data, data.qpos[3:7])
    np.testing.assert_allclose(data.sensor("imu_quat").data, data.qpos[3:7])
    for f in FRAMES:
        np.testing.assert_allclose(data.sensor(f"{f}_pos").data, data.site(f).xpos)


def test_forward_kinematics_urdf_matches_mujoco(jt, urdf):
    model = load_model("robot")
    data = mujoco.MjData(model)
    idx = robot_indices(model)
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.uniform(jt.lower, jt.upper)
        data.qpos[:] = 0.0
        data.qpos[idx.root_qpos] = [0, 0, 0, 1, 0, 0, 0]
        data.qpos[idx.qpos] = q
        mujoco.mj_kinematics(model, data)
        poses = forward_kinematics(urdf, dict(zip(jt.names, q)))
        for f in FRAMES:
            site = model.site(f).id
            err = np.linalg.norm(poses[f][:3, 3] - data.site_xpos[site])
            assert err < 1e-3, f"{f}: URDF and MJCF differ by {err * 1000:.3f} mm"
            rot_err = np.linalg.norm(poses[f][:3, :3] - data.site_xmat[site].reshape(3, 3))
            assert rot_err < 1e-6, f"{f}: orientation differs ({rot_err})"
        for link in urdf.links:
            bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, link)
            if bid >= 0:
                np.testing.assert_allclose(poses[link][:3, 3], data.xpos[bid], atol=1e-6, err_msg=link)


def test_stand_keyframe_touches_floor(model):
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("stand").id)
    mujoco.mj_forward(model, data)
    for f in ("left_foot", "right_foot"):
        assert abs(data.site(f).xpos[2]) < 1e-6, f"{f} sole is not on the floor"
        zaxis = data.site(f).xmat.reshape(3, 3)[:, 2]
        assert zaxis[2] > 1 - 1e-9, f"{f} sole is not flat"
    assert 0.6 < data.qpos[2] < 0.72


def test_stands_10s_under_pd(model, jt):
    data = mujoco.MjData(model)
    idx = robot_indices(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("stand").id)
    nominal = data.qpos[2]
    heights, worst_violation = [], 0.0
    for _ in range(5000):
        q, dq = data.qpos[idx.qpos], data.qvel[idx.qvel]
        data.ctrl[idx.ctrl] = pd_torque(q, dq, jt.default_q, 0.0, jt.kp, jt.kd, 0.0, jt.effort_limit)
        mujoco.mj_step(model, data)
        heights.append(data.qpos[2])
        q = data.qpos[idx.qpos]
        worst_violation = max(worst_violation, float(np.max(np.maximum(jt.lower - q, q - jt.upper))))
    heights = np.array(heights)
    assert np.all(np.abs(heights - nominal) < 0.02), f"trunk height left +-2 cm: {heights.min():.3f}..{heights.max():.3f}"
    assert worst_violation <= 0.0, f"a joint went {worst_violation:.4f} rad beyond its limit"
    weight = model.body_subtreemass[idx.root_body] * -model.opt.gravity[2]
    feet = data.sensor("left_foot_force").data[0] + data.sensor("right_foot_force").data[0]
    assert feet == pytest.approx(weight, rel=0.05), "foot touch sensors should carry the weight"


def test_gripper_closes_and_opens():
    model = load_model("robot")
    model.opt.gravity[:] = 0.0
    data = mujoco.MjData(model)
    idx = robot_indices(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("stand").id)
    travel = model.jnt_range[model.joint("left_gripper_finger_1").id][1]
    for ctrl, expected in (([1.0, 0.0], [travel, 0.0]), ([0.0, 1.0], [0.0, travel])):
        data.ctrl[idx.gripper_ctrl] = ctrl
        for _ in range(300):
            mujoco.mj_step(model, data)
        fingers = data.qpos[idx.gripper_qpos]
        np.testing.assert_allclose(fingers, np.repeat(expected, 2), atol=2e-3)
    # The hand site is the grip centre: midway between the two finger pads.
    for side in ("left", "right"):
        pads = [data.geom(f"{side}_gripper_finger_{i}_pad").xpos for i in (1, 2)]
        np.testing.assert_allclose((pads[0] + pads[1]) / 2, data.site(f"{side}_hand").xpos, atol=1e-4)
