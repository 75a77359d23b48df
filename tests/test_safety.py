"""The hardware interface's safety layer (ROS-free): ramp, watchdogs, clamps, validation, falls, e-stop.

Time is simulated: each test drives SafetyController.step(now) at 500 Hz with LowStates stamped
at the same `now`. Where the robot matters, an ideal robot tracks the sent position exactly
(`follow=True`), so the PD torque clamp does not interfere with what a test looks at.
"""
from __future__ import annotations

import numpy as np
import pytest

from t1_description.joint_table import load_joint_table
from t1_description.robot_types import JointCommandRequest, MeasuredState, projected_gravity, rpy_to_quat_wxyz
from t1_hardware_interface.safety import Safety, SafetyConfig, SafetyController

TABLE = load_joint_table()
N = len(TABLE.names)
DT = 0.002
EPS = 1e-4


class Rig:
    """A controller, a clock and an ideal robot that tracks the sent position when `follow`."""

    def __init__(self, config: SafetyConfig | None = None, q0=None, rpy=(0.0, 0.0, 0.0)):
        self.ctrl = SafetyController(TABLE, config or SafetyConfig())
        self.t = 0.0
        self.q = np.array(TABLE.default_q if q0 is None else q0, dtype=float)
        self.rpy = rpy
        self.follow = True
        self.out = None

    def feed(self, stamp: float | None = None) -> None:
        self.ctrl.on_state(MeasuredState.from_arrays(self.q, rpy=self.rpy, stamp=self.t if stamp is None else stamp))

    def step_at(self, t: float, feed: bool = True):
        self.t = t
        if feed:
            self.feed()
        self.out = self.ctrl.step(t)
        if self.follow and self.out is not None and self.ctrl.state not in (Safety.DAMPING, Safety.FALLEN):
            self.q = self.out.q.copy()
        return self.out

    def run(self, duration: float, feed: bool = True):
        for _ in range(int(round(duration / DT))):
            self.step_at(self.t + DT, feed)
        return self.out

    def command(self, q=None, names=None, kp=None, kd=None, **kw):
        names = TABLE.names if names is None else names
        idx = [TABLE.names.index(n) if n in TABLE.names else 0 for n in names]  # defaults only
        req = JointCommandRequest(
            names=tuple(names), position=np.asarray(TABLE.default_q[idx] if q is None else q, dtype=float),
            kp=np.asarray(TABLE.kp[idx] if kp is None else kp, dtype=float),
            kd=np.asarray(TABLE.kd[idx] if kd is None else kd, dtype=float), **kw)
        return self.ctrl.on_command(req, self.t)

    def to_active(self) -> None:
        self.step_at(0.0)
        self.run(SafetyConfig().ramp_time + 0.01)
        assert self.ctrl.state == Safety.READY
        assert self.command().accepted
        assert self.ctrl.state == Safety.ACTIVE


def test_states_match_robot_state_message():
    from refine_dp_msgs.msg import RobotState

    for s in Safety:
        assert getattr(RobotState, f"SAFETY_{s.name}") == s.value


def test_waiting_sends_nothing_until_first_low_state():
    rig = Rig()
    assert rig.ctrl.step(0.0) is None and rig.ctrl.state == Safety.WAITING
    assert rig.step_at(0.002) is not None and rig.ctrl.state == Safety.RAMPING


def test_ramp_from_measured_to_default_in_ramp_time_ignoring_commands():
    q0 = TABLE.default_q.copy()
    arms = TABLE.indices("left_arm", "right_arm")
    q0[arms] += 0.3 * np.sign(-TABLE.default_q[arms] + 1e-3)  # move toward the middle of the range
    q0[TABLE.index("Left_Knee_Pitch")] = 1.0
    rig = Rig(q0=q0)
    first = rig.step_at(0.0)
    np.testing.assert_allclose(first.q, q0, atol=1e-9)
    np.testing.assert_allclose(first.kp, TABLE.kp)

    rig.run(0.25)
    np.testing.assert_allclose(rig.out.q, q0 + 0.15625 * (TABLE.default_q - q0), atol=1e-9)  # smoothstep(0.25)
    rig.run(0.25)
    verdict = rig.command(q=TABLE.upper)  # a policy command during the ramp must not move anything
    assert not verdict.accepted and verdict.ignored and "RAMPING" in verdict.reason
    np.testing.assert_allclose(rig.out.q, q0 + 0.5 * (TABLE.default_q - q0), atol=1e-9)  # smoothstep(0.5)
    rig.run(0.5 - 0.01)
    assert rig.ctrl.state == Safety.RAMPING
    assert np.max(np.abs(rig.out.q - TABLE.default_q)) < 0.01
    rig.run(0.012)
    assert rig.ctrl.state == Safety.READY
    np.testing.assert_allclose(rig.out.q, TABLE.default_q, atol=1e-9)
    assert rig.ctrl.counts["ignored"] == 1 and rig.ctrl.counts["accepted"] == 0


def test_active_follows_command_then_hold_then_damping_at_thresholds():
    rig = Rig()
    rig.to_active()
    t_cmd = rig.t
    target = TABLE.default_q.copy()
    target[TABLE.index("Waist")] = 0.1
    assert rig.command(q=target).accepted
    rig.run(0.05)
    np.testing.assert_allclose(rig.out.q, target, atol=1e-9)
    held = rig.out.q.copy()

    rig.step_at(t_cmd + 0.1 - EPS)
    assert rig.ctrl.state == Safety.ACTIVE
    rig.step_at(t_cmd + 0.1 + EPS)
    assert rig.ctrl.state == Safety.HOLD and "JointCommand" in rig.ctrl.reason
    np.testing.assert_allclose(rig.out.q, held)
    assert np.all(rig.out.kp > 0) and np.all(rig.out.dq == 0)
    rig.step_at(t_cmd + 0.5 - EPS)
    assert rig.ctrl.state == Safety.HOLD
    rig.step_at(t_cmd + 0.5 + EPS)
    assert rig.ctrl.state == Safety.DAMPING
    out = rig.out
    assert np.all(out.kp == 0) and np.all(out.kd > 0)
    np.testing.assert_allclose(out.kd[TABLE.indices("left_leg")], SafetyConfig().damping_kd["left_leg"])
    np.testing.assert_allclose(out.q, rig.q)  # q target = measured
    # latched: commands are ignored until reset
    assert rig.command().ignored
    rig.run(0.1)
    assert rig.ctrl.state == Safety.DAMPING
    ok, _ = rig.ctrl.reset(rig.t)
    assert ok and rig.ctrl.state == Safety.RAMPING
    kinds = [(tr.old, tr.new) for tr in rig.ctrl.drain_transitions()]
    assert kinds[-4:] == [(Safety.READY, Safety.ACTIVE), (Safety.ACTIVE, Safety.HOLD),
                          (Safety.HOLD, Safety.DAMPING), (Safety.DAMPING, Safety.RAMPING)]


def test_hold_returns_to_active_on_a_new_command():
    rig = Rig()
    rig.to_active()
    rig.run(0.15)
    assert rig.ctrl.state == Safety.HOLD
    assert rig.command().accepted
    assert rig.ctrl.state == Safety.ACTIVE


def test_no_state_at_state_timeout_sends_nothing_then_latches_damping():
    rig = Rig()
    rig.to_active()
    stamp = rig.t
    rig.command()
    assert rig.ctrl.step(stamp + 0.05 - EPS) is not None
    assert rig.ctrl.state == Safety.ACTIVE
    assert rig.ctrl.step(stamp + 0.05 + EPS) is None
    assert rig.ctrl.state == Safety.NO_STATE and "LowState" in rig.ctrl.reason
    assert rig.ctrl.step(stamp + 0.2) is None
    rig.step_at(stamp + 0.21)  # LowState back: damping until reset (default recovery)
    assert rig.ctrl.state == Safety.DAMPING and np.all(rig.out.kp == 0)


def test_no_state_recovery_ramp():
    rig = Rig(SafetyConfig(no_state_recovery="ramp"))
    rig.to_active()
    rig.run(0.1, feed=False)
    assert rig.ctrl.state == Safety.NO_STATE
    rig.step_at(rig.t + DT)
    assert rig.ctrl.state == Safety.RAMPING
    # a reset clears the e-stop latch: a later gap ramps again instead of returning to damping
    rig.ctrl.estop(rig.t)
    assert rig.ctrl.reset(rig.t)[0]
    rig.run(0.1, feed=False)
    rig.step_at(rig.t + DT)
    assert rig.ctrl.state == Safety.RAMPING


def test_position_velocity_effort_and_gain_clamps():
    rig = Rig()
    rig.to_active()
    knee = TABLE.index("Left_Knee_Pitch")
    q = TABLE.default_q.copy()
    q[knee] = TABLE.upper[knee] + 1.0                       # beyond the limit
    kp, kd = TABLE.kp * 10, TABLE.kd * 10                   # above the caps
    tau = -TABLE.effort_limit * 3  # beyond the effort limit (negative: leaves the knee room to rise)
    dq = TABLE.velocity_limit * 3
    assert rig.command(q=q, kp=kp, kd=kd, effort=tau, velocity=dq).accepted
    before = rig.out.q.copy()
    out = rig.step_at(rig.t + DT)
    step = np.abs(out.q - before)
    assert step[knee] == pytest.approx(TABLE.velocity_limit[knee] * DT)  # velocity-limited step
    assert np.all(step <= TABLE.velocity_limit * DT + 1e-12)
    np.testing.assert_allclose(out.kp, 1.5 * TABLE.kp)
    np.testing.assert_allclose(out.kd, 2.0 * TABLE.kd)
    np.testing.assert_allclose(out.tau, -TABLE.effort_limit)
    np.testing.assert_allclose(out.dq, TABLE.velocity_limit)
    for _ in range(25):  # the controller keeps sending the same command at 50 Hz
        rig.command(q=q, kp=kp, kd=kd, effort=tau, velocity=dq)
        rig.run(0.02)
    assert rig.ctrl.state == Safety.ACTIVE
    assert rig.out.q[knee] == pytest.approx(TABLE.upper[knee])        # position limit
    counts = rig.ctrl.clamp_counts
    assert counts["position"] >= 1 and counts["step"] >= 1 and counts["kp"] == 26 * N and counts["effort"] == 26 * N


def test_pd_torque_estimate_is_clamped_to_the_effort_limit():
    rig = Rig()
    rig.to_active()
    rig.follow = False  # the robot is stuck: the PD error would grow without the clamp
    knee = TABLE.index("Left_Knee_Pitch")
    q = TABLE.default_q.copy()
    q[knee] += 1.0
    tau = np.zeros(N)
    tau[knee] = 20.0
    assert rig.command(q=q, effort=tau).accepted
    rig.run(0.08)
    assert rig.ctrl.state == Safety.ACTIVE
    out = rig.out
    pd = out.kp * (out.q - rig.q) + out.tau
    assert pd[knee] == pytest.approx(TABLE.effort_limit[knee])
    assert out.q[knee] - rig.q[knee] == pytest.approx((TABLE.effort_limit[knee] - 20.0) / TABLE.kp[knee])
    assert np.all(np.abs(pd) <= TABLE.effort_limit + 1e-9)
    assert rig.ctrl.clamp_counts["pd_torque"] > 0


@pytest.mark.parametrize("change, words", [
    (dict(q=np.full(N, np.nan)), "non-finite position"),
    (dict(kp=np.full(N, np.inf)), "non-finite kp"),
    (dict(q=np.zeros(N - 1)), "position has 28 entries"),
    (dict(velocity=np.zeros(3)), "velocity has 3 entries"),
    (dict(names=TABLE.names[:-1] + ("Left_Tail",)), "unknown joint names ['Left_Tail']"),
    (dict(names=TABLE.names[:-1] + (TABLE.names[0],)), "repeated joint names"),
    (dict(kd=-TABLE.kd), "negative kd"),
    (dict(names=(), q=[], kp=[], kd=[]), "empty name list"),
])
def test_bad_commands_are_rejected_with_a_reason(change, words):
    rig = Rig()
    rig.to_active()
    rig.run(0.02)
    before = rig.out.q.copy()
    verdict = rig.command(**change)
    assert not verdict.accepted and not verdict.ignored
    assert words in verdict.reason
    assert rig.ctrl.counts["rejected"] == 1
    rig.run(0.02)
    np.testing.assert_allclose(rig.out.q, before)  # nothing of the bad command was applied


def test_subset_command_keeps_the_other_joints_targets():
    rig = Rig()
    rig.to_active()
    target = TABLE.default_q.copy()
    target[TABLE.index("Waist")] = 0.2
    assert rig.command(q=target).accepted
    rig.run(0.05)
    assert rig.command(names=("AAHead_yaw",), q=[0.3], kp=[10.0], kd=[0.4]).accepted
    rig.run(0.05)
    expected = target.copy()
    expected[0] = 0.3
    np.testing.assert_allclose(rig.out.q, expected, atol=1e-9)
    assert rig.out.kp[0] == 10.0 and rig.out.kp[1] == TABLE.kp[1]


def test_interpolation_between_commands():
    rig = Rig(SafetyConfig(interpolate=True, command_period=0.02))
    rig.to_active()
    target = TABLE.default_q.copy()
    target[TABLE.index("Waist")] += 0.01
    assert rig.command(q=target).accepted
    t0 = rig.t
    rig.step_at(t0 + 0.01)
    assert rig.out.q[TABLE.index("Waist")] == pytest.approx(TABLE.default_q[TABLE.index("Waist")] + 0.005)
    rig.step_at(t0 + 0.02)
    np.testing.assert_allclose(rig.out.q, target, atol=1e-12)
    # without interpolation the goal is held at once (within the velocity limit)
    rig2 = Rig()
    rig2.to_active()
    rig2.command(q=target)
    rig2.step_at(rig2.t + DT)
    np.testing.assert_allclose(rig2.out.q, target, atol=1e-12)


@pytest.mark.parametrize("rpy, words", [
    ((1.0 + 0.05, 0.0, 0.0), "roll"),
    ((0.0, -1.05, 0.3), "pitch"),
    ((0.8, 0.8, 0.0), "projected gravity z"),  # each below 1 rad, together past 60 deg of tilt
])
def test_fall_is_detected_damps_and_latches_until_reset(rpy, words):
    rig = Rig()
    rig.to_active()
    rig.rpy = (0.99, 0.0, 0.0)  # just below the roll limit: not a fall
    rig.run(0.01)
    rig.command()
    assert rig.ctrl.state == Safety.ACTIVE
    rig.rpy = rpy
    rig.step_at(rig.t + DT)
    assert rig.ctrl.state == Safety.FALLEN and words in rig.ctrl.reason
    assert np.all(rig.out.kp == 0)
    ok, why = rig.ctrl.reset(rig.t)
    assert not ok and "tilted" in why
    rig.rpy = (0.0, 0.0, 0.0)  # stood back up: still latched
    rig.run(0.1)
    assert rig.ctrl.state == Safety.FALLEN
    assert rig.command().ignored
    ok, _ = rig.ctrl.reset(rig.t)
    assert ok and rig.ctrl.state == Safety.RAMPING


def test_gravity_check_agrees_with_projected_gravity():
    g = projected_gravity((0.8, 0.8, 0.0))
    assert g[2] == pytest.approx(-np.cos(0.8) ** 2)
    np.testing.assert_allclose(projected_gravity((0.0, 0.0, 1.0)), [0, 0, -1], atol=1e-12)
    from scipy.spatial.transform import Rotation  # the IMU's rpy are ZYX Euler angles
    rpy = (0.3, -0.4, 1.2)
    expected = Rotation.from_euler("ZYX", rpy[::-1]).inv().apply([0.0, 0.0, -1.0])
    np.testing.assert_allclose(projected_gravity(rpy), expected, atol=1e-12)
    np.testing.assert_allclose(rpy_to_quat_wxyz(rpy), Rotation.from_euler("ZYX", rpy[::-1]).as_quat(scalar_first=True),
                               atol=1e-12)


def test_fallen_at_start_does_not_ramp():
    rig = Rig(rpy=(0.0, 1.4, 0.0))
    rig.step_at(0.0)
    assert rig.ctrl.state == Safety.FALLEN and np.all(rig.out.kp == 0)


def test_estop_damps_latched_and_reset_ramps_again():
    rig = Rig()
    rig.to_active()
    rig.ctrl.estop(rig.t, "e-stop service")
    assert rig.ctrl.state == Safety.DAMPING and rig.ctrl.reason == "e-stop service"
    rig.step_at(rig.t + DT)
    assert np.all(rig.out.kp == 0)
    assert rig.command().ignored
    rig.run(1.0)
    assert rig.ctrl.state == Safety.DAMPING
    ok, _ = rig.ctrl.reset(rig.t)
    assert ok and rig.ctrl.state == Safety.RAMPING
    rig.run(1.01)
    assert rig.ctrl.state == Safety.READY


def test_estop_before_first_state_latches():
    rig = Rig()
    rig.ctrl.estop(0.0)
    rig.step_at(0.002)
    assert rig.ctrl.state == Safety.DAMPING


def test_reset_refused_without_recent_state():
    rig = Rig()
    ok, why = rig.ctrl.reset(0.0)
    assert not ok and "LowState" in why


def test_config_is_validated():
    with pytest.raises(ValueError, match="damping_after"):
        SafetyConfig(hold_after=0.5, damping_after=0.2)
    with pytest.raises(ValueError, match="unknown joint groups"):
        SafetyController(TABLE, SafetyConfig(damping_kd={**SafetyConfig().damping_kd, "tail": 1.0}))
    with pytest.raises(ValueError, match="no_state_recovery"):
        SafetyConfig(no_state_recovery="pray")
