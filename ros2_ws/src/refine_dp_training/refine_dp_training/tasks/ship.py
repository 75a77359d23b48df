"""`refine-dp ship planner`: put a trained task planner into refine_dp_planner/shipped/NAME/, evaluated.

    refine-dp ship planner --task pickup --checkpoint runs/pretrain/pickup/policy.pt --name pickup_dit
        [--episodes 48] [--ood-episodes 16] [--command "the commands that trained it"]
    refine-dp ship planner --name pickup_dit --eval-only [--episodes 48]   # re-evaluate what ships

Exports the checkpoint (any planner policy.pt: pretrained DP or MLP, or a fine-tuned one) to the ONNX
engine the planner node runs (sampler.onnx + metadata.json; the per-step denoiser graph is left out: the
node does not use it), copies the training run's config and summary (train_config.json,
train_summary.json) and the dataset's collection summary (dataset.json) beside it, then evaluates the
shipped engine itself with `refine-dp eval task` from the pre-training start range and from the
out-of-distribution range (eval/ and eval_ood/: summary.json and plot; no video, to keep the package
small) and writes README.md with the commands, the lineage and those figures, so that what ships is what was measured.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import refine_dp_planner
from refine_dp_planner.utils import atomic_write_json, atomic_write_text

SHIPPED_DIR = Path(refine_dp_planner.__file__).resolve().parent / "shipped"
DROP = ("denoiser.onnx",)   # export's per-step graph: only a Python-loop variant uses it, the node runs the sampler


def ship_engine(checkpoint: Path, out: Path) -> dict:
    """Export `checkpoint` into `out` (sampler.onnx + metadata.json), with the run's config and summary
    and its dataset's collection summary. Returns the lineage record."""
    from refine_dp_planner.deployable import load_planner
    from refine_dp_planner.export import export_policy

    planner, _ = load_planner(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    export_policy(planner, out)
    for name in DROP:
        (out / name).unlink(missing_ok=True)
    run = checkpoint.parent
    lineage = {"checkpoint": str(checkpoint), "run": str(run)}
    for src, dst in (("config.json", "train_config.json"), ("summary.json", "train_summary.json")):
        if (run / src).is_file():
            data = json.loads((run / src).read_text())
            if dst == "train_summary.json":
                data.pop("history", None)  # per-step curves stay in the run (tensorboard)
            atomic_write_json(out / dst, data)
    summary = json.loads((out / "train_summary.json").read_text()) if (out / "train_summary.json").is_file() else {}
    data_dir = Path((summary.get("dataset") or {}).get("path") or summary.get("config", {}).get("data") or "")
    if data_dir and (data_dir / "summary.json").is_file():
        collected = json.loads((data_dir / "summary.json").read_text())
        atomic_write_json(out / "dataset.json", collected)
        lineage["dataset"] = str(data_dir)
    lineage |= {k: summary.get(k) for k in ("step", "train_wall_s", "parameters", "git_revision")}
    return lineage


def _fmt_rate(s: dict) -> str:
    lo, hi = s["success_ci95"]
    return f"{s['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] ({s['successes']}/{s['episodes']})"


def _readme(name: str, task: str, lineage: dict, evals: dict, commands: list[str], note: str = "") -> str:
    cfg = json.loads((SHIPPED_DIR / name / "train_config.json").read_text()) \
        if (SHIPPED_DIR / name / "train_config.json").is_file() else {}
    ds = json.loads((SHIPPED_DIR / name / "dataset.json").read_text()) \
        if (SHIPPED_DIR / name / "dataset.json").is_file() else {}
    lines = [f"# {name}: the shipped {task} planner", "",
             f"The engine the planner node runs for the `{task}` task (`engine_dir: {name}`): ONNX graph "
             "`sampler.onnx` (observation history in, action chunk out: the whole DDIM sampler of a diffusion policy, or the "
             "network of the deterministic MLP baseline) and `metadata.json` "
             "(the contract: horizons, act_steps, rate, observation and action layouts, normaliser).", "",
             "Written by `refine-dp ship planner` (do not edit by hand; rerun it).", "", "## How it was made", ""]
    lines += [f"    {c}" for c in commands] + [""]
    if cfg:
        dims = "x".join(str(h) for h in cfg.get("hidden_dims") or [])
        if cfg.get("model") == "mlp":  # the deterministic baseline: no denoiser, no sampling steps
            net = f"deterministic MLP {dims} (behaviour cloning)"
            sampling = ""
        else:
            net = (f"diffusion, {cfg.get('backbone')} denoiser " + (
                f"(width {cfg.get('dit_width')}, depth {cfg.get('dit_depth')}, heads {cfg.get('dit_heads')})"
                if cfg.get("backbone") == "dit" else f"(MLP {dims})"))
            sampling = (f", {cfg.get('num_train_timesteps')} diffusion steps sampled with {cfg.get('ddim_steps')} "
                        "DDIM steps")
        lines.append(f"Model: {net}, obs horizon {cfg.get('obs_horizon')}, "
                     f"chunk {cfg.get('action_horizon')} of which {cfg.get('act_steps')} run{sampling}; "
                     f"{lineage.get('parameters'):,} parameters; {lineage.get('step')} training steps of batch "
                     f"{cfg.get('batch_size')} in {lineage.get('train_wall_s', 0) / 60:.0f} min on the 2-core VM "
                     f"(1 torch thread, no GPU); git {str(lineage.get('git_revision'))[:12]}. "
                     "Full config: `train_config.json`; training summary: `train_summary.json`.")
        lines.append("")
    if ds:
        d = ds.get("dataset", {})
        lo, hi = ds.get("success_ci95", [0, 0])
        lines.append(f"Data: {d.get('episodes')} successful heuristic episodes ({d.get('steps'):,} planner steps) kept "
                     f"of {ds.get('attempts')} attempts: the heuristic's own success rate {ds.get('success_rate', 0):.2f} "
                     f"[{lo:.2f}, {hi:.2f}] (`dataset.json`).")
        lines.append("")
    lines += ["## Evaluation of the shipped engine", "",
              "`refine-dp eval task` on this folder (ONNX Runtime), the whole controller in the loop (shipped legs "
              "and arms, footstep planner, clamps), domain randomisation on; each env's first episode counts.", "",
              "| start range | episodes | success [95 % CI] | completion time (s, median) | falls | failures by stage reached |",
              "|---|---:|---|---:|---:|---|"]
    for label, s in evals.items():
        ct = (s.get("completion_time_s") or {}).get("median")
        stages = ", ".join(f"{k} {v}" for k, v in s["failures_by_stage"].items() if v)
        lines.append(f"| {label} | {s['episodes']} | {_fmt_rate(s)} | {'-' if ct is None else f'{ct:.1f}'} | "
                     f"{s['falls']} | {stages or '-'} |")
    first = next(iter(evals.values()), None)
    if first:
        def med(k, scale=1.0):
            v = first.get(k) or {}
            return f"{v['median'] * scale:.1f}" if v else "-"
        lines += ["", f"Tracking ({next(iter(evals))}): hand position error median {med('hand_pos_error_m', 100)} cm, "
                  f"hand orientation {med('hand_rot_error_deg')} deg, footstep error {med('footstep_error_m', 100)} cm. "
                  "Plots: `eval/`, `eval_ood/` (`refine-dp eval task --planner <this folder> ...` also renders a "
                  "video of an episode; none is shipped, to keep the package small)."]
    if note:
        lines += ["", "## Reading", "", note]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp ship planner", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="pickup")
    p.add_argument("--checkpoint", type=Path, help="policy.pt of `refine-dp pretrain` or `refine-dp finetune`")
    p.add_argument("--name", required=True, help="folder under refine_dp_planner/shipped/ (the node's engine_dir)")
    p.add_argument("--episodes", type=int, default=48, help="evaluation episodes from the pre-training range")
    p.add_argument("--ood-episodes", type=int, default=16, help="evaluation episodes from the OOD range (0: none)")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--command", action="append", default=[],
                   help="a command that produced the checkpoint (repeat, in order), for README.md")
    p.add_argument("--note", default=None, help="what the figures mean, for README.md (kept by --eval-only)")
    p.add_argument("--eval-only", action="store_true", help="re-evaluate what ships under --name")
    args = p.parse_args(argv)
    out = SHIPPED_DIR / args.name
    this = "refine-dp ship planner " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.eval_only:
        if not (out / "lineage.json").is_file():
            raise SystemExit(f"--eval-only: {out} ships nothing yet (no lineage.json); ship first with --checkpoint")
        lineage = json.loads((out / "lineage.json").read_text())
        lineage["evaluated_by"] = this
    else:
        if args.checkpoint is None or not args.checkpoint.is_file():
            p.error(f"--checkpoint {args.checkpoint}: not a file (a policy.pt of refine-dp pretrain/finetune)")
        if out.exists():
            shutil.rmtree(out)
        lineage = ship_engine(args.checkpoint, out) | {"task": args.task, "commands": args.command + [this]}
    from .evaluate import evaluate
    evals = {}
    for label, start, n in (("pre-training", "pretrain", args.episodes), ("out-of-distribution", "ood", args.ood_episodes)):
        if n <= 0:
            continue
        sub = out / ("eval" if start == "pretrain" else "eval_ood")
        evals[label] = evaluate(lineage.get("task", args.task), str(out), n, sub, min(args.num_envs, n), 10_000, start,
                                False, True)
        print(f"{label}: success {_fmt_rate(evals[label])}")
    if args.note is not None:
        lineage["note"] = args.note
    atomic_write_json(out / "lineage.json", lineage)
    atomic_write_text(out / "README.md", _readme(args.name, lineage.get("task", args.task), lineage, evals,
                                                 lineage.get("commands", []), lineage.get("note", "")))
    print(f"shipped to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
