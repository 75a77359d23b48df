"""`refine-dp pretrain --data DIR --out DIR [--preset hopper|reach|t1] [--resume] [options]`.

Every PretrainConfig field is an option (--obs-horizon, --backbone mlp, --steps ...); --preset sets
a group of them first (config.PRESETS; explicit options win). A preset never chooses the env the
policy is evaluated in: --env (with --env-kwargs JSON) does, else the env the dataset records; its
observation and action sizes are checked against the dataset's before training starts. With --resume the options default to
the run's saved config.json, so `--out DIR --resume [--steps N]` continues (or extends) a run.

    refine-dp pretrain --preset hopper --data runs/hopper_demos --out runs/hopper_dp --steps 20000
    refine-dp pretrain --preset reach --data runs/reach_demos --out runs/reach_dp
    refine-dp pretrain --task pickup [--model mlp]   # = --data runs/demos/pickup --env t1-pickup --out runs/pretrain/pickup
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..finetune.cli import add_config_arguments, with_task_defaults
from .config import PRESETS, PretrainConfig


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default="t1")
    pre.add_argument("--out")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--task", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.task:  # a T1 task: its demos (refine-dp collect --out runs/demos/TASK) and its env, unless given
        argv = with_task_defaults(argv, known.task, {"--data": f"runs/demos/{known.task}", "--env": f"t1-{known.task}",
                                                     "--out": f"runs/pretrain/{known.task}"})
        known.out = known.out or f"runs/pretrain/{known.task}"
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(PretrainConfig)} | PRESETS[known.preset]
    if known.resume and known.out and (Path(known.out) / "config.json").exists():
        defaults |= json.loads((Path(known.out) / "config.json").read_text())
    parser = argparse.ArgumentParser(prog="refine-dp pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="t1", help="group of defaults (config.PRESETS)")
    parser.add_argument("--resume", action="store_true", help="continue the run under --out from its last checkpoint")
    add_config_arguments(parser, PretrainConfig, defaults)
    args = vars(parser.parse_args(argv))
    args.pop("preset"), args.pop("resume")
    cfg = PretrainConfig(**args)
    if not cfg.data:
        raise SystemExit("refine-dp pretrain: --data DIR (a refine_dp.episodes/1 dataset) is required")
    from .trainer import Pretrainer
    trainer = Pretrainer(cfg)
    if known.resume:
        trainer.resume()
    summary = trainer.train()
    from ..evalstats import describe
    from .trainer import eval_result
    final = summary["final"]
    res = eval_result(final)
    print(f"pretrain: {summary['step']} steps in {summary['train_wall_s']:.0f} s, val loss {final['val_loss']:.4f}"
          + (f"; evaluation ({res['episodes']} episodes): {describe(res)}" if res else "")
          + f"; policy {summary['policy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
