"""A fine-tuning benchmark: every method x seeds from one pretrained DP, then a table and a plot.

    refine-dp sweep run        --benchmark reach [--root runs/reach_bench] [--seeds 0 1 2] [--methods ...]
    refine-dp sweep final-eval --benchmark reach [--episodes 100]
    refine-dp sweep report     --benchmark reach [--copy-to DIR]

A benchmark (`Benchmark`, registered in BENCHMARKS: hopper/sweep.py, reach/sweep.py) names its env,
its pretrained DP and demos, a budget per method (`plan`) and the metric it is judged by (Hopper:
return, reaching 2800; SparseReach: success rate, reaching 0.9). `refine-dp hopper-sweep ...` is
`refine-dp sweep --benchmark hopper ...`.

`run` works through the plan one run at a time (each `refine-dp finetune` in its own process, so a
crash or a kill loses at most one checkpoint interval): a run whose summary.json reached its budget
is skipped, a run with checkpoints is resumed (`--resume`), anything else starts. Killing the sweep
and starting it again therefore continues where it stopped. The MLP baseline's pretraining
(`refine-dp pretrain --model mlp`, same demos, same windows) is the first item of the plan.

`final-eval [--episodes N] [--seed 20000]` evaluates every run's policy.pt (the deployable planner
each `refine-dp finetune` writes at every checkpoint), the pretrained DP and the MLP with `refine-dp
eval policy`'s code on other start states than training's evaluations, writing RUN/final_eval.json
(and ROOT/final_eval_pretrained.json); cached per policy (env steps), episodes and seed.

`report` reads every run's curve.jsonl (and final_eval.json) and writes ROOT/table.md,
ROOT/table.json and ROOT/curves.png (the benchmark's metrics vs environment steps and vs training
wall-clock: mean over seeds, band = min..max); `--copy-to DIR` also copies them to DIR.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REFINE_DP = str(Path(sys.executable).with_name("refine-dp"))  # the console script of this venv
LAST = 3  # the table's "last 3 evals": mean of each run's last evaluations (few episodes each are noisy)
BENCHMARKS = {"hopper": "refine_dp_training.benchmarks.hopper.sweep",
              "reach": "refine_dp_training.benchmarks.reach.sweep"}


@dataclass
class Benchmark:
    name: str
    env: str
    dp: str                              # the pretrained DP every DP method starts from
    demos: str                           # its demonstrations (the MLP baseline is pretrained on them)
    plan: dict[str, tuple[int, list[str], str]]   # method -> (budget env steps, extra finetune options, "dp"|"mlp")
    metric: str                          # "return_mean" or "success_mean": what the table and REACH are about
    reach: float                         # sample efficiency: env steps until the metric first reaches this
    metric_label: str
    mlp_pretrain: list[str] = field(default_factory=list)   # options of the MLP's `refine-dp pretrain`
    env_kwargs: dict = field(default_factory=dict)
    compare_at: int = 20_000             # the table's "metric at N env steps" column (equal samples for every method)
    eval_points: int = 6                 # evaluations per run inside training (plus the one at step 0)
    eval_episodes: int = 5
    plots: tuple[tuple[str, str], ...] = ()   # (curve key, y label) per plot row
    title: str = ""

    @property
    def root(self) -> str:
        return f"runs/{self.name}_bench"


def load_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}: one of {sorted(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name]).BENCHMARK


def _summary(out: Path) -> dict | None:
    p = out / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


def _run(cmd: list[str], log: Path) -> int:
    print("+", " ".join(cmd), f"  (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)


def pretrain_mlp(bench: Benchmark, root: Path, demos: str, steps: int) -> Path:
    out = root / "mlp_pretrain"
    policy = out / "policy.pt"
    if policy.exists() and _summary(out):
        return policy
    cmd = [REFINE_DP, "pretrain", *bench.mlp_pretrain, "--model", "mlp", "--data", demos, "--out", str(out),
           "--steps", str(steps), "--no-progress"]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    if _run(cmd, root / "logs" / "mlp_pretrain.log") != 0 or not policy.exists():
        raise SystemExit(f"MLP pretraining failed: see {root / 'logs' / 'mlp_pretrain.log'}")
    return policy


def run(bench: Benchmark, args) -> None:
    root = Path(args.root)
    mlp = None
    for seed in args.seeds:  # every method once before any second seed
        for method in args.methods:
            budget, extra, kind = bench.plan[method]
            if kind == "mlp" and mlp is None:
                mlp = pretrain_mlp(bench, root, args.demos, args.mlp_steps)
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
                cmd += ["--pretrained", pretrained, "--env", bench.env, "--seed", str(seed),
                        "--budget-env-steps", str(budget), "--eval-every-env-steps", str(budget // bench.eval_points),
                        "--eval-episodes", str(args.eval_episodes), "--no-progress", *extra]
                if bench.env_kwargs:
                    cmd += ["--env-kwargs", json.dumps(bench.env_kwargs)]
            rc = _run(cmd, root / "logs" / f"{method}_seed{seed}.log")
            if rc != 0:
                print(f"! {method} seed {seed} exited {rc}; see {root / 'logs'}", flush=True)


# ---- final evaluation ---------------------------------------------------------------------------
def _cached_eval(policy: Path, cache: Path, key: dict, bench: Benchmark) -> dict:
    if cache.is_file():
        old = json.loads(cache.read_text())
        if all(old.get(k) == v for k, v in key.items()):
            return old
    from ..policy_eval import evaluate_policy
    res = key | evaluate_policy(policy, bench.env, bench.env_kwargs, key["episodes"], key["seed"])
    res.pop("per_episode", None)
    cache.write_text(json.dumps(res, indent=1))
    return res


def final_eval(bench: Benchmark, args) -> dict:
    import torch

    from ..evalstats import describe
    torch.set_num_threads(1)
    root = Path(args.root)
    pretrained = {}
    for name, path in (("dp", Path(args.dp)), ("mlp", root / "mlp_pretrain" / "policy.pt")):
        if path.is_file():
            key = {"policy": str(path), "mtime": path.stat().st_mtime_ns, "episodes": args.episodes, "seed": args.seed}
            pretrained[name] = _cached_eval(path, root / f"final_eval_{name}.json", key, bench)
            print(f"pretrained {name}: {describe(pretrained[name])}", flush=True)
    (root / "final_eval_pretrained.json").write_text(json.dumps(pretrained, indent=1))
    for method in bench.plan:
        for out in sorted((root / method).glob("seed*")):
            policy = out / "policy.pt"
            if not policy.is_file():
                continue
            import torch as _t
            steps = (_t.load(policy, map_location="cpu", weights_only=False).get("extra") or {}).get("env_steps")
            key = {"policy": str(policy), "env_steps": steps, "episodes": args.episodes, "seed": args.seed}
            res = _cached_eval(policy, out / "final_eval.json", key, bench)
            print(f"{method} {out.name} ({steps} env steps): {describe(res)}", flush=True)
    return pretrained


# ---- report -------------------------------------------------------------------------------------
def _curves(bench: Benchmark, root: Path) -> dict[str, list[list[dict]]]:
    out: dict[str, list[list[dict]]] = {}
    for method in bench.plan:
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


def _fmt(values: list[float], metric: str = "return_mean") -> str:
    a = np.asarray(values, float)
    f = (lambda x: f"{x:.2f}") if metric == "success_mean" else (lambda x: f"{x:.0f}")  # noqa: E731
    return f"{f(a.mean())} +- {f(a.std())}" if len(a) > 1 else f(a.mean())


def _fmt_final(res: list[dict], metric: str) -> str:
    """Final evaluations of a method's seeds: the success rate of all their episodes pooled, with its
    Wilson 95 % interval and the rate per seed; on a return benchmark first the mean return +- std
    over seeds."""
    from ..evalstats import wilson_interval
    if not res:
        return "-"
    k, n = sum(r["successes"] for r in res), sum(r["episodes"] for r in res)
    lo, hi = wilson_interval(k, n)
    per_seed = ", ".join(f"{r['success_mean']:.2f}" for r in res)
    ret = "" if metric == "success_mean" else f"{_fmt([r['return_mean'] for r in res])}; "
    return f"{ret}success {k / n:.2f} [{lo:.2f}, {hi:.2f}] ({per_seed})"


def _fmt_pretrained(res: dict | None, metric: str) -> str:
    from ..evalstats import wilson_interval
    if not res:
        return "-"
    lo, hi = wilson_interval(res["successes"], res["episodes"])
    ret = "" if metric == "success_mean" else f"{res['return_mean']:.4g}, episode std {res['return_std']:.3g}; "
    return f"{ret}success {res['success_mean']:.2f} [{lo:.2f}, {hi:.2f}]"


def _steps(x) -> str:
    return "never" if x is None else f"{x / 1000:.1f}k" if x < 10_000 else f"{x / 1000:.0f}k"


def report(bench: Benchmark, args) -> dict:
    root = Path(args.root)
    curves = _curves(bench, root)
    if not curves:
        raise SystemExit(f"no runs under {root}: run `refine-dp sweep run --benchmark {bench.name} --root {root}` first")
    m, rows = bench.metric, []
    for method, runs in curves.items():
        value = lambda x: x.get(m) if x.get(m) is not None else 0.0  # noqa: E731
        finals = [json.loads(f.read_text()) for f in sorted((root / method).glob("seed*/final_eval.json"))]
        rows.append({"method": method, "seeds": len(runs), "env_steps": int(np.mean([r[-1]["env_steps"] for r in runs])),
                     "train_min": float(np.mean([r[-1]["wall_s"] / 60.0 for r in runs])),
                     "start": [value(r[0]) for r in runs], "end": [value(r[-1]) for r in runs],
                     "last3": [float(np.mean([value(x) for x in r[-LAST:]])) for r in runs],
                     "best": [max(value(x) for x in r) for r in runs],
                     "end_success": [r[-1].get("success_mean", 0.0) for r in runs],
                     "steps_to_reach": [next((x["env_steps"] for x in r if value(x) >= bench.reach), None) for r in runs],
                     "at_compare": [value([x for x in r if x["env_steps"] <= bench.compare_at][-1]) for r in runs],
                     "final_eval": [f["return_mean"] for f in finals],
                     "final_eval_success": [f["success_mean"] for f in finals], "final_eval_runs": finals,
                     "final_eval_episodes": finals[0]["episodes"] if finals else None})
    n_final = next((r["final_eval_episodes"] for r in rows if r["final_eval_episodes"]), None)
    fe_head = (f"final, {n_final} new episodes{': return' if m != 'success_mean' else ''}: success [95 % CI] (per seed)"
               if n_final else "final, more episodes")
    what = "success" if m == "success_mean" else "return"
    reach = f"{bench.reach:.0%} success" if m == "success_mean" else f"{bench.reach:g}"
    succ_col = m != "success_mean"   # a return benchmark also shows the success of its last evaluations
    lines = [f"| method | seeds | env steps | train min/run | start {what} | {what} at {bench.compare_at // 1000}k steps "
             f"| final {what} | last 3 evals | best {what} |{' final success |' if succ_col else ''} {fe_head} "
             f"| env steps to {reach} (per seed) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if succ_col else "") + "---|---|"]
    blank = "- | " if succ_col else ""
    pre = {}
    if (root / "final_eval_pretrained.json").is_file():
        pre = json.loads((root / "final_eval_pretrained.json").read_text())
    # dppo's step 0 is the frozen DP itself (residual adds an untrained residual, DSRL an untrained
    # steering actor, so their step-0 evaluations are not the DP's)
    dp = next((r["start"] for r in rows if r["method"] == "dppo"), None)
    if dp or pre.get("dp"):
        lines.append(f"| pretrained DP (eta 0; dppo's step-0 evals) | - | 0 | - | {_fmt(dp, m) if dp else '-'} "
                     f"| - | - | - | - | {blank}{_fmt_pretrained(pre.get('dp'), m)} | - |")
    if pre.get("mlp"):
        lines.append(f"| pretrained MLP (mlp-ft's start) | - | 0 | - | - | - | - | - | - | {blank}{_fmt_pretrained(pre['mlp'], m)} "
                     "| - |")
    for r in rows:
        lines.append(f"| {r['method']} | {r['seeds']} | {r['env_steps']:,} | {r['train_min']:.1f} | {_fmt(r['start'], m)} "
                     f"| {_fmt(r['at_compare'], m)} | {_fmt(r['end'], m)} | {_fmt(r['last3'], m)} | {_fmt(r['best'], m)} "
                     + (f"| {np.mean(r['end_success']):.2f} " if succ_col else "") + f"| {_fmt_final(r['final_eval_runs'], m)} "
                     f"| {', '.join(_steps(x) for x in r['steps_to_reach'])} |")
    table = "\n".join(lines) + "\n"
    (root / "table.md").write_text(table)
    (root / "table.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "final_eval_runs"} for r in rows],
                                                indent=1))
    _plot(bench, curves, root / "curves.png")
    print(table)
    print(f"wrote {root / 'table.md'}, {root / 'table.json'}, {root / 'curves.png'}")
    if getattr(args, "copy_to", None):  # e.g. the results/ folder committed beside the benchmark
        dest = Path(args.copy_to)
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("table.md", "table.json", "curves.png"):
            shutil.copy2(root / name, dest / name)
        print(f"copied them to {dest}")
    return {"rows": rows}


def _plot(bench: Benchmark, curves: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plots = bench.plots or ((bench.metric, bench.metric_label),)
    fig, axes = plt.subplots(len(plots), 2, figsize=(13, 4.25 * len(plots)), sharex="col", squeeze=False)
    for method, runs in curves.items():
        n = min(len(r) for r in runs)
        for col, key, scale in ((0, "env_steps", 1e3), (1, "wall_s", 60.0)):
            x = np.mean([[row[key] / scale for row in r[:n]] for r in runs], axis=0)
            for row_i, (metric, _) in enumerate(plots):
                ax = axes[row_i, col]
                y = np.array([[row.get(metric) or 0.0 for row in r[:n]] for r in runs])
                line, = ax.plot(x, y.mean(0), marker="o", ms=3, label=f"{method} ({len(runs)} seeds)")
                if len(runs) > 1:
                    ax.fill_between(x, y.min(0), y.max(0), color=line.get_color(), alpha=0.15)
    axes[-1, 0].set_xlabel("environment steps [thousands]")
    axes[-1, 1].set_xlabel("training wall-clock [min] (one core, shared 2-core VM)")
    for row_i, (metric, label) in enumerate(plots):
        for col in (0, 1):
            ax = axes[row_i, col]
            ax.set_ylabel(label)
            if metric == bench.metric:
                ax.axhline(bench.reach, color="k", lw=0.6, ls=":")
            ax.set_xscale("symlog", linthresh=10 if col == 0 else 1)
            ax.set_xlim(left=0)  # symlog would otherwise show an empty negative decade
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(bench.title or f"Fine-tuning one pretrained DP on {bench.env}: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None, benchmark: str | None = None) -> int:
    """`refine-dp sweep` (benchmark=None: --benchmark required) or a benchmark's own command."""
    prog = "refine-dp sweep" if benchmark is None else f"refine-dp {benchmark}-sweep"
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    parsers = {name: sub.add_parser(name, help=text) for name, text in (
        ("run", "run (or continue) every method x seed"),
        ("final-eval", "evaluate every run's policy.pt (and the pretrained ones) on more, new episodes"),
        ("report", "table.md, table.json and curves.png from the runs so far"))}
    for q in parsers.values():
        if benchmark is None:
            q.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS))
        q.add_argument("--root", help="runs folder (default runs/<benchmark>_bench)")
    r = parsers["run"]
    r.add_argument("--dp", help="pretrained diffusion policy (policy.pt); default: the benchmark's")
    r.add_argument("--demos", help="demonstrations (for the MLP baseline's pretraining); default: the benchmark's")
    r.add_argument("--mlp-steps", type=int, default=5000)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--methods", nargs="+", help="default: every method of the benchmark's plan")
    r.add_argument("--eval-episodes", type=int, help="episodes per evaluation inside training")
    f = parsers["final-eval"]
    f.add_argument("--dp", help="pretrained diffusion policy (policy.pt); default: the benchmark's")
    f.add_argument("--episodes", type=int, default=20)
    f.add_argument("--seed", type=int, default=20_000, help="start states other than training's eval_seed")
    parsers["report"].add_argument("--copy-to", help="also copy table.md, table.json and curves.png into this folder")
    a = p.parse_args(argv)
    bench = load_benchmark(benchmark or a.benchmark)
    a.root = a.root or bench.root
    if a.cmd in ("run", "final-eval"):
        a.dp = a.dp or bench.dp
    if a.cmd == "run":
        a.demos = a.demos or bench.demos
        a.methods = a.methods or list(bench.plan)
        unknown = set(a.methods) - set(bench.plan)
        if unknown:
            raise SystemExit(f"{prog}: methods {sorted(unknown)} are not in the {bench.name} plan {list(bench.plan)}")
        a.eval_episodes = a.eval_episodes or bench.eval_episodes
        run(bench, a)
        report(bench, a)
    elif a.cmd == "final-eval":
        final_eval(bench, a)
    else:
        report(bench, a)
    return 0


def hopper_sweep(argv: list[str] | None = None) -> int:
    """`refine-dp hopper-sweep ...` = `refine-dp sweep --benchmark hopper ...`."""
    return main(argv, benchmark="hopper")


if __name__ == "__main__":
    raise SystemExit(main())
