"""sim_t1's raw CDR encoding of LowState / decoding of LowCmd equals rclpy's serialization."""
from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from t1_sim.wire import LowStateWriter, parse_low_cmd


def test_low_state_bytes_deserialize_to_the_values():
    from booster_interface.msg import LowState
    rng = np.random.default_rng(0)
    w = LowStateWriter(29)
    vals = [rng.normal(size=3) for _ in range(3)] + [rng.normal(size=29) for _ in range(4)]
    msg = deserialize_message(w.fill(*vals), LowState)
    np.testing.assert_allclose(msg.imu_state.rpy, vals[0], rtol=1e-6)
    np.testing.assert_allclose(msg.imu_state.acc, vals[2], rtol=1e-6)
    for states in (msg.motor_state_serial, msg.motor_state_parallel):
        assert len(states) == 29
        np.testing.assert_allclose([s.q for s in states], vals[3], rtol=1e-6)
        np.testing.assert_allclose([s.tau_est for s in states], vals[6], rtol=1e-6)
    # and rclpy's own bytes for that message carry the same values (padding bytes are unspecified)
    again = deserialize_message(serialize_message(msg), LowState)
    np.testing.assert_array_equal([s.q for s in again.motor_state_serial], [s.q for s in msg.motor_state_serial])


def test_low_cmd_parse_equals_rclpy():
    from booster_interface.msg import LowCmd, MotorCmd
    rng = np.random.default_rng(1)
    cmd = LowCmd(cmd_type=1, motor_cmd=[MotorCmd(mode=int(rng.integers(0, 5)), q=float(rng.normal()),
                                                 dq=float(rng.normal()), tau=float(rng.normal()),
                                                 kp=float(rng.uniform(0, 300)), kd=float(rng.uniform(0, 5)),
                                                 weight=1.0) for _ in range(29)])
    cmd_type, motors = parse_low_cmd(serialize_message(cmd))
    assert cmd_type == 1 and len(motors) == 29
    for field in ("q", "dq", "tau", "kp", "kd", "weight"):
        np.testing.assert_allclose(motors[field], np.float32([getattr(m, field) for m in cmd.motor_cmd]))
    np.testing.assert_array_equal(motors["mode"], [m.mode for m in cmd.motor_cmd])
    with pytest.raises(ValueError, match="announces"):
        parse_low_cmd(serialize_message(cmd)[:100])
