"""Planner latency benchmark: ms per action chunk at batch 1 for each backend, machine noted.

    python -m refine_dp_planner.bench [--iters 200] [--out bench.json]

The reference config is the shipped DiT (DiTConfig defaults: 4 layers, width 128, 4 heads; --dit-width
256 gives the 4 x 256 hardware reference of FACTS) with 10 DDIM steps,
obs history 8 x obs_dim and chunk 12 x action_dim, random weights (latency does not depend on the
values). Every backend is also checked against torch on the same noise (max |diff| in normalized
action units). The load average is recorded before and after: on a shared machine it explains
outliers, and figures taken under load are upper bounds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.engines import make_engine
from refine_dp_planner.export import export_policy
from refine_dp_planner.models.dit import DiTConfig
from refine_dp_planner.policy import DiffusionPolicy

# name -> (make_engine backend, options)
BENCH_BACKENDS = {
    "torch": ("torch", {}),
    "onnxruntime": ("onnxruntime", {"variant": "sampler"}),
    "onnxruntime-denoiser-loop": ("onnxruntime", {"variant": "denoiser"}),
    "tensorrt": ("tensorrt", {}),
}


TORCH_ITERS = 30


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        import onnxruntime as ort
        ort_version = ort.__version__
    except ImportError:
        ort_version = None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg": list(os.getloadavg()), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": ort_version, "python": platform.python_version(), "platform": platform.platform()}


def reference_policy(obs_dim: int = 48, action_dim: int = 23, dit: DiTConfig | None = None, seed: int = 0,
                     train_steps: int = 40) -> DiffusionPolicy:
    """A paper-sized DiT policy, briefly trained on synthetic data (for latency and parity).

    Latency does not depend on the weights, but parity does: an untrained denoiser drives every x0
    estimate into the [-1, 1] clip, where any two backends agree trivially. A few dozen steps on
    actions = tanh(obs @ W) + noise are enough to keep most outputs inside the clip (the fraction at
    the clip is reported).
    """
    torch.manual_seed(seed)
    policy = DiffusionPolicy(DiffusionPolicyConfig(obs_dim=obs_dim, action_dim=action_dim, dit=dit or DiTConfig()))
    g = torch.Generator().manual_seed(seed)
    c = policy.config
    obs = torch.randn(512, c.obs_horizon, obs_dim, generator=g)
    weights = torch.randn(obs_dim, action_dim, generator=g) / obs_dim ** 0.5
    actions = torch.tanh(obs[:, -1] @ weights).unsqueeze(1).repeat(1, c.action_horizon, 1)
    actions = actions + 0.1 * torch.randn(actions.shape, generator=g)
    policy.fit_normalizers(obs, actions)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    for _ in range(train_steps):
        idx = torch.randint(0, len(obs), (64,), generator=g)
        loss = policy.compute_loss({"obs": obs[idx], "action": actions[idx]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


def _time(engine, obs: np.ndarray, noises: np.ndarray, warmup: int) -> np.ndarray:
    for i in range(warmup):
        engine.sample(obs, noises[i % len(noises)])
    times = np.empty(len(noises))
    for i, noise in enumerate(noises):
        t0 = time.perf_counter()
        engine.sample(obs, noise)
        times[i] = time.perf_counter() - t0
    return times * 1e3


def bench_planner(policy: DiffusionPolicy | None = None, *, backends=tuple(BENCH_BACKENDS), iters: int = 200,
                  warmup: int = 20, export_dir: str | None = None, ort_options: dict | None = None,
                  seed: int = 0) -> dict:
    """Latency (ms per action chunk, batch 1) p50/p99/mean/max per backend, parity vs torch, machine."""
    policy = policy or reference_policy(seed=seed)
    c = policy.config
    export_dir = export_dir or tempfile.mkdtemp(prefix="refine_dp_bench_")
    export_policy(policy, export_dir)
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((1, c.obs_horizon, c.obs_dim), dtype=np.float32)
    noises = rng.standard_normal((iters, 1, c.action_horizon, c.action_dim), dtype=np.float32)
    check_obs = rng.standard_normal((4, c.obs_horizon, c.obs_dim), dtype=np.float32)
    check_noise = rng.standard_normal((4, c.action_horizon, c.action_dim), dtype=np.float32)
    reference = make_engine("torch", policy).sample(check_obs, check_noise)
    scale = policy.action_normalizer.scale.numpy()
    at_clip = np.abs(policy.action_normalizer.normalize(torch.from_numpy(reference)).numpy()) > 0.999
    result = {"machine": machine_info(), "load_avg_before": os.getloadavg(),
              "config": {"backbone": c.backbone, "dit": vars(c.dit) if c.backbone == "dit" else None,
                         "obs_horizon": c.obs_horizon, "obs_dim": c.obs_dim, "action_horizon": c.action_horizon,
                         "action_dim": c.action_dim, "ddim_steps": c.ddim_steps, "eta": c.eta,
                         "parameters": sum(p.numel() for p in policy.denoiser.parameters())},
              "iters": iters, "batch": 1, "parity_fraction_at_clip": float(at_clip.mean()), "backends": {}}
    for name in backends:
        backend, options = BENCH_BACKENDS[name]
        options = dict(options, **(ort_options or {})) if backend == "onnxruntime" else dict(options)
        try:
            engine = make_engine(backend, policy if backend == "torch" else export_dir, **options)
        except Exception as e:  # a missing backend is a result, not a crash
            result["backends"][name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        # eager torch is the slow reference: time fewer chunks so the whole bench stays short
        n = min(len(noises), TORCH_ITERS) if backend == "torch" else len(noises)
        ms = _time(engine, obs, noises[:n], min(warmup, n))
        diff = np.abs(engine.sample(check_obs, check_noise) - reference) / scale
        result["backends"][name] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                                    "mean_ms": float(ms.mean()), "max_ms": float(ms.max()),
                                    "max_abs_diff_vs_torch_normalized": float(diff.max()), "options": options}
    result["load_avg_after"] = os.getloadavg()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--backends", nargs="+", default=list(BENCH_BACKENDS), choices=list(BENCH_BACKENDS))
    parser.add_argument("--ort-threads", type=int, default=None)
    parser.add_argument("--ort-spinning", action="store_true")
    parser.add_argument("--dit-width", type=int, default=DiTConfig().width)
    parser.add_argument("--dit-depth", type=int, default=DiTConfig().depth)
    parser.add_argument("--out", default=None, help="write the result JSON here too")
    args = parser.parse_args(argv)
    policy = reference_policy(dit=DiTConfig(width=args.dit_width, depth=args.dit_depth))
    result = bench_planner(policy, backends=args.backends, iters=args.iters,
                           ort_options={"intra_op_threads": args.ort_threads, "allow_spinning": args.ort_spinning})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
