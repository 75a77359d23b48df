"""Export any planner for deployment: ONNX graphs plus metadata.json (`refine-dp export planner`).

The planner is a deployable.Deployable: a pretrained DiffusionPolicy or MLP, or a fine-tuned one
(DPPO, residual, DSRL, MLP-FT, PPO-Gaussian), each exactly as its method evaluates it. Writes into one folder:
  sampler.onnx   the planner as one graph: inputs obs_history [B, To, Do] (raw units), noise [B, Ta, Da]
                 (the initial x_K, standard normal; absent from the graph of planners that ignore it,
                 see metadata "uses_noise") and, only when eta > 0, step_noise [K, B, Ta, Da]; output
                 actions [B, Ta, Da] (raw units). For a DP: normalize obs -> K DDIM steps -> clip ->
                 unnormalize, calling the same `denoise_step` as the torch sampler with the step
                 constants and the step-embedding MLP folded into constants.
  denoiser.onnx  only for a plain DiffusionPolicy: eps_theta alone (x_t [B, Ta, Da], t [B] int64, obs
                 [B, To, Do] normalized) for a sampling loop in Python (any step count or eta at run time).
  metadata.json  the planner contract (contract.CONTRACT_FIELDS: layouts, horizons, act_steps, rate_hz),
                 kind, which graphs exist, schedule, steps, eta, normalizer stats, git revision.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import torch
from torch import nn

from refine_dp_planner.deployable import Deployable, DiffusionDeployable, UnrolledSampler, load_planner  # noqa: F401
from refine_dp_planner.engines.metadata import METADATA_FORMAT, load_metadata, write_metadata
from refine_dp_planner.policy import DiffusionPolicy
from refine_dp_planner.utils import git_revision

DEFAULT_OPSET = 17
SAMPLER_FILE, DENOISER_FILE = "sampler.onnx", "denoiser.onnx"
GRAPH_FILES = {"sampler": SAMPLER_FILE, "denoiser": DENOISER_FILE}


def build_metadata(planner: Deployable, opset: int, graphs: tuple[str, ...] = ("sampler",)) -> dict:
    """metadata.json of an engine of `planner`: its contract (contract.CONTRACT_FIELDS), which graphs
    exist, their inputs and outputs, the sampler's schedule and steps, normalizers, provenance."""
    c = planner.contract
    To, Do, Ta, Da = c["obs_horizon"], c["obs_dim"], c["action_horizon"], c["action_dim"]
    dc, sampler = planner.diffusion_config, planner.sampler
    K = len(sampler.timesteps) if sampler is not None else 0
    eta = planner.eta
    sampler_inputs = {"obs_history": [None, To, Do]}
    if planner.uses_noise:  # the exporter drops an input the graph never reads
        sampler_inputs["noise"] = [None, Ta, Da]
    if eta > 0:
        sampler_inputs["step_noise"] = [K, None, Ta, Da]
    inputs, outputs = {"sampler": sampler_inputs}, {"sampler": {"actions": [None, Ta, Da]}}
    if "denoiser" in graphs:
        inputs["denoiser"] = {"x_t": [None, Ta, Da], "t": [None], "obs": [None, To, Do]}
        outputs["denoiser"] = {"eps": [None, Ta, Da]}
    return {
        "format": METADATA_FORMAT,
        "kind": planner.kind,
        **c,
        "step_dt_s": 1.0 / c["rate_hz"],
        "uses_noise": planner.uses_noise,
        "backbone": dc.backbone if dc is not None else None,
        "schedule": "cosine" if dc else None, "prediction": "epsilon" if dc else None,
        "num_train_timesteps": dc.num_train_timesteps if dc else None,
        "ddim_steps": K, "eta": eta, "timestep_spacing": dc.timestep_spacing if dc else None,
        "timesteps": list(sampler.timesteps) if sampler is not None else [],
        "ft_denoising_steps": planner.spec.get("ft_denoising_steps"), "clip_x0": dc.clip_x0 if dc else None,
        "normalizer": planner.normalizers(),
        "graphs": list(graphs),
        "files": {g: GRAPH_FILES[g] for g in graphs},
        "inputs": inputs,
        "outputs": outputs,
        "units": {"obs_history": "raw", "noise": "normalized N(0, I)", "actions": "raw",
                  "denoiser.obs": "normalized", "denoiser.x_t": "normalized"},
        "spec": planner.spec,
        "config": dc.to_dict() if dc is not None else planner.spec.get("policy"),
        "opset": opset, "torch_version": torch.__version__, "git_revision": git_revision(),
        "created_unix": time.time(),
    }


def _onnx_export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_axes, opset):
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False)


def export_policy(policy: DiffusionPolicy | Deployable, out_dir: str | Path, *, ddim_steps: int | None = None,
                  eta: float | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Write sampler.onnx (+ denoiser.onnx for a plain DiffusionPolicy) and metadata.json into out_dir.

    policy: a DiffusionPolicy (ddim_steps/eta default to its config) or any Deployable (fine-tuned
    planners are exported exactly as they were evaluated: no ddim_steps/eta). Returns out_dir.
    """
    if isinstance(policy, DiffusionPolicy):
        policy._check_fitted()
        planner = DiffusionDeployable(policy, ddim_steps, eta)
    elif ddim_steps is not None or eta is not None:
        raise ValueError(f"a {policy.kind} planner is exported as built (ddim_steps {policy.spec.get('ddim_steps')}, "
                         f"eta {policy.eta}): pass ddim_steps/eta only with a DiffusionPolicy")
    else:
        planner = policy
    planner = planner.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = planner.contract
    K, eta = len(planner.sampler.timesteps) if planner.sampler is not None else 0, planner.eta
    B = 2  # example batch; the batch axis is dynamic
    obs = torch.randn(B, c["obs_horizon"], c["obs_dim"])
    noise = torch.randn(B, c["action_horizon"], c["action_dim"])
    names, args = ["obs_history", "noise"], (obs, noise)
    axes = {"obs_history": {0: "batch"}, "noise": {0: "batch"}, "actions": {0: "batch"}}
    if eta > 0:
        names.append("step_noise")
        args = (obs, noise, torch.randn(K, *noise.shape))
        axes["step_noise"] = {1: "batch"}
    graphs = ("sampler", "denoiser") if planner.kind == "diffusion" else ("sampler",)
    with torch.no_grad():
        _onnx_export(planner, args, out / SAMPLER_FILE, names, ["actions"], axes, opset)
        if "denoiser" in graphs:
            _onnx_export(planner.sampler.denoiser, (noise, torch.zeros(B, dtype=torch.long), obs), out / DENOISER_FILE,
                         ["x_t", "t", "obs"], ["eps"], {"x_t": {0: "batch"}, "t": {0: "batch"}, "obs": {0: "batch"},
                                                        "eps": {0: "batch"}}, opset)
        elif (out / DENOISER_FILE).exists():
            (out / DENOISER_FILE).unlink()  # a stale graph of an earlier export into the same folder
    write_metadata(build_metadata(planner, opset, graphs), out)
    return out


def main(argv=None) -> int:
    """`refine-dp export planner --checkpoint CKPT --out DIR`: any planner policy.pt -> ONNX + metadata.json."""
    import argparse

    parser = argparse.ArgumentParser(prog="refine-dp export planner", description=main.__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="policy.pt of `refine-dp pretrain` (DP or MLP) or of `refine-dp finetune` (any method)")
    parser.add_argument("--out", required=True, type=Path, help="engine folder to write")
    parser.add_argument("--ddim-steps", type=int, default=None, help="pretrained DP only; default: its config")
    parser.add_argument("--eta", type=float, default=None,
                        help="pretrained DP only; default: its config (0: deterministic)")
    parser.add_argument("--raw-weights", action="store_true", help="export the raw weights instead of the EMA ones")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = parser.parse_args(argv)
    planner, ckpt = load_planner(args.checkpoint, use_ema=not args.raw_weights, ddim_steps=args.ddim_steps,
                                 eta=args.eta)
    if not args.raw_weights and "ema" in ckpt and ckpt["ema"] is None:
        print(f"note: {args.checkpoint} has no EMA weights; exporting the raw weights")
    out = export_policy(planner, args.out, opset=args.opset)
    graphs = load_metadata(out)[0]["graphs"]
    files = ", ".join([GRAPH_FILES[g] for g in graphs] + ["metadata.json"])
    print(f"exported {args.checkpoint} ({planner.kind} planner, act_steps {planner.contract['act_steps']}, "
          f"{planner.contract['rate_hz']:g} Hz) -> {out}/{{{files}}}")
    return 0
