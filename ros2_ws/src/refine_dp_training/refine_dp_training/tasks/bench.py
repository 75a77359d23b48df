"""`refine-dp bench task-env`: planner steps/s of a task env against its physics-only ceiling.

For each N: (1) the full TaskEnv stepped by the task's heuristic planner (clamps, 5 x [controller ONNX
policies, footstep planner, physics], task terms, MoCap model, observations, resets); the heuristic's own
time is excluded; (2) the ceiling: the very `mujoco.rollout` calls the env made (same states, targets,
per-env models, threads) replayed with nothing around them (lowlevel/bench.py's method).
`fraction` = full / ceiling. The CPU model and the load average are printed with the figures: on a shared
machine they move the numbers more than anything in the code.

    python -m refine_dp_training.tasks.bench [--task pickup] [--num-envs 16 64 256] [--seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from refine_dp_planner.bench import machine_info


def benchmark(task: str = "pickup", num_envs=(16, 64, 256), seconds: float = 10.0, nthread: int = 2) -> list[dict]:
    from ..lowlevel.bench import RolloutRecorder, replay
    from . import make_heuristic
    from .env import TaskEnv

    rows = []
    for n in num_envs:
        env = TaskEnv(task, n, seed=0, nthread=nthread)
        planner = make_heuristic(env.spec, n, seed=0)
        obs = env.reset(seed=0)
        planner.reset()
        for _ in range(3):  # warm-up (sessions, caches)
            obs, *_ = env.step(planner.act(obs))
        recorder = RolloutRecorder(env.sim)
        steps, env_time, t0 = 0, 0.0, time.perf_counter()
        while steps < 5 or time.perf_counter() - t0 < seconds:
            actions = planner.act(obs)
            t1 = time.perf_counter()
            obs, _, term, trunc, _ = env.step(actions)
            env_time += time.perf_counter() - t1
            if (term | trunc).any():
                planner.reset(term | trunc)
            steps += 1
        recorder.close()
        t1 = time.perf_counter()
        replay(env.sim, recorder.calls, keep=False)
        physics = time.perf_counter() - t1
        env.close()
        full = steps * n / env_time
        ceiling = steps * n / physics
        rows.append({"num_envs": n, "planner_steps_per_s": full, "ceiling_planner_steps_per_s": ceiling,
                     "fraction": full / ceiling, "control_steps_per_planner_step": env.control_steps,
                     "physics_steps_per_planner_step": env.control_steps * env.sim.decimation,
                     "physics_dt": env.sim.physics_dt, "nthread": nthread, "planner_steps": steps * n,
                     "load_avg_after": list(os.getloadavg())})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp bench task-env", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="pickup")
    p.add_argument("--num-envs", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--seconds", type=float, default=10.0, help="timed stepping per N")
    p.add_argument("--nthread", type=int, default=2, help="physics threads (mujoco.rollout)")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    m = machine_info()
    print(f"refine-dp bench task-env ({args.task}) - {m['cpu']}, {m['cores']} cores, load average "
          f"{m['load_avg'][0]:.2f} / {m['load_avg'][1]:.2f} / {m['load_avg'][2]:.2f} before")
    rows = benchmark(args.task, args.num_envs, args.seconds, args.nthread)
    for r in rows:
        print(f"N={r['num_envs']:4d}  full env {r['planner_steps_per_s']:7.1f} planner steps/s   physics-only ceiling "
              f"{r['ceiling_planner_steps_per_s']:7.1f}   fraction {r['fraction']:.2f}   "
              f"({r['physics_steps_per_planner_step']} physics steps of {r['physics_dt'] * 1e3:g} ms per planner step; "
              f"load {r['load_avg_after'][0]:.2f} after)")
    result = {"machine": m, "task": args.task, "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
