"""Argument parsing and dispatch of `refine-dp bench {robot,planner,controller,env,task-env}`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("robot", help="the simulated graph's latencies, rates, timing and per-node CPU "
                                     "(--stress N: beside N busy processes)")
    p.add_argument("--duration", type=float, default=30.0,
                   help="seconds to run (simulated with --clock sim, at most 4x + 120 s wall)")
    p.add_argument("--stress", type=int, default=0, metavar="N", help="run N busy processes beside the graph")
    p.add_argument("--clock", choices=("sim", "wall"), default="sim",
                   help="sim: /clock + use_sim_time as the demo (default); wall: the robot's timing, no /clock")
    p.add_argument("--script", type=float, nargs="+", default=None, metavar="V",
                   help="the scripted commander's velocity script instead of the demo's: [duration vx vy wz] groups")
    p.add_argument("--out", type=Path, default=Path("runs/bench/robot"))
    p.add_argument("--verbose", action="store_true", help="forward the nodes' logs")
    p = sub.add_parser("planner", help="diffusion planner ms per action chunk per backend (batch 1)")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("runs/bench/planner.json"))
    p.add_argument("--dit-width", type=int, default=None, help="default: the shipped DiT (DiTConfig)")
    p.add_argument("--ort-threads", type=int, default=None)
    p = sub.add_parser("controller", help="the controller's per-cycle compute (LowLevelController.step): "
                                          "p50/p99 ms at N = 1, steps/s batched")
    p.add_argument("--steps", type=int, default=2000, help="timed steps at N = 1")
    p.add_argument("--batch", type=int, default=64, help="envs of the batched run")
    p.add_argument("--batch-steps", type=int, default=200, help="timed steps of the batched run")
    p.add_argument("--out", type=Path, default=Path("runs/bench/controller.json"))
    p = sub.add_parser("env", help="low-level training env steps/s vs the physics-only ceiling")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="options of refine_dp_training.lowlevel.bench")
    # listed for --help; `refine-dp bench task-env ...` goes straight to refine_dp_training.tasks.bench (cli.TARGETED)
    sub.add_parser("task-env", help="task env planner steps/s vs the physics-only ceiling (--task, --num-envs)")


def run(args: argparse.Namespace) -> int:
    if args.what == "robot":
        from refine_dp.bench import robot
        figures = robot.run(args.duration, args.out, quiet=not args.verbose, stress=args.stress, clock=args.clock,
                            script=args.script)
        robot.print_figures(figures)
        return 0 if figures["exit_code"] == 0 and figures["stood"] else 1
    if args.what == "planner":
        import json

        from refine_dp_planner import bench
        args.out.parent.mkdir(parents=True, exist_ok=True)
        extra = (["--dit-width", str(args.dit_width)] if args.dit_width else []) + (
            ["--ort-threads", str(args.ort_threads)] if args.ort_threads else [])
        bench.main(["--iters", str(args.iters), "--out", str(args.out), *extra])
        print_planner(json.loads(args.out.read_text()))
        return 0
    if args.what == "controller":
        from refine_dp.bench import controller
        return controller.main(args.steps, args.batch, args.batch_steps, args.out)
    if args.what == "env":
        from refine_dp_training.lowlevel import bench
        return int(bench.main(args.argv) or 0)
    raise SystemExit(f"unknown benchmark {args.what}")


def print_planner(r: dict) -> None:
    m, c = r["machine"], r["config"]
    print(f"\nrefine-dp bench planner — {m['cpu']}, {m['cores']} cores, torch {m['torch']}, onnxruntime "
          f"{m['onnxruntime']}; load average {r['load_avg_before'][0]:.2f} before")
    print(f"  DiT width {c['dit']['width']} depth {c['dit']['depth']} ({c['parameters'] / 1e6:.1f} M parameters), "
          f"{c['ddim_steps']} DDIM steps, obs {c['obs_horizon']}x{c['obs_dim']}, chunk {c['action_horizon']}x"
          f"{c['action_dim']}, batch {r['batch']}, {r['iters']} iterations")
    print(f"  {'backend':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'max |diff| vs torch':>20s}")
    for name, b in r["backends"].items():
        if "error" in b:
            print(f"  {name:34s} {b['error']}")
            continue
        variant = b.get("options", {}).get("variant", "")
        label = f"{name} ({variant})" if variant else name
        diff = b.get("max_abs_diff_vs_torch_normalized")
        print(f"  {label:34s} {b['p50_ms']:8.2f} {b['p99_ms']:8.2f} {diff if diff is not None else '-':>20}")
