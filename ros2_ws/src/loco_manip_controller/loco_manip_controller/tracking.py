"""What the controller node measures about its own tracking, from the robot state alone.

`TrackingStats` is fed once per active control step with the measured joints and the commands
the step ran on; no MoCap or simulator ground truth is needed, so the same numbers come out on
the robot:

- footstep error: when a commanded step ends (the step index changes, or the planner stands),
  the swing foot's pose relative to the stance foot (leg forward kinematics, trunk-independent)
  against the step's target (target_x, target_y in the stance-foot yaw frame) - the quantity the
  FootstepCommand specifies, and the one `refine-dp eval controller` reports in simulation;
- hand errors: forward kinematics of the arm joints against the commanded hand poses (root frame);
- loop timing: control period, its deviation from nominal (jitter), policy inference time.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from . import policy_io as pio
from .gait import SWING_LEFT, SWING_NONE
from .reference_motion import legs_fk

MAX_SAMPLES = 200_000  # per series (~1 h at 50 Hz)


def _stats(values, scale: float = 1.0, digits: int = 4) -> dict | None:
    if not len(values):
        return None
    a = np.asarray(values, float) * scale
    return {"median": round(float(np.median(a)), digits), "p90": round(float(np.percentile(a, 90)), digits),
            "p99": round(float(np.percentile(a, 99)), digits), "max": round(float(a.max()), digits), "n": int(len(a))}


def planar_feet(q29: np.ndarray, table) -> np.ndarray:
    """Both feet as (x, y, yaw) [2, 3] in the trunk frame, from the leg joints."""
    pos, rot = legs_fk(np.asarray(q29)[pio.LEG_ACTION.indices(table)])
    return np.concatenate([pos[:, :2], np.arctan2(rot[:, 1, 0], rot[:, 0, 0])[:, None]], -1)


def relative_pose(stance: np.ndarray, swing: np.ndarray) -> np.ndarray:
    """Swing pose expressed in the stance-foot yaw frame, (x, y, yaw)."""
    c, s = np.cos(stance[2]), np.sin(stance[2])
    d = swing[:2] - stance[:2]
    dyaw = (swing[2] - stance[2] + np.pi) % (2 * np.pi) - np.pi
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], dyaw])


class TrackingStats:
    def __init__(self, table, period_s: float):
        self.table, self.period = table, period_s
        self.arm_idx = pio.ARM_ACTION.indices(table)
        self.footstep_err, self.footstep_yaw_err = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self.hand_pos_stand, self.hand_pos_walk = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self.hand_rot = deque(maxlen=MAX_SAMPLES)
        self.periods, self.inference = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self._step = None  # (swing_foot, step_index, target (x, y, yaw)) of the step being tracked

    def reset(self) -> None:
        """Control stopped (stale state, safety): the step in progress is not scored."""
        self._step = None

    def on_timing(self, period_s: float, inference_ms: float | None) -> None:
        self.periods.append(period_s)
        if inference_ms is not None:
            self.inference.append(inference_ms)

    def on_control_step(self, q29: np.ndarray, swing_foot: int, step_index: int, target, hand_pos, hand_rot) -> None:
        """q29 measured joints; swing_foot/step_index/target (x, y, yaw) of the footstep command the
        step ran on; hand_pos [2, 3], hand_rot [2, 3, 3] the commanded hand poses (root frame)."""
        q29 = np.asarray(q29, float)
        prev = self._step
        if prev is not None and prev[0] != SWING_NONE and (swing_foot == SWING_NONE or step_index != prev[1]):
            feet = planar_feet(q29, self.table)
            swing = 0 if prev[0] == SWING_LEFT else 1
            rel = relative_pose(feet[1 - swing], feet[swing])
            self.footstep_err.append(float(np.hypot(*(rel[:2] - prev[2][:2]))))
            self.footstep_yaw_err.append(abs(float((rel[2] - prev[2][2] + np.pi) % (2 * np.pi) - np.pi)))
        self._step = (int(swing_foot), int(step_index), np.asarray(target, float))
        hp, hr = pio.arm_kinematics().fk(q29[self.arm_idx][None])
        dp, drot = pio.pose_errors(np.reshape(hand_pos, (1, 2, 3)), np.reshape(hand_rot, (1, 2, 3, 3)), hp, hr)
        pos_err = float(np.linalg.norm(dp, axis=-1).mean())
        (self.hand_pos_stand if swing_foot == SWING_NONE else self.hand_pos_walk).append(pos_err)
        self.hand_rot.append(float(np.degrees(np.linalg.norm(drot, axis=-1)).mean()))

    def summary(self) -> dict:
        jitter = [abs(p - self.period) for p in self.periods]
        return {
            "footstep_error_m": _stats(self.footstep_err),
            "footstep_yaw_error_deg": _stats(self.footstep_yaw_err, np.degrees(1.0), 2),
            "hand_pos_error_m": {"standing": _stats(self.hand_pos_stand), "walking": _stats(self.hand_pos_walk)},
            "hand_rot_error_deg": _stats(self.hand_rot, 1.0, 2),
            "loop_period_ms": _stats(self.periods, 1e3, 3),
            "loop_jitter_ms": _stats(jitter, 1e3, 3),
            "inference_ms": _stats(self.inference, 1.0, 3),
        }
