"""policy_io (observation/action definitions shared by the env and the node) and policy_runtime (ONNX)."""
import json

import mujoco
import numpy as np
import pytest
import torch

from loco_manip_controller import contract
from loco_manip_controller import policy_io as pio
from loco_manip_controller import policy_runtime as pr
from loco_manip_controller.footstep_planner import Footstep, FootstepPlannerConfig
from loco_manip_controller.reference_motion import ReferenceMotion, ReferenceMotionConfig, StanceFrameReference
from t1_description.joint_table import load_joint_table
from t1_description.kinematics import arm_kinematics, quat_wxyz_to_matrix
from t1_description.model_paths import load_model, robot_indices


def test_arm_fk_equals_mujoco_hand_sites_in_root_frame():
    m = load_model("floor")
    d = mujoco.MjData(m)
    idx = robot_indices(m)
    jt = load_joint_table()
    rng = np.random.default_rng(1)
    arms = pio.ARM_ACTION.indices(jt)
    for _ in range(3):
        q = rng.uniform(jt.lower, jt.upper)
        d.qpos[idx.qpos] = q
        quat = rng.normal(size=4)
        d.qpos[idx.root_qpos[3:]] = quat / np.linalg.norm(quat)
        mujoco.mj_forward(m, d)
        rot_root, p_root = d.xmat[idx.root_body].reshape(3, 3), d.xpos[idx.root_body]
        pos, rot = arm_kinematics().fk(q[arms][None])
        for h, site in enumerate(idx.hand_sites):
            np.testing.assert_allclose(pos[0, h], rot_root.T @ (d.site_xpos[site] - p_root), atol=1e-9)
            np.testing.assert_allclose(rot[0, h], rot_root.T @ d.site_xmat[site].reshape(3, 3), atol=1e-9)
        g = pio.projected_gravity(d.qpos[idx.root_qpos[3:]][None])[0]
        np.testing.assert_allclose(g, rot_root.T @ np.array([0, 0, -1.0]), atol=1e-12)


def test_projected_gravity_from_rpy_matches_quaternion():
    from scipy.spatial.transform import Rotation
    rpy = np.array([[0.1, -0.2, 1.0], [0.0, 0.3, -2.0]])
    q = Rotation.from_euler("xyz", rpy).as_quat()[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(pio.projected_gravity_from_rpy(rpy), pio.projected_gravity(q), atol=1e-12)


def test_action_to_targets_default_and_limits():
    jt = load_joint_table()
    idx = pio.LEG_ACTION.indices(jt)
    np.testing.assert_allclose(pio.action_to_targets(pio.LEG_ACTION, np.zeros((2, 12))), np.tile(jt.default_q[idx], (2, 1)))
    big = pio.action_to_targets(pio.LEG_ACTION, np.full((1, 12), 1e3))
    assert np.all(big <= jt.upper[idx] + 1e-12) and np.all(big >= jt.lower[idx] - 1e-12)
    full = pio.full_targets({"legs": big}, 1, jt)
    np.testing.assert_allclose(full[0, idx], big[0])
    assert full.shape == (1, 29) and np.allclose(np.delete(full[0], idx), np.delete(jt.default_q, idx))


def test_obs_spec_build_checks_and_roundtrip():
    spec = pio.LEG_OBS
    assert pio.ObsSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    values = {f.name: np.zeros((3, f.size)) for f in spec.fields}
    assert spec.build(values).shape == (3, 64)
    bad = dict(values, gyro=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="gyro"):
        spec.build(bad)
    with pytest.raises(ValueError, match="missing fields"):
        spec.build({k: v for k, v in values.items() if k != "countdown"})
    nan = dict(values, projected_gravity=np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="projected_gravity"):
        spec.build(nan)
    noisy = spec.build(values, rng=np.random.default_rng(0))
    sl = spec.slices()
    assert np.std(noisy[:, sl["leg_joint_vel"]]) > 0 and np.all(noisy[:, sl["target_pose"]] == 0)


def _random_actor(obs_dim, act_dim):
    from refine_dp_training.rl import ActorCritic
    ac = ActorCritic(obs_dim, act_dim)
    ac.normalizer.update(torch.randn(256, obs_dim) * 2.0 + 0.5)
    torch.nn.init.normal_(ac.actor[-1].weight, std=0.3)  # outputs O(1), as a trained actor's
    return ac


@pytest.mark.parametrize("part", ["legs", "arms"])
def test_onnx_export_matches_torch_and_metadata_roundtrips(tmp_path, part):
    obs_spec, act_spec = pio.SPECS[part]
    ac = _random_actor(obs_spec.dim, act_spec.dim)
    path = pr.export_onnx(ac.actor, ac.normalizer, obs_spec.dim, tmp_path / f"{part}.onnx", pr.build_metadata(part))
    policy = pr.OnnxPolicy(path, expect_part=part)
    x = torch.randn(7, obs_spec.dim) * 3.0
    np.testing.assert_allclose(policy(x.numpy()), ac.act_inference(x).numpy(), atol=1e-5)
    assert json.loads((tmp_path / f"{part}.json").read_text())["part"] == part
    with pytest.raises(pr.PolicyMetadataError, match="needed here"):
        pr.OnnxPolicy(path, expect_part="arms" if part == "legs" else "legs")


def _footstep(swing_foot, countdown, step_duration, target, step_index=None) -> Footstep:
    n = len(swing_foot)
    return Footstep(np.asarray(swing_foot, np.uint8), np.asarray(countdown, float), np.asarray(step_duration, float),
                    np.asarray(target, float), np.zeros(n, np.uint32) if step_index is None else np.asarray(step_index))


def _export_with(tmp_path, meta):
    ac = _random_actor(pio.LEG_OBS.dim, 12)
    return pr.export_onnx(ac.actor, ac.normalizer, pio.LEG_OBS.dim, tmp_path / "legs.onnx", meta)


def test_runtime_refuses_mismatched_obs_spec(tmp_path):
    meta = pr.build_metadata("legs")
    meta["obs_spec"]["fields"][1]["scale"] = 0.5  # gyro trained with another scale
    path = _export_with(tmp_path, meta)
    with pytest.raises(pr.PolicyMetadataError, match=r"obs_spec\.fields\[gyro\]\.scale"):
        pr.OnnxPolicy(path)


def test_runtime_refuses_mismatched_joints_and_gains(tmp_path):
    meta = pr.build_metadata("legs")
    meta["joints"]["default_q"][3] += 0.1
    with pytest.raises(pr.PolicyMetadataError, match=r"joints\.default_q\[3\]"):
        pr.OnnxPolicy(_export_with(tmp_path, meta))
    meta = pr.build_metadata("legs")
    meta["joints"]["kp"][4] = 50.0  # ankle pitch trained at another gain
    path = _export_with(tmp_path, meta)
    with pytest.raises(pr.PolicyMetadataError, match=r"joints\.kp\[4\]"):
        pr.OnnxPolicy(path)
    assert pr.OnnxPolicy(path, check_gains=False).part == "legs"  # explicit opt-out works
    meta = pr.build_metadata("legs")
    meta["joints"]["names"] = list(reversed(meta["joints"]["names"]))
    with pytest.raises(pr.PolicyMetadataError, match=r"joints\.names\[0\]"):
        pr.OnnxPolicy(_export_with(tmp_path, meta))


def test_runtime_missing_file_and_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it"):
        pr.OnnxPolicy(tmp_path / "nope.onnx")
    meta = pr.build_metadata("legs")
    meta["format"] = "other/0"
    with pytest.raises(pr.PolicyMetadataError, match="format"):
        pr.OnnxPolicy(_export_with(tmp_path, meta))


def test_low_level_controller_drives_only_its_joints(tmp_path):
    jt = load_joint_table()
    legs = _random_actor(pio.LEG_OBS.dim, 12)
    arms = _random_actor(pio.ARM_OBS.dim, 14)
    pl = pr.export_onnx(legs.actor, legs.normalizer, pio.LEG_OBS.dim, tmp_path / "legs.onnx", pr.build_metadata("legs"))
    pa = pr.export_onnx(arms.actor, arms.normalizer, pio.ARM_OBS.dim, tmp_path / "arms.onnx", pr.build_metadata("arms"))
    ctrl = pr.LowLevelController(pl, pa, num_envs=2)
    q = np.tile(jt.default_q, (2, 1))
    tp, tr = arm_kinematics().fk(q[:, pio.ARM_ACTION.indices(jt)])
    q_des = ctrl.step(q, np.zeros((2, 29)), np.tile([0, 0, -1.0], (2, 1)), np.zeros((2, 3)), Footstep.standing(2),
                      tp, tr)
    legs_idx, arms_idx = pio.LEG_ACTION.indices(jt), pio.ARM_ACTION.indices(jt)
    np.testing.assert_allclose(q_des[:, legs_idx], pio.action_to_targets(pio.LEG_ACTION, ctrl.leg_action))
    np.testing.assert_allclose(q_des[:, arms_idx], pio.action_to_targets(pio.ARM_ACTION, ctrl.arm_action))
    others = np.setdiff1d(np.arange(29), np.concatenate([legs_idx, arms_idx]))
    np.testing.assert_allclose(q_des[:, others], np.tile(jt.default_q[others], (2, 1)))  # waist, head
    assert np.abs(ctrl.leg_action).max() > 0  # the policy really ran
    with pytest.raises(pr.PolicyMetadataError):
        pr.LowLevelController(legs=pa)  # an arms policy in the legs slot


def test_arm_targets_are_low_passed_and_the_filter_restarts_on_reset(tmp_path):
    jt = load_joint_table()
    arms = _random_actor(pio.ARM_OBS.dim, 14)
    pa = pr.export_onnx(arms.actor, arms.normalizer, pio.ARM_OBS.dim, tmp_path / "arms.onnx", pr.build_metadata("arms"))
    ctrl = pr.LowLevelController(None, pa, num_envs=2, arm_target_alpha=0.4)
    rng = np.random.default_rng(3)
    idx = pio.ARM_ACTION.indices(jt)

    def step():
        q = jt.default_q + rng.normal(0, 0.1, (2, 29))
        tp, tr = arm_kinematics().fk(q[:, idx])
        return ctrl.step(q, np.zeros((2, 29)), np.tile([0, 0, -1.0], (2, 1)), np.zeros((2, 3)), None, tp, tr)[:, idx]

    raw = lambda: pio.action_to_targets(pio.ARM_ACTION, ctrl.arm_action)  # noqa: E731
    first = step()
    np.testing.assert_allclose(first, raw())                    # starts at the policy's own target
    second = step()
    np.testing.assert_allclose(second, 0.4 * raw() + 0.6 * first)
    assert not np.allclose(second, raw())
    ctrl.reset(np.array([True, False]))
    third = step()
    np.testing.assert_allclose(third[0], raw()[0])              # restarted
    np.testing.assert_allclose(third[1], 0.4 * raw()[1] + 0.6 * second[1])
    off = pr.LowLevelController(None, pa, num_envs=2, arm_target_alpha=1.0)
    ctrl = off
    step(), step()
    np.testing.assert_allclose(step(), raw())
    with pytest.raises(ValueError, match="arm_target_alpha"):
        pr.LowLevelController(None, pa, arm_target_alpha=0.0)


def test_residual_leg_variant_adds_the_action_to_the_reference(tmp_path):
    """The residual leg policy: its metadata names the variant, the runtime builds the 76-wide observation
    with the reference and adds scale * action to StanceFrameReference's joints; old files stay absolute."""
    jt = load_joint_table()
    obs_spec, act_spec = pio.specs("legs", "residual")
    assert obs_spec.dim == pio.LEG_OBS.dim + 12 and act_spec.base == "reference"
    with pytest.raises(ValueError, match="base="):
        pio.action_to_targets(act_spec, np.zeros((1, 12)))
    with pytest.raises(ValueError, match="no variant 'residual'"):
        pio.specs("arms", "residual")
    ac = _random_actor(obs_spec.dim, 12)
    path = pr.export_onnx(ac.actor, ac.normalizer, obs_spec.dim, tmp_path / "legs.onnx",
                          pr.build_metadata("legs", variant="residual"))
    ctrl = pr.LowLevelController(path, None, num_envs=2)
    assert ctrl.legs.variant == "residual" and ctrl.leg_reference is not None
    q = np.tile(jt.default_q, (2, 1))
    fs = _footstep(swing_foot=[1, 0], countdown=[0.3, 0.0], step_duration=[0.5, 0.0], target=[[0.1, 0.2, 0], [0] * 3])
    gravity = np.tile([0, 0, -1.0], (2, 1))
    q_des = ctrl.step(q, np.zeros((2, 29)), gravity, np.zeros((2, 3)), fs, None, None)
    legs = pio.LEG_ACTION.indices(jt)
    ref = StanceFrameReference(2).update(q[:, legs], gravity, fs)
    assert np.abs(ref[0] - jt.default_q[legs]).max() > 0.1  # mid-swing: far from the default pose
    np.testing.assert_allclose(q_des[:, legs], np.clip(ref + 0.25 * np.clip(ctrl.leg_action, -8, 8),
                                                       jt.lower[legs], jt.upper[legs]), atol=1e-9)
    # a file exported before variants existed (no "variant" key) is an absolute policy
    meta = pr.build_metadata("legs")
    del meta["variant"]
    old = pr.OnnxPolicy(_export_with(tmp_path, meta))
    assert old.variant == "absolute" and old.obs_spec == pio.LEG_OBS
    # a residual file whose spec lacks the reference field is refused, naming the field
    meta = pr.build_metadata("legs", variant="residual")
    meta["obs_spec"]["fields"] = meta["obs_spec"]["fields"][:-1]
    with pytest.raises(pr.PolicyMetadataError, match="obs_spec"):
        pr.OnnxPolicy(pr.export_onnx(ac.actor, ac.normalizer, obs_spec.dim, tmp_path / "bad.onnx", meta))


def test_quaternion_matrix_equals_scipy_for_any_batch_shape():
    from scipy.spatial.transform import Rotation

    q = np.random.default_rng(12).normal(size=(3, 5, 4)) * 2.0  # not unit: normalized first
    expected = Rotation.from_quat(q.reshape(-1, 4)[:, [1, 2, 3, 0]]).as_matrix().reshape(3, 5, 3, 3)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q), expected, atol=1e-12)
    np.testing.assert_allclose(quat_wxyz_to_matrix([1.0, 0, 0, 0]), np.eye(3))


# ---------------------------------------------------------------------- the policy contract
def _residual_legs(tmp_path, name="legs", **contract_changes):
    """A residual legs file whose contract is this code's defaults changed by `contract_changes`
    ({"reference_motion": ReferenceMotionConfig(...), "footstep_planner": ..., "control_hz": ...})."""
    obs_spec, _ = pio.specs("legs", "residual")
    parts = {"control_hz": 50.0, "footstep_planner": FootstepPlannerConfig(),
             "reference_motion": ReferenceMotionConfig()} | contract_changes
    policy_contract = contract.contract_of("legs", parts["control_hz"], parts["footstep_planner"],
                                           parts["reference_motion"])
    meta = pr.build_metadata("legs", variant="residual", physics_dt=1.0 / (4 * parts["control_hz"]),
                             policy_contract=policy_contract)
    ac = _random_actor(obs_spec.dim, 12)
    return pr.export_onnx(ac.actor, ac.normalizer, obs_spec.dim, tmp_path / f"{name}.onnx", meta)


def test_controller_builds_its_reference_from_the_legs_contract(tmp_path):
    """The reference a residual legs policy adds to is the one it was trained on: the metadata's
    reference_motion (the shipped legs: 0 IK Newton steps), not the code's defaults (2 steps)."""
    jt = load_joint_table()
    trained = ReferenceMotionConfig(ik_iterations=0, swing_apex=0.05)
    ctrl = pr.LowLevelController(_residual_legs(tmp_path, reference_motion=trained), None, num_envs=2)
    assert ctrl.leg_reference.motion.config == trained
    legs = pio.LEG_ACTION.indices(jt)
    rng = np.random.default_rng(4)
    q = jt.default_q + rng.normal(0, 0.05, (2, 29))
    gravity = np.tile([0.05, 0.0, -1.0], (2, 1)) / np.linalg.norm([0.05, 0.0, -1.0])
    fs = _footstep(swing_foot=[1, 2], countdown=[0.3, 0.1], step_duration=[0.5, 0.5],
                   target=[[0.1, 0.2, 0.1], [0.05, -0.2, 0.0]])
    q_des = ctrl.step(q, np.zeros((2, 29)), gravity, np.zeros((2, 3)), fs, None, None)
    expected = StanceFrameReference(2, ReferenceMotion(trained)).update(q[:, legs], gravity, fs)
    np.testing.assert_allclose(q_des[:, legs], np.clip(expected + 0.25 * np.clip(ctrl.leg_action, -8, 8),
                                                       jt.lower[legs], jt.upper[legs]), atol=1e-12)
    default = StanceFrameReference(2).update(q[:, legs], gravity, fs)  # what the controller built before
    assert np.abs(default - expected).max() > 1e-3
    assert ctrl.footstep_config == FootstepPlannerConfig() and ctrl.control_hz == 50.0


def test_contradictions_of_the_contract_are_refused_naming_both_values(tmp_path):
    legs = _residual_legs(tmp_path)
    with pytest.raises(pr.PolicyMetadataError, match=r"control_hz: caller expects 100.0, policy has 50.0"):
        pr.LowLevelController(legs, control_hz=100.0)
    assert pr.LowLevelController(legs, control_hz=50.0).control_hz == 50.0
    arms = _random_actor(pio.ARM_OBS.dim, 14)
    slow_arms = pr.export_onnx(arms.actor, arms.normalizer, pio.ARM_OBS.dim, tmp_path / "arms.onnx",
                               pr.build_metadata("arms", physics_dt=0.01))  # 25 Hz
    with pytest.raises(pr.PolicyMetadataError, match=r"control_hz: caller expects 50.0, policy has 25.0"):
        pr.LowLevelController(legs, slow_arms)
    meta = pr.read_metadata(legs)
    with pytest.raises(pr.PolicyMetadataError, match=r"footstep_planner\.step_period: caller expects 0.6, policy has "
                                                     r"0.5.*footstep_planner\.max_turn: caller expects 0.3"):
        contract.footstep_planner_config(meta, {"step_period": 0.6, "max_turn": 0.3, "step_width": 0.2})
    # unset (None) takes the policy's; an agreeing value is accepted; without a policy the parameters apply
    assert contract.footstep_planner_config(meta, {"step_period": None, "step_width": 0.2}) == FootstepPlannerConfig()
    assert contract.footstep_planner_config(None, {"step_period": 0.6}).step_period == 0.6
    with pytest.raises(pr.PolicyMetadataError, match="unknown fields .'stride'."):
        contract.footstep_config(meta | {"footstep_planner": meta["footstep_planner"] | {"stride": 1.0}})


def test_legs_metadata_without_the_contract_is_refused_naming_the_fix(tmp_path):
    meta = pr.read_metadata(_residual_legs(tmp_path))
    del meta["footstep_planner"], meta["reference_motion"]
    ac = _random_actor(pio.LEG_OBS.dim + 12, 12)
    old = pr.export_onnx(ac.actor, ac.normalizer, pio.LEG_OBS.dim + 12, tmp_path / "old.onnx", meta)
    with pytest.raises(pr.PolicyMetadataError, match=r"no footstep_planner, reference_motion .*refine-dp ship "
                                                     r"controller --fill-contract"):
        pr.OnnxPolicy(old)


def test_the_action_scale_is_the_policy_files_own(tmp_path):
    """The runtime builds the action mapping from the metadata (scale, clip); the driven joints are checked."""
    jt = load_joint_table()
    meta = pr.build_metadata("legs")
    meta["action_spec"]["scale"], meta["action_spec"]["clip"] = 0.5, 2.0
    ctrl = pr.LowLevelController(_export_with(tmp_path, meta), None, num_envs=1)
    q = jt.default_q[None]
    q_des = ctrl.step(q, np.zeros((1, 29)), np.array([[0, 0, -1.0]]), np.zeros((1, 3)), None, None, None)
    legs = pio.LEG_ACTION.indices(jt)
    np.testing.assert_allclose(q_des[:, legs], np.clip(jt.default_q[legs] + 0.5 * np.clip(ctrl.leg_action, -2, 2),
                                                       jt.lower[legs], jt.upper[legs]))
    meta["action_spec"]["joint_names"] = meta["action_spec"]["joint_names"][::-1]
    with pytest.raises(pr.PolicyMetadataError, match=r"action_spec\.joint_names\[0\]"):
        pr.OnnxPolicy(_export_with(tmp_path, meta))


def test_one_metadata_check_names_every_difference():
    """t1_description.contract.check_metadata: the controller's policies and the planner's engines share it."""
    from refine_dp_planner.engines.metadata import MetadataMismatchError
    from refine_dp_planner.engines.metadata import check_metadata as check_engine
    from t1_description.contract import ContractMismatchError, check_metadata

    meta = {"rate_hz": 10.0, "obs_fields": [["hands", 18], ["gravity", 3]], "spec": {"fields": [
        {"name": "gyro", "scale": 0.25}], "dim": 3}, "extra": 1}
    check_metadata(meta, {"rate_hz": 10.0 + 1e-9, "obs_fields": (("hands", 18), ("gravity", 3))})  # JSON-equal
    with pytest.raises(ContractMismatchError) as err:
        check_metadata(meta, {"rate_hz": 20.0, "spec": {"fields": [{"name": "gyro", "scale": 0.5}], "dim": 3},
                              "obs_fields": [["hands", 18]], "act_steps": 4}, "x.onnx", holder="policy")
    text = str(err.value)
    for part in ("rate_hz: caller expects 20.0, policy has 10.0", "spec.fields[gyro].scale: caller expects 0.5, "
                 "policy has 0.25", "obs_fields: caller expects [['hands', 18]] (1 entries)",
                 "act_steps: caller expects 4, policy has nothing"):
        assert part in text, text
    with pytest.raises(MetadataMismatchError, match="rate_hz: caller expects 20.0, engine has 10.0"):
        check_engine(meta, {"rate_hz": 20.0})
    assert issubclass(MetadataMismatchError, ContractMismatchError)
    assert issubclass(pr.PolicyMetadataError, ContractMismatchError)
