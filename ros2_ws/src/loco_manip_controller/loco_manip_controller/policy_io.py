"""Observation and action definitions of the two low-level policies (legs, arms): ONE definition.

The training environment (refine_dp_training.lowlevel) and the 50 Hz controller node both build
observations and turn actions into joint targets with the functions below, so what the policy
saw in simulation is, field for field, what it sees on the robot. ROS-free, numpy, batched over a
leading dimension N (the node calls them with N = 1).

Which joints each policy drives (decided here, documented in one place):
  * legs policy: the 12 leg joints (hip pitch/roll/yaw, knee, ankle pitch/roll, left then right).
    The waist is held at its default (0) by PD: the reference motion's leg IK assumes it, and
    the paper's lower body is a footstep tracker, not a torso controller.
  * arms policy: the 14 arm joints (7 per arm). The head (2) is held at default by PD: the
    system perceives through MoCap, not a head camera, so the head has no task.
  Joints no policy drives get `default_q` with the table's kp/kd.

Actions (both policies): joint position offsets from the default pose (paper, sec. IV):
    q_des = clip(default_q + scale * clip(action, -clip, clip), lower, upper)
tracked by the joint PD (t1_description.pd) at the joint table's gains.

Variants (`specs(part, variant)`; the exported metadata names its variant, default "absolute"):
  * "absolute": as above; the only arm variant.
  * "residual" (legs): offsets from the lower-body reference motion instead of the default pose,
        q_des = clip(q_ref + scale * clip(action, -clip, clip), lower, upper),
    with q_ref = reference_motion.StanceFrameReference(...).update(...) from the measured legs and
    the footstep command; the observation gains the field ref_leg_joint_pos (q_ref - default_q).
    Imitation then carries the step length and the policy learns the balance corrections.

Observation layout: an `ObsSpec` lists named fields (size, scale, training noise std). The
vector is the concatenation of `scale * value` in field order. The spec is serialized into
the exported ONNX metadata and the node refuses a policy whose spec differs (policy_runtime).

Frames and conventions: root = the Trunk body (base_link); hand poses are the `left_hand` /
`right_hand` grip sites in the root frame; rotations enter observations as the first two
columns of the rotation matrix (6-D, continuous); quaternions at this module's boundary are
MuJoCo order (w, x, y, z). Joint arrays of length 29 are in joint-table (= SDK) order.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from t1_description.joint_table import JointTable, load_joint_table
from t1_description.kinematics import arm_kinematics, pose_errors, rot6d

from .footstep_planner import Footstep
from .gait import clock_observation

SPEC_VERSION = 1
CONTROL_HZ = 50.0


# ---------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ObsField:
    """One named block of an observation vector (value in SI units, multiplied by `scale`)."""

    name: str
    size: int
    scale: float = 1.0
    noise_std: float = 0.0  # training noise, in the field's SI units (before scaling)


@dataclass(frozen=True)
class ObsSpec:
    name: str
    fields: tuple[ObsField, ...]
    version: int = SPEC_VERSION

    @property
    def dim(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def scales(self) -> np.ndarray:
        """[dim] the scale of each element (read-only, computed once: the spec is frozen)."""
        cached = self.__dict__.get("_scales")
        if cached is None:
            cached = np.concatenate([np.full(f.size, f.scale, dtype=np.float64) for f in self.fields])
            cached.flags.writeable = False
            object.__setattr__(self, "_scales", cached)
        return cached

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for f in self.fields:
            out[f.name] = slice(start, start + f.size)
            start += f.size
        return out

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "dim": self.dim,
                "fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_dict(cls, d: dict) -> "ObsSpec":
        return cls(d["name"], tuple(ObsField(**f) for f in d["fields"]), int(d.get("version", SPEC_VERSION)))

    def build(self, values: dict[str, np.ndarray], rng: np.random.Generator | None = None,
              noise_scale: float = 1.0) -> np.ndarray:
        """Concatenate `values` (name -> [N, size]) into [N, dim] float32, in field order.

        rng: add N(0, noise_std * noise_scale) per field before scaling (training only).
        Missing or extra names and wrong sizes raise a ValueError naming the field.
        """
        names = self.__dict__.get("_names")
        if names is None:  # computed once (the spec is frozen): the 50 Hz controller builds two a cycle
            names = frozenset(f.name for f in self.fields)
            object.__setattr__(self, "_names", names)
        if values.keys() != names:
            missing = [f.name for f in self.fields if f.name not in values]
            extra = sorted(set(values) - names)
            raise ValueError(f"{self.name} observation: missing fields {missing}, unknown fields {extra}")
        parts = []
        n = None
        noisy = rng is not None and noise_scale > 0.0
        for f in self.fields:
            v = np.asarray(values[f.name], dtype=np.float64)
            if v.ndim == 1:
                v = v[:, None] if f.size == 1 else v[None]
            if v.shape[-1] != f.size or (n is not None and v.shape[0] != n):
                raise ValueError(f"{self.name} observation field {f.name!r}: expected [N, {f.size}], got {v.shape}")
            n = v.shape[0]
            if noisy and f.noise_std > 0.0:
                v = v + rng.normal(0.0, f.noise_std * noise_scale, v.shape)
            parts.append(v)
        # scale * value per field, as one product with the per-element scales (the same products)
        obs = (np.concatenate(parts, axis=-1) * self.scales).astype(np.float32)
        if not np.isfinite(obs).all():
            bad = [f.name for f, p in zip(self.fields, parts) if not np.isfinite(f.scale * p).all()]
            raise ValueError(f"{self.name} observation has NaN/inf in fields {bad}: check the robot state input")
        return obs


_INDICES: dict = {}  # (joint names, id(table)) -> (table, indices); the table is kept so its id stays its own


@dataclass(frozen=True)
class ActionSpec:
    """Which joints a policy drives and how its action maps to position targets."""

    name: str
    joint_names: tuple[str, ...]
    scale: float
    clip: float
    base: str = "default"  # "default": offsets from default_q; "reference": from the leg reference motion

    @property
    def dim(self) -> int:
        return len(self.joint_names)

    def indices(self, table: JointTable | None = None) -> np.ndarray:
        """Table indices of the driven joints (read-only; cached per table: the 50 Hz controller asks often)."""
        table = table or load_joint_table()
        hit = _INDICES.get((self.joint_names, id(table)))
        if hit is not None and hit[0] is table:
            return hit[1]
        idx = np.array([table.index(n) for n in self.joint_names], dtype=np.int64)
        idx.flags.writeable = False
        _INDICES[(self.joint_names, id(table))] = (table, idx)
        return idx

    def to_dict(self) -> dict:
        d = {"name": self.name, "joint_names": list(self.joint_names), "scale": self.scale, "clip": self.clip}
        return d | ({"base": self.base} if self.base != "default" else {})  # absolute specs: as before

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpec":
        return cls(d["name"], tuple(d["joint_names"]), float(d["scale"]), float(d["clip"]), d.get("base", "default"))


def _names(*groups: str) -> tuple[str, ...]:
    jt = load_joint_table()
    return tuple(jt.names[i] for i in jt.indices(*groups))


LEG_JOINTS = _names("left_leg", "right_leg")  # 12, table order
ARM_JOINTS = _names("left_arm", "right_arm")  # 14, table order

LEG_ACTION = ActionSpec("legs", LEG_JOINTS, scale=0.25, clip=8.0)
ARM_ACTION = ActionSpec("arms", ARM_JOINTS, scale=0.25, clip=12.0)

# Noise levels follow booster_gym / Playground (FACTS.md); commands and targets are noise-free.
LEG_OBS = ObsSpec("legs", (
    ObsField("projected_gravity", 3, 1.0, 0.05),
    ObsField("gyro", 3, 0.25, 0.2),
    ObsField("leg_joint_pos", 12, 1.0, 0.01),   # q - default_q
    ObsField("leg_joint_vel", 12, 0.05, 0.5),
    ObsField("arm_joint_pos", 14, 1.0, 0.01),   # q - default_q: arms move the CoM
    ObsField("last_action", 12, 1.0, 0.0),
    ObsField("swing_foot", 2, 1.0, 0.0),        # one-hot (left, right); both 0 while standing
    ObsField("countdown", 1, 2.0, 0.0),         # s to touchdown
    ObsField("target_pose", 3, 1.0, 0.0),       # swing-foot target (x, y, yaw) in the stance-foot frame
    ObsField("gait_clock", 2, 1.0, 0.0),        # sin, cos(pi * swing phase)
))

ARM_OBS = ObsSpec("arms", (
    ObsField("projected_gravity", 3, 1.0, 0.05),
    ObsField("hand_target", 18, 1.0, 0.0),      # left (pos 3, rot6d 6), right: root frame
    ObsField("hand_pose", 18, 1.0, 0.0),        # current, FK of the measured arm joints
    ObsField("hand_error", 12, 1.0, 0.0),       # left (pos 3, rotvec 3), right: target - current, root frame
    ObsField("arm_joint_pos", 14, 1.0, 0.01),
    ObsField("arm_joint_vel", 14, 0.05, 0.5),
    ObsField("last_action", 14, 1.0, 0.0),
))

SPECS = {"legs": (LEG_OBS, LEG_ACTION), "arms": (ARM_OBS, ARM_ACTION)}  # the "absolute" variants

LEG_OBS_RESIDUAL = ObsSpec("legs_residual", LEG_OBS.fields + (
    ObsField("ref_leg_joint_pos", 12, 1.0, 0.0),  # reference - default_q: what the action is added to
))
LEG_ACTION_RESIDUAL = ActionSpec("legs", LEG_JOINTS, scale=0.25, clip=8.0, base="reference")
# residual legs that step up and down: the footstep's target_z (FootstepCommand) is observed, and the reference
# follows the heights (reference_motion.StanceFrameReference(heights=True))
LEG_OBS_RESIDUAL_STEP = ObsSpec("legs_residual_step", LEG_OBS_RESIDUAL.fields + (
    ObsField("target_height", 1, 5.0, 0.0),  # m, touchdown height above the stance foot (x5: 10 cm -> 0.5)
))

VARIANTS = {
    "legs": {"absolute": SPECS["legs"], "residual": (LEG_OBS_RESIDUAL, LEG_ACTION_RESIDUAL),
             "residual_step": (LEG_OBS_RESIDUAL_STEP, LEG_ACTION_RESIDUAL)},
    "arms": {"absolute": SPECS["arms"]},
}


def specs(part: str, variant: str = "absolute") -> tuple[ObsSpec, ActionSpec]:
    """(observation spec, action spec) of a policy part and variant; a ValueError names the choices."""
    if part not in VARIANTS:
        raise ValueError(f"unknown policy part {part!r}; expected one of {sorted(VARIANTS)}")
    if variant not in VARIANTS[part]:
        raise ValueError(f"{part} policies have no variant {variant!r}; expected one of {sorted(VARIANTS[part])}")
    return VARIANTS[part][variant]


# ---------------------------------------------------------------------- actions
def action_to_targets(spec: ActionSpec, action, table: JointTable | None = None, base=None) -> np.ndarray:
    """[N, spec.dim] action -> [N, spec.dim] joint position targets (clipped to the joint limits).

    base [N, spec.dim]: the reference joint positions, required by (only by) "reference" specs.
    """
    table = table or load_joint_table()
    idx = spec.indices(table)
    # np.minimum(np.maximum(..)): np.clip without its Python wrappers (the 50 Hz controller calls this twice a cycle)
    a = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), -spec.clip), spec.clip)
    if a.shape[-1] != spec.dim:
        raise ValueError(f"{spec.name} action: expected last axis {spec.dim}, got {a.shape}")
    if spec.base == "reference":
        if base is None:
            raise ValueError(f"{spec.name} action is a residual on the reference motion: pass base= the reference "
                             "joint positions (reference_motion.StanceFrameReference.update)")
        zero = np.asarray(base, dtype=np.float64)
    else:
        zero = table.default_q[idx]
    return np.minimum(np.maximum(zero + spec.scale * a, table.lower[idx]), table.upper[idx])


def full_targets(parts: dict[str, np.ndarray], n: int, table: JointTable | None = None) -> np.ndarray:
    """[N, 29] targets: default pose, overwritten by each policy's targets ({"legs": [N, 12], ...})."""
    table = table or load_joint_table()
    q = np.tile(table.default_q, (n, 1))
    for name, targets in parts.items():
        q[:, SPECS[name][1].indices(table)] = targets
    return q


# ---------------------------------------------------------------------- state features
def projected_gravity(quat_wxyz) -> np.ndarray:
    """Gravity direction (unit, [N, 3]) in the trunk frame from the trunk orientation (w, x, y, z)."""
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(-1, 4)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    # R^T @ (0, 0, -1): minus the third row of R
    return -np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1) \
        / np.sum(q * q, axis=-1, keepdims=True)


def projected_gravity_from_rpy(rpy) -> np.ndarray:
    """Same, from the IMU's roll-pitch-yaw (extrinsic x-y-z, as booster ImuState.rpy)."""
    q = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64).reshape(-1, 3)).as_quat()  # x, y, z, w
    return projected_gravity(q[:, [3, 0, 1, 2]])


def pose_features(pos, rot) -> np.ndarray:
    """Hands [N, 2, 3] positions and [N, 2, 3, 3] rotations -> [N, 18] (per hand: pos 3, rot6d 6)."""
    feat = np.concatenate([np.asarray(pos), rot6d(rot)], axis=-1)  # [N, 2, 9]
    return feat.reshape(feat.shape[0], -1)


# ---------------------------------------------------------------------- builders
_DEFAULTS: dict = {}  # id(table) -> (table, (default_q of the legs, of the arms)), as _INDICES


def _table_slices(table: JointTable):
    return LEG_ACTION.indices(table), ARM_ACTION.indices(table)


def _table_defaults(table: JointTable) -> tuple[np.ndarray, np.ndarray]:
    """(default_q[legs], default_q[arms]), read-only, computed once per table (the controller asks every cycle)."""
    hit = _DEFAULTS.get(id(table))
    if hit is None or hit[0] is not table:
        legs, arms = _table_slices(table)
        pair = tuple(np.array(table.default_q[i]) for i in (legs, arms))
        for a in pair:
            a.flags.writeable = False
        hit = _DEFAULTS[id(table)] = (table, pair)
    return hit[1]


def leg_observation_values(gravity, gyro, q, dq, last_action, footstep: Footstep, table: JointTable | None = None,
                           ref_joint_pos=None) -> dict:
    """Named leg-policy fields from robot state (q, dq [N, 29] table order) and a footstep command
    (footstep_planner.Footstep: the FootstepCommand message's fields, or the planner's output).

    ref_joint_pos [N, 12]: the reference leg joints (residual variant), else None.
    """
    table = table or load_joint_table()
    legs, arms = _table_slices(table)
    default_legs, default_arms = _table_defaults(table)
    q, dq = np.asarray(q, dtype=np.float64), np.asarray(dq, dtype=np.float64)
    f = footstep
    clock = clock_observation(f.swing_foot, f.countdown, f.step_duration)
    return {
        "projected_gravity": gravity,
        "gyro": gyro,
        "leg_joint_pos": q[:, legs] - default_legs,
        "leg_joint_vel": dq[:, legs],
        "arm_joint_pos": q[:, arms] - default_arms,
        "last_action": last_action,
        "swing_foot": clock[:, 0:2],  # the clock's masks: swing_masks(f.swing_foot) as float64
        "countdown": np.asarray(f.countdown, dtype=np.float64)[:, None],
        "target_pose": f.target,
        "gait_clock": clock[:, 2:4],
    } | ({} if ref_joint_pos is None else {"ref_leg_joint_pos": np.asarray(ref_joint_pos) - default_legs})


def build_leg_obs(*args, rng: np.random.Generator | None = None, noise_scale: float = 1.0,
                  spec: ObsSpec = LEG_OBS, **kwargs) -> np.ndarray:
    """[N, spec.dim] float32 (LEG_OBS, or LEG_OBS_RESIDUAL(_STEP) with ref_joint_pos=); arguments as
    `leg_observation_values`."""
    values = leg_observation_values(*args, **kwargs)
    if any(f.name == "target_height" for f in spec.fields):
        footstep = args[5] if len(args) > 5 else kwargs["footstep"]
        values["target_height"] = np.asarray(footstep.target_z, dtype=np.float64)[:, None]
    return spec.build(values, rng, noise_scale)


def arm_observation_values(gravity, q, dq, last_action, target_pos, target_rot,
                           table: JointTable | None = None) -> dict:
    """Named arm-policy fields. target_pos [N, 2, 3], target_rot [N, 2, 3, 3]: hand targets in the root frame."""
    table = table or load_joint_table()
    _, arms = _table_slices(table)
    q, dq = np.asarray(q, dtype=np.float64), np.asarray(dq, dtype=np.float64)
    q_arms = q[:, arms]
    pos, rot = arm_kinematics().fk(q_arms)
    dp, drot = pose_errors(target_pos, target_rot, pos, rot)
    n = q.shape[0]
    return {
        "projected_gravity": gravity,
        "hand_target": pose_features(target_pos, target_rot),
        "hand_pose": pose_features(pos, rot),
        "hand_error": np.concatenate([dp, drot], axis=-1).reshape(n, 12),
        "arm_joint_pos": q_arms - _table_defaults(table)[1],
        "arm_joint_vel": dq[:, arms],
        "last_action": last_action,
    }


def build_arm_obs(*args, rng: np.random.Generator | None = None, noise_scale: float = 1.0, **kwargs) -> np.ndarray:
    """[N, ARM_OBS.dim] float32; arguments as `arm_observation_values`."""
    return ARM_OBS.build(arm_observation_values(*args, **kwargs), rng, noise_scale)
