"""Throughput of the T1 low-level env against its physics-only ceiling (for `refine-dp bench`).

For each N: (1) the full env - `T1LowLevelEnv` with a PPO actor in the loop (normalize,
sample, step, observations, rewards, resets), as in training rollouts; (2) its physics-only
ceiling - the same `mujoco.rollout` calls (recorded states and targets, same per-env models,
same threads) replayed with nothing else around them.
`fraction` = full / ceiling (goal >= 0.6).

    python -m refine_dp_training.lowlevel.bench [--num-envs 16 64 256] [--seconds 5] [--task legs]
        [--variant residual]   # the leg policy variant (EnvConfig.policy_variant) of the env measured
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _timed(fn, seconds: float, min_calls: int = 3, durations: list | None = None) -> tuple[int, float]:
    fn()  # warm-up
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        t1 = time.perf_counter()
        fn()
        if durations is not None:
            durations.append(time.perf_counter() - t1)
        calls += 1
    return calls, time.perf_counter() - t0


class RolloutRecorder:
    """Records every BatchedT1.step of a running env as (state before, ctrl, state after), until close()."""

    def __init__(self, sim):
        self.sim, self.calls, self._inner = sim, [], sim.step
        sim.step = self._step

    def _step(self, *args, **kwargs):
        before = self.sim.state.copy()
        self._inner(*args, **kwargs)
        self.calls.append((before, self.sim._ctrl.copy(), self.sim.state.copy()))

    def close(self) -> None:
        self.sim.step = self._inner


def record_rollouts(env, step_fn, steps: int) -> list[tuple]:
    """Run step_fn `steps` times and return the env's rollout calls (RolloutRecorder.calls)."""
    recorder = RolloutRecorder(env.sim)
    try:
        for _ in range(steps):
            step_fn()
    finally:
        recorder.close()
    return recorder.calls


def replay(sim, calls, keep: bool = True, durations: list | None = None) -> list[np.ndarray]:
    """The recorded rollout calls again, physics only (same states, targets, per-env models, threads); with
    keep, the state after each call; durations: append each call's seconds."""
    out = []
    for before, ctrl, _ in calls:
        t1 = time.perf_counter()
        sim.pool.rollout(sim.models, sim.datas, before, ctrl, nstep=sim.decimation, state=sim._state_out,
                         sensordata=sim._sens_out, skip_checks=True)  # as BatchedT1.step calls it
        if durations is not None:
            durations.append(time.perf_counter() - t1)
        if keep:
            out.append(sim._state_out[:, -1].copy())
    return out


def benchmark(num_envs=(16, 64, 256), seconds: float = 5.0, task: str = "legs", physics_dt: float = 0.005,
              decimation: int = 4, nthread: int = 2, variant: str = "residual",
              reward_reference: str = "action") -> list[dict]:
    """Rows of {num_envs, env_steps_per_s, ceiling_env_steps_per_s, fraction, ...}.

    The ceiling replays the very rollout calls (same states, targets, per-env models, threads) that
    the full env made, without anything else: physics cost depends on the state (contacts,
    solver iterations), so a standing robot would overstate it. `standing_ceiling_*` is that
    optimistic number (constant targets at the stand keyframe), for reference.
    """
    import torch

    from ..rl import ActorCritic
    from .config import EnvConfig
    from .env import T1LowLevelEnv
    from .sim import BatchedT1

    torch.set_num_threads(1)
    rows = []
    for n in num_envs:
        env = T1LowLevelEnv(EnvConfig(task=task, num_envs=n, physics_dt=physics_dt, decimation=decimation,
                                      nthread=nthread, policy_variant=variant if task == "legs" else "absolute",
                                      reward_reference=reward_reference), seed=0)
        policy = ActorCritic(env.obs_dim, env.act_dim)
        state = {"obs": torch.as_tensor(env.reset(0))}
        sim = env.sim

        def env_step():
            with torch.no_grad():
                obs_n = policy.normalize(state["obs"], update=True)
                action = policy.distribution(obs_n).sample()
                policy.value(obs_n)
            obs, *_ = env.step(action.numpy())
            state["obs"] = torch.as_tensor(obs)

        recorder = RolloutRecorder(sim)
        env_durations, phys_durations = [], []
        cpu0 = time.process_time()
        calls, el = _timed(env_step, seconds, durations=env_durations)
        env_cpu = (time.process_time() - cpu0) / (calls + 1)  # CPU seconds (all threads) per env step
        recorder.close()
        full = calls * n / el
        recorded = recorder.calls[1:]  # the warm-up call is not timed above
        t0, cpu0 = time.perf_counter(), time.process_time()
        replay(sim, recorded, keep=False, durations=phys_durations)
        phys_cpu = (time.process_time() - cpu0) / max(len(recorded), 1)
        ceiling_phys = len(recorded) * n * decimation / (time.perf_counter() - t0)
        # on a shared machine the mean is whatever the neighbours left: the 10th percentile of the per-step times
        # is what a step costs when it runs undisturbed (both sides measured the same way)
        env_p10, phys_p10 = float(np.percentile(env_durations, 10)), float(np.percentile(phys_durations, 10))
        env.close()
        still = BatchedT1(n, physics_dt, decimation, nthread)
        q_des = np.tile(still.table.default_q, (n, 1))
        c2, el2 = _timed(lambda: still.step(q_des), min(seconds, 2.0))
        still.close()
        rows.append({"num_envs": n, "env_steps_per_s": full, "ceiling_env_steps_per_s": ceiling_phys / decimation,
                     "physics_steps_per_s": ceiling_phys, "fraction": full / (ceiling_phys / decimation),
                     "standing_ceiling_env_steps_per_s": c2 * n / el2, "physics_dt": physics_dt,
                     "decimation": decimation, "nthread": nthread, "task": task, "variant": env.cfg.policy_variant,
                     "reward_reference": reward_reference,
                     "env_steps_per_s_p10": n / env_p10, "ceiling_env_steps_per_s_p10": n / phys_p10,
                     "fraction_p10": phys_p10 / env_p10,
                     # CPU seconds per step, all threads: what the neighbours cannot change
                     "env_cpu_ms_per_step": 1e3 * env_cpu, "physics_cpu_ms_per_step": 1e3 * phys_cpu,
                     "cpu_fraction": phys_cpu / env_cpu})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp bench lowlevel", description=__doc__.split("\n")[0])
    p.add_argument("--num-envs", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--task", choices=("legs", "arms"), default="legs")
    p.add_argument("--physics-dt", type=float, default=0.005)
    p.add_argument("--decimation", type=int, default=4)
    p.add_argument("--nthread", type=int, default=2)
    p.add_argument("--variant", choices=("absolute", "residual"), default="residual",
                   help="legs: the policy variant whose env is measured (residual: that of the shipped legs, "
                        "which computes the reference twice per step; absolute: actions from the default pose)")
    p.add_argument("--reward-reference", choices=("action", "planner"), default="action",
                   help="legs, residual: the rewards' reference (EnvConfig.reward_reference; planner: the env before "
                        "the reference was computed once per step)")
    p.add_argument("--compare", action="store_true",
                   help="legs, residual: measure both reward references, alternating per N, in this one run")
    args = p.parse_args(argv)
    refs = ("planner", "action") if args.compare else (args.reward_reference,)
    rows = []
    for n in args.num_envs:
        for ref in refs:
            rows += benchmark([n], args.seconds, args.task, args.physics_dt, args.decimation, args.nthread,
                              args.variant, ref)
    for r in rows:
        print(f"N={r['num_envs']:4d} [{r['reward_reference']}] ceiling {r['ceiling_env_steps_per_s']:7.0f} env steps/s "
              f"({r['physics_steps_per_s']:.0f} physics steps/s)  full env {r['env_steps_per_s']:7.0f}  "
              f"fraction {r['fraction']:.2f}  (standing-robot ceiling {r['standing_ceiling_env_steps_per_s']:.0f}); "
              f"undisturbed (10th percentile step times): {r['env_steps_per_s_p10']:.0f} of "
              f"{r['ceiling_env_steps_per_s_p10']:.0f}, fraction {r['fraction_p10']:.2f}; CPU per step: env "
              f"{r['env_cpu_ms_per_step']:.2f} ms, physics {r['physics_cpu_ms_per_step']:.2f} ms "
              f"(physics share {r['cpu_fraction']:.2f})")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
