"""refine-dp: one command-line tool for every part of the pipeline.

Each subcommand prints progress and writes its results under --out. Subcommands that belong
to a package (training, evaluation, export) are thin forwards to that package's `main(argv)`;
`refine-dp SUBCOMMAND --help` shows their own options.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# subcommand -> (module with main(argv), one-line help). Imported only when used.
FORWARDS = {
    "train-lowlevel": ("refine_dp_training.lowlevel.train",
                       "PPO training of the leg or arm policy (--part legs|arms)"),
    "pretrain": ("refine_dp_training.pretrain.cli", "pretrain a diffusion policy (or the MLP baseline) on demos"),
    "finetune": ("refine_dp_training.finetune.cli",
                 "fine-tune: --method dppo|ppo-gaussian|mlp-ft|residual|dsrl-sac|dsrl-na"),
    "hopper-expert": ("refine_dp_training.benchmarks.hopper.train_expert",
                      "train the PPO expert of the Hopper benchmark"),
    "hopper-demos": ("refine_dp_training.benchmarks.hopper.collect_demos",
                     "collect medium-quality Hopper demos from an expert checkpoint"),
    "record": ("refine_dp.recorder:cli", "record the planner's inputs and outputs into MCAP rosbag2 segments"),
    "hopper-sweep": ("refine_dp_training.benchmarks.sweep:hopper_sweep",
                     "the Hopper fine-tuning benchmark (= sweep --benchmark hopper)"),
    "reach-demos": ("refine_dp_training.benchmarks.reach.demos",
                    "scripted demos of the sparse-reward SparseReach-v0 benchmark"),
    "sweep": ("refine_dp_training.benchmarks.sweep",
              "a fine-tuning benchmark (--benchmark hopper|reach): every method x seeds, then table + plot"),
    "collect": ("refine_dp_training.tasks.collect",
                "heuristic demonstrations of a T1 task (--task pickup): successes only, resumable"),
}
EVAL_TARGETS = {"controller": "refine_dp_training.lowlevel.evaluate", "policy": "refine_dp_training.policy_eval",
                "task": "refine_dp_training.tasks.evaluate"}
EXPORT_TARGETS = {"planner": "refine_dp_planner.export"}
SHIP_TARGETS = {"controller": "refine_dp_training.lowlevel.ship", "planner": "refine_dp_training.tasks.ship"}
BENCH_TARGETS = {"env": "refine_dp_training.lowlevel.bench",  # robot, planner: parsed here (bench/cli.py)
                 "task-env": "refine_dp_training.tasks.bench"}
DATASET_TARGETS = {"from-bags": "refine_dp_training.data.bags"}
REPORT_TARGETS = {"t1-tasks": "refine_dp_training.benchmarks.t1_tasks.report"}
TARGETED = {"eval": EVAL_TARGETS, "export": EXPORT_TARGETS, "ship": SHIP_TARGETS, "bench": BENCH_TARGETS,
            "dataset": DATASET_TARGETS, "report": REPORT_TARGETS}


def _forward(target: str, argv: list[str]) -> int:
    """Call `main(argv)` of a module (or `function(argv)` for "module:function")."""
    module, _, function = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            print(f"refine-dp: {module} is not available in this checkout ({e}); see the README's status table",
                  file=sys.stderr)
            return 2
        raise
    return int(getattr(mod, function or "main")(argv) or 0)


def _bringup(args: argparse.Namespace) -> int:
    from refine_dp import bringup
    return bringup.run(args)


def _demo(args: argparse.Namespace) -> int:
    """The main job: the whole stack in closed loop with the simulated T1 (the pickup task, 45 s)."""
    from refine_dp import bringup
    ns = argparse.Namespace(sim=True, duration=args.duration, out=args.out, graph=bringup.DEFAULT_GRAPH,
                            quiet=args.quiet, record=False, commander=args.commander, task=args.task,
                            view=args.view, view_port=args.view_port)
    return bringup.run(ns)


def _view(args: argparse.Namespace) -> int:
    from refine_dp import view
    return view.cli(args)


def _bench(args: argparse.Namespace) -> int:
    from refine_dp.bench import cli
    return cli.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refine-dp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bringup", help="start the node graph (--sim: with the simulated T1)")
    from refine_dp.bringup import add_arguments
    add_arguments(p)
    p.set_defaults(func=_bringup)

    p = sub.add_parser("demo", help="the whole stack in closed loop with the simulated T1 (bringup --sim): "
                                    "the shipped planner's pickup in the table_box scene")
    p.add_argument("--duration", type=float, default=45.0,
                   help="simulated seconds (pickup episodes are 40 s; default 45)")
    p.add_argument("--commander", choices=("planner", "scripted", "heuristic"), default="planner",
                   help="planner: the shipped diffusion planner (default); scripted: a fixed velocity sequence; "
                        "heuristic: the task's heuristic planner")
    p.add_argument("--task", default=None,
                   help="the task: pickup or door (the graph file's tasks; default: its default_task)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--quiet", action="store_true")
    from refine_dp.bringup import add_view_arguments
    add_view_arguments(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("view", help="a live 3D web view of the robot, scene, footsteps, hand targets and plots "
                                    "(--bag: replay a recording with a timeline)")
    from refine_dp.view import add_arguments as add_view_cli_arguments
    add_view_cli_arguments(p)
    p.set_defaults(func=_view)

    p = sub.add_parser("bench", help="benchmarks: figures printed with the machine noted")
    from refine_dp.bench.cli import add_arguments as add_bench_arguments
    add_bench_arguments(p)
    p.set_defaults(func=_bench)

    for name, (module, text) in FORWARDS.items():
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("argv", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda a, m=module: _forward(m, a.argv))
    for name, targets, text in (("eval", EVAL_TARGETS, "evaluate: controller, policy (any planner checkpoint or engine), task (a T1 task)"),
                                ("export", EXPORT_TARGETS, "export engines: planner"),
                                ("ship", SHIP_TARGETS, "ship trained policies into the packages: controller, planner"),
                                ("dataset", DATASET_TARGETS, "datasets: from-bags (rosbag2 recordings -> demos)"),
                                ("report", REPORT_TARGETS,
                                 "generated reports: t1-tasks (issue #16's studies from the runs)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("target", choices=sorted(targets))
        p.add_argument("argv", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda a, t=targets: _forward(t[a.target], a.argv))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # forwarded subcommands own all their options (argparse's REMAINDER drops a leading --flag)
    if argv and argv[0] in FORWARDS:
        return _forward(FORWARDS[argv[0]][0], argv[1:])
    if len(argv) >= 2 and argv[0] in TARGETED and argv[1] in TARGETED[argv[0]]:
        return _forward(TARGETED[argv[0]][argv[1]], argv[2:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
