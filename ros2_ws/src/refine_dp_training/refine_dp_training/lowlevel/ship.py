"""`refine-dp ship controller`: put trained leg and arm policies into loco_manip_controller/models/.

    refine-dp ship controller --legs runs/lowlevel/legs_v3 --arms runs/lowlevel/arms_v2 [--episodes 50]
    refine-dp ship controller --legs runs/lowlevel/legs_res   # new legs; the shipped arms stay
    refine-dp ship controller --legs runs/lowlevel/legs_res4/checkpoints/model_000610.pt  # that checkpoint
    refine-dp ship controller --eval-only [--episodes 50]     # re-evaluate what already ships
    refine-dp ship controller --fill-contract                 # add the contract fields older files lack

For each part: export the run's latest checkpoint (or the checkpoint file given) to ONNX
(+ metadata), copy it into the package's models/ directory, copy the run's config and its
training lineage (runs started with --init-from name the checkpoint they started from; the chain
is followed back to a run trained from scratch) with the env steps, wall-clock and core-hours of
every link. Then `refine-dp eval controller` runs on the shipped files and its summary, plot and
video go to models/eval/. models/README.md is rewritten with the commands, the lineage and the
figures, so what ships is what was measured.
`--eval-only` re-runs that evaluation on the files already in models/ (no run directories needed:
the lineage is read from models/lineage.json) and rewrites eval/ and README.md the same way.
Shipping one part keeps the other part's files, lineage and producing command as they were;
the evaluation always runs on the pair that ships.
`--fill-contract` writes the policy contract (loco_manip_controller.contract: control rate, the legs'
footstep planner and reference-motion configs) into shipped metadata exported before it existed,
from the training config shipped beside each file (PART_train_config.json); the runtime refuses
such files until then. Only the metadata changes (the .json and the ONNX file's metadata_props).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # the evaluation video renders offscreen; set before mujoco loads

import torch  # noqa: E402

from loco_manip_controller import contract  # noqa: E402
from loco_manip_controller.policy_runtime import (  # noqa: E402
    MODELS_DIR,
    PolicyMetadataError,
    read_metadata,
    write_metadata,
)
from t1_description.contract import check_metadata  # noqa: E402

from .config import EnvConfig  # noqa: E402


def _latest(run: Path) -> Path:
    ckpts = sorted((run / "checkpoints").glob("model_*.pt"))
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints in {run / 'checkpoints'}: is {run} a train-lowlevel run?")
    return ckpts[-1]


def lineage(run: Path, checkpoint: Path | None = None) -> list[dict]:
    """[oldest .. this run]: run dir, checkpoint, env steps, wall-clock, threads, init_from."""
    chain = []
    while True:
        ckpt = checkpoint or _latest(run)
        meta = torch.load(ckpt, map_location="cpu", weights_only=False)
        cfg = json.loads((run / "config.json").read_text())
        nthread = int(cfg["env"].get("nthread", 1))
        link = {"run": str(run), "checkpoint": str(ckpt), "iteration": int(meta["iteration"]),
                "env_steps": int(meta.get("env_steps", 0)), "wall_h": round(float(meta.get("wall_s", 0.0)) / 3600, 3),
                "num_envs": int(cfg["env"]["num_envs"]), "nthread": nthread,
                "core_hours_upper_bound": round(float(meta.get("wall_s", 0.0)) / 3600 * max(nthread, 1), 3),
                "init_from": cfg.get("init_from")}
        chain.append(link)
        if not link["init_from"]:
            break
        carried = run / "lineage_before.json"  # a run carried by lowlevel/resume.py: the links before it
        if carried.is_file():
            chain += reversed(json.loads(carried.read_text()))
            break
        if str(link["init_from"]).endswith(".onnx"):  # warm start from an exported (shipped) policy: its lineage
            shipped = run / "init_from_lineage.json"
            if shipped.is_file():
                for old in reversed(json.loads(shipped.read_text()).get("lineage", [])):
                    chain.append(old | {"note": f"lineage of {link['init_from']} (warm start of {run})"})
            else:
                chain.append({"run": str(link["init_from"]), "note": "exported policy without its lineage: ends"})
            break
        checkpoint = Path(link["init_from"])
        if not checkpoint.is_file() and (run / "init_from.pt").is_file():
            checkpoint = run / "init_from.pt"  # pruned in its run since: the copy taken at the warm start
            run = Path(link["init_from"]).parent.parent
        else:
            run = checkpoint.parent.parent
        if not (run / "config.json").is_file():  # e.g. a distill run writes config.json too; else stop
            chain.append({"run": str(run), "checkpoint": str(checkpoint), "note": "no config.json: lineage ends"})
            break
    return chain[::-1]


def run_and_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """--legs/--arms: a run directory (its latest checkpoint) or RUN/checkpoints/model_*.pt."""
    if path.is_file():
        run = path.parent.parent
        if path.suffix != ".pt" or path.parent.name != "checkpoints" or not (run / "config.json").is_file():
            raise SystemExit(f"{path}: expected a run directory or RUN/checkpoints/model_*.pt of a "
                             "train-lowlevel run (with RUN/config.json)")
        return run, path
    if not path.is_dir():
        raise SystemExit(f"{path}: no such run directory or checkpoint")
    return path, None


def ship_part(part: str, path: Path, models: Path) -> dict:
    from . import train
    run, checkpoint = run_and_checkpoint(path)
    extra = ["--checkpoint", str(checkpoint)] if checkpoint else []
    rc = train.main(["--part", part, "--out", str(run), "--export-only"] + extra)
    if rc:
        raise SystemExit(f"export of {path} failed ({rc})")
    for suffix in (".onnx", ".json"):
        shutil.copy2(run / "policy" / f"{part}{suffix}", models / f"{part}{suffix}")
    shutil.copy2(run / "config.json", models / f"{part}_train_config.json")
    chain = lineage(run, checkpoint)
    info = {"part": part, "run": str(run), "lineage": chain,
            "env_steps_total": sum(c.get("env_steps", 0) for c in chain),
            "wall_h_total": round(sum(c.get("wall_h", 0.0) for c in chain), 3),
            "core_hours_upper_bound_total": round(sum(c.get("core_hours_upper_bound", 0.0) for c in chain), 3)}
    for c in chain:
        d = Path(c["run"]) / "distill.json"
        if d.is_file():
            dj = json.loads(d.read_text())
            c["distill"] = {k: dj[k] for k in ("samples", "teacher_hand_pos_error_median_m",
                                               "student_hand_pos_error_median_m", "wall_s", "args") if k in dj}
            info["wall_h_total"] = round(info["wall_h_total"] + dj.get("wall_s", 0) / 3600, 3)
    return info


def fill_contract(models: Path) -> dict[str, list[str]]:
    """Add the contract fields that the shipped policies' metadata lacks, computed from the EnvConfig each
    was trained under (models/PART_train_config.json); fields already present must agree with it.
    Returns {part: [fields added]}; a second call adds nothing."""
    added = {}
    for part in ("legs", "arms"):
        policy, config = models / f"{part}.onnx", models / f"{part}_train_config.json"
        if not policy.is_file():
            continue
        if not config.is_file():
            raise SystemExit(f"{policy}: no {config.name} beside it to take its contract from; re-ship the part "
                             f"from its run (`refine-dp ship controller --{part} RUN`)")
        env_cfg = EnvConfig.from_dict(json.loads(config.read_text())["env"])
        if env_cfg.task != part:
            raise SystemExit(f"{config} is the config of a {env_cfg.task!r} run, not of the {part} policy")
        wanted, meta = env_cfg.policy_contract(), read_metadata(policy)
        wanted = contract.without_defaulted_later_fields(wanted, meta)
        check_metadata(meta, {k: v for k, v in wanted.items() if k in meta}, str(policy), holder="policy",
                       error=PolicyMetadataError, fix=f"the file and {config.name} disagree: re-ship the part")
        added[part] = [k for k in wanted if k not in meta]
        if added[part]:
            write_metadata(policy, meta | {k: wanted[k] for k in added[part]})
    return added


BARS = (("fall_rate", 0.05), ("footstep_error_median_m", 0.05), ("hand_pos_error_median_m.standing", 0.03),
        ("hand_pos_error_median_m.walking", 0.05), ("hand_rot_error_median_deg", 10.0))


# The targets of "legs that walk, turn and step up as commanded" (figures of `refine-dp eval controller`):
# (figure, ">=" or "<=", value). Shown beside the bars; shipping asks for the bars and better speed/turn ratios.
TARGETS = (("diagnostics.speed_ratio", ">=", 0.85), ("diagnostics.turn_ratio", ">=", 0.85),
           ("drift.position_error_max_m", "<=", 0.1), ("drift.heading_error_max_deg", "<=", 10.0),
           ("footstep_error_path_median_m", "<=", 0.03), ("fall_rate", "<=", 0.02),
           ("push_survival.standing", ">=", 0.95), ("push_survival.walking", ">=", 0.95),
           ("step_up_down.success_rate", ">=", 0.95))


def _figure(summary: dict, name: str):
    value = summary
    for key in name.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def bar_rows(summary: dict) -> list[tuple[str, float, float | None]]:
    """(figure, bar, value) for the controller issue's bars; value None where the summary lacks it."""
    rows = []
    for name, bar in BARS:
        value = summary
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        rows.append((name, bar, value))
    return rows


def _readme(parts: dict, summary: dict, evaluated_by: str | None = None) -> str:
    lines = ["# Shipped low-level policies (generated by `refine-dp ship controller`; do not edit)", ""]
    commands = {info.get("produced_by", "unknown") for info in parts.values()}
    if len(commands) == 1:
        lines += [f"Produced by: `{commands.pop()}`", ""]
    else:
        lines += [f"Produced by ({part}): `{info.get('produced_by', 'unknown')}`"
                  for part, info in parts.items()] + [""]
    if evaluated_by:
        lines += [f"Evaluated by: `{evaluated_by}`", ""]
    lines += [
             "| file | what |", "|---|---|",
             "| legs.onnx + legs.json | lower-body footstep-tracking policy + metadata (obs layout, normalizer, "
             "joints, gains, rates; its contract: control_hz and the footstep_planner and reference_motion configs "
             "it was trained with, from which the controller and footstep planner nodes build themselves) |",
             "| arms.onnx + arms.json | upper-body hand-pose-tracking policy + metadata |",
             "| *_train_config.json | the env + PPO config of the last training run of each part |",
             "| lineage.json | every training run behind each policy (warm starts), env steps, wall-clock |",
             "| eval/summary.json, eval/episode0.png, eval/episode0.gif | `refine-dp eval controller` on these files |",
             "", "## Evaluation (`refine-dp eval controller`, sim_t1 physics 2 ms x 10, random payloads 0-0.5 kg)", "",
             "```", json.dumps({k: v for k, v in summary.items() if k not in ("policies",)}, indent=1), "```", "",
             "## Against the bars", "", "| figure | bar | reached | met |", "|---|---|---|---|"]
    for name, bar, value in bar_rows(summary):
        met = "n/a" if value is None else ("yes" if value <= bar else "**no**")
        lines.append(f"| {name} | <= {bar} | {'-' if value is None else f'{value:.4g}'} | {met} |")
    lines += ["", "## Against the targets of the go-where-told issue (docs/architecture.md)", "",
              "| figure | target | reached | met |", "|---|---|---|---|"]
    for name, op, target in TARGETS:
        value = _figure(summary, name)
        met = "n/a" if value is None else ("yes" if (value >= target if op == ">=" else value <= target) else "**no**")
        lines.append(f"| {name} | {op} {target} | {'-' if value is None else f'{value:.4g}'} | {met} |")
    diag = summary.get("diagnostics") or {}
    if diag:
        lines += ["", f"Diagnostics: speed walked along the command / commanded speed = {diag.get('speed_ratio')}; "
                  f"yaw rate along the command / commanded (walkable) yaw rate = {diag.get('turn_ratio')}; "
                  f"mean forward step advance landed {diag.get('step_advance_landed_mean_m')} m vs target "
                  f"{diag.get('step_advance_target_mean_m')} m (stance-foot frame)."]
    lines += ["", "## Training lineage", ""]
    for part, info in parts.items():
        lines.append(f"### {part}: {info['env_steps_total']:,} env steps, {info['wall_h_total']} h wall-clock, "
                     f"<= {info['core_hours_upper_bound_total']} core-hours (2-core VM, no GPU)")
        for c in info["lineage"]:
            lines.append(f"- `{c['run']}` iteration {c.get('iteration')}, {c.get('env_steps', 0):,} env steps, "
                         f"{c.get('wall_h')} h, {c.get('num_envs')} envs, warm start from `{c.get('init_from')}`"
                         + (f"; behaviour cloning: {c['distill']}" if "distill" in c else ""))
        lines.append("")
    lines += ["Commands of each run: `refine-dp train-lowlevel --part PART --out RUN [--init-from CKPT]` with the "
              "config in RUN/config.json (copied here as PART_train_config.json for the last run); the arm "
              "policy's first link is `python -m refine_dp_training.lowlevel.distill --out RUN`.", ""]
    return "\n".join(lines)


def _shipped_parts(models: Path) -> dict:
    """lineage.json of what ships, each part with its producing command (files written before parts
    recorded it: the one "Produced by" line of README.md)."""
    parts = json.loads((models / "lineage.json").read_text())
    old = (models / "README.md").read_text() if (models / "README.md").is_file() else ""
    produced = [ln for ln in old.splitlines() if ln.startswith("Produced by: `")]
    for info in parts.values():
        info.setdefault("produced_by", produced[0][len("Produced by: `"):-1] if produced
                        else "unknown (README.md missing)")
    return parts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp ship controller", description=__doc__.split("\n")[0])
    p.add_argument("--legs", type=Path, help="train-lowlevel run directory of the leg policy (its latest "
                   "checkpoint), or one checkpoint file RUN/checkpoints/model_*.pt")
    p.add_argument("--arms", type=Path, help="the same for the arm policy")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--models", type=Path, default=MODELS_DIR)
    p.add_argument("--eval-only", action="store_true",
                   help="re-evaluate the policies already in --models (lineage from its lineage.json)")
    p.add_argument("--fill-contract", action="store_true",
                   help="write the contract fields (control rate, footstep planner and reference-motion configs) "
                        "that the metadata in --models lacks, from the PART_train_config.json beside it, and exit")
    args = p.parse_args(argv)
    if args.fill_contract:
        if args.legs or args.arms or args.eval_only:
            p.error("--fill-contract only updates the metadata in --models; it takes no other option")
        for part, fields in fill_contract(args.models).items():
            print(f"{part}: {'added ' + ', '.join(fields) if fields else 'the contract is complete'}")
        return 0
    this = "refine-dp ship controller " + " ".join(argv if argv is not None else sys.argv[1:])
    evaluated_by = None
    if args.eval_only:
        if args.legs or args.arms:
            p.error("--eval-only re-evaluates what ships; it takes no --legs/--arms")
        missing = [f for f in ("legs.onnx", "arms.onnx", "lineage.json") if not (args.models / f).is_file()]
        if missing:
            raise SystemExit(f"--eval-only: {args.models} lacks {', '.join(missing)}; ship first with "
                             "`refine-dp ship controller --legs RUN --arms RUN`")
        parts = _shipped_parts(args.models)
        evaluated_by = this
    else:
        if not (args.legs or args.arms):
            p.error("--legs and/or --arms are required (or --eval-only)")
        args.models.mkdir(parents=True, exist_ok=True)
        parts = _shipped_parts(args.models) if (args.models / "lineage.json").is_file() else {}
        for part in ("legs", "arms"):
            run = getattr(args, part)
            if run is not None:
                parts[part] = ship_part(part, run, args.models) | {"produced_by": this}
            elif part not in parts or not (args.models / f"{part}.onnx").is_file():
                p.error(f"--{part} is required: {args.models} ships no {part} policy to keep")
        parts = {part: parts[part] for part in ("legs", "arms")}
        (args.models / "lineage.json").write_text(json.dumps(parts, indent=2))
    from . import evaluate
    rc = evaluate.main(["--episodes", str(args.episodes), "--out", str(args.models / "eval"),
                        "--legs", str(args.models / "legs.onnx"), "--arms", str(args.models / "arms.onnx")])
    if rc:
        return rc
    summary = json.loads((args.models / "eval" / "summary.json").read_text())
    (args.models / "README.md").write_text(_readme(parts, summary, evaluated_by))
    print(f"shipped to {args.models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
