"""Velocity-to-footstep planner (loco_manip_controller.footstep_planner) and its node."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from loco_manip_controller import gait
from loco_manip_controller.footstep_planner import (
    FootstepPlanner,
    FootstepPlannerConfig,
    SingleFootstepPlanner,
)
from loco_manip_controller.gait import SWING_LEFT, SWING_NONE, SWING_RIGHT
from t1_description.kinematics import LEFT, RIGHT, planar_compose, planar_relative

DT = 0.02
CFG = FootstepPlannerConfig()
T = CFG.step_period


def run(cmds: np.ndarray, planner: FootstepPlanner | None = None, cfg: FootstepPlannerConfig = CFG):
    """Run the planner over a command schedule cmds [steps, N, 3]; return the per-tick outputs."""
    planner = planner or FootstepPlanner(cmds.shape[1], cfg)
    return [planner.update(DT, c) for c in cmds]


def schedule(n_ticks: int, cmd, n_envs: int = 1) -> np.ndarray:
    return np.broadcast_to(np.asarray(cmd, dtype=float), (n_ticks, n_envs, 3)).copy()


def steps_of(outs, env: int = 0):
    """The steps started in env: list of (tick, swing_foot, target (x, y, yaw), feet_world at lift-off)."""
    return [(k, int(o.footstep.swing_foot[env]), o.footstep.target[env].copy(),
             o.feet_world[env]) for k, o in enumerate(outs) if o.new_step[env]]


def assert_feet_never_cross(outs, cfg: FootstepPlannerConfig = CFG):
    """Planned footholds and targets: right foot at least min width to the right, yaw limits held."""
    for o in outs:
        rel = planar_relative(o.feet_world[:, LEFT], o.feet_world[:, RIGHT])  # right foot in the left foot frame
        assert np.all(rel[:, 1] <= -cfg.min_step_width + 1e-9), rel
        sigma = np.where(o.footstep.swing_foot == SWING_LEFT, 1.0, -1.0)
        swinging = o.footstep.swing_foot != SWING_NONE
        assert np.all((sigma * o.footstep.target[:, 1])[swinging] >= cfg.min_step_width - 1e-9)
        assert np.all((sigma * o.footstep.target[:, 2])[swinging] >= -cfg.max_inward_turn - 1e-9)
        assert np.all((sigma * o.footstep.target[:, 2])[swinging] <= cfg.max_turn + 1e-9)


def test_swing_constants_match_the_message():
    import refine_dp_msgs.msg as msg
    assert (gait.SWING_NONE, gait.SWING_LEFT, gait.SWING_RIGHT) == (
        msg.FootstepCommand.SWING_NONE, msg.FootstepCommand.SWING_LEFT, msg.FootstepCommand.SWING_RIGHT)


def test_straight_walking_advances_v_times_t_per_step_alternating_feet():
    v = 0.2
    outs = run(schedule(int(6.0 / DT), [v, 0.0, 0.0]))
    steps = steps_of(outs)
    assert len(steps) >= 10
    feet = [s[1] for s in steps]
    assert all(a != b for a, b in zip(feet, feet[1:])), feet  # alternate
    assert feet[0] == CFG.first_swing_foot
    for _, swing, target, _ in steps:
        assert target[0] == pytest.approx(v * T, abs=1e-9)  # v * T ahead of the stance foot
        assert target[1] == pytest.approx(CFG.step_width if swing == SWING_LEFT else -CFG.step_width, abs=1e-9)
        assert target[2] == pytest.approx(0.0, abs=1e-12)
    # world footholds: each landing puts the foot v*T ahead of the other one, so the feet's
    # midpoint advances v*T per step (= v); the last step is still in the air
    for (_, _, _, feet_a), (_, swing_b, _, feet_b) in zip(steps[1:], steps[2:]):
        landed = LEFT if swing_b == SWING_RIGHT else RIGHT
        assert feet_b[landed, 0] - feet_b[1 - landed, 0] == pytest.approx(v * T, abs=1e-9)
        assert feet_b[:, 0].mean() - feet_a[:, 0].mean() == pytest.approx(v * T, abs=1e-9)
    final = outs[-1].feet_world[0]
    assert final[:, 0].mean() == pytest.approx((len(steps) - 1.5) * v * T, abs=1e-9)
    assert abs(final[LEFT, 1] - final[RIGHT, 1]) == pytest.approx(CFG.step_width, abs=1e-9)
    assert_feet_never_cross(outs)


@pytest.mark.parametrize("cmd, first", [
    ([0.0, 0.08, 0.0], SWING_LEFT), ([0.0, -0.08, 0.0], SWING_RIGHT),
    ([0.0, 0.0, 0.2], SWING_LEFT), ([0.0, 0.0, -0.2], SWING_RIGHT),
    ([0.1, -0.05, 0.2], SWING_RIGHT),  # lateral decides before turning
    ([0.15, 0.0, 0.0], CFG.first_swing_foot),
])
def test_first_step_is_taken_by_the_foot_on_the_side_of_the_motion(cmd, first):
    outs = run(schedule(3, cmd))
    assert outs[0].new_step[0] and outs[0].footstep.swing_foot[0] == first


@pytest.mark.parametrize("vy", [0.1, -0.1, 0.05])
def test_lateral_walking_moves_sideways_and_feet_never_cross(vy):
    duration = 6.0
    outs = run(schedule(int(duration / DT), [0.0, vy, 0.0]))
    steps = steps_of(outs)
    leading = SWING_LEFT if vy > 0 else SWING_RIGHT
    assert steps[0][1] == leading
    for _, swing, target, _ in steps:
        sigma = 1.0 if swing == SWING_LEFT else -1.0
        expected = CFG.step_width + (2 * abs(vy) * T if swing == leading else 0.0)  # step-together
        assert sigma * target[1] == pytest.approx(expected, abs=1e-9)
        assert target[0] == pytest.approx(0.0, abs=1e-12)
    assert_feet_never_cross(outs)
    mid_y = outs[-1].feet_world[0, :, 1].mean()
    assert mid_y == pytest.approx(vy * duration, abs=abs(vy) * 2 * T + 1e-9)


@pytest.mark.parametrize("wz", [0.25, -0.2])
def test_turning_in_place_accumulates_yaw_keeps_width_and_feet_apart(wz):
    duration = 8.0
    outs = run(schedule(int(duration / DT), [0.0, 0.0, wz]))
    feet = np.array([o.feet_world[0] for o in outs])
    heading = np.unwrap(feet[:, LEFT, 2])
    assert heading[-1] == pytest.approx(wz * duration, abs=abs(wz) * 2 * T + 1e-9)
    assert np.all(np.sign(np.diff(heading)) * np.sign(wz) >= 0)  # never turns back
    mid = feet[:, :, :2].mean(axis=1)
    assert np.abs(mid).max() < 0.02  # in place
    width = np.linalg.norm(feet[:, LEFT, :2] - feet[:, RIGHT, :2], axis=-1)
    assert np.all(np.abs(width - CFG.step_width) < 0.01)
    assert_feet_never_cross(outs)


@pytest.mark.parametrize("cmd", [[0.2, 0.0, 0.0], [0.0, 0.1, 0.0], [0.1, -0.06, 0.2], [0.0, 0.0, -0.25]])
def test_stop_brings_feet_side_by_side_within_two_steps(cmd):
    # eight envs that stop at different points of their step
    n = 8
    walk = [int(2.0 / DT) + k * 3 for k in range(n)]
    total = int(5.0 / DT)
    cmds = np.zeros((total, n, 3))
    for e, w in enumerate(walk):
        cmds[:w, e] = cmd
    outs = run(cmds)
    for e, w in enumerate(walk):
        new_after = [k for k in range(w, total) if outs[k].new_step[e]]
        assert len(new_after) <= 1, f"env {e}: {len(new_after)} steps started after the stop"
        stood = [k for k in range(w, total) if outs[k].footstep.swing_foot[e] == SWING_NONE]
        assert stood, f"env {e} never stood"
        assert (stood[0] - w) * DT <= 2 * T + 1e-9
        assert all(outs[k].footstep.swing_foot[e] == SWING_NONE for k in range(stood[0], total))  # and stays
        rel = planar_relative(outs[-1].feet_world[e, LEFT], outs[-1].feet_world[e, RIGHT])
        np.testing.assert_allclose(rel, [0.0, -CFG.step_width, 0.0], atol=1e-9)
        assert outs[-1].footstep.countdown[e] == 0.0 and outs[-1].footstep.step_duration[e] == 0.0


def test_standing_with_zero_command_never_steps_and_restarts_on_command():
    cmds = schedule(100, [0.0, 0.0, 0.0])
    cmds[60:] = [0.0, 0.0, 0.3]
    outs = run(cmds)
    assert all(o.footstep.swing_foot[0] == SWING_NONE for o in outs[:60])
    started = outs[60].footstep
    assert outs[60].new_step[0] and started.swing_foot[0] == SWING_LEFT and started.step_index[0] == 1


def test_countdown_decreases_within_a_step_and_step_index_increments():
    rng = np.random.default_rng(3)
    n = 6
    cmds = np.repeat(rng.uniform([-0.2, -0.1, -0.3], [0.3, 0.1, 0.3], (12, n, 3)), 40, axis=0)
    cmds[200:260] = 0.0
    outs = run(cmds)
    for e in range(n):
        for prev, cur in zip(outs, outs[1:]):
            if cur.new_step[e]:
                assert cur.footstep.step_index[e] == prev.footstep.step_index[e] + 1
                assert cur.footstep.countdown[e] == pytest.approx(T, abs=1e-9) and cur.footstep.step_duration[e] == T
            else:
                assert cur.footstep.step_index[e] == prev.footstep.step_index[e]
                if cur.footstep.swing_foot[e] != SWING_NONE:
                    assert cur.footstep.swing_foot[e] == prev.footstep.swing_foot[e]
                    assert cur.footstep.countdown[e] == pytest.approx(prev.footstep.countdown[e] - DT, abs=1e-9)
            if cur.footstep.swing_foot[e] != SWING_NONE:
                assert 0.0 < cur.footstep.countdown[e] <= T + 1e-9
                assert 0.0 <= cur.footstep.phase[e] < 1.0


def test_step_cadence_stays_exact_when_the_tick_does_not_divide_the_period():
    dt, duration = 0.03, 60.0  # 0.5 s is 16.67 ticks: the overshoot carries into the next step
    planner = FootstepPlanner(1)
    starts = sum(bool(planner.update(dt, np.array([[0.2, 0.0, 0.0]])).new_step[0])
                 for _ in range(int(round(duration / dt))))
    assert abs(starts - duration / T) <= 1


def test_batched_equals_per_env():
    rng = np.random.default_rng(7)
    n = 5
    cmds = np.repeat(rng.uniform([-0.3, -0.15, -0.4], [0.4, 0.15, 0.4], (15, n, 3)), 25, axis=0)
    cmds[:, 1] = 0.0  # one env stands still throughout
    cmds[150:200, 2] = 0.0
    batched = run(cmds)
    for e in range(n):
        single = run(cmds[:, e:e + 1])
        for b, s in zip(batched, single):
            for field in ("swing_foot", "countdown", "step_duration", "target", "step_index"):
                np.testing.assert_array_equal(getattr(b.footstep, field)[e], getattr(s.footstep, field)[0],
                                              err_msg=field)
            for field in ("feet_world", "target_world", "new_step"):
                np.testing.assert_array_equal(getattr(b, field)[e], getattr(s, field)[0], err_msg=field)


def test_targets_respect_limits_for_any_command():
    rng = np.random.default_rng(0)
    n = 64
    cmds = np.repeat(rng.uniform(-2.0, 2.0, (10, n, 3)), 30, axis=0)
    outs = run(cmds)
    for o in outs:
        x, y = o.footstep.target[:, 0], o.footstep.target[:, 1]
        assert np.all(x <= CFG.max_step_length + 1e-9) and np.all(x >= -CFG.max_step_back - 1e-9)
        assert np.all(np.abs(y)[o.footstep.swing_foot != SWING_NONE] <= CFG.step_width + CFG.max_lateral + 1e-9)
    assert_feet_never_cross(outs)


def test_measured_stance_foot_reanchors_the_world_target():
    planner = FootstepPlanner(1)
    out = planner.update(DT, np.array([[0.2, 0.0, 0.0]]))
    assert out.footstep.swing_foot[0] == SWING_LEFT  # right foot is the stance foot at (0, -0.1, 0)
    slipped = np.array([[0.03, -0.12, 0.1]])
    out = planner.update(DT, np.array([[0.2, 0.0, 0.0]]), stance_foot_pose=slipped)
    rel = out.footstep.target[0]
    np.testing.assert_allclose(rel, [0.1, 0.2, 0.0], atol=1e-12)  # the relative command is unchanged
    np.testing.assert_allclose(out.target_world[0], planar_compose(slipped[0], rel), atol=1e-12)
    np.testing.assert_allclose(out.feet_world[0, RIGHT], slipped[0])


def _walk_short(planner, cmd, ticks, shortfall=0.5, yaw_shortfall=0.5):
    """Drive the planner with feet that land only `shortfall` of each step's advance (and yaw) from the
    stance foot: returns the outputs and the landed feet [2, 3] of env 0."""
    feet = planner.output().feet_world[0].copy()
    outs = []
    for _ in range(ticks):
        prev = planner.output()
        if prev.footstep.swing_foot[0] != SWING_NONE and prev.footstep.countdown[0] - DT <= 1e-9:
            sw = 0 if prev.footstep.swing_foot[0] == SWING_LEFT else 1  # touches down in this tick: short
            rel = prev.footstep.target[0].copy()
            nominal = np.array([0.0, rel[1], 0.0])
            landed_rel = nominal + np.array([shortfall, 1.0, yaw_shortfall]) * (rel - nominal)
            feet[sw] = planar_compose(feet[1 - sw], landed_rel)
        outs.append(planner.update(DT, np.array([cmd]), feet_pose=feet[None]))
    return outs, feet


def test_the_commanded_path_keeps_the_footholds_the_command_asks_for_while_feet_land_short():
    """Re-anchoring on the measured stance foot hides a short step from the relative targets; the path does not:
    the landed feet fall behind it step by step, and the default targets stay the command's (shipped behaviour)."""
    planner = FootstepPlanner(1)
    outs, feet = _walk_short(planner, [0.2, 0.0, 0.0], int(5.0 / DT))
    for o in outs:
        if o.footstep.swing_foot[0] != SWING_NONE:
            np.testing.assert_allclose(o.footstep.target[0, 0], 0.1, atol=1e-12)  # exactly the command's
    gaps = [o.path_feet[0, :, 0].mean() - o.feet_world[0, :, 0].mean() for o in outs]
    assert max(gaps) > 0.15  # 5 cm more behind at every step ...
    assert max(gaps) < CFG.path_reset_distance + 0.1  # ... until the path restarts on the feet


def test_catch_up_places_targets_along_the_path_within_the_bound():
    cfg = FootstepPlannerConfig(catch_up=0.03, catch_up_yaw=0.1, max_turn=0.5)
    planner = FootstepPlanner(1, cfg)
    outs, feet = _walk_short(planner, [0.2, 0.0, 0.0], int(5.0 / DT), shortfall=0.8)
    xs = [o.footstep.target[0, 0] for o in outs if o.new_step[0]]
    assert max(xs) <= 0.1 + 0.03 + 1e-9 and max(xs) > 0.1 + 0.01  # longer than the command's, by at most 3 cm
    # a full-length walker is never asked for more than the command
    planner = FootstepPlanner(1, cfg)
    outs, _ = _walk_short(planner, [0.2, 0.0, 0.0], int(3.0 / DT), shortfall=1.0)
    np.testing.assert_allclose([o.footstep.target[0, 0] for o in outs if o.new_step[0]], 0.1, atol=1e-9)
    # turning: a foot that turns only half its target is asked for more yaw on the next turning step
    planner = FootstepPlanner(1, cfg)
    outs, _ = _walk_short(planner, [0.0, 0.0, 0.25], int(4.0 / DT), yaw_shortfall=0.5)
    yaws = [o.footstep.target[0, 2] for o in outs if o.new_step[0] and o.footstep.swing_foot[0] == SWING_LEFT]
    assert yaws[0] == pytest.approx(0.25) and max(yaws) > 0.3 and max(yaws) <= 0.5 + 1e-9


def test_reanchor_path_restarts_the_path_on_the_feet():
    planner = FootstepPlanner(2)
    for _ in range(60):
        planner.update(DT, np.array([[0.2, 0.0, 0.0], [0.2, 0.0, 0.0]]),
                       feet_pose=np.array([[[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]] * 2))  # feet that never move
    out = planner.output()
    assert np.abs(out.path_feet[0] - out.feet_world[0]).max() > 0.05
    planner.reanchor_path([0])
    out = planner.output()
    np.testing.assert_allclose(out.path_feet[0], out.feet_world[0])
    np.testing.assert_allclose(out.path_target_world[0], out.target_world[0])
    assert np.abs(out.path_feet[1] - out.feet_world[1]).max() > 0.05


def test_reset_places_feet_beside_the_root_and_accepts_masks():
    planner = FootstepPlanner(3)
    run(schedule(40, [0.2, 0.0, 0.1], 3), planner)
    planner.reset(np.array([False, True, False]), root_pose=np.array([[1.0, 2.0, np.pi / 2]]))
    out = planner.output()
    assert out.footstep.swing_foot[1] == SWING_NONE and out.footstep.step_index[1] == 0
    np.testing.assert_allclose(out.feet_world[1], [[0.9, 2.0, np.pi / 2], [1.1, 2.0, np.pi / 2]], atol=1e-12)
    assert out.footstep.swing_foot[0] != SWING_NONE  # others untouched
    planner.reset([2], feet_pose=np.zeros((3, 2, 3)))
    np.testing.assert_array_equal(planner.output().feet_world[2], 0.0)


def test_bad_input_is_refused_with_a_clear_error():
    planner = FootstepPlanner(2)
    with pytest.raises(ValueError, match="cmd_vel has shape"):
        planner.update(DT, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        planner.update(DT, np.array([[0.1, 0.0, 0.0], [np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="min_step_width"):
        FootstepPlanner(1, FootstepPlannerConfig(min_step_width=0.3))
    with pytest.raises(ValueError, match="step_period"):
        FootstepPlanner(1, FootstepPlannerConfig(step_period=0.0))


def test_single_planner_wrapper_matches_the_batched_planner():
    single = SingleFootstepPlanner()
    single.reset()
    batched = FootstepPlanner(1)
    rng = np.random.default_rng(1)
    for cmd in np.repeat(rng.uniform(-0.2, 0.2, (8, 3)), 20, axis=0):
        s = single.update(DT, *cmd)
        b = batched.update(DT, cmd[None])
        assert (s.swing_foot, s.step_index) == (int(b.footstep.swing_foot[0]), int(b.footstep.step_index[0]))
        assert (s.target_x, s.target_y, s.target_yaw, s.countdown) == (
            *b.footstep.target[0], b.footstep.countdown[0])
        assert s.frame_id == {SWING_LEFT: "right_foot", SWING_RIGHT: "left_foot", SWING_NONE: "left_foot"}[s.swing_foot]


def test_gait_helpers():
    np.testing.assert_allclose(gait.swing_phase([0.5, 0.25, 0.0, 0.3], [0.5, 0.5, 0.0, 0.5]), [0.0, 0.5, 0.0, 0.4])
    s = np.linspace(0, 1, 101)
    assert gait.min_jerk(0.0) == 0.0 and gait.min_jerk(1.0) == 1.0 and np.all(np.diff(gait.min_jerk(s)) >= 0)
    assert gait.swing_height(0.5, 0.07) == pytest.approx(0.07)
    assert gait.swing_height(0.0, 0.07) == 0.0 and gait.swing_height(1.0, 0.07) == 0.0
    eps = 1e-6
    for f, df in ((gait.min_jerk, gait.min_jerk_rate), (lambda p: gait.swing_height(p, 0.07),
                                                        lambda p: gait.swing_height_rate(p, 0.07))):
        mid = s[1:-1]
        np.testing.assert_allclose((f(mid + eps) - f(mid - eps)) / (2 * eps), df(mid), atol=1e-6)
        assert df(0.0) == 0.0 and df(1.0) == 0.0
    clock = gait.clock_observation([SWING_NONE, SWING_LEFT, SWING_RIGHT], [0.0, 0.25, 0.5], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(clock, [[0, 0, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], atol=1e-12)


def test_footstep_record_from_the_message_and_for_standing():
    from types import SimpleNamespace

    from loco_manip_controller.footstep_planner import Footstep

    msg = SimpleNamespace(swing_foot=SWING_RIGHT, countdown=0.2, step_duration=0.5, target_x=0.1, target_y=-0.2,
                          target_yaw=0.05, step_index=7)
    f = Footstep.from_msg(msg)
    np.testing.assert_allclose(f.target, [[0.1, -0.2, 0.05]])
    assert (f.swing_foot[0], f.step_index[0], len(f)) == (SWING_RIGHT, 7, 1)
    assert f.phase[0] == pytest.approx(0.6)
    stand = Footstep.standing(3)
    assert np.all(stand.swing_foot == SWING_NONE) and np.all(stand.phase == 0.0) and stand.target.shape == (3, 3)
    with pytest.raises(ValueError, match=r"Footstep.target has shape \(2,\); expected \(1, 3\)"):
        Footstep(f.swing_foot, f.countdown, f.step_duration, np.zeros(2), f.step_index)


def test_footstep_node_runs_the_planner_config_of_the_legs_policy():
    """footstep_node builds its planner from the legs policy's metadata (no retyping); an explicit
    parameter that contradicts it is refused naming both values; without a policy the parameters apply."""
    import json

    from loco_manip_controller.contract import PolicyMetadataError
    from loco_manip_controller.footstep_node import planner_setup
    from loco_manip_controller.policy_runtime import MODELS_DIR

    shipped = json.loads((MODELS_DIR / "legs.json").read_text())
    unset = {name: None for name in CFG.__dataclass_fields__}
    config, rate = planner_setup("legs.onnx", 0.0, unset)
    assert config == FootstepPlannerConfig(**shipped["footstep_planner"]) and rate == shipped["control_hz"]
    step_period = shipped["footstep_planner"]["step_period"]
    assert planner_setup("legs.onnx", 50.0, unset | {"step_period": step_period})[0] == config  # agrees: fine
    with pytest.raises(PolicyMetadataError, match=rf"footstep_planner.step_period: caller expects 0.7, policy has "
                                                  rf"{step_period}"):
        planner_setup("legs.onnx", 0.0, unset | {"step_period": 0.7})
    with pytest.raises(PolicyMetadataError, match="control_hz: caller expects 25.0, policy has 50.0"):
        planner_setup("legs.onnx", 25.0, unset)
    config, rate = planner_setup("", 25.0, unset | {"step_period": 0.7})
    assert config.step_period == 0.7 and rate == 25.0


@pytest.mark.ros
@pytest.mark.timeout(60)
def test_node_turns_high_level_commands_into_footstep_commands():
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from refine_dp_msgs.msg import FootstepCommand, HighLevelCommand

    env = dict(os.environ, PYTHONUNBUFFERED="1")  # ROS_DOMAIN_ID: the session's, set by conftest.py
    proc = subprocess.Popen([sys.executable, "-m", "loco_manip_controller.footstep_node", "--ros-args",
                             "-p", "command_timeout_s:=0.3", "-p", "legs_policy:=legs.onnx"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    got = []
    try:
        node = rclpy.create_node("test_footstep_listener", context=ctx)
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(FootstepCommand, "footstep_command", got.append,
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        pub = node.create_publisher(HighLevelCommand, "high_level_command", reliable)
        executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
        executor.add_node(node)

        def spin_for(seconds, cmd=None):
            end = time.monotonic() + seconds
            next_pub = 0.0
            while time.monotonic() < end and proc.poll() is None:
                if cmd is not None and time.monotonic() >= next_pub:
                    msg = HighLevelCommand()
                    msg.vx, msg.vy, msg.wz = cmd
                    pub.publish(msg)
                    next_pub = time.monotonic() + 0.1
                executor.spin_once(timeout_sec=0.01)

        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert got, "no FootstepCommand from the node"
        assert all(m.swing_foot == FootstepCommand.SWING_NONE for m in got)
        got.clear()
        t0 = time.monotonic()
        spin_for(2.0, (0.2, 0.0, 0.0))
        rate = len(got) / (time.monotonic() - t0)
        walking = [m for m in got if m.swing_foot != FootstepCommand.SWING_NONE]
        assert walking, "the node never started walking"
        assert rate > 25.0, f"FootstepCommand at {rate:.1f} Hz, expected about 50"
        for m in walking:
            assert m.target_x == pytest.approx(0.1, abs=1e-9)
            assert m.header.frame_id == ("right_foot" if m.swing_foot == FootstepCommand.SWING_LEFT else "left_foot")
            assert 0.0 < m.countdown <= m.step_duration == pytest.approx(0.5)
        assert len({m.step_index for m in walking}) >= 2
        got.clear()
        spin_for(2.0)  # no commands: times out into a stop
        assert got and got[-1].swing_foot == FootstepCommand.SWING_NONE
        assert proc.poll() is None, proc.stdout.read()
    finally:
        rclpy.shutdown(context=ctx)
        if proc.poll() is None:
            os.killpg(proc.pid, 2)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def test_ground_height_becomes_target_z_within_max_step_height_and_flat_legs_never_see_it():
    """A platform 10 cm high from x = 0.15: the first step landing on it is sent target_z 0.1, the trailing foot
    (level with the stance foot, already up) 0, and both feet are then planned at 0.1; with max_step_height 0 (the shipped contract) every target_z is 0 whatever the ground says."""
    def ground(ids, xy):
        return np.where(xy[:, 0] > 0.15, 0.1, 0.0)

    for cfg, expect in ((FootstepPlannerConfig(max_step_height=0.12), 0.1), (FootstepPlannerConfig(), 0.0),
                        (FootstepPlannerConfig(max_step_height=0.05), 0.05)):
        planner = FootstepPlanner(1, cfg)
        zs, feet_z = [], []
        for _ in range(int(3.0 / DT)):
            out = planner.update(DT, np.array([[0.3, 0.0, 0.0]]), ground_height=ground)
            if out.new_step[0]:
                zs.append(out.footstep.target_z[0])
                feet_z.append(out.feet_z[0].copy())
        assert zs[0] == 0.0 and max(zs) == pytest.approx(expect)
        first_up = int(np.argmax(np.array(zs) > 0)) if expect else None
        if expect == 0.1:
            # the trailing foot steps up too: level with the stance foot already up there (target_z is relative)
            assert zs[first_up + 1] == pytest.approx(0.0)
            assert feet_z[first_up + 2].tolist() == pytest.approx([0.1, 0.1])


def test_stop_on_plan_stands_on_measured_feet_that_land_off_target():
    """Measured feet land 2 cm off their targets (the legs' typical error, against the 1 cm side-by-side
    tolerance): judged on the feet the robot steps in place for ever; stop_on_plan stands once a step
    planned to the side-by-side stance has landed."""
    import numpy as np

    from loco_manip_controller.footstep_planner import FootstepPlanner, FootstepPlannerConfig
    from loco_manip_controller.gait import SWING_NONE

    def steps_in_place(stop_on_plan: bool) -> bool:
        pl = FootstepPlanner(1, FootstepPlannerConfig(), stop_on_plan=stop_on_plan)
        feet = np.array([[[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]])
        pl.reset(feet_pose=feet)
        dt = 0.02
        for k in range(int(6.0 / dt)):
            cmd = np.array([[0.15, 0.0, 0.0]]) if k * dt < 2.0 else np.zeros((1, 3))
            out = pl.update(dt, cmd, feet_pose=feet)
            swing = int(pl.swing_foot[0])
            if swing != SWING_NONE:  # the swing foot "lands" 2 cm short of its target
                i = 0 if swing == 1 else 1
                feet[0, i] = out.target_world[0] - np.array([0.02, 0.0, 0.0])
        return int(pl.swing_foot[0]) != SWING_NONE

    assert steps_in_place(False)
    assert not steps_in_place(True)
