"""Reward and termination terms of the T1 low-level tasks, one small function each (mjlab style).

Each term maps a `StepContext` (batched arrays of one control step) to [N] values; the env
multiplies by the weights of `EnvConfig.rewards` and sums. Positive terms are bounded kernels in
[0, 1] (exp(-e^2 / sigma^2)); negative weights go on squared-magnitude regularizers. Kernel
widths are written next to each term so the task reads as a list of what matters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class StepContext:
    """Everything a term may read (world frame unless said otherwise); None where a task lacks it."""

    q: np.ndarray            # [N, 29] joint positions (table order)
    dq: np.ndarray           # [N, 29]
    q_des: np.ndarray        # [N, 29] PD targets applied this step
    tau: np.ndarray          # [N, 29] PD torque at the end of the step (nominal gains, clipped)
    driven: np.ndarray       # joint indices the policy drives
    action: np.ndarray       # [N, act_dim]
    prev_action: np.ndarray  # [N, act_dim]
    lower: np.ndarray        # [29] soft joint limits
    upper: np.ndarray
    root_pos: np.ndarray     # [N, 3]
    gravity: np.ndarray      # [N, 3] projected gravity (trunk frame)
    terminated: np.ndarray   # [N] bool (the termination terms fill it before the rewards read it)
    state: np.ndarray | None = None  # [N, state] physics rows
    # legs
    ref_joint_pos: np.ndarray | None = None   # [N, 12]
    ref_trunk_pos: np.ndarray | None = None   # [N, 3]
    ref_gravity: np.ndarray | None = None     # [N, 3]
    foot_pos: np.ndarray | None = None        # [N, 2, 3] foot links (measured)
    ref_foot_pos: np.ndarray | None = None    # [N, 2, 3]
    foot_vel_xy: np.ndarray | None = None     # [N, 2, 2]
    contact: np.ndarray | None = None         # [N, 2] bool
    expected_contact: np.ndarray | None = None  # [N, 2] bool
    touchdown: np.ndarray | None = None       # [N] bool: a planned step ended this control step
    touchdown_error: np.ndarray | None = None  # [N] m, landed foot vs its target (xy)
    touchdown_yaw_error: np.ndarray | None = None  # [N] rad, landed foot's yaw vs its target's (wrapped)
    swing_target_dist: np.ndarray | None = None  # [N] m, swing foot (xy) to its touchdown target (0 standing)
    swing_phase: np.ndarray | None = None        # [N] in [0, 1] (0 standing)
    foot_yaw_rate: np.ndarray | None = None   # [N, 2] rad/s, feet yaw rates (measured)
    command_position_error: np.ndarray | None = None  # [N] m, trunk vs the integrated command (leaky, env)
    command_heading_error: np.ndarray | None = None   # [N] rad, likewise for the heading
    cmd_vel: np.ndarray | None = None         # [N, 3] achievable commanded (vx, vy) heading frame, wz
    base_vel: np.ndarray | None = None        # [N, 3] measured trunk (vx, vy) heading frame, wz world
    # arms
    hand_pos_error: np.ndarray | None = None  # [N, 2] m
    hand_rot_error: np.ndarray | None = None  # [N, 2] rad
    arm_idx: np.ndarray | None = None


def _kernel(sq_error: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-sq_error / (sigma * sigma))


# ---------------------------------------------------------------------- shared
def alive(c: StepContext):
    return np.ones(len(c.q))


def termination(c: StepContext):
    return c.terminated.astype(np.float64)


def action_rate(c: StepContext):
    return np.sum((c.action - c.prev_action) ** 2, axis=-1)


def joint_velocity(c: StepContext):
    return np.sum(c.dq[:, c.driven] ** 2, axis=-1)


def torque(c: StepContext):
    return np.sum(c.tau ** 2, axis=-1)


def joint_limits(c: StepContext):
    q = c.q[:, c.driven]
    return np.sum(np.maximum(c.lower[c.driven] - q, 0.0) + np.maximum(q - c.upper[c.driven], 0.0), axis=-1)


# ---------------------------------------------------------------------- legs
def joint_imitation(c: StepContext):  # sigma 0.5 rad over the 12 leg joints
    return _kernel(np.sum((c.q[:, c.driven] - c.ref_joint_pos) ** 2, axis=-1), 0.5)


def foot_tracking(c: StepContext):  # sigma 5 cm over both feet (3-D, includes swing height)
    return _kernel(np.sum((c.foot_pos - c.ref_foot_pos) ** 2, axis=(-1, -2)), 0.05)


def foot_placement(c: StepContext):  # at touchdown only: exp(-d / 5 cm)
    return np.where(c.touchdown, np.exp(-c.touchdown_error / 0.05), 0.0)


def foot_yaw_placement(c: StepContext):  # at touchdown only, sigma 0.1 rad: turning is placing the feet rotated
    return np.where(c.touchdown, _kernel(c.touchdown_yaw_error ** 2, 0.1), 0.0)


def trunk_height(c: StepContext):  # sigma 5 cm
    return _kernel((c.root_pos[:, 2] - c.ref_trunk_pos[:, 2]) ** 2, 0.05)


def trunk_orientation(c: StepContext):  # sigma ~0.1 rad of roll/pitch error
    return _kernel(np.sum((c.gravity[:, :2] - c.ref_gravity[:, :2]) ** 2, axis=-1), 0.1)


def trunk_position(c: StepContext):  # sigma 10 cm, horizontal
    return _kernel(np.sum((c.root_pos[:, :2] - c.ref_trunk_pos[:, :2]) ** 2, axis=-1), 0.1)


def contact_schedule(c: StepContext):
    return np.mean(c.contact == c.expected_contact, axis=-1)


def swing_target(c: StepContext):  # dense placement: swing foot towards its target, late in the swing
    return np.where(c.swing_phase > 0, c.swing_phase ** 2 * np.exp(-c.swing_target_dist / 0.05), 0.0)


def base_velocity(c: StepContext):  # sigma 0.1 m/s on (vx, vy): the robot must really go where told
    return _kernel(np.sum((c.base_vel[:, :2] - c.cmd_vel[:, :2]) ** 2, axis=-1), 0.1)


def yaw_rate(c: StepContext):  # sigma 0.2 rad/s
    return _kernel((c.base_vel[:, 2] - c.cmd_vel[:, 2]) ** 2, 0.2)


def foot_slip(c: StepContext):
    return np.sum(c.contact * np.sum(c.foot_vel_xy ** 2, axis=-1), axis=-1)


def foot_yaw_slip(c: StepContext):  # a foot pivoting on the ground: foot_slip sees no xy motion of its centre
    return np.sum(c.contact * c.foot_yaw_rate ** 2, axis=-1)


# Where the robot ends up, not its instantaneous velocity (lost in the stepping sway): the trunk against the
# walkable command integrated from the trunk pose, leaking back to it over command_path_tau_s (env.py), so
# an error made over the last seconds - a step short, a heading drifting - stays visible until walked back.
def command_position(c: StepContext):  # sigma 15 cm
    return _kernel(c.command_position_error ** 2, 0.15)


def command_heading(c: StepContext):  # sigma 0.2 rad
    return _kernel(c.command_heading_error ** 2, 0.2)


# ---------------------------------------------------------------------- arms
def hand_position(c: StepContext):  # sigma 10 cm
    return np.mean(_kernel(c.hand_pos_error ** 2, 0.1), axis=-1)


def hand_position_fine(c: StepContext):  # sigma 2 cm
    return np.mean(_kernel(c.hand_pos_error ** 2, 0.02), axis=-1)


def hand_orientation(c: StepContext):  # sigma ~0.3 rad
    return np.mean(_kernel(c.hand_rot_error ** 2, 0.3), axis=-1)


def arm_joint_velocity(c: StepContext):
    return np.sum(c.dq[:, c.arm_idx] ** 2, axis=-1)


REWARD_TERMS: dict[str, Callable[[StepContext], np.ndarray]] = {
    f.__name__: f for f in (alive, termination, action_rate, joint_velocity, torque, joint_limits,
                            joint_imitation, foot_tracking, foot_placement, foot_yaw_placement, trunk_height, trunk_orientation,
                            trunk_position, contact_schedule, swing_target, base_velocity, yaw_rate, foot_slip,
                            foot_yaw_slip, command_position, command_heading, hand_position, hand_position_fine,
                            hand_orientation, arm_joint_velocity)
}


def check_reward_names(weights: dict) -> None:
    unknown = sorted(set(weights) - set(REWARD_TERMS))
    if unknown:
        raise KeyError(f"unknown reward terms {unknown}; available: {sorted(REWARD_TERMS)}")


def compute_rewards(weights: dict, ctx: StepContext) -> tuple[np.ndarray, dict]:
    """(total [N], per-term weighted values {name: [N]})."""
    parts = {name: w * REWARD_TERMS[name](ctx) for name, w in weights.items() if w != 0.0}
    total = np.sum(list(parts.values()), axis=0) if parts else np.zeros(len(ctx.q))
    return total, parts


# ---------------------------------------------------------------------- terminations
# each maps (StepContext, EnvConfig) -> [N] bool
def fall_height(c: StepContext, cfg):
    return c.root_pos[:, 2] < cfg.fall_height


def fall_tilt(c: StepContext, cfg):
    return c.gravity[:, 2] > cfg.fall_gravity_z


def non_finite(c: StepContext, cfg):
    return ~np.isfinite(c.state).all(axis=-1) | (np.abs(c.state) > 1e4).any(axis=-1)


def foot_deviation(c: StepContext, cfg):
    """Legs (DeepMimic's early termination): a foot link farther than cfg.max_foot_deviation (3-D) from the
    reference ends the episode, so a policy cannot trade the steps it is told to take for safe standing."""
    return np.linalg.norm(c.foot_pos - c.ref_foot_pos, axis=-1).max(axis=-1) > cfg.max_foot_deviation


TERMINATION_TERMS = {f.__name__: f for f in (fall_height, fall_tilt, non_finite, foot_deviation)}
