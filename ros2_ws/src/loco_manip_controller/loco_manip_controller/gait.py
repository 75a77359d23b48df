"""Gait clock helpers shared by the footstep planner, the reference motion and the policies.

One definition of "where in the step are we" so that the planner that issues footstep
commands, the reference motion that the lower-body policy imitates, the rewards that
score it and the observations it sees cannot disagree about the phase. Everything is
vectorized over a leading batch dimension (numpy), and works on scalars as well.

Conventions (mirrors refine_dp_msgs/FootstepCommand):
  swing_foot: SWING_NONE (both feet in stance), SWING_LEFT, SWING_RIGHT.
  countdown: s until the planned touchdown; step_duration: s of the whole step.
  swing phase: 0 at lift-off, 1 at touchdown, = 1 - countdown / step_duration.
Foot index order everywhere: 0 = left, 1 = right.
"""

from __future__ import annotations

import numpy as np

from t1_description.kinematics import LEFT, RIGHT  # foot indices, as the leg kinematics count them

# Values of FootstepCommand.SWING_* (kept ROS-free here; a test checks they match the message).
SWING_NONE = 0
SWING_LEFT = 1
SWING_RIGHT = 2


def unit_clip(x):
    """np.clip(x, 0, 1), without np.clip's Python wrappers (which cost more than the clip on the controller's
    one-row arrays; NaN stays NaN as with np.clip)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def swing_phase(countdown, step_duration):
    """Swing phase in [0, 1]: 0 at lift-off, 1 at touchdown; 0 where step_duration is 0 (standing)."""
    countdown = np.asarray(countdown, dtype=np.float64)
    step_duration = np.asarray(step_duration, dtype=np.float64)
    walking = step_duration > 0.0
    safe = np.where(walking, step_duration, 1.0)
    return np.where(walking, unit_clip(1.0 - countdown / safe), 0.0)


def swing_foot_index(swing_foot):
    """Foot index (0 left, 1 right) of the swing foot; -1 where standing."""
    swing_foot = np.asarray(swing_foot)
    return np.where(swing_foot == SWING_LEFT, LEFT, np.where(swing_foot == SWING_RIGHT, RIGHT, -1))


def stance_foot_index(swing_foot):
    """Foot index of the stance foot while one foot swings (the other one); -1 where standing."""
    swing_foot = np.asarray(swing_foot)
    return np.where(swing_foot == SWING_LEFT, RIGHT, np.where(swing_foot == SWING_RIGHT, LEFT, -1))


def swing_masks(swing_foot):
    """[..., 2] bool: which foot is in the air (left, right)."""
    swing_foot = np.asarray(swing_foot)
    return np.stack([swing_foot == SWING_LEFT, swing_foot == SWING_RIGHT], axis=-1)


def min_jerk(phase):
    """Minimum-jerk interpolation 10s^3 - 15s^4 + 6s^5: 0 -> 1 with zero velocity and
    acceleration at both ends (used for the horizontal swing-foot path and yaw)."""
    s = unit_clip(np.asarray(phase, dtype=np.float64))
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def min_jerk_rate(phase):
    """d(min_jerk)/d(phase) = 30 s^2 (1 - s)^2."""
    s = unit_clip(np.asarray(phase, dtype=np.float64))
    return 30.0 * s * s * (1.0 - s) ** 2


def swing_height(phase, apex):
    """Swing-foot clearance above the ground: apex * 16 s^2 (1 - s)^2.

    Zero height and zero vertical velocity at lift-off and touchdown, peak `apex` at
    mid-swing; shared with the "feet phase" reward so reference and reward agree.
    """
    s = unit_clip(np.asarray(phase, dtype=np.float64))
    return apex * 16.0 * s * s * (1.0 - s) ** 2


def swing_height_rate(phase, apex):
    """d(swing_height)/d(phase) = apex * 32 s (1 - s)(1 - 2s)."""
    s = unit_clip(np.asarray(phase, dtype=np.float64))
    return apex * 32.0 * s * (1.0 - s) * (1.0 - 2.0 * s)


def clock_observation(swing_foot, countdown, step_duration):
    """[..., 4] gait clock for policy observations.

    (left swinging, right swinging, sin(pi * phase), cos(pi * phase)); the sin/cos pair
    runs over half a circle per step so lift-off and touchdown are distinct, and it is
    (0, 1) while standing. The countdown itself is part of the footstep command.
    """
    masks = swing_masks(swing_foot).astype(np.float64)
    phase = swing_phase(countdown, step_duration)
    return np.concatenate(
        [masks, np.sin(np.pi * phase)[..., None], np.cos(np.pi * phase)[..., None]], axis=-1
    )
