"""`refine-dp eval policy --policy CKPT_OR_ENGINE --env ID --episodes N --out DIR`: evaluate any planner.

The policy is anything `refine-dp export planner` takes or writes: a `policy.pt` of `refine-dp
pretrain` (diffusion policy or MLP) or of `refine-dp finetune` (every method), run by the torch
engine; or an exported engine folder (metadata.json + ONNX), run by ONNX Runtime (or TensorRT with
--backend tensorrt). Each is run as deployed: its own obs horizon and act_steps (the planner
contract), a DP's initial noise from the engine's seeded generator and its own eta (0 unless it was
exported otherwise), so a fine-tuned policy is evaluated exactly as its training evaluated it.

--env defaults to the env the checkpoint records (pretraining's or fine-tuning's; an engine folder
records none); the env's observation and action sizes are checked against the policy's first.
Episodes: `--episodes N` envs in rounds of `--num-envs`, every env's FIRST episode (never the first
N to finish, which over-counts short ones); env i of round r is seeded seed + r * num_envs + i.

Writes OUT/summary.json (success rate with its Wilson 95 % interval where the env defines success,
return and episode length mean/std, per-episode values, the policy's contract) and prints one line.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .evalstats import describe


def load_engine(policy: str | Path, backend: str | None = None, seed: int = 0):
    """(engine, recorded) for a policy.pt (torch) or an export folder (onnxruntime unless `backend`);
    recorded: {"env", "env_kwargs", "method", "kind"} the file says about itself."""
    from refine_dp_planner.engines import make_engine

    path = Path(policy)
    if path.is_dir() and (path / "metadata.json").is_file():
        engine = make_engine(backend or "onnxruntime", path, seed=seed)
        return engine, {"kind": engine.metadata.get("kind"), "backend": engine.backend}
    if path.is_dir():
        path = path / "policy.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--policy {policy}: neither a policy.pt nor an exported engine folder with "
                                "metadata.json (refine-dp pretrain / finetune write policy.pt; export planner a folder)")
    if backend not in (None, "torch"):
        raise ValueError(f"--backend {backend} needs an exported engine folder: run `refine-dp export planner "
                         f"--checkpoint {path} --out ENGINE` and pass --policy ENGINE")
    engine = make_engine("torch", path, seed=seed)
    extra = torch.load(path, map_location="cpu", weights_only=False).get("extra") or {}
    ft = extra.get("finetune_config") or {}
    pre = extra.get("pretrain_config") or {}
    return engine, {"kind": engine.metadata.get("kind"), "backend": "torch", "method": extra.get("method"),
                    "env": extra.get("env"),
                    "env_kwargs": extra.get("env_kwargs", ft.get("env_kwargs", pre.get("env_kwargs"))) or {}}


def evaluate_policy(policy: str | Path, env: str | None = None, env_kwargs: dict | None = None, episodes: int = 50,
                    seed: int = 0, num_envs: int = 25, backend: str | None = None) -> dict:
    """Evaluate `policy` on `episodes` episodes of `env`; returns summary.json's dict."""
    from .finetune.common import make_chunked_env, run_episodes, summarize_episodes

    engine, recorded = load_engine(policy, backend, seed)
    env = env or recorded.get("env")
    if not env:
        raise ValueError(f"{policy} records no env: pass --env (and --env-kwargs if the env takes any)")
    kwargs = dict(recorded.get("env_kwargs") or {}) if env_kwargs is None else dict(env_kwargs)
    (To, Do), (_, Da) = engine.obs_shape, engine.action_shape
    act = lambda obs: engine.sample(obs)  # noqa: E731  (noise from the engine's seeded generator)
    per = {"return": [], "length": [], "success": []}
    defined, steps, t0 = False, 0, time.perf_counter()
    for r, start in enumerate(range(0, episodes, num_envs)):
        n = min(num_envs, episodes - start)
        chunked = make_chunked_env(env, n, To, engine.act_steps, env_kwargs=kwargs,
                                   expect=(Do, Da, f"the policy {policy}"))
        res = run_episodes(act, chunked, seed + r * num_envs)
        chunked.close()
        for k in per:
            per[k] += np.asarray(res[k]).tolist()
        defined, steps = defined or res["success_defined"], steps + res["eval_env_steps"]
    summary = summarize_episodes(per | {"success_defined": defined, "eval_env_steps": steps})
    m = engine.metadata
    return {"policy": str(policy), "kind": recorded.get("kind"), "method": recorded.get("method"),
            "backend": recorded.get("backend"), "env": env, "env_kwargs": kwargs, "seed": seed, **summary,
            "success_rate": summary["success_mean"] if defined else None,
            "contract": {k: m.get(k) for k in ("obs_dim", "action_dim", "obs_horizon", "action_horizon", "act_steps",
                                               "rate_hz")},
            "wall_s": time.perf_counter() - t0,
            "per_episode": {"return": per["return"], "length": per["length"],
                            "success": [bool(x) for x in per["success"]] if defined else None}}


def main(argv: list[str] | None = None) -> int:
    from .finetune.cli import json_object

    p = argparse.ArgumentParser(prog="refine-dp eval policy", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--policy", required=True, help="policy.pt (pretrain/finetune) or an exported engine folder")
    p.add_argument("--env", help="env name or gymnasium id (module:Id-v0 imports module first); "
                                 "default: the one the checkpoint records")
    p.add_argument("--env-kwargs", type=json_object, default=None, help="JSON keyword arguments of the env")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=25, help="envs stepped together (episodes come in rounds)")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"),
                   help="default: torch for a policy.pt, onnxruntime for an engine folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    res = evaluate_policy(a.policy, a.env, a.env_kwargs, a.episodes, a.seed, a.num_envs, a.backend)
    from .rundir import atomic_write_json
    atomic_write_json(a.out / "summary.json", res)
    if not res["success_defined"]:
        print(f"note: {res['env']} reports no success (info['is_success'] or info['success']): return and length only")
    print(f"eval policy {a.policy} ({res['kind']}, {res['backend']}) in {res['env']}, {res['episodes']} episodes: "
          f"{describe(res)}; {a.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
