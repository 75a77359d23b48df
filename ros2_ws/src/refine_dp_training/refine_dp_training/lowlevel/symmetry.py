"""Left-right mirror of the T1 leg policy's observations and actions (a mirror loss for PPO).

The shipped legs veer left when told to walk straight (all episodes, 6-9 deg/s; docs/architecture.md):
nothing in the task is asymmetric, the policy is. A mirror loss (LearningHumanoidWalking's, FACTS.md)
asks the policy for the mirrored action in the mirrored situation,

    L_mirror = E || mu(s) - M_a mu(M_s s) ||^2,

which a symmetric policy meets exactly. Mirroring is about the trunk's sagittal (x-z) plane: vectors flip
their y component, angular velocities (pseudo-vectors) their x and z components; a joint about the y axis
keeps its angle, one about x or z changes sign, and the left and right joints swap (the T1's left and right
joints have the same axes and mirrored limits and default poses, which the joint table and the MJCF give).
"""
from __future__ import annotations

import numpy as np

from loco_manip_controller import policy_io as pio
from t1_description.joint_table import JointTable, load_joint_table

_AXIS_SIGN = {"pitch": 1.0, "roll": -1.0, "yaw": -1.0}  # joints about y keep, about x (roll) or z (yaw) flip


def joint_mirror(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(perm, sign) with mirrored[i] = sign[i] * x[perm[i]] for joint arrays in the order `names`."""
    perm, sign = [], []
    for name in names:
        other = name.replace("Left_", "@").replace("Right_", "Left_").replace("@", "Right_")
        perm.append(names.index(other))
        axis = name.rsplit("_", 1)[-1].lower()
        if axis not in _AXIS_SIGN:
            raise ValueError(f"joint {name!r}: cannot tell its axis from its name (pitch/roll/yaw)")
        sign.append(_AXIS_SIGN[axis])
    return np.array(perm), np.array(sign)


_FIELD_MIRROR = {  # field name -> (perm within the field, sign) for the non-joint fields
    "projected_gravity": ([0, 1, 2], [1.0, -1.0, 1.0]),
    "gyro": ([0, 1, 2], [-1.0, 1.0, -1.0]),
    "swing_foot": ([1, 0], [1.0, 1.0]),
    "countdown": ([0], [1.0]),
    "target_pose": ([0, 1, 2], [1.0, -1.0, -1.0]),
    "gait_clock": ([0, 1], [1.0, 1.0]),
    "target_height": ([0], [1.0]),
}


def observation_mirror(spec: pio.ObsSpec, table: JointTable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(perm, sign) over a whole leg observation vector of `spec`."""
    table = table or load_joint_table()
    legs = joint_mirror(pio.LEG_JOINTS)
    arms = joint_mirror(pio.ARM_JOINTS)
    joint_fields = {"leg_joint_pos": legs, "leg_joint_vel": legs, "last_action": legs, "ref_leg_joint_pos": legs,
                    "arm_joint_pos": arms}
    perm, sign = np.zeros(spec.dim, np.int64), np.zeros(spec.dim)
    for f, sl in ((f, spec.slices()[f.name]) for f in spec.fields):
        p, s = joint_fields.get(f.name) or _FIELD_MIRROR.get(f.name, (None, None))
        if p is None:
            raise ValueError(f"no mirror for observation field {f.name!r}")
        perm[sl] = sl.start + np.asarray(p)
        sign[sl] = s
    return perm, sign


class Mirror:
    """Mirror maps of a leg policy on NORMALIZED observations (the normalizer is undone, the raw vector mirrored,
    then normalized again: the running statistics are not exactly symmetric)."""

    def __init__(self, obs_spec: pio.ObsSpec, act_spec: pio.ActionSpec, normalizer=None):
        import torch
        op, os_ = observation_mirror(obs_spec)
        ap, as_ = joint_mirror(act_spec.joint_names)
        self.obs_perm, self.obs_sign = torch.as_tensor(op), torch.as_tensor(os_, dtype=torch.float32)
        self.act_perm, self.act_sign = torch.as_tensor(ap), torch.as_tensor(as_, dtype=torch.float32)
        self.normalizer = normalizer

    def raw_obs(self, obs):
        return obs[..., self.obs_perm] * self.obs_sign

    def obs(self, obs_n):
        n = self.normalizer
        if n is None:
            return self.raw_obs(obs_n)
        raw = obs_n * (n.var.sqrt() + n.eps) + n.mean
        return n(self.raw_obs(raw))

    def action(self, a):
        return a[..., self.act_perm] * self.act_sign
