"""LowState / LowCmd straight to and from their CDR bytes with numpy, for sim_t1's 500 Hz loop.

rclpy turns every nested MotorState/MotorCmd into a Python object (58 per LowState, 29 per
LowCmd); at 500 Hz that alone costs a large part of a core on a 2-core machine. These functions
write and read the same little-endian CDR bytes that rclpy would (tests/test_wire.py checks
them against rclpy.serialization both ways), so sim_t1 can publish and subscribe raw.

Layout (XCDR1, little endian, after the 4-byte encapsulation header):
  LowState: ImuState (9 float32) | uint32 n | n x MotorState | uint32 n | n x MotorState
  MotorState (36 bytes): int8 mode, pad 3, float32 q dq ddq tau_est, int8 temperature, pad 3,
                         uint32 lost, uint32 reserve[2]
  LowCmd:  int8 cmd_type, pad 3 | uint32 n | n x MotorCmd
  MotorCmd (28 bytes): int8 mode, pad 3, float32 q dq tau kp kd weight
"""
from __future__ import annotations

import numpy as np

HEADER = b"\x00\x01\x00\x00"  # CDR little endian, XCDR1
MOTOR_STATE = np.dtype([("mode", "i1"), ("_p0", "V3"), ("q", "<f4"), ("dq", "<f4"), ("ddq", "<f4"),
                        ("tau_est", "<f4"), ("temperature", "i1"), ("_p1", "V3"), ("lost", "<u4"),
                        ("reserve", "<u4", (2,))])
MOTOR_CMD = np.dtype([("mode", "i1"), ("_p0", "V3"), ("q", "<f4"), ("dq", "<f4"), ("tau", "<f4"),
                      ("kp", "<f4"), ("kd", "<f4"), ("weight", "<f4")])
assert MOTOR_STATE.itemsize == 36 and MOTOR_CMD.itemsize == 28


class LowStateWriter:
    """Reusable buffer: fill() the arrays, bytes() gives the serialized LowState."""

    def __init__(self, num_motors: int):
        n = num_motors
        self.n = n
        self.buf = bytearray(4 + 36 + 4 + 36 * n + 4 + 36 * n)
        self.buf[:4] = HEADER
        self.imu = np.frombuffer(self.buf, "<f4", 9, 4)
        np.frombuffer(self.buf, "<u4", 1, 40)[0] = n
        self.parallel = np.frombuffer(self.buf, MOTOR_STATE, n, 44)
        np.frombuffer(self.buf, "<u4", 1, 44 + 36 * n)[0] = n
        self.serial = np.frombuffer(self.buf, MOTOR_STATE, n, 48 + 36 * n)

    def fill(self, rpy, gyro, acc, q, dq, ddq, tau, parallel=None) -> bytes:
        """Serial (joint-space) arrays; `parallel` = (q, dq, ddq, tau) with the ankles in motor
        space (SimCore.low_state().parallel). Without it both spaces carry the serial values."""
        self.imu[:] = np.concatenate([rpy, gyro, acc])
        s, p = self.serial, self.parallel
        s["q"], s["dq"], s["ddq"], s["tau_est"] = q, dq, ddq, tau
        p["q"], p["dq"], p["ddq"], p["tau_est"] = parallel if parallel is not None else (q, dq, ddq, tau)
        return bytes(self.buf)


def parse_low_cmd(data: bytes) -> tuple[int, np.ndarray]:
    """(cmd_type, MotorCmd structured array) from a serialized LowCmd; ValueError if malformed."""
    if len(data) < 12 or data[:2] != HEADER[:2]:
        raise ValueError(f"not a little-endian CDR LowCmd ({len(data)} bytes)")
    cmd_type = int(np.frombuffer(data, "i1", 1, 4)[0])
    n = int(np.frombuffer(data, "<u4", 1, 8)[0])
    if len(data) < 12 + 28 * n:
        raise ValueError(f"LowCmd announces {n} motors but holds {(len(data) - 12) // 28}")
    return cmd_type, np.frombuffer(data, MOTOR_CMD, n, 12)
