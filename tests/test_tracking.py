"""The controller's self-measured tracking (tracking.py), the bringup monitor's velocity tracking,
and the shipped-model lookup."""
import math

import numpy as np
import pytest

from loco_manip_controller import policy_io as pio
from loco_manip_controller.gait import SWING_LEFT, SWING_NONE, SWING_RIGHT
from loco_manip_controller.policy_runtime import MODELS_DIR, resolve_model
from loco_manip_controller.tracking import TrackingStats, planar_feet, relative_pose
from t1_description.joint_table import load_joint_table


def _hands(jt, q):
    return pio.arm_kinematics().fk(q[pio.ARM_ACTION.indices(jt)])


def test_footstep_error_is_landed_relative_pose_minus_target():
    jt = load_joint_table()
    q = jt.default_q.copy()
    feet = planar_feet(q, jt)
    rel_left_on_right = relative_pose(feet[1], feet[0])  # left foot seen from the right foot
    assert rel_left_on_right[1] == pytest.approx(0.2, abs=0.03)  # left of it, about the nominal width
    hp, hr = _hands(jt, q)
    t = TrackingStats(jt, 0.02)
    target = rel_left_on_right + np.array([0.03, -0.04, 0.0])  # the step asked for 5 cm more
    t.on_control_step(q, SWING_LEFT, 7, target, hp, hr)
    t.on_control_step(q, SWING_LEFT, 7, target, hp, hr)  # same step: nothing scored yet
    assert not t.footstep_err
    t.on_control_step(q, SWING_RIGHT, 8, (0.0, -0.2, 0.0), hp, hr)  # step 7 ended
    assert list(t.footstep_err) == pytest.approx([0.05], abs=1e-9)
    t.on_control_step(q, SWING_NONE, 8, (0.0, 0.0, 0.0), hp, hr)  # standing ends step 8 (right foot)
    assert t.footstep_err[-1] == pytest.approx(np.hypot(*(relative_pose(feet[0], feet[1])[:2] - [0.0, -0.2])))
    t.reset()
    t.on_control_step(q, SWING_LEFT, 9, target, hp, hr)
    t.on_control_step(q, SWING_NONE, 9, (0, 0, 0), hp, hr)
    assert len(t.footstep_err) == 3


def test_hand_errors_zero_at_the_target_and_split_by_gait():
    jt = load_joint_table()
    q = jt.default_q.copy()
    hp, hr = _hands(jt, q)
    t = TrackingStats(jt, 0.02)
    t.on_control_step(q, SWING_NONE, 0, (0, 0, 0), hp, hr)
    assert t.hand_pos_stand[-1] == pytest.approx(0.0, abs=1e-9) and t.hand_rot[-1] == pytest.approx(0.0, abs=1e-6)
    t.on_control_step(q, SWING_LEFT, 1, (0, 0.2, 0), hp + np.array([0.0, 0.0, 0.02]), hr)
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
