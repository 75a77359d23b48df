"""Run an exported low-level policy (ONNX) and refuse one that does not fit this robot/code.

An exported policy is `<name>.onnx` (input "obs" [batch, obs_dim] float32, output "action"
[batch, act_dim]; the observation normalizer is folded into the graph) with its metadata stored
twice: in the ONNX file's metadata_props under "refine_dp_policy" and in `<name>.json` beside it.
The metadata carries the observation spec and action spec (policy_io), the driven joints with
their default pose and PD gains, the control rate and the training physics step.

`OnnxPolicy` checks that metadata against the current joint table and policy_io before it runs
anything, and raises `PolicyMetadataError` naming the first field that differs: a policy trained
with another observation layout, joint order, default pose or gains must not drive the robot.

`export_onnx` (torch needed only here) writes both files from a trained actor + normalizer.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from t1_description.joint_table import JointTable, load_joint_table

from . import policy_io as pio

FORMAT = "refine_dp.policy/1"
METADATA_KEY = "refine_dp_policy"


class PolicyMetadataError(ValueError):
    """The exported policy's metadata does not match this robot or this code's policy_io."""


def build_metadata(part: str, table: JointTable | None = None, physics_dt: float = 0.005, decimation: int = 4,
                   kp=None, kd=None, extra: dict | None = None, variant: str = "absolute") -> dict:
    """Metadata of a policy for `part` ("legs" | "arms") and its variant (policy_io.specs) as trained
    with the given gains (default: table)."""
    table = table or load_joint_table()
    obs_spec, act_spec = pio.specs(part, variant)
    idx = act_spec.indices(table)
    return {
        "format": FORMAT,
        "part": part,
        "variant": variant,
        "obs_spec": obs_spec.to_dict(),
        "action_spec": act_spec.to_dict(),
        "joints": {
            "names": list(act_spec.joint_names),
            "default_q": [float(v) for v in table.default_q[idx]],
            "kp": [float(v) for v in (table.kp[idx] if kp is None else np.asarray(kp)[idx])],
            "kd": [float(v) for v in (table.kd[idx] if kd is None else np.asarray(kd)[idx])],
        },
        "control_hz": pio.CONTROL_HZ,
        "training_physics_dt": physics_dt,
        "training_decimation": decimation,
        "normalizer": "folded into the graph",
        "input": {"name": "obs", "shape": ["batch", obs_spec.dim], "dtype": "float32"},
        "output": {"name": "action", "shape": ["batch", act_spec.dim], "dtype": "float32"},
    } | (extra or {})


def _first_difference(expected, got, path: str) -> str | None:
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in expected:
            if k not in got:
                return f"{path}.{k} (missing in the policy)"
            d = _first_difference(expected[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        if len(expected) != len(got):
            return f"{path} (length {len(got)} in the policy, {len(expected)} here)"
        for i, (e, g) in enumerate(zip(expected, got)):
            name = e.get("name") if isinstance(e, dict) else None
            d = _first_difference(e, g, f"{path}[{name or i}]")
            if d:
                return d
        return None
    if isinstance(expected, float) or isinstance(got, float):
        try:
            ok = abs(float(expected) - float(got)) <= 1e-6 * max(1.0, abs(float(expected)))
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"{path} (policy {got!r}, here {expected!r})"
    return None if expected == got else f"{path} (policy {got!r}, here {expected!r})"


def check_metadata(meta: dict, table: JointTable | None = None, expect_part: str | None = None,
                   check_gains: bool = True, source: str = "policy") -> None:
    """Raise PolicyMetadataError naming the first field of `meta` that does not match this code/robot."""
    if meta.get("format") != FORMAT:
        raise PolicyMetadataError(f"{source}: metadata format {meta.get('format')!r}, expected {FORMAT!r}; "
                                  "re-export it with refine-dp train-lowlevel --export-only")
    part = meta.get("part")
    if part not in pio.SPECS:
        raise PolicyMetadataError(f"{source}: unknown part {part!r}; expected one of {sorted(pio.SPECS)}")
    if expect_part is not None and part != expect_part:
        raise PolicyMetadataError(f"{source}: is a {part!r} policy, but a {expect_part!r} policy is needed here")
    variant = meta.get("variant", "absolute")  # files exported before variants existed are absolute
    try:
        expected = build_metadata(part, table, variant=variant)
    except ValueError as exc:
        raise PolicyMetadataError(f"{source}: {exc}; this code cannot run it") from None
    exp = {k: expected[k] for k in ("obs_spec", "action_spec", "joints")}
    if not check_gains:  # e.g. a policy deliberately trained with other ankle gains
        exp["joints"] = {k: expected["joints"][k] for k in ("names", "default_q")}
    diff = _first_difference(exp, {k: meta.get(k) for k in exp}, "metadata")
    if diff:
        raise PolicyMetadataError(f"{source}: does not match this robot/code at {diff}; retrain or re-export the "
                                  "policy with the current joint table and policy_io")


def read_metadata(path: str | Path) -> dict:
    """Metadata from the ONNX file (metadata_props) or, failing that, the .json beside it."""
    path = Path(path)
    try:
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY:
                return json.loads(prop.value)
    except ImportError:
        pass
    side = path.with_suffix(".json")
    if side.is_file():
        return json.loads(side.read_text())
    raise PolicyMetadataError(f"{path}: no '{METADATA_KEY}' metadata in the ONNX file and no {side.name} beside "
                              "it; export policies with policy_runtime.export_onnx")


MODELS_DIR = Path(__file__).resolve().parent / "models"  # the models this package ships (package data)


def resolve_model(value: str | Path) -> Path:
    """A policy parameter -> an existing file: a path as given, else a file of MODELS_DIR."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    shipped = MODELS_DIR / path.name
    if not path.is_absolute() and len(path.parts) == 1 and shipped.is_file():
        return shipped
    available = sorted(p.name for p in MODELS_DIR.glob("*.onnx")) if MODELS_DIR.is_dir() else []
    raise FileNotFoundError(f"policy file {value!r} not found (neither as a path nor in {MODELS_DIR}, which "
                            f"holds {available or 'no models'}); train one with `refine-dp train-lowlevel`")


class OnnxPolicy:
    """A checked, callable exported policy: `policy(obs [N, obs_dim]) -> action [N, act_dim]` (float64)."""

    def __init__(self, path: str | Path, expect_part: str | None = None, table: JointTable | None = None,
                 check_gains: bool = True, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy {path} does not exist: train it (refine-dp train-lowlevel) or set the "
                                    "policy path parameter")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover
            raise ImportError("OnnxPolicy needs onnxruntime: pip install onnxruntime") from exc
        self.path = path
        self.meta = read_metadata(path)
        check_metadata(self.meta, table, expect_part, check_gains, source=str(path))
        self.part = self.meta["part"]
        self.variant = self.meta.get("variant", "absolute")
        self.obs_spec, self.action_spec = pio.specs(self.part, self.variant)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if inp.shape[-1] != self.obs_spec.dim or out.shape[-1] != self.action_spec.dim:
            raise PolicyMetadataError(f"{path}: graph maps {inp.shape} -> {out.shape}, but the {self.part} spec "
                                      f"needs [batch, {self.obs_spec.dim}] -> [batch, {self.action_spec.dim}]")
        self._in, self._out = inp.name, out.name

    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.shape[-1] != self.obs_spec.dim:
            raise ValueError(f"{self.part} policy expects observations [N, {self.obs_spec.dim}], got {obs.shape}")
        return self.session.run([self._out], {self._in: obs})[0].astype(np.float64)


def export_onnx(actor, normalizer, obs_dim: int, path: str | Path, metadata: dict) -> Path:
    """Export `action = actor(normalizer(obs))` to ONNX with `metadata`; writes path and path.json.

    actor, normalizer: torch modules (the normalizer may be nn.Identity). The graph has a dynamic
    batch axis. Written to a temporary name and renamed, so a crash leaves no half file.
    """
    import onnx
    import torch

    class _Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.normalizer, self.actor = normalizer, actor

        def forward(self, obs):
            return self.actor(self.normalizer(obs))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _Exported().eval()
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
        # (not a dependency); it still exports this plain MLP exactly (tests/test_policy_io.py)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, (torch.zeros(1, obs_dim),), str(tmp), input_names=["obs"], output_names=["action"],
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, opset_version=17, dynamo=False)
    model = onnx.load(str(tmp))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model, str(tmp))
    tmp.replace(path)
    side = path.with_suffix(".json")
    side_tmp = side.with_name(side.name + ".tmp")
    side_tmp.write_text(json.dumps(metadata, indent=2))
    side_tmp.replace(side)
    return path


# First-order low-pass on the arm policy's joint targets: q <- a * q_policy + (1 - a) * q_previous at 50 Hz
# (time constant 39 ms). The shipped arm policy's targets carry a broadband ripple (about 2 mrad per step
# in the second difference) that the legs feel; `refine-dp eval controller --episodes 50`, seeds 0-3,
# falls per 200 episodes: a = 1 (off) 12, 0.5 (seed 0: 4 of 50), 0.4 6, 0.3 5, 0.2 2; standing hand
# error grows as a falls (0.2: 2.9-3.4 cm, over the 3 cm bar), so 0.4 (docs/architecture.md,
# "The arm targets' low-pass").
ARM_TARGET_ALPHA = 0.4


class LowLevelController:
    """Both exported policies behind one call: robot state + commands -> 29 joint position targets.

    The controller node wraps this (N = 1) and evaluate.py runs it batched, so the evaluated code
    path is the node's. A part without a policy (None) holds its joints at the default pose.
    Joints no policy drives (waist, head) always get the default pose. A residual leg policy adds
    its action to the reference motion of reference_motion.StanceFrameReference, fed with the
    same measured joints, gravity and footstep command as in training. The arm targets pass through
    a first-order low-pass (`arm_target_alpha`, the weight of the new target; 1 = off) that restarts
    at the policy's own target on reset; the arm policy still observes its raw last action.
    """

    def __init__(self, legs: "OnnxPolicy | str | Path | None" = None, arms: "OnnxPolicy | str | Path | None" = None,
                 table: JointTable | None = None, num_envs: int = 1, arm_target_alpha: float = ARM_TARGET_ALPHA):
        if not 0.0 < arm_target_alpha <= 1.0:
            raise ValueError(f"arm_target_alpha must be in (0, 1] (1 = no filter), got {arm_target_alpha}")
        self.arm_target_alpha = arm_target_alpha
        self.table = table or load_joint_table()
        self.legs = OnnxPolicy(legs, "legs", self.table) if isinstance(legs, (str, Path)) else legs
        self.arms = OnnxPolicy(arms, "arms", self.table) if isinstance(arms, (str, Path)) else arms
        self.num_envs = num_envs
        self.leg_idx, self.arm_idx = pio.LEG_ACTION.indices(self.table), pio.ARM_ACTION.indices(self.table)
        self.leg_reference = None
        if self.legs is not None and self.legs.action_spec.base == "reference":
            from .reference_motion import StanceFrameReference
            self.leg_reference = StanceFrameReference(num_envs)
        self.reset()

    def reset(self, mask=None) -> None:
        """Zero the remembered last actions (all envs, or the masked ones) - call when control (re)starts."""
        if mask is None:
            self.leg_action = np.zeros((self.num_envs, pio.LEG_ACTION.dim))
            self.arm_action = np.zeros((self.num_envs, pio.ARM_ACTION.dim))
            self.arm_target = np.zeros((self.num_envs, pio.ARM_ACTION.dim))  # the low-pass state
            self.arm_fresh = np.ones(self.num_envs, bool)                      # rows that restart the filter
        else:
            self.leg_action[mask] = 0.0
            self.arm_action[mask] = 0.0
            self.arm_fresh[mask] = True
        if self.leg_reference is not None:
            self.leg_reference.reset(mask)

    def step(self, q, dq, gravity, gyro, footstep: dict, hand_target_pos, hand_target_rot) -> np.ndarray:
        """q, dq [N, 29] (table order); gravity, gyro [N, 3] (trunk frame); footstep: FootstepCommand
        fields {swing_foot, countdown, step_duration, target_x, target_y, target_yaw} as [N] arrays;
        hand targets in the root frame: pos [N, 2, 3], rot [N, 2, 3, 3]. Returns q_des [N, 29]."""
        q, dq = np.atleast_2d(q), np.atleast_2d(dq)
        q_des = np.tile(self.table.default_q, (q.shape[0], 1))
        if self.legs is not None:
            f = footstep
            ref = None
            if self.leg_reference is not None:
                ref = self.leg_reference.update(q[:, self.leg_idx], gravity, f["swing_foot"], f["countdown"],
                                                f["step_duration"], f["target_x"], f["target_y"], f["target_yaw"])
            obs = pio.build_leg_obs(gravity, gyro, q, dq, self.leg_action, f["swing_foot"], f["countdown"],
                                    f["step_duration"], f["target_x"], f["target_y"], f["target_yaw"],
                                    table=self.table, spec=self.legs.obs_spec, ref_joint_pos=ref)
            self.leg_action = self.legs(obs)
            q_des[:, self.leg_idx] = pio.action_to_targets(self.legs.action_spec, self.leg_action, self.table, ref)
        if self.arms is not None:
            obs = pio.build_arm_obs(gravity, q, dq, self.arm_action, hand_target_pos, hand_target_rot, table=self.table)
            self.arm_action = self.arms(obs)
            raw = pio.action_to_targets(pio.ARM_ACTION, self.arm_action, self.table)
            a = self.arm_target_alpha
            smooth = np.where(self.arm_fresh[:, None], raw, a * raw + (1.0 - a) * self.arm_target)
            self.arm_target, self.arm_fresh = smooth, np.zeros_like(self.arm_fresh)
            q_des[:, self.arm_idx] = smooth
        return q_des
