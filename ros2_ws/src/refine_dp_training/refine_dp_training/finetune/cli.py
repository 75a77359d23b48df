"""`refine-dp finetune --method NAME --pretrained CKPT [--env ID] --out DIR [--resume] [options]`.

`--task T` (a T1 task) = --env t1-T --pretrained runs/pretrain/T/policy.pt --out runs/finetune/T_METHOD, each
unless given; `--curriculum` widens the robot's start range from the pre-training one to the OOD one as
evaluation success passes --curriculum-threshold (FinetuneConfig).

--env defaults to the env the pretrained policy records (where it was evaluated in pretraining);
its observation and action sizes are checked against the policy's before anything trains.

Method registry: METHODS maps a name to (module, config overrides). A method module defines

    Config   a dataclass subclassing finetune.common.FinetuneConfig (every field has a default)
    Method   Method(cfg: Config) -> an object with the FinetuneMethod interface (common.py)

and is imported only when chosen, so a method whose module is missing or needs an absent package
fails alone with a clear message. Every Config field is a command-line option (--budget-env-steps,
--actor-lr, ...; booleans as --flag/--no-flag; dicts as JSON: --env-kwargs '{"threshold": 0.02}'); `--method NAME --help` lists them with defaults.
With --resume, the options default to the run's saved config.json, so `--out DIR --resume` suffices.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import types
import typing
from pathlib import Path

import torch

# name -> (module, Config overrides). Add a method by adding a line here.
METHODS: dict[str, tuple[str, dict]] = {
    "dppo": ("refine_dp_training.finetune.dppo", {}),
    "joint": ("refine_dp_training.finetune.joint", {}),
    "ppo-gaussian": ("refine_dp_training.finetune.ppo_gaussian", {}),
    "mlp-ft": ("refine_dp_training.finetune.mlp_ft", {}),
    "residual": ("refine_dp_training.finetune.residual", {}),
    "dsrl-sac": ("refine_dp_training.finetune.dsrl", {"variant": "sac"}),
    "dsrl-na": ("refine_dp_training.finetune.dsrl", {"variant": "na"}),
}


def load_method(name: str) -> tuple[types.ModuleType, dict]:
    if name not in METHODS:
        raise SystemExit(f"refine-dp finetune: unknown --method {name!r}; choose one of {sorted(METHODS)}")
    module, overrides = METHODS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise SystemExit(f"refine-dp finetune: method {name!r} is not available ({module}: {e})") from e
    return mod, overrides


def _arg_type(tp):
    """(argparse type, nargs) for a dataclass field type; Optional[X] accepts 'none'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner, _ = _arg_type(next(a for a in args if a is not type(None)))
        return (lambda s: None if s.lower() == "none" else inner(s)), None
    if origin in (list, tuple):
        return args[0] if args else str, "+"
    if tp is dict or origin is dict:
        return json_object, None
    return tp, None


def json_object(text: str) -> dict:
    """A JSON object from the command line (--env-kwargs '{"threshold": 0.02}')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): quote it for the shell, e.g. "
                                         "--env-kwargs '{\"threshold\": 0.02}'") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser, config_cls, defaults: dict) -> None:
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        default = defaults[f.name]
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
            continue
        tp, nargs = _arg_type(hints[f.name])
        parser.add_argument(flag, dest=f.name, type=tp, nargs=nargs, default=default,
                            help=f"(default: {default})")


def with_task_defaults(argv: list[str], task: str, defaults: dict[str, str]) -> list[str]:
    """`--task T` of pretrain/finetune: argv without it, plus each `--flag value` of defaults not given."""
    argv = [a for i, a in enumerate(argv) if a != "--task" and (i == 0 or argv[i - 1] != "--task")]
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", required=False)
    pre.add_argument("--out")
    pre.add_argument("--resume", action="store_true")
    pre.add_argument("--task", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.task and known.method:  # a T1 task: its env, its pretrained planner and a run folder, unless given
        argv = with_task_defaults(argv, known.task, {
            "--env": f"t1-{known.task}", "--pretrained": f"runs/pretrain/{known.task}/policy.pt",
            "--out": f"runs/finetune/{known.task}_{known.method}"})
        known.out = known.out or f"runs/finetune/{known.task}_{known.method}"
    if known.method is None:
        if "-h" in argv or "--help" in argv:
            print(__doc__ + "\nmethods: " + ", ".join(METHODS))
            return 0
        raise SystemExit(f"refine-dp finetune: --method is required ({'|'.join(METHODS)})")
    mod, overrides = load_method(known.method)
    config_cls = mod.Config
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(config_cls)} | overrides
    if known.resume and known.out and (Path(known.out) / "config.json").exists():
        saved = json.loads((Path(known.out) / "config.json").read_text())
        defaults |= {k: v for k, v in saved.items() if k in defaults}
    parser = argparse.ArgumentParser(prog=f"refine-dp finetune --method {known.method}",
                                     description=(mod.__doc__ or "").splitlines()[0] if mod.__doc__ else None)
    parser.add_argument("--method", required=True, choices=sorted(METHODS))
    parser.add_argument("--resume", action="store_true", help="continue the run under --out from its last checkpoint")
    add_config_arguments(parser, config_cls, defaults)
    args = vars(parser.parse_args(argv))
    args.pop("method"), args.pop("resume")
    cfg = config_cls(**args)
    if not cfg.pretrained:
        raise SystemExit("refine-dp finetune: --pretrained CKPT is required (the policy.pt of `refine-dp pretrain`)")
    if cfg.env is None:  # the env the policy was pretrained (and evaluated) in, said aloud
        from .common import recorded_env
        cfg.env, kwargs = recorded_env(cfg.pretrained)
        if not cfg.env:
            raise SystemExit(f"refine-dp finetune: --env is required: {cfg.pretrained} records no env")
        cfg.env_kwargs = cfg.env_kwargs or kwargs
        print(f"finetune: env {cfg.env}" + (f" {json.dumps(cfg.env_kwargs)}" if cfg.env_kwargs else "")
              + f" (recorded in {cfg.pretrained})", flush=True)
    torch.set_num_threads(max(1, cfg.torch_threads))
    from .common import run_finetune
    summary = run_finetune(mod.Method(cfg), cfg, resume=known.resume, method_name=known.method)
    from ..evalstats import describe
    last, first = summary["last_eval"] or {}, summary["first_eval"] or {}
    print(f"finetune {known.method}: {summary['env_steps']} env steps in {summary['train_wall_s']:.0f} s; outputs in "
          f"{cfg.out}" + (f"\n  first evaluation: {describe(first)}\n  last evaluation:  {describe(last)}"
                          if last else ""))
    if summary.get("policy"):
        print(f"  planner: {summary['policy']} (refine-dp eval policy --policy ..., refine-dp export planner "
              "--checkpoint ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
