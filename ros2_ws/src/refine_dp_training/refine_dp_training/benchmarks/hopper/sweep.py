"""The Hopper fine-tuning benchmark: every method x seeds from one pretrained DP, then a table and a plot.

    refine-dp hopper-sweep run    [--root runs/hopper_bench] [--seeds 0 1] [--methods ...]
    refine-dp hopper-sweep report [--root runs/hopper_bench]

`run` works through the plan one run at a time (each `refine-dp finetune` in its own process, so a
crash or a kill loses at most one checkpoint interval): a run whose summary.json reached its budget
is skipped, a run with checkpoints is resumed (`--resume`), anything else starts. Killing the sweep
and starting it again therefore continues where it stopped. The MLP baseline's pretraining
(`refine-dp pretrain --model mlp`, same demos, same windows) is the first item of the plan.

`report` reads every run's curve.jsonl and writes ROOT/table.md, ROOT/table.json and ROOT/curves.png
(return vs environment steps and vs training wall-clock: mean over seeds, band = min..max);
`report --copy-to DIR` also copies them to DIR (the committed results are in `results/` here).

`final-eval [--episodes 20] [--seed 20000]` re-evaluates the last checkpoint of every run (and the
pretrained DP and MLP themselves) on more episodes and other start states than the 5-episode
evaluations inside training, writing RUN/final_eval.json (and ROOT/final_eval_pretrained.json);
`report` then adds a column with them. Cached per checkpoint: re-running evaluates only what changed.

Budgets (`PLAN`) keep each run well under the issue's 60 CPU-minutes on the 2-core VM; raising a
budget and running again extends finished runs. The report prints the env steps and CPU-minutes
each run actually used.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

DEMOS = "runs/hopper_demos"
DP = "runs/hopper_dp/policy.pt"

# method -> (budget env steps, extra finetune options, pretrained kind)
PLAN: dict[str, tuple[int, list[str], str]] = {
    "dppo": (400_000, ["--num-envs", "10"], "dp"),  # 120k was too short to lift (2309 -> 2091 +- 331)
    "ppo-gaussian": (150_000, [], "dp"),
    "mlp-ft": (150_000, [], "mlp"),
    "residual": (150_000, [], "dp"),
    "dsrl-sac": (20_000, ["--num-envs", "4", "--learning-starts", "2000"], "dp"),
    "dsrl-na": (20_000, ["--num-envs", "4", "--learning-starts", "2000"], "dp"),
}
EVAL_POINTS = 6
LAST = 3  # the table's "last 3 evals": mean of each run's last evaluations (5 episodes each are noisy)
REACH = 2800  # return threshold for sample efficiency (~80 % of the expert's best, 3484)
REFINE_DP = str(Path(sys.executable).with_name("refine-dp"))  # the console script of this venv


def _summary(out: Path) -> dict | None:
    p = out / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


def _run(cmd: list[str], log: Path) -> int:
    print("+", " ".join(cmd), f"  (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)


def pretrain_mlp(root: Path, demos: str, steps: int) -> Path:
    out = root / "mlp_pretrain"
    policy = out / "policy.pt"
    if policy.exists() and _summary(out):
        return policy
    cmd = [REFINE_DP, "pretrain", "--preset", "hopper", "--model", "mlp",
           "--data", demos, "--out", str(out), "--steps", str(steps), "--no-progress"]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    if _run(cmd, root / "logs" / "mlp_pretrain.log") != 0 or not policy.exists():
        raise SystemExit(f"MLP pretraining failed: see {root / 'logs' / 'mlp_pretrain.log'}")
    return policy


def run(args) -> None:
    root = Path(args.root)
    mlp = None
    for seed in args.seeds:  # every method once before any second seed
        for method in args.methods:
            budget, extra, kind = PLAN[method]
            if kind == "mlp" and mlp is None:
                mlp = pretrain_mlp(root, args.demos, args.mlp_steps)
            pretrained = str(mlp) if kind == "mlp" else args.dp
            out = root / method / f"seed{seed}"
            s = _summary(out)
            if s and s.get("env_steps", 0) >= budget:
                print(f"= {method} seed {seed}: done ({s['env_steps']} env steps)", flush=True)
                continue
            cmd = [REFINE_DP, "finetune", "--method", method, "--out", str(out)]
            if (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):
                cmd += ["--resume", "--budget-env-steps", str(budget)]  # a raised budget extends the run
            else:
                cmd += ["--pretrained", pretrained, "--env", "Hopper-v5", "--seed", str(seed),
                        "--budget-env-steps", str(budget), "--eval-every-env-steps", str(budget // EVAL_POINTS),
                        "--eval-episodes", str(args.eval_episodes), "--no-progress", *extra]
            rc = _run(cmd, root / "logs" / f"{method}_seed{seed}.log")
            if rc != 0:
                print(f"! {method} seed {seed} exited {rc}; see {root / 'logs'}", flush=True)


def _final_eval_run(out: Path, episodes: int, seed: int) -> dict | None:
    """Evaluate the last checkpoint of one fine-tuning run (deterministic actor, `episodes` envs)."""
    import dataclasses

    from ...finetune.cli import load_method
    from ...finetune.common import evaluate, latest_checkpoint, load_checkpoint, make_chunked_env
    ckpt_path = latest_checkpoint(out)
    if ckpt_path is None or not (out / "config.json").is_file():
        return None
    cache = out / "final_eval.json"
    key = {"checkpoint": ckpt_path.name, "episodes": episodes, "seed": seed}
    if cache.is_file() and all(json.loads(cache.read_text()).get(k) == v for k, v in key.items()):
        return json.loads(cache.read_text())
    saved = json.loads((out / "config.json").read_text())
    mod, overrides = load_method(saved["method"])
    fields = {f.name for f in dataclasses.fields(mod.Config)}
    cfg = mod.Config(**({k: v for k, v in saved.items() if k in fields} | overrides | {"tensorboard": False}))
    method = mod.Method(cfg)
    ckpt = load_checkpoint(ckpt_path)
    method.load_state_dict(ckpt["method"])
    env = make_chunked_env(cfg.env, episodes, method.obs_horizon, method.act_steps)
    res = key | {"env_steps": method.env_steps} | evaluate(method.act_deterministic, env, seed)
    cache.write_text(json.dumps(res, indent=1))
    return res


def _final_eval_pretrained(path: str, episodes: int, seed: int) -> dict:
    from ...finetune.common import deterministic_act_fn, evaluate, load_pretrained, make_chunked_env
    pre = load_pretrained(path)
    env = make_chunked_env(pre.env or "Hopper-v5", episodes, pre.obs_horizon, pre.act_steps)
    return {"policy": path, "episodes": episodes, "seed": seed} | evaluate(deterministic_act_fn(pre), env, seed)


def final_eval(args) -> dict:
    import torch
    torch.set_num_threads(1)
    root = Path(args.root)
    pretrained = {}
    cache = root / "final_eval_pretrained.json"
    if cache.is_file():
        pretrained = json.loads(cache.read_text())
    for name, path in (("dp", args.dp), ("mlp", str(root / "mlp_pretrain" / "policy.pt"))):
        old = pretrained.get(name, {})
        if Path(path).is_file() and (old.get("policy"), old.get("episodes"), old.get("seed")) != (
                path, args.episodes, args.seed):
            pretrained[name] = _final_eval_pretrained(path, args.episodes, args.seed)
            print(f"pretrained {name}: {pretrained[name]['return_mean']:.0f} +- {pretrained[name]['return_std']:.0f}",
                  flush=True)
    cache.write_text(json.dumps(pretrained, indent=1))
    for method in PLAN:
        for out in sorted((root / method).glob("seed*")):
            res = _final_eval_run(out, args.episodes, args.seed)
            if res:
                print(f"{method} {out.name}: {res['return_mean']:.0f} +- {res['return_std']:.0f} "
                      f"(success {res['success_mean']:.2f}, {res['env_steps']} env steps)", flush=True)
    return pretrained


def _curves(root: Path) -> dict[str, list[list[dict]]]:
    out: dict[str, list[list[dict]]] = {}
    for method in PLAN:
        runs = []
        for d in sorted((root / method).glob("seed*")):
            f = d / "curve.jsonl"
            if f.exists():
                rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
                if rows:
                    runs.append(rows)
        if runs:
            out[method] = runs
    return out


def _fmt(values: list[float]) -> str:
    a = np.asarray(values, float)
    return f"{a.mean():.0f} +- {a.std():.0f}" if len(a) > 1 else f"{a.mean():.0f}"


def _fmt_final(row: dict) -> str:
    if not row["final_eval"]:
        return "-"
    return f"{_fmt(row['final_eval'])} ({np.mean(row['final_eval_success']):.2f})"


def report(args) -> dict:
    root = Path(args.root)
    curves = _curves(root)
    if not curves:
        raise SystemExit(f"no runs under {root}: run `refine-dp hopper-sweep run --root {root}` first")
    rows = []
    for method, runs in curves.items():
        start = [r[0]["return_mean"] for r in runs]
        end = [r[-1]["return_mean"] for r in runs]
        last3 = [float(np.mean([x["return_mean"] for x in r[-LAST:]])) for r in runs]  # less eval noise
        best = [max(x["return_mean"] for x in r) for r in runs]
        succ = [r[-1].get("success_mean", 0.0) for r in runs]
        steps = [r[-1]["env_steps"] for r in runs]
        wall = [r[-1]["wall_s"] / 60.0 for r in runs]
        reach = [next((x["env_steps"] for x in r if x["return_mean"] >= REACH), None) for r in runs]
        finals = [json.loads(f.read_text()) for f in sorted((root / method).glob("seed*/final_eval.json"))]
        rows.append({"method": method, "seeds": len(runs), "env_steps": int(np.mean(steps)),
                     "train_min": float(np.mean(wall)), "start": start, "end": end, "last3": last3, "best": best,
                     "end_success": succ, "steps_to_reach": reach,
                     "final_eval": [f["return_mean"] for f in finals],
                     "final_eval_success": [f["success_mean"] for f in finals],
                     "final_eval_episodes": finals[0]["episodes"] if finals else None})
    n_final = next((r["final_eval_episodes"] for r in rows if r["final_eval_episodes"]), None)
    fe_head = f"final, {n_final} new episodes (success)" if n_final else "final, more episodes"
    lines = ["| method | seeds | env steps | train min/run | start return | final return | last 3 evals "
             f"| best return | final success | {fe_head} | env steps to {REACH} (per seed) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    pre = json.loads((root / "final_eval_pretrained.json").read_text()) if (root / "final_eval_pretrained.json").is_file() else {}

    def fe(res: dict | None) -> str:
        return "-" if not res else (f"{res['return_mean']:.0f}, episode std {res['return_std']:.0f} "
                                    f"({res['success_mean']:.2f})")
    # dppo's step 0 is the frozen DP itself (residual adds an untrained residual, DSRL an untrained
    # steering actor, so their step-0 evaluations are not the DP's)
    dp = next((r["start"] for r in rows if r["method"] == "dppo"), None)
    if dp:
        lines.append(f"| pretrained DP (eta 0; dppo's step-0 evals) | - | 0 | - | {_fmt(dp)} "
                     f"| - | - | - | - | {fe(pre.get('dp'))} | - |")
    if pre.get("mlp"):
        lines.append(f"| pretrained MLP (mlp-ft's start) | - | 0 | - | - | - | - | - | - | {fe(pre['mlp'])} | - |")
    for r in rows:
        lines.append(f"| {r['method']} | {r['seeds']} | {r['env_steps']:,} | {r['train_min']:.1f} | {_fmt(r['start'])} "
                     f"| {_fmt(r['end'])} | {_fmt(r['last3'])} | {_fmt(r['best'])} | {np.mean(r['end_success']):.2f} "
                     f"| {_fmt_final(r)} "
                     f"| {', '.join('never' if x is None else f'{x / 1000:.0f}k' for x in r['steps_to_reach'])} |")
    table = "\n".join(lines) + "\n"
    (root / "table.md").write_text(table)
    (root / "table.json").write_text(json.dumps(rows, indent=1))
    _plot(curves, root / "curves.png")
    print(table)
    print(f"wrote {root / 'table.md'}, {root / 'table.json'}, {root / 'curves.png'}")
    if getattr(args, "copy_to", None):  # e.g. the results/ folder committed beside this benchmark
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("table.md", "table.json", "curves.png"):
            shutil.copy2(root / name, dest / name)
        print(f"copied them to {dest}")
    return {"rows": rows}


def _plot(curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharex="col")
    for method, runs in curves.items():
        n = min(len(r) for r in runs)
        for col, key, scale in ((0, "env_steps", 1e3), (1, "wall_s", 60.0)):
            x = np.mean([[row[key] / scale for row in r[:n]] for r in runs], axis=0)
            for row_i, metric in ((0, "return_mean"), (1, "success_mean")):
                ax = axes[row_i, col]
                y = np.array([[row.get(metric, 0.0) for row in r[:n]] for r in runs])
                line, = ax.plot(x, y.mean(0), marker="o", ms=3, label=f"{method} ({len(runs)} seeds)")
                if len(runs) > 1:
                    ax.fill_between(x, y.min(0), y.max(0), color=line.get_color(), alpha=0.15)
    axes[1, 0].set_xlabel("environment steps [thousands]")
    axes[1, 1].set_xlabel("training wall-clock [min] (one core, shared 2-core VM)")
    for col in (0, 1):
        axes[0, col].set_ylabel("deterministic return (Hopper-v5)")
        axes[0, col].axhline(REACH, color="k", lw=0.6, ls=":")
        axes[1, col].set_ylabel("success (reaches the 1000-step limit)")
        axes[0, col].set_xscale("symlog", linthresh=10 if col == 0 else 1)
        axes[0, col].set_xlim(left=0)  # symlog would otherwise show an empty negative decade
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle("Fine-tuning one pretrained DP on Hopper-v5: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp hopper-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or continue) every method x seed")
    r.add_argument("--root", default="runs/hopper_bench")
    r.add_argument("--dp", default=DP, help="pretrained diffusion policy (policy.pt)")
    r.add_argument("--demos", default=DEMOS, help="demonstrations (for the MLP baseline's pretraining)")
    r.add_argument("--mlp-steps", type=int, default=5000)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    r.add_argument("--methods", nargs="+", default=list(PLAN), choices=list(PLAN))
    r.add_argument("--eval-episodes", type=int, default=5)
    f = sub.add_parser("final-eval", help="re-evaluate every run's last checkpoint on more, new episodes")
    f.add_argument("--root", default="runs/hopper_bench")
    f.add_argument("--dp", default=DP, help="pretrained diffusion policy (policy.pt)")
    f.add_argument("--episodes", type=int, default=20)
    f.add_argument("--seed", type=int, default=20_000, help="start states other than training's eval_seed")
    q = sub.add_parser("report", help="table.md, table.json and curves.png from the runs so far")
    q.add_argument("--root", default="runs/hopper_bench")
    q.add_argument("--copy-to", help="also copy table.md, table.json and curves.png into this folder")
    a = p.parse_args(argv)
    if a.cmd == "run":
        run(a)
        report(a)
    elif a.cmd == "final-eval":
        final_eval(a)
    else:
        report(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
