"""The pick-and-place heuristic: the place target is observed (a static MoCap body), and the carry/place stage
machine drives the robot from the pick table round to the place table and lets go over the target, on
constructed observations (the whole route takes ~70 s of simulation: too long for a test)."""
from __future__ import annotations

import numpy as np
import pytest

from refine_dp_planner.planner_io import Clamps, actions_from_vectors, build_observation
from refine_dp_training.tasks import get_task, make_heuristic
from t1_description.scenes import scene_facts

FACTS = scene_facts("pick_place")
TARGET = np.array(FACTS.place_region.center[:2] + (FACTS.place_table.top_z,))
TRUNK_Z = 0.667


def _quat_z(yaw):
    return np.stack([np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2), np.cos(yaw / 2)], -1)  # x, y, z, w


def _obs(robot, yaw, box_base):
    """Observations of 2 robots at world (x, y) `robot` [2, 2] facing `yaw` [2], holding nothing in particular,
    with the box at `box_base` [2, 3] in base_link and the target mat where the scene has it."""
    from t1_description.joint_table import ARM_GROUPS, load_joint_table
    jt = load_joint_table()
    n = len(yaw)
    c, s = np.cos(yaw), np.sin(yaw)
    d = TARGET[:2] - robot
    target = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], np.full(n, TARGET[2] - TRUNK_Z)], -1)
    objects = {"box": (box_base, _quat_z(np.zeros(n)), np.ones(n, bool)),
               "place_target": (target, _quat_z(-yaw), np.ones(n, bool))}
    arm_q = np.tile(jt.default_q[jt.indices(*ARM_GROUPS)], (n, 1))
    return build_observation(arm_q, np.zeros((n, 2)), np.tile([0.0, 0.0, -1.0], (n, 1)), objects,
                             ("box", "place_target"))


def test_pick_place_observes_the_target_mat():
    """TaskEnv tracks the static `place_target` body: the observation holds the mat's pose in base_link."""
    from refine_dp_training.tasks.env import TaskEnv
    from t1_description.kinematics import quat_wxyz_to_matrix

    spec = get_task("pick_place").with_randomization(natnet_noise_pos_std=0.0, natnet_noise_rot_std_deg=0.0,
                                                     natnet_dropout_prob=0.0)
    assert spec.objects == ("box", "place_target") and spec.heuristic.endswith(":PickPlaceHeuristic")
    env = TaskEnv(spec, 2, seed=3)
    obs = env.reset(seed=3)
    heuristic = make_heuristic(spec, 2, seed=3)
    heuristic.reset()
    sl = dict(zip(*zip(*[(k, v) for k, v in heuristic.sl.items()])))
    for _ in range(3):
        obs, *_ = env.step(heuristic.act(obs))
    truth = env.object_truth()["place_target"]
    np.testing.assert_allclose(truth.pos, np.tile(TARGET, (2, 1)), atol=1e-9)
    L = env.sim.layout
    root, rot = env.sim.state[:, L.root_pos], quat_wxyz_to_matrix(env.sim.state[:, L.root_quat])
    expected = np.einsum("nji,nj->ni", rot, TARGET - root)
    np.testing.assert_allclose(obs[:, sl["place_target"]][:, :3], expected, atol=1e-4)
    assert (heuristic.stage == 0).all()  # still walking to the pick table
    env.close()


def test_pick_place_heuristic_stage_machine():
    """From holding the box at the pick table: back out, turn right, carry, turn in, walk in, place, let go;
    every action inside the planner's clamps."""
    from refine_dp_training.tasks.heuristics import pick_place as pp

    spec = get_task("pick_place")
    h = make_heuristic(spec, 2, seed=0)
    h.reset()
    clamps = Clamps()
    held = np.array([[0.45, 0.07, 0.25], [0.45, -0.07, 0.25]])
    prev = None

    def step(robot, yaw, box=held, k=1):
        nonlocal prev
        for _ in range(k):
            a = h.act(_obs(np.asarray(robot, float), np.asarray(yaw, float), np.asarray(box, float)))
            v, pos, _, grip = actions_from_vectors(a)
            assert np.isfinite(a).all()
            assert (np.linalg.norm(v[:, :2], axis=-1) <= clamps.max_base_speed + 1e-6).all()
            assert (np.abs(v[:, 2]) <= clamps.max_yaw_rate + 1e-6).all()
            if prev is not None:
                assert (np.linalg.norm(pos - prev, axis=-1) <= clamps.max_hand_speed * h.dt + 1e-6).all()
            prev = pos
        return v, pos, grip

    at_pick = [[0.15, 0.05], [0.15, -0.05]]
    step(at_pick, [0.0, 0.0])                       # first call: the hands' start
    h.stage[:], h.timer[:], h.side[:], h.raised[:] = pp.HOLD, 1.0, [1.0, -1.0], True  # the pickup part is done
    v, _, grip = step(at_pick, [0.0, 0.0])
    assert (h.stage == pp.BACK_OUT).all() and np.allclose(v, 0.0)   # the hand comes in first, standing
    np.testing.assert_array_equal(grip, [[1.0, 0.0], [0.0, 1.0]])  # the holding hand stays closed
    v, _, _ = step(at_pick, [0.0, 0.0], k=int(np.ceil(h.q["pull_in_s"].max() / h.dt)) + 1)
    assert (h.stage == pp.BACK_OUT).all()
    np.testing.assert_allclose(v, np.tile(pp.BACK_RIGHT, (2, 1)), atol=1e-6)
    # (the heuristic smooths the target's observed pose: a few steps at each pose)
    v, _, _ = step([[-0.2, 0.05], [-0.2, -0.05]], [0.0, 0.0], k=4)  # backed out past clear_x: turn right
    assert (h.stage == pp.TURN_OUT).all() and (v[:, 2] < 0).all()
    v, _, _ = step([[-0.2, 0.05], [-0.2, -0.05]], [-1.8, -1.8], k=4)  # facing the corner point: walk
    assert (h.stage == pp.CARRY).all() and (v[:, 0] > 0.1).all()
    q, side, yaw = h.q, h.side, h.q["final_yaw"]
    c, s = np.cos(yaw), np.sin(yaw)
    reach = np.stack([q["reach_x"], side * q["reach_y"]], -1)
    stance = TARGET[:2] - np.stack([c * reach[:, 0] - s * reach[:, 1], s * reach[:, 0] + c * reach[:, 1]], -1)
    corner = stance - q["corner_back"][:, None] * np.stack([c, s], -1)  # where each robot turns in, and stands
    v, _, _ = step(corner, [-1.8, -1.8], k=4)                       # at the corner: turn left to face the table
    assert (h.stage == pp.TURN_IN).all() and (v[:, 2] > 0).all()
    v, _, _ = step(corner, yaw, k=4)                                # facing it: walk in
    assert (h.stage == pp.APPROACH_PLACE).all() and (v[:, 0] > 0.1).all()
    v, _, grip = step(stance, yaw, k=16)                           # at the stance: stand, then place
    assert (h.stage == pp.PLACE).all() and np.allclose(v, 0.0) and (grip.sum(-1) == 1).all()
    target_base = np.c_[q["reach_x"], side * q["reach_y"], np.full(2, TARGET[2] - TRUNK_Z)]
    carried = np.array([[0.32, 0.2, 0.16], [0.32, -0.2, 0.16]])  # the box in the hand at the carry pose
    _, pos0, _ = step(stance, yaw, box=carried)
    _, pos1, _ = step(stance, yaw, box=carried, k=5)
    hand = pos1[[0, 1], [0, 1]] - pos0[[0, 1], [0, 1]]
    assert (np.sum(hand[:, :2] * (target_base - carried)[:, :2], -1) > 0).all()  # the hand takes it to the target
    on_target = target_base + [-0.015, 0.0, pp.BOX_HALF + 0.01]
    step(stance, yaw, box=on_target, k=55)                          # the box over the target, just above it
    assert (h.stage >= pp.RELEASE).all()
    _, _, grip = step(stance, yaw, box=on_target)
    np.testing.assert_array_equal(grip, 0.0)                        # let go


def test_pick_place_heuristic_needs_the_target_in_the_observation():
    from dataclasses import replace
    spec = replace(get_task("pick_place"), objects=("box",))
    with pytest.raises(ValueError, match="place_target"):
        make_heuristic(spec, 1)
