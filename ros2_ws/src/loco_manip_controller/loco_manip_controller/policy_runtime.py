"""Run an exported low-level policy (ONNX) and refuse one that does not fit this robot/code.

An exported policy is `<name>.onnx` (input "obs" [batch, obs_dim] float32, output "action"
[batch, act_dim]; the observation normalizer is folded into the graph) with its metadata stored
twice: in the ONNX file's metadata_props under "refine_dp_policy" and in `<name>.json` beside it.
The metadata carries the observation spec and action spec (policy_io), the driven joints with
their default pose and PD gains, the training physics step, and the policy's contract
(contract.py: control_hz; for legs the footstep planner and reference-motion configs).

`OnnxPolicy` checks that metadata against the current joint table and policy_io before it runs
anything (t1_description.contract.check_metadata) and raises `PolicyMetadataError` naming every
field that differs: a policy trained with another observation layout, joint order, default pose
or gains must not drive the robot. The action scale and clip are the policy's own (its metadata).

`export_onnx` (torch needed only here) writes both files from a trained actor + normalizer.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from t1_description.contract import check_metadata as check_fields
from t1_description.joint_table import JointTable, load_joint_table

from . import contract
from . import policy_io as pio
from .contract import PolicyMetadataError
from .footstep_planner import Footstep, FootstepPlannerConfig
from .reference_motion import ReferenceMotion, ReferenceMotionConfig, StanceFrameReference

FORMAT = "refine_dp.policy/1"
METADATA_KEY = "refine_dp_policy"


def layout_metadata(part: str, variant: str = "absolute", table: JointTable | None = None, kp=None, kd=None,
                    action_spec: pio.ActionSpec | None = None) -> dict:
    """obs_spec, action_spec and joints of a `part` ("legs" | "arms") policy of `variant` (policy_io.specs)
    with the given gains (default: table) and action spec (default: the variant's)."""
    table = table or load_joint_table()
    obs_spec, default_action = pio.specs(part, variant)
    act_spec = action_spec or default_action
    idx = act_spec.indices(table)
    return {
        "obs_spec": obs_spec.to_dict(),
        "action_spec": act_spec.to_dict(),
        "joints": {
            "names": list(act_spec.joint_names),
            "default_q": [float(v) for v in table.default_q[idx]],
            "kp": [float(v) for v in (table.kp[idx] if kp is None else np.asarray(kp)[idx])],
            "kd": [float(v) for v in (table.kd[idx] if kd is None else np.asarray(kd)[idx])],
        },
    }


def build_metadata(part: str, table: JointTable | None = None, physics_dt: float = 0.005, decimation: int = 4,
                   kp=None, kd=None, extra: dict | None = None, variant: str = "absolute",
                   policy_contract: dict | None = None, action_spec: pio.ActionSpec | None = None) -> dict:
    """Metadata of a policy for `part` and `variant` as trained with the given physics, gains and action spec.

    policy_contract: contract.contract_of(...) of the training config (lowlevel EnvConfig.policy_contract());
    None: this code's default configs at the rate physics_dt x decimation (tests, hand-made files).
    """
    table = table or load_joint_table()
    rate = 1.0 / (physics_dt * decimation)
    if policy_contract is None:
        policy_contract = contract.contract_of(part, rate, FootstepPlannerConfig(), ReferenceMotionConfig())
    check_fields(policy_contract, {"control_hz": rate}, f"{part} policy contract", error=PolicyMetadataError,
                 fix=f"control_hz must be 1 / (physics_dt {physics_dt} x decimation {decimation})")
    obs_spec, _ = pio.specs(part, variant)
    act_dim = len((action_spec or pio.specs(part, variant)[1]).joint_names)
    return {"format": FORMAT, "part": part, "variant": variant} \
        | layout_metadata(part, variant, table, kp, kd, action_spec) | dict(policy_contract) | {
        "training_physics_dt": physics_dt,
        "training_decimation": decimation,
        "normalizer": "folded into the graph",
        "input": {"name": "obs", "shape": ["batch", obs_spec.dim], "dtype": "float32"},
        "output": {"name": "action", "shape": ["batch", act_dim], "dtype": "float32"},
    } | (extra or {})


def check_metadata(meta: dict, table: JointTable | None = None, expect_part: str | None = None,
                   check_gains: bool = True, source: str = "policy") -> None:
    """Raise PolicyMetadataError naming the fields of `meta` that do not match this code/robot, and the
    contract fields it lacks."""
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
        expected = layout_metadata(part, variant, table)
    except ValueError as exc:
        raise PolicyMetadataError(f"{source}: {exc}; this code cannot run it") from None
    # the action's joints and base (what the action is added to) are this code's; scale and clip the policy's own
    expected["action_spec"] = {"name": part, "joint_names": expected["action_spec"]["joint_names"],
                               "base": pio.specs(part, variant)[1].base}
    if not check_gains:  # e.g. a policy deliberately trained with other ankle gains
        expected["joints"] = {k: expected["joints"][k] for k in ("names", "default_q")}
    action = meta.get("action_spec")
    seen = meta | {"action_spec": {"base": "default"} | action} if isinstance(action, dict) else meta
    check_fields(seen, expected, source, holder="policy", error=PolicyMetadataError,
                 fix="retrain or re-export the policy with the current joint table and policy_io")
    contract.require_contract(meta, source)


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
    """A checked, callable exported policy: `policy(obs [N, obs_dim]) -> action [N, act_dim]` (float64).

    `obs_spec` is this code's (checked equal to the file's), `action_spec` the file's own (scale, clip),
    `control_hz` the rate it was trained at.
    """

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
        self.obs_spec, _ = pio.specs(self.part, self.variant)
        self.action_spec = pio.ActionSpec.from_dict(self.meta["action_spec"])
        self.control_hz = float(self.meta["control_hz"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain of GEMMs: nothing to run in parallel
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # ORT's default, said on purpose
        # a pool (threads > 1) must not spin between the 50 Hz calls: it would burn a core
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if inp.shape[-1] != self.obs_spec.dim or out.shape[-1] != self.action_spec.dim:
            raise PolicyMetadataError(f"{path}: graph maps {inp.shape} -> {out.shape}, but the {self.part} spec "
                                      f"needs [batch, {self.obs_spec.dim}] -> [batch, {self.action_spec.dim}]")
        self._in, self._outs = inp.name, [out.name]
        self._run = self.session.run  # bound once: the 50 Hz controller calls it twice a cycle

    def __call__(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)  # the builders' float32 [N, dim]: no copy
        if obs.ndim == 1:
            obs = obs[None]
        if obs.shape[-1] != self.obs_spec.dim:
            raise ValueError(f"{self.part} policy expects observations [N, {self.obs_spec.dim}], got {obs.shape}")
        # float64 as everything downstream (the action scaling must not round in float32)
        return self._run(self._outs, {self._in: obs})[0].astype(np.float64)


def export_onnx(actor, normalizer, obs_dim: int, path: str | Path, metadata: dict) -> Path:
    """Export `action = actor(normalizer(obs))` to ONNX with `metadata`; writes path and path.json.

    actor, normalizer: torch modules (the normalizer may be nn.Identity). The graph has a dynamic
    batch axis. Written to a temporary name and renamed, so a crash leaves no half file.
    """
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
    write_metadata(tmp, metadata, path)
    return path


def write_metadata(path: str | Path, metadata: dict, dest: str | Path | None = None) -> Path:
    """Put `metadata` into the ONNX file's metadata_props (replacing ours) and into the .json beside it.

    The graph and its weights are left as they are. Written to temporary names and renamed (`path` ->
    `dest`, default the same file), so a crash leaves the old files or the new ones, never half of one.
    """
    import onnx

    path = Path(path)
    dest = Path(dest) if dest is not None else path
    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    tmp = dest.with_name(dest.name + ".meta.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(dest)
    if path != dest:
        path.unlink(missing_ok=True)
    side = dest.with_suffix(".json")
    side_tmp = side.with_name(side.name + ".tmp")
    side_tmp.write_text(json.dumps(metadata, indent=2))
    side_tmp.replace(side)
    return dest


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
    path is the node's. It builds itself from the policies' contract (contract.py): `control_hz`
    (both policies must agree, and so must a caller's control_hz) and, for the legs, the
    `footstep_config` the footstep planner must run and the reference-motion config of
    reference_motion.StanceFrameReference, to which a residual leg policy adds its action, fed with
    the same measured joints, gravity and footstep command as in training.
    A part without a policy (None) holds its joints at the default pose. Joints no policy drives
    (waist, head) always get the default pose. The arm targets pass through a first-order low-pass
    (`arm_target_alpha`, the weight of the new target; 1 = off) that restarts at the policy's own
    target on reset; the arm policy still observes its raw last action.
    """

    def __init__(self, legs: "OnnxPolicy | str | Path | None" = None, arms: "OnnxPolicy | str | Path | None" = None,
                 table: JointTable | None = None, num_envs: int = 1, arm_target_alpha: float = ARM_TARGET_ALPHA,
                 control_hz: float | None = None):
        if not 0.0 < arm_target_alpha <= 1.0:
            raise ValueError(f"arm_target_alpha must be in (0, 1] (1 = no filter), got {arm_target_alpha}")
        self.arm_target_alpha = arm_target_alpha
        self.table = table or load_joint_table()
        self.legs = OnnxPolicy(legs, "legs", self.table) if isinstance(legs, (str, Path)) else legs
        self.arms = OnnxPolicy(arms, "arms", self.table) if isinstance(arms, (str, Path)) else arms
        self.num_envs = num_envs
        self.leg_idx, self.arm_idx = pio.LEG_ACTION.indices(self.table), pio.ARM_ACTION.indices(self.table)
        policies = [p for p in (self.legs, self.arms) if p is not None]
        for p in policies:  # every policy at the caller's rate, and at each other's
            contract.check_overrides(p.meta, {"control_hz": control_hz}, str(p.path), "control rate")
            control_hz = p.control_hz
        self.control_hz = control_hz if control_hz is not None else pio.CONTROL_HZ
        self.footstep_config = self.leg_reference = None
        self.last_hand_error = None  # (position, rotation-vector) error of the hands at the last step (arms)
        if self.legs is not None:
            self.footstep_config = contract.footstep_config(self.legs.meta, str(self.legs.path))
            if self.legs.action_spec.base == "reference":
                motion = ReferenceMotion(contract.reference_config(self.legs.meta, str(self.legs.path)))
                # legs trained for steps (variant residual_step) observe target_z and follow heights
                self.leg_reference = StanceFrameReference(num_envs, motion, heights=self.legs.variant == "residual_step")
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

    def step(self, q, dq, gravity, gyro, footstep: Footstep | None, hand_target_pos, hand_target_rot) -> np.ndarray:
        """q, dq [N, 29] (table order); gravity, gyro [N, 3] (trunk frame); footstep: the FootstepCommand
        of each env (None: standing); hand targets in the root frame: pos [N, 2, 3], rot [N, 2, 3, 3].
        Returns q_des [N, 29]."""
        q, dq = np.atleast_2d(q), np.atleast_2d(dq)
        q_des = np.empty((q.shape[0], self.table.default_q.shape[0]))
        q_des[:] = self.table.default_q
        if self.legs is not None:
            footstep = footstep if footstep is not None else Footstep.standing(q.shape[0])
            ref = None
            if self.leg_reference is not None:
                ref = self.leg_reference.update(q[:, self.leg_idx], gravity, footstep)
            obs = pio.build_leg_obs(gravity, gyro, q, dq, self.leg_action, footstep, table=self.table,
                                    spec=self.legs.obs_spec, ref_joint_pos=ref)
            self.leg_action = self.legs(obs)
            q_des[:, self.leg_idx] = pio.action_to_targets(self.legs.action_spec, self.leg_action, self.table, ref)
        if self.arms is not None:
            values = pio.arm_observation_values(gravity, q, dq, self.arm_action, hand_target_pos, hand_target_rot,
                                                table=self.table)
            error = values["hand_error"].reshape(-1, 2, 6)
            self.last_hand_error = (error[..., :3], error[..., 3:])  # (dp, drot): for tracking, not recomputed
            self.arm_action = self.arms(pio.ARM_OBS.build(values))
            raw = pio.action_to_targets(self.arms.action_spec, self.arm_action, self.table)
            a = self.arm_target_alpha
            fresh = self.arm_fresh
            if not fresh.any():  # every cycle but the first: the filter alone (np.where's other branch, the same)
                smooth = a * raw + (1.0 - a) * self.arm_target
            else:
                smooth = np.where(fresh[:, None], raw, a * raw + (1.0 - a) * self.arm_target)
                self.arm_fresh = np.zeros_like(fresh)
            self.arm_target = smooth
            q_des[:, self.arm_idx] = smooth
        return q_des
