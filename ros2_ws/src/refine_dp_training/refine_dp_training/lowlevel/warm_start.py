"""Warm start a PPO actor from an exported policy (ONNX + metadata) when its training checkpoint is gone.

The shipped legs exist only as `legs.onnx`: the graph is `actor(clip((obs - mean) / (sqrt(var) + eps)))`
with the normalizer folded in (policy_runtime.export_onnx), so the actor's weights and the normalizer's
statistics can be read back exactly. Observation fields are matched by name (the file's obs_spec against
the new run's): a field the file lacks enters with zero weights (mean 0, var 1), so the warm-started
policy acts exactly as the file does until training uses the new input. The critic, the log-std and the
optimizer start fresh: train with `--critic-warmup` so an untrained critic cannot undo the policy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from loco_manip_controller import policy_io as pio
from loco_manip_controller.policy_runtime import read_metadata


def _initializers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def load_actor_from_onnx(policy, path: str | Path, obs_spec: pio.ObsSpec, env_steps: int | None = None) -> dict:
    """Copy the actor and normalizer of exported policy `path` into ActorCritic `policy` (obs `obs_spec`).

    Returns the file's metadata. env_steps: the normalizer's sample count to set (default: the file's
    env_steps), so its statistics move as slowly as they would have in the original run.
    """
    path = Path(path)
    meta = read_metadata(path)
    weights = _initializers(path)
    src_spec = pio.ObsSpec.from_dict(meta["obs_spec"])
    norm = policy.normalizer
    eps = float(norm.eps)
    denom = next(v for k, v in weights.items() if v.shape == (src_spec.dim,) and k != "normalizer.mean")
    src_mean, src_var = weights["normalizer.mean"], (denom - eps) ** 2
    layers = sorted({k.rsplit(".", 1)[0] for k in weights if k.startswith("actor.")}, key=lambda k: int(k.split(".")[1]))
    actor_linear = [m for m in policy.actor if isinstance(m, torch.nn.Linear)]
    if len(layers) != len(actor_linear):
        raise ValueError(f"{path}: {len(layers)} actor layers, the run's actor has {len(actor_linear)}")
    src_slices, dst_slices = src_spec.slices(), obs_spec.slices()
    missing_in_new = sorted(set(src_slices) - set(dst_slices))
    if missing_in_new:
        raise ValueError(f"{path}: observation fields {missing_in_new} are not in the run's observation")
    w0 = weights[f"{layers[0]}.weight"]
    new_w0 = np.zeros((w0.shape[0], obs_spec.dim), np.float32)
    mean, var = np.zeros(obs_spec.dim, np.float32), np.ones(obs_spec.dim, np.float32)
    for f in src_spec.fields:
        d = obs_spec.fields[[g.name for g in obs_spec.fields].index(f.name)]
        if d.size != f.size:
            raise ValueError(f"{path}: field {f.name} has size {f.size}, the run's has {d.size}")
        new_w0[:, dst_slices[f.name]] = w0[:, src_slices[f.name]]
        mean[dst_slices[f.name]] = src_mean[src_slices[f.name]]
        var[dst_slices[f.name]] = src_var[src_slices[f.name]]
    with torch.no_grad():
        for i, (name, lin) in enumerate(zip(layers, actor_linear)):
            w = new_w0 if i == 0 else np.array(weights[f"{name}.weight"])
            if tuple(lin.weight.shape) != w.shape:
                raise ValueError(f"{path}: layer {name} is {w.shape}, the run's is {tuple(lin.weight.shape)}")
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(np.array(weights[f"{name}.bias"])))
        norm.mean.copy_(torch.as_tensor(mean))
        norm.var.copy_(torch.as_tensor(var))
        norm.count.fill_(int(env_steps if env_steps is not None else meta.get("env_steps", 1_000_000)))
    return meta
