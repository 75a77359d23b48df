"""The controller's self-measured tracking (tracking.py), the bringup monitor's velocity tracking,
and the shipped-model lookup."""
import math

import numpy as np
import pytest

from loco_manip_controller import policy_io as pio
from loco_manip_controller.footstep_planner import Footstep
from loco_manip_controller.gait import SWING_LEFT, SWING_NONE, SWING_RIGHT
from loco_manip_controller.policy_runtime import MODELS_DIR, resolve_model
from loco_manip_controller.tracking import TrackingStats, score_touchdowns
from t1_description.joint_table import load_joint_table
from t1_description.kinematics import arm_kinematics, feet_planar, planar_relative

DOWN = np.array([0.0, 0.0, -1.0])


def _hands(jt, q):
    return arm_kinematics().fk(q[pio.ARM_ACTION.indices(jt)])


def _step(swing_foot, step_index, target=(0.0, 0.0, 0.0)) -> Footstep:
    duration = 0.0 if swing_foot == SWING_NONE else 0.5
    return Footstep(np.array([swing_foot], np.uint8), np.array([duration / 2]), np.array([duration]),
                    np.array([target], float), np.array([step_index], np.uint32))


def test_footstep_error_is_landed_relative_pose_minus_target():
    jt = load_joint_table()
    q = jt.default_q.copy()
    feet = feet_planar(q[None, pio.LEG_ACTION.indices(jt)], np.eye(3)[None])[0]
    rel_left_on_right = planar_relative(feet[1], feet[0])  # left foot seen from the right foot
    assert rel_left_on_right[1] == pytest.approx(0.2, abs=0.03)  # left of it, about the nominal width
    hp, hr = _hands(jt, q)
    t = TrackingStats(jt, 0.02)
    target = rel_left_on_right + np.array([0.03, -0.04, 0.1])  # the step asked for 5 cm more, turned 0.1 rad
    t.on_control_step(q, DOWN, _step(SWING_LEFT, 7, target), hp, hr)
    t.on_control_step(q, DOWN, _step(SWING_LEFT, 7, target), hp, hr)  # same step: nothing scored yet
    assert not t.footstep_err
    t.on_control_step(q, DOWN, _step(SWING_RIGHT, 8, (0.0, -0.2, 0.0)), hp, hr)  # step 7 ended
    assert list(t.footstep_err) == pytest.approx([0.05], abs=1e-9)
    assert list(t.footstep_yaw_err) == pytest.approx([0.1], abs=1e-9)
    t.on_control_step(q, DOWN, _step(SWING_NONE, 8), hp, hr)  # standing ends step 8 (right foot)
    assert t.footstep_err[-1] == pytest.approx(np.hypot(*(planar_relative(feet[0], feet[1])[:2] - [0.0, -0.2])))
    t.reset()
    t.on_control_step(q, DOWN, _step(SWING_LEFT, 9, target), hp, hr)
    t.on_control_step(q, DOWN, _step(SWING_NONE, 9), hp, hr)
    assert len(t.footstep_err) == 3


def test_touchdowns_score_the_landed_foot_in_the_stance_frame_wherever_the_feet_are_measured():
    """score_touchdowns (env rewards, evaluation, node) is frame-free: world feet or trunk-frame feet."""
    prev = Footstep(np.array([SWING_LEFT, SWING_RIGHT, SWING_LEFT, SWING_NONE], np.uint8), np.full(4, 0.01),
                    np.array([0.5, 0.5, 0.5, 0.0]), np.array([[0.1, 0.2, 0.1], [0.0, -0.2, 0.0], [0.1, 0.2, 0.0],
                                                              [0.0, 0.0, 0.0]]), np.array([3, 4, 5, 0], np.uint32))
    now = Footstep(np.array([SWING_RIGHT, SWING_NONE, SWING_LEFT, SWING_NONE], np.uint8), np.full(4, 0.5),
                   np.array([0.5, 0.0, 0.5, 0.0]), np.zeros((4, 3)), np.array([4, 4, 5, 0], np.uint32))
    # in the stance foot's frame: env 0 lands 2 cm short and turned 0.15 instead of 0.1, env 1 exactly
    local = np.array([[[0.08, 0.2, 0.15], [0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, -0.2, 0.0]],
                      [[0.0, 0.2, 0.0], [0.0, 0.0, 0.0]], [[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]])
    world_frame = np.array([[1.0, 2.0, 0.7], [-3.0, 0.5, -2.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    from t1_description.kinematics import planar_compose
    world = planar_compose(world_frame[:, None], local)
    td = score_touchdowns(prev, now, world)
    np.testing.assert_array_equal(td.ended, [True, True, False, False])  # env 2: same step; env 3: standing
    np.testing.assert_allclose(td.error[:2], [0.02, 0.0], atol=1e-12)
    np.testing.assert_allclose(td.yaw_error[:2], [0.05, 0.0], atol=1e-12)
    np.testing.assert_allclose(td.landed[:2], [[0.08, 0.2, 0.15], [0.0, -0.2, 0.0]], atol=1e-12)
    np.testing.assert_allclose(td.error[2:], 0.0)


def test_hand_errors_zero_at_the_target_and_split_by_gait():
    jt = load_joint_table()
    q = jt.default_q.copy()
    hp, hr = _hands(jt, q)
    t = TrackingStats(jt, 0.02)
    t.on_control_step(q, DOWN, _step(SWING_NONE, 0), hp, hr)
    assert t.hand_pos_stand[-1] == pytest.approx(0.0, abs=1e-9) and t.hand_rot[-1] == pytest.approx(0.0, abs=1e-6)
    t.on_control_step(q, DOWN, _step(SWING_LEFT, 1, (0, 0.2, 0)), hp + np.array([0.0, 0.0, 0.02]), hr)
    assert t.hand_pos_walk[-1] == pytest.approx(0.02, abs=1e-9)
    for p in (0.020, 0.021, 0.025):
        t.on_timing(p, 1.0)
    s = t.summary()
    assert s["loop_jitter_ms"]["max"] == pytest.approx(5.0, abs=1e-6)
    assert s["hand_pos_error_m"]["walking"]["n"] == 1


def test_monitor_velocity_tracking_from_mocap_and_commands():
    from refine_dp.monitor import GraphMonitor
    m = GraphMonitor.__new__(GraphMonitor)  # the maths only: no ROS node needed
    yaw = math.pi / 2  # walking along world +y while facing +y: forward in the heading frame
    m.trunk = [(t, 0.0, 0.15 * t, yaw) for t in np.arange(0.0, 6.0, 0.01)]
    m.commands = [(t, 0.0 if t < 1.0 or t > 5.0 else 0.2, 0.0, 0.0) for t in np.arange(0.0, 6.0, 0.1)]
    v = m.velocity_tracking()
    assert v["base_velocity_error_mps"] == pytest.approx(0.05, abs=0.01)  # walks 0.15 of 0.2 m/s
    assert v["base_velocity_error_all_mps"] > 0.06  # still walking 0.15 m/s after the stop at 5 s
    assert v["yaw_rate_error_radps"] == pytest.approx(0.0, abs=1e-6)
    assert v["commanded_distance_m"] == pytest.approx(0.8, abs=0.05)


def test_resolve_model_names_what_exists(tmp_path):
    f = tmp_path / "x.onnx"
    f.write_bytes(b"")
    assert resolve_model(f) == f
    with pytest.raises(FileNotFoundError, match="train-lowlevel"):
        resolve_model("no_such_policy.onnx")
    shipped = sorted(MODELS_DIR.glob("*.onnx"))
    if shipped:
        assert resolve_model(shipped[0].name) == shipped[0]
