"""What the controller measures about its own tracking, from the robot state alone.

`TrackingStats` is fed once per active control step with the measured joints and the commands
the step ran on; no MoCap or simulator ground truth is needed, so the same numbers come out on
the robot:

- footstep error: when a commanded step ends (the step index changes, or the planner stands),
  the swing foot's pose relative to the stance foot against the step's target (the quantity the
  FootstepCommand specifies). `score_touchdowns` is that one definition: the training env's
  placement rewards, `refine-dp eval controller` and this node-side measurement all call it;
- hand errors: forward kinematics of the arm joints against the commanded hand poses (root frame);
- loop timing: control period, its deviation from nominal (jitter), policy inference time.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from t1_description.kinematics import arm_kinematics, feet_planar, level_rotation, planar_relative, pose_errors

from . import policy_io as pio
from .footstep_planner import Footstep
from .gait import SWING_NONE, stance_foot_index, swing_foot_index

MAX_SAMPLES = 200_000  # per series (~1 h at 50 Hz)


def _stats(values, scale: float = 1.0, digits: int = 4) -> dict | None:
    if not len(values):
        return None
    a = np.asarray(values, float) * scale
    return {"median": round(float(np.median(a)), digits), "p90": round(float(np.percentile(a, 90)), digits),
            "p99": round(float(np.percentile(a, 99)), digits), "max": round(float(a.max()), digits), "n": int(len(a))}


@dataclass
class Touchdowns:
    """Which envs' commanded steps ended at this control step, and how well each landed ([N] each)."""

    ended: np.ndarray  # bool: the step that ran ended (a new step started, or the planner stands)
    landed: np.ndarray  # [N, 3] landed swing foot (x, y, yaw) in the stance foot's frame (rows of ended envs)
    error: np.ndarray  # m, |landed xy - target xy|
    yaw_error: np.ndarray  # rad, landed yaw - target yaw, wrapped to [-pi, pi)


def score_touchdowns(prev: Footstep, now: Footstep, feet) -> Touchdowns:
    """Score the steps of `prev` (the footstep command the last control step ran on) that `now` ended.

    feet [N, 2, 3]: planar (x, y, yaw) of both feet, measured now, in any one frame per env (world,
    or the trunk's level frame: only the pose relative to the stance foot counts). Rows of envs
    whose step did not end are zeros (error 0).
    """
    feet = np.asarray(feet, dtype=np.float64)
    env = np.arange(len(prev))
    ended = (prev.swing_foot != SWING_NONE) & ((now.step_index != prev.step_index) | (now.swing_foot == SWING_NONE))
    swing, stance = np.maximum(swing_foot_index(prev.swing_foot), 0), np.maximum(stance_foot_index(prev.swing_foot), 0)
    landed = np.where(ended[:, None], planar_relative(feet[env, stance], feet[env, swing]), 0.0)
    target = np.where(ended[:, None], prev.target, 0.0)
    diff = planar_relative(target, landed)  # wraps the yaw difference
    return Touchdowns(ended, landed, np.hypot(*(landed[:, :2] - target[:, :2]).T), diff[:, 2])


class TrackingStats:
    def __init__(self, table, period_s: float):
        self.table, self.period = table, period_s
        self.arm_idx, self.leg_idx = pio.ARM_ACTION.indices(table), pio.LEG_ACTION.indices(table)
        self.footstep_err, self.footstep_yaw_err = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self.hand_pos_stand, self.hand_pos_walk = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self.hand_rot = deque(maxlen=MAX_SAMPLES)
        self.periods, self.inference = deque(maxlen=MAX_SAMPLES), deque(maxlen=MAX_SAMPLES)
        self._step: Footstep | None = None  # the footstep command the last control step ran on

    def reset(self) -> None:
        """Control stopped (stale state, safety): the step in progress is not scored."""
        self._step = None

    def on_timing(self, period_s: float, inference_ms: float | None) -> None:
        self.periods.append(period_s)
        if inference_ms is not None:
            self.inference.append(inference_ms)

    def on_control_step(self, q29: np.ndarray, gravity, footstep: Footstep, hand_pos, hand_rot,
                        hand_error: tuple | None = None) -> None:
        """q29 measured joints, gravity the projected gravity [3] (trunk frame); footstep (N = 1) the
        footstep command the step ran on; hand_pos [2, 3], hand_rot [2, 3, 3] the commanded hand poses
        (root frame). hand_error: (dp [1, 2, 3], drot [1, 2, 3]) = pose_errors(commanded, FK of q29) when
        the caller has them already (the arm policy's observation does), else computed here."""
        q29 = np.asarray(q29, float)
        prev = self._step
        if prev is not None and prev.swing_foot[0] != SWING_NONE and (
                footstep.step_index[0] != prev.step_index[0] or footstep.swing_foot[0] == SWING_NONE):
            feet = feet_planar(q29[None, self.leg_idx], level_rotation(gravity))  # only when a step ended
            td = score_touchdowns(prev, footstep, feet)
            if td.ended[0]:
                self.footstep_err.append(float(td.error[0]))
                self.footstep_yaw_err.append(abs(float(td.yaw_error[0])))
        self._step = footstep
        if hand_error is None:
            hp, hr = arm_kinematics().fk(q29[self.arm_idx][None])
            hand_error = pose_errors(np.reshape(hand_pos, (1, 2, 3)), np.reshape(hand_rot, (1, 2, 3, 3)), hp, hr)
        # mean over the two hands of |dp| and of |drot| in degrees, in Python floats: the numbers of
        # np.linalg.norm(.., axis=-1).mean() (the same sums in the same order) without a dozen numpy calls
        (lx, ly, lz), (rx, ry, rz) = np.reshape(hand_error[0], (2, 3)).tolist()
        pos_err = (math.sqrt(lx * lx + ly * ly + lz * lz) + math.sqrt(rx * rx + ry * ry + rz * rz)) / 2
        (self.hand_pos_stand if footstep.swing_foot[0] == SWING_NONE else self.hand_pos_walk).append(pos_err)
        (lx, ly, lz), (rx, ry, rz) = np.reshape(hand_error[1], (2, 3)).tolist()
        self.hand_rot.append((math.degrees(math.sqrt(lx * lx + ly * ly + lz * lz))
                              + math.degrees(math.sqrt(rx * rx + ry * ry + rz * rz))) / 2)

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
