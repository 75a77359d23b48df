"""T1 tasks: the task terms, the initial-state distribution, TaskEnv stepping, and env-vs-node parity.

The parity test is the "one code path" check: what the env feeds the planner equals what the planner
node computes from the RobotState and ObjectStateArray messages the same moment would produce
(refine_dp_planner.messages converters + PlannerCore), and the env's clamped action equals the node's.
"""
from __future__ import annotations

import numpy as np
import pytest

from refine_dp_planner.planner_io import ACTION_DIM, Clamps, clamp_action, clamp_actions, PlannerAction
from refine_dp_training.tasks import get_task, terms
from refine_dp_training.tasks.spec import StartRange
from refine_dp_training.tasks.terms import ObjectTruth, TaskState
from t1_description.kinematics import yaw_of_quat


def _state(n=3, box_z=(0.765, 0.9, 0.6), peak=(0.765, 0.9, 0.9), root_z=0.65, gravity_z=-1.0):
    box = np.c_[np.full(n, 0.6), np.zeros(n), box_z]
    return TaskState(t=np.zeros(n), root_pos=np.c_[np.zeros((n, 2)), np.full(n, root_z)],
                     root_quat=np.tile([1.0, 0, 0, 0], (n, 1)), gravity=np.tile([0, 0, gravity_z], (n, 1)),
                     hand_pos=np.tile(box[:, None], (1, 2, 1)) + [0.0, 0.0, 0.01], gripper_cmd=np.ones((n, 2)),
                     objects={"box": ObjectTruth(box, np.tile([1.0, 0, 0, 0], (n, 1)),
                                                 np.tile([0.6, 0.0, 0.765], (n, 1)), np.asarray(peak))})


def test_task_terms():
    s = _state()
    np.testing.assert_array_equal(terms.object_lifted("box", 0.10)(s), [False, True, False])
    # env 2: lifted 13.5 cm once, now below the table: dropped; env 1 lifted and holding: not
    np.testing.assert_array_equal(terms.object_dropped("box")(s), [False, False, True])
    np.testing.assert_array_equal(terms.object_in_closed_hand("box")(s), [True, True, True])
    assert not terms.fallen()(s).any()
    assert terms.fallen()(_state(root_z=0.3)).all() and terms.fallen()(_state(gravity_z=-0.3)).all()
    back = _state(box_z=(0.765, 0.77, 0.765), peak=(0.765, 0.83, 0.78))  # env 1: lifted 6.5 cm, back down: lost
    np.testing.assert_array_equal(terms.object_dropped("box")(back), [False, True, False])


def test_pickup_spec_reads_as_a_list_of_terms():
    spec = get_task("pickup")
    assert spec.scene == "table_box" and spec.objects == ("box",)
    assert spec.stage_names == ("approach", "reach", "grasp", "lift", "lifted")
    assert spec.failure_names == ("none", "fall", "object_dropped", "object_pushed", "physics", "timeout")
    assert spec.success_hold_s == 1.0
    assert spec.physics_dt == 0.0025  # at 5 ms the box pinched between the fingers and the table blows MuJoCo up
    pre, ood = spec.initial_state.pretrain, spec.initial_state.ood
    for a, b in zip((pre.radial, pre.polar, pre.heading), (ood.radial, ood.polar, ood.heading)):
        assert b[0] <= a[0] and a[1] <= b[1]  # the OOD range contains the pre-training range
    half = pre.scaled(0.5, ood)
    assert half.radial == pytest.approx(((pre.radial[0] + ood.radial[0]) / 2, (pre.radial[1] + ood.radial[1]) / 2))


@pytest.fixture(scope="module")
def env16():
    from refine_dp_training.tasks.env import TaskEnv
    env = TaskEnv("pickup", 16, seed=0)
    yield env
    env.close()


@pytest.mark.parametrize("start", ["pretrain", "ood"])
def test_initial_states_follow_the_distribution(env16, start):
    env = env16
    env.set_start_range(start)
    env.reset(seed=3)
    rng = env.start_range
    L = env.sim.layout
    root = env.sim.state[:, L.root_pos]
    box = env.object_truth()["box"].pos
    d = box[:, :2] - root[:, :2]
    r = np.linalg.norm(d, axis=-1)
    polar = np.arctan2(d[:, 1], d[:, 0]) - env.spec.initial_state.approach_yaw   # direction robot -> object
    heading = np.angle(np.exp(1j * (yaw_of_quat(env.sim.state[:, L.root_quat]) - np.arctan2(d[:, 1], d[:, 0]))))
    assert (r >= rng.radial[0] - 1e-9).all() and (r <= rng.radial[1] + 1e-9).all()
    assert (polar >= rng.polar[0] - 1e-6).all() and (polar <= rng.polar[1] + 1e-6).all()
    assert (heading >= rng.heading[0] - 1e-6).all() and (heading <= rng.heading[1] + 1e-6).all()
    # the box on the table, moved within its range; per-env masses randomised
    off = box - env.sim.keyframe_state[env.objects[0].pos_cols]
    pose = env.spec.initial_state.objects["box"]
    assert (off[:, 0] >= pose.x[0] - 1e-9).all() and (off[:, 0] <= pose.x[1] + 1e-9).all()
    assert np.allclose(off[:, 2], 0.0)
    masses = [m.body_mass[env.objects[0].body] for m in env.sim.models]
    lo, hi = env.spec.randomization.object_mass_scale
    assert len(set(masses)) > 1 and min(masses) >= lo * 0.2 - 1e-9 and max(masses) <= hi * 0.2 + 1e-9
    env.set_start_range("pretrain")


def _standing_actions(env):
    from refine_dp_planner.planner_io import actions_to_vectors
    from t1_description.kinematics import arm_kinematics
    n = env.num_envs
    pos, rot = arm_kinematics().fk(np.tile(env.table.default_q[env.arm_idx], (n, 1)))
    return actions_to_vectors(np.zeros((n, 3)), pos, rot, np.zeros((n, 2)))


def test_env_steps_shapes_determinism_and_active_mask():
    from refine_dp_training.tasks.env import TaskEnv
    envs = [TaskEnv("pickup", 3, seed=0) for _ in range(2)]
    obs = [e.reset(seed=7) for e in envs]
    assert obs[0].shape == (3, envs[0].obs_dim) and obs[0].dtype == np.float32
    np.testing.assert_array_equal(obs[0], obs[1])
    a = _standing_actions(envs[0])
    a[:, 0] = 0.3  # beyond the 0.2 m/s clamp
    for _ in range(3):
        out = [e.step(a) for e in envs]
    (o0, r0, te0, tr0, i0), (o1, *_) = out
    np.testing.assert_array_equal(o0, o1)
    assert r0.shape == (3,) and te0.dtype == bool and i0["failure"].shape == (3,)
    assert i0["executed_action"].shape == (3, ACTION_DIM)
    assert np.allclose(i0["executed_action"][:, 0], 0.2) and i0["clamped"].all()
    # an inactive env is not stepped: its observation and simulator row stay as they were
    env = envs[0]
    before_obs, before_state = o0[1].copy(), env.sim.state[1].copy()
    o2, r2, *_ = env.step(a, active=np.array([True, False, True]))
    np.testing.assert_array_equal(o2[1], before_obs)
    np.testing.assert_array_equal(env.sim.state[1], before_state)
    assert r2[1] == 0.0 and not np.array_equal(env.sim.state[0], out[0][0][0])
    for e in envs:
        e.close()


def test_a_physics_blow_up_ends_the_episode_as_physics_not_as_a_fall():
    """A velocity above MAX_SPEED, a non-finite state or MuJoCo's own reset of an unstable simulation (MuJoCo blew
    up, e.g. a box pinched between a finger and the table) ends that env's episode as "physics", never as a fall nor
    a success; the row is put back standing and the other envs go on."""
    from refine_dp_training.tasks.env import MAX_SPEED, TaskEnv
    env = TaskEnv("pickup", 4, seed=0)
    assert env.sim.physics_dt == env.spec.physics_dt and env.sim.decimation * env.sim.physics_dt == env.control_dt
    env.reset(seed=3)
    env.step(_standing_actions(env))
    box = env.objects[0]
    step = env.sim.step

    def blow_up(*args, **kwargs):
        # env 2: a velocity past MuJoCo's limit, so its own check resets the data to qpos0 inside the rollout
        env.sim.state[2, box.vel_cols[3]] = 1e11
        step(*args, **kwargs)
        env.sim.state[0, box.vel_cols[0]] = 40 * MAX_SPEED  # env 0's box flies off
        env.sim.state[1, box.vel_cols[3]] = np.nan          # env 1 is NaN

    env.sim.step = blow_up
    _, reward, terminated, truncated, info = env.step(_standing_actions(env))
    names = env.failure_names
    assert [names[k] for k in info["failure"]] == ["physics", "physics", "physics", "none"]
    assert names[1] == "fall"
    np.testing.assert_array_equal(terminated, [True, True, True, False])
    assert not truncated.any() and not info["success"].any() and not reward.any()
    assert np.isfinite(env.sim.state).all()  # the blown-up rows were put back (and reset for the next episode)
    env.sim.step = step
    _, _, terminated, _, info = env.step(_standing_actions(env))
    assert not terminated.any() and (info["failure"] == 0).all()
    env.close()


def test_an_object_shot_away_ends_as_physics_but_a_falling_one_does_not():
    """A box shot sideways or up faster than MAX_OBJECT_SPEED (far under MAX_SPEED: pinched between a finger and the
    table) would otherwise fly 10 cm up for the 1 s pickup's success test holds; it ends as "physics". A box
    falling just as fast is a fall of the object, not a blow-up."""
    from refine_dp_training.tasks.env import MAX_OBJECT_SPEED, MAX_SPEED, TaskEnv
    assert MAX_OBJECT_SPEED < 4.5 < MAX_SPEED  # the slowest ejection found in the pickup demos
    env = TaskEnv("pickup", 4, seed=0)
    env.reset(seed=3)
    env.step(_standing_actions(env))
    box, step = env.objects[0], env.sim.step

    def shoot(*args, **kwargs):
        step(*args, **kwargs)
        env.sim.state[0, box.vel_cols[1]] = 4.5    # sideways
        env.sim.state[1, box.vel_cols[2]] = 4.5    # up
        env.sim.state[2, box.vel_cols[2]] = -6.0   # falling

    env.sim.step = shoot
    _, _, _, _, info = env.step(_standing_actions(env))
    env.sim.step = step
    assert [env.failure_names[k] for k in info["failure"][:2]] == ["physics", "physics"]
    assert env.failure_names[info["failure"][3]] == "none" and env.failure_names[info["failure"][2]] != "physics"
    env.close()


def test_batched_clamps_equal_the_single_robot_clamps():
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation
    n = 6
    v = rng.normal(size=(n, 3))
    pos, prev = rng.normal(0, 0.02, (n, 2, 3)), rng.normal(0, 0.02, (n, 2, 3))
    rot = Rotation.random(2 * n, random_state=1).as_matrix().reshape(n, 2, 3, 3)
    prot = Rotation.random(2 * n, random_state=2).as_matrix().reshape(n, 2, 3, 3)
    bv, bp, br, bc = clamp_actions(v, pos, rot, prev, prot, 0.1, Clamps())
    for i in range(n):
        one, c = clamp_action(PlannerAction(v[i], pos[i], rot[i], np.zeros(2)),
                              PlannerAction(np.zeros(3), prev[i], prot[i], np.zeros(2)), 0.1, Clamps())
        np.testing.assert_allclose(one.base_velocity, bv[i], atol=1e-12)
        np.testing.assert_allclose(one.hand_pos, bp[i], atol=1e-12)
        np.testing.assert_allclose(one.hand_rot, br[i], atol=1e-9)
        assert c == bc[i]


class _ReplayEngine:
    """An engine that returns the action the env received at this tick (chunk of 1, act_steps 1)."""

    def __init__(self, obs_dim):
        self.obs_shape, self.action_shape, self.act_steps, self.rate_hz = (1, obs_dim), (1, ACTION_DIM), 1, 10.0
        self.metadata = {"kind": "replay"}
        self.next = None

    def sample(self, obs_hist):
        return self.next[None, None].astype(np.float32)


def _messages(inputs, row, names, table):
    """RobotState and ObjectStateArray as the hardware interface and mocap_bridge would publish them."""
    from refine_dp_msgs.msg import ObjectState, ObjectStateArray, RobotState
    from t1_description.joint_table import ARM_GROUPS

    state = RobotState()
    q = np.zeros(len(table.names))
    q[table.indices(*ARM_GROUPS)] = inputs["arm_q"][row]
    state.name, state.position = list(table.names), q.tolist()
    g = inputs["gravity"][row]
    state.projected_gravity.x, state.projected_gravity.y, state.projected_gravity.z = (float(v) for v in g)
    objects = ObjectStateArray()
    for name in names:
        p, quat, tracked, present = (np.asarray(x)[row] for x in inputs["objects"][name])
        o = ObjectState(name=name, tracked=bool(tracked), root_valid=bool(present))
        o.pose_in_root.position.x, o.pose_in_root.position.y, o.pose_in_root.position.z = (float(v) for v in p)
        (o.pose_in_root.orientation.x, o.pose_in_root.orientation.y, o.pose_in_root.orientation.z,
         o.pose_in_root.orientation.w) = (float(v) for v in quat)
        objects.objects.append(o)
    return state, objects


def test_env_observation_and_clamps_equal_the_planner_nodes():
    """Record what the env observes (with MoCap noise and dropouts), turn it into the node's messages, run
    them through the node's converters and PlannerCore: the observations and the clamped actions are equal."""
    from refine_dp_planner.messages import objects_from_msg, robot_observation
    from refine_dp_planner.planner_core import PlannerCore
    from refine_dp_training.tasks import make_heuristic
    from refine_dp_training.tasks.env import TaskEnv
    from t1_description.joint_table import ARM_GROUPS

    spec = get_task("pickup").with_randomization(natnet_dropout_prob=0.3, natnet_noise_pos_std=0.005)
    env = TaskEnv(spec, 2, seed=1)
    heuristic = make_heuristic(spec, 2, seed=1)
    obs = env.reset(seed=1)
    heuristic.reset()
    table = env.table
    cores = [PlannerCore(_ReplayEngine(env.obs_dim), spec.objects, clamps=Clamps()) for _ in range(2)]
    saw_dropout = saw_missing = False
    for k in range(25):
        inputs = env.last_inputs
        actions = heuristic.act(obs)
        actions[:, 3:6] += 0.05 * (k % 2)  # jumps the hand clamps must catch
        node_actions = []
        for i, core in enumerate(cores):
            state, objects = _messages(inputs, i, spec.objects, table)
            arm_q, gravity = robot_observation(state, table.indices(*ARM_GROUPS), len(table.names))
            core.observe_robot(arm_q, gravity, 0.1 * k)
            core.observe_objects(objects_from_msg(objects), 0.1 * k)
            core.engine.next = actions[i]
            node_actions.append(core.step(0.1 * k))
            np.testing.assert_array_equal(core.history.array()[-1], obs[i])
            saw_dropout |= not inputs["objects"]["box"][2][i]
            saw_missing |= not inputs["objects"]["box"][3][i]
        obs, _, term, trunc, info = env.step(actions)
        assert not (term | trunc).any()
        for i, a in enumerate(node_actions):
            np.testing.assert_allclose(a.to_vector(), info["executed_action"][i], atol=1e-6)
    assert saw_dropout and saw_missing  # the held-pose and the zeroed-object paths were both exercised
    env.close()


def test_pickup_heuristic_lifts_the_box():
    """Seeded episodes started near the table: the heuristic walks in, grasps (fingers and friction only) and
    lifts the box in at least one of them."""
    from refine_dp_training.tasks import make_heuristic
    from refine_dp_training.tasks.env import TaskEnv

    spec = get_task("pickup")
    n = 4
    env = TaskEnv(spec, n, seed=0, start=StartRange(radial=(0.8, 0.85), polar=(-0.1, 0.1), heading=(-0.1, 0.1)))
    heuristic = make_heuristic(spec, n, seed=0)
    obs = env.reset(seed=0)
    heuristic.reset()
    best, done = np.zeros(n), np.zeros(n, bool)
    for _ in range(300):
        obs, _, term, trunc, info = env.step(heuristic.act(obs))
        best = np.maximum(best, np.where(done, 0.0, info["stage"]))
        done |= term | trunc
        if done.all() or (best >= 3).any():
            break
    env.close()
    assert (best >= 3).any(), f"no episode lifted the box (stages reached {best})"  # stage 3 = "lift" (>= 2 cm)


def test_measured_feet_anchor_the_footstep_plan_on_the_robots_feet():
    """TaskEnv(measured_feet=True): the footstep planner starts on the feet by FK and re-expresses its stance
    foot on the measured one while walking (as the footstep node's measured_feet); without it the plan
    starts beside the sampled start pose and keeps its own dead-reckoned footholds."""
    from refine_dp_training.tasks.env import TaskEnv
    env = TaskEnv("pickup", 2, seed=0, measured_feet=True)
    env.reset(seed=3)
    np.testing.assert_allclose(env.footsteps.feet, env._feet_world(), atol=1e-9)
    a = _standing_actions(env)
    a[:, 0] = 0.2
    for _ in range(8):  # 0.8 s of walking: a step has landed
        env.step(a)
    from loco_manip_controller.footstep_planner import stance_foot_index
    stance = stance_foot_index(env.footsteps.swing_foot)
    assert (stance >= 0).all()
    rows = np.arange(2)
    measured = env._feet_world()[rows, stance]
    np.testing.assert_allclose(env.footsteps.feet[rows, stance, :2], measured[:, :2], atol=0.02)
    env.close()
    plain = TaskEnv("pickup", 2, seed=0)
    plain.reset(seed=3)
    assert not np.allclose(plain.footsteps.feet, plain._feet_world(), atol=1e-3)  # side by side at the start pose
    plain.close()
