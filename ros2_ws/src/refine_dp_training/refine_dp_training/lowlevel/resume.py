"""Carry a train-lowlevel run to another machine: its small resume checkpoint, committed with the code.

    python -m refine_dp_training.lowlevel.resume save runs/lowlevel/legs_path1      # -> lowlevel/resume/legs_path1/
    python -m refine_dp_training.lowlevel.resume restore legs_path1 [--out runs/lowlevel/legs_path1]
    refine-dp train-lowlevel --part legs --out runs/lowlevel/legs_path1 --resume  # continues exactly

`save` copies the run's config.json (env + PPO config), its newest checkpoint (policy, critic, normalizer,
optimizer and adaptive learning rate, RNG states, the env's whole state: physics rows, commands, per-env
domain randomization, the footstep planner and reference segments - a few MB), the links of its warm-start
lineage as figures (lineage_before.json: env steps, wall-clock; `refine-dp ship` reads it) and its command
into lowlevel/resume/<run>/ (package data; `git add -f`, since *.pt is
ignored elsewhere). `restore` puts them back under runs/, where `--resume` picks the checkpoint up. Paths in
the config (arm_policy_onnx) are relative to the repository root: run from there.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

RESUME_DIR = Path(__file__).resolve().parent / "resume"
FILES = ("config.json", "init_from_lineage.json", "command.txt", "lineage_before.json")


def save(run: Path, name: str | None = None) -> Path:
    ckpts = sorted((run / "checkpoints").glob("model_*.pt"))
    if not ckpts:
        raise SystemExit(f"{run}: no checkpoints to carry")
    dest = RESUME_DIR / (name or run.name)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "checkpoints").mkdir(parents=True)
    for f in FILES:
        if (run / f).is_file():
            shutil.copy2(run / f, dest / f)
    shutil.copy2(ckpts[-1], dest / "checkpoints" / ckpts[-1].name)
    if not (run / "lineage_before.json").is_file():  # the warm-start chain as figures, not as checkpoints
        from .ship import lineage
        (dest / "lineage_before.json").write_text(json.dumps(lineage(run, ckpts[-1])[:-1], indent=2))
    import torch
    meta = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    info = {"run": str(run), "checkpoint": ckpts[-1].name, "iteration": meta["iteration"],
            "env_steps": meta["env_steps"], "wall_h": round(meta["wall_s"] / 3600, 3),
            "git_revision": meta.get("git_revision"), "last_eval": meta.get("eval")}
    (dest / "resume.json").write_text(json.dumps(info, indent=2))
    return dest


def restore(name: str, out: Path | None = None) -> Path:
    src = RESUME_DIR / name
    if not (src / "config.json").is_file():
        available = sorted(p.name for p in RESUME_DIR.iterdir() if p.is_dir()) if RESUME_DIR.is_dir() else []
        raise SystemExit(f"no resumable run {name!r} in {RESUME_DIR} (available: {available})")
    out = out or Path("runs/lowlevel") / name
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for f in FILES + ("resume.json",):
        if (src / f).is_file():
            shutil.copy2(src / f, out / f)
    for ckpt in (src / "checkpoints").glob("model_*.pt"):
        shutil.copy2(ckpt, out / "checkpoints" / ckpt.name)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m refine_dp_training.lowlevel.resume", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("run", type=Path)
    s.add_argument("--name", default=None)
    r = sub.add_parser("restore")
    r.add_argument("name")
    r.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cmd == "save":
        print(f"saved {save(args.run, args.name)}")
    else:
        out = restore(args.name, args.out)
        print(f"restored to {out}; continue with: refine-dp train-lowlevel --part legs --out {out} --resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
