"""The pick-and-place, door and stairs tasks: specs, TaskEnv resets within the init ranges (pretrain vs OOD),
stepping, the door's hinged MoCap body, and each success test on a constructed state (and not otherwise)."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from refine_dp_training.tasks import get_task, task_names, terms
from refine_dp_training.tasks.terms import ObjectTruth, TaskState
from t1_description.kinematics import yaw_of_quat
from t1_description.model_paths import load_model
from t1_description.scenes import scene_facts

TASKS = ("pick_place", "door", "stairs")
Q0 = [1.0, 0.0, 0.0, 0.0]


def test_specs_registered_with_stages_and_status():
    assert set(TASKS) <= set(task_names())
    stages = {"pick_place": ("approach", "align", "pre-grasp", "grasp", "lift", "carry", "place", "release"),
              "door": ("approach", "reach handle", "turn", "push", "pass"),
              "stairs": ("approach", "step up", "reach", "grasp", "lift")}
    for name in TASKS:
        spec = get_task(name)
        assert spec.scene == name and spec.stage_names == stages[name]
        assert spec.failure_names[:2] == ("none", "fall") and spec.failure_names[-1] == "timeout"
        pre, ood = spec.initial_state.pretrain, spec.initial_state.ood
        for a, b in zip((pre.radial, pre.polar, pre.heading), (ood.radial, ood.polar, ood.heading)):
            assert b[0] <= a[0] < a[1] <= b[1]
    assert get_task("pick_place").solvable and get_task("door").solvable
    stairs = get_task("stairs")
    assert not stairs.solvable and stairs.requires == ("step_up_0.10",) and "step" in stairs.unsolvable_reason


def _standing_actions(env):
    from refine_dp_planner.planner_io import actions_to_vectors
    from t1_description.kinematics import arm_kinematics
    n = env.num_envs
    pos, rot = arm_kinematics().fk(np.tile(env.table.default_q[env.arm_idx], (n, 1)))
    return actions_to_vectors(np.zeros((n, 3)), pos, rot, np.zeros((n, 2)))


@pytest.mark.parametrize("name", TASKS)
def test_env_resets_in_range_and_steps(name):
    from refine_dp_training.tasks.env import TaskEnv
    env = TaskEnv(name, 3, seed=0)
    init = env.spec.initial_state
    L = env.sim.layout
    for start in ("pretrain", "ood"):
        env.set_start_range(start)
        env.reset(seed=11)
        rng = env.start_range
        root = env.sim.state[:, L.root_pos]
        anchor = env.object_truth()[init.anchor].pos[:, :2] + np.asarray(init.anchor_offset)
        d = anchor - root[:, :2]
        r, direction = np.linalg.norm(d, axis=-1), np.arctan2(d[:, 1], d[:, 0])
        heading = np.angle(np.exp(1j * (yaw_of_quat(env.sim.state[:, L.root_quat]) - direction)))
        assert (r >= rng.radial[0] - 1e-9).all() and (r <= rng.radial[1] + 1e-9).all(), (start, r)
        polar = direction - init.approach_yaw
        assert (polar >= rng.polar[0] - 1e-6).all() and (polar <= rng.polar[1] + 1e-6).all(), (start, polar)
        assert (heading >= rng.heading[0] - 1e-6).all() and (heading <= rng.heading[1] + 1e-6).all()
    env.set_start_range("pretrain")
    obs = env.reset(seed=1)
    a = _standing_actions(env)
    for _ in range(3):
        obs, reward, term, trunc, info = env.step(a)
    assert np.isfinite(obs).all() and obs.shape == (3, env.obs_dim)
    assert not term.any() and not info["success"].any() and (info["failure"] == 0).all()
    assert (info["stage"] >= 0).all()
    env.close()


def test_door_is_a_hinged_mocap_body_and_its_joints_are_read():
    from refine_dp_training.tasks.env import TaskEnv
    env = TaskEnv("door", 2, seed=0, randomize=False)
    env.reset(seed=0)
    m = load_model("door")
    d = mujoco.MjData(m)
    cols = env.joint_cols
    for hinge, handle in ((0.0, 0.0), (0.9, 0.6)):
        env.sim.state[:, cols["door_hinge"]], env.sim.state[:, cols["door_handle"]] = hinge, handle
        d.qpos[m.jnt_qposadr[m.joint("door_hinge").id]] = hinge
        d.qpos[m.jnt_qposadr[m.joint("door_handle").id]] = handle
        mujoco.mj_forward(m, d)
        door = env.object_truth()["door"]
        assert np.allclose(door.pos, d.xpos[m.body("door").id], atol=1e-9)
        assert np.allclose(door.quat, d.xquat[m.body("door").id], atol=1e-9)
        s = env.task_state()
        assert np.allclose(s.joints["door_hinge"], hinge) and np.allclose(s.joints["door_handle"], handle)
        from refine_dp_training.tasks.door import handle_point
        assert np.allclose(handle_point(hinge, handle), d.site_xpos[m.site("door_handle").id], atol=1e-6)
    env.close()


def _state(root, box=None, start=None, peak=None, vel=None, hand=None, grip=0.0, joints=None):
    n = len(root)
    root = np.asarray(root, float)
    objects = {}
    if box is not None:
        box = np.asarray(box, float)
        start = np.asarray(start, float)
        objects["box"] = ObjectTruth(box, np.tile(Q0, (n, 1)), start,
                                     np.asarray(peak, float) if peak is not None else box[:, 2],
                                     np.asarray(vel, float) if vel is not None else np.zeros((n, 3)))
    hand = np.tile(root[:, None] + [0.3, 0.0, 0.1], (1, 2, 1)) if hand is None else np.asarray(hand, float)
    return TaskState(t=np.zeros(n), root_pos=root, root_quat=np.tile(Q0, (n, 1)), gravity=np.tile([0, 0, -1.0], (n, 1)),
                     hand_pos=hand, gripper_cmd=np.full((n, 2), grip), objects=objects, joints=joints or {})


def test_pick_place_success_and_failures():
    spec, f = get_task("pick_place"), scene_facts("pick_place")
    start = np.tile(f.box.start_pos, (4, 1))
    target = np.array(f.place_region.center[:2] + (f.place_table.top_z + f.box.half_size,))
    box = np.array([target, target + [0, 0, 0.08], target + [0.2, 0, 0], target])
    vel = [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0.3, 0, 0]]
    root = np.tile([0.2, -2.0, 0.667], (4, 1))
    s = _state(root, box, start, peak=np.full(4, 0.9), vel=vel)
    # env 0: placed and let go; 1: above the region; 2: beside it; 3: still sliding; `held`: gripped
    held = _state(root, box, start, peak=np.full(4, 0.9), vel=vel, grip=1.0)
    np.testing.assert_array_equal(spec.success.fn(s), [True, False, False, False])
    assert not spec.success.fn(held).any()
    held = _state(root, box, start, peak=np.full(4, 0.9), grip=1.0)
    for term in spec.failures:  # the placed box is neither dropped nor knocked
        assert not term.fn(s)[0], term.name
    failures = {t.name: t.fn for t in spec.failures}
    on_floor = _state(root[:1], [[0.6, -1.0, 0.025]], start[:1], peak=[0.9])
    knocked = _state(root[:1], [[0.85, 0.0, 0.765]], start[:1], peak=[0.77])
    assert failures["object_dropped"](on_floor).all() and failures["object_pushed"](knocked).all()
    assert not failures["object_pushed"](on_floor).any()
    stages = dict(zip(spec.stage_names, (t.fn for t in spec.stages)))
    assert stages["release"](s)[0] and stages["place"](held).all() and not stages["release"](held).any()


def test_door_success():
    spec, f = get_task("door"), scene_facts("door")
    root = np.array([[f.door_plane_x + 0.6, 0.0, 0.667], [f.door_plane_x + 0.3, 0.0, 0.667], [0.4, 0.0, 0.667]])
    joints = {"door_hinge": np.array([1.4, 1.4, 0.0]), "door_handle": np.zeros(3)}
    s = _state(root, joints=joints)
    np.testing.assert_array_equal(spec.success.fn(s), [True, False, False])
    stages = dict(zip(spec.stage_names, (t.fn for t in spec.stages)))
    np.testing.assert_array_equal(stages["push"](s), [True, True, False])
    np.testing.assert_array_equal(stages["pass"](s), [True, True, False])
    hand = np.tile(np.array(f.handle_grasp_point), (3, 2, 1))
    at = _state(root, hand=hand, joints={"door_hinge": np.array([0.0, 0.3, 0.0]),
                                                "door_handle": np.array([0.0, 0.5, 0.0])})
    np.testing.assert_array_equal(stages["reach handle"](at), [True, False, True])  # env 1: the handle moved away
    np.testing.assert_array_equal(stages["turn"](at), [False, True, False])
    np.testing.assert_array_equal(spec.success.fn(at), [True, False, False])  # the trunk alone decides


def test_stairs_success():
    spec, f = get_task("stairs"), scene_facts("stairs")
    start = np.tile(f.box.start_pos, (3, 1))
    box = start + [[0, 0, 0.06], [0, 0, 0.03], [0, 0, 0.0]]
    root = np.tile([0.82, 0.0, 0.767], (3, 1))
    s = _state(root, box, start, grip=1.0, hand=box[:, None].repeat(2, 1))
    np.testing.assert_array_equal(spec.success.fn(s), [True, False, False])
    stages = dict(zip(spec.stage_names, (t.fn for t in spec.stages)))
    assert stages["step up"](s).all() and stages["grasp"](s).all()
    floor = _state(np.tile([0.0, 0.0, 0.667], (3, 1)), box, start)
    assert not stages["step up"](floor).any()
