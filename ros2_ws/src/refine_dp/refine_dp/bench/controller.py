"""`refine-dp bench controller`: the controller node's per-cycle compute, LowLevelController.step.

The node calls `step` at 50 Hz with one row (N = 1); the issue's goal is p99 <= 3 ms on the 2-core
VM. Evaluation and the training envs run the same code batched, so N = 64 is timed too (steps/s
of the batch and env-steps/s) to show that a change for N = 1 does not slow the batched path.

Inputs are those of a walk: footsteps from the FootstepPlanner at a velocity command that changes
every 2 s (standing for the first 2 s of every 8), hand targets moving on a circle, joint states
jittered around the default pose. They are made before the timing starts, so only `step` is timed:
the reference motion (leg IK), both observations (arm FK, hand pose errors), both ONNX policies
(one intra-op thread, as the node runs them) and the action scaling.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from refine_dp.bench.machine import describe, machine_info, percentiles_ms


def _inputs(n: int, steps: int, footstep_config, seed: int = 0) -> list[tuple]:
    from loco_manip_controller.footstep_planner import FootstepPlanner
    from t1_description.joint_table import load_joint_table

    table, rng = load_joint_table(), np.random.default_rng(seed)
    planner = FootstepPlanner(n, footstep_config)
    velocities = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.2, 0.1, 0.3], [0.1, -0.1, -0.2]])
    inputs = []
    for t in range(steps):
        fs = planner.update(0.02, np.tile(velocities[(t // 100) % len(velocities)], (n, 1))).footstep
        q = table.default_q[None] + 0.03 * rng.standard_normal((n, 29))
        dq = 0.2 * rng.standard_normal((n, 29))
        g = np.array([0.0, 0.0, -1.0]) + 0.03 * rng.standard_normal((n, 3))
        g /= np.linalg.norm(g, axis=-1, keepdims=True)
        w = 0.1 * rng.standard_normal((n, 3))
        a = 0.05 * t
        hand_pos = np.tile([[0.25, 0.2, 0.0], [0.25, -0.2, 0.0]], (n, 1, 1)) + 0.05 * np.array([np.cos(a), 0.0,
                                                                                                np.sin(a)])
        hand_rot = np.tile(np.eye(3), (n, 2, 1, 1))
        inputs.append((q, dq, g, w, fs, hand_pos, hand_rot))
    return inputs


def _time_steps(ctrl, inputs, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU (this thread's) seconds of each step: on a loaded machine the wall time also counts the
    time the thread waited for a core, the CPU time only what the step itself costs."""
    for args in inputs[:warmup]:
        ctrl.step(*args)
    wall, cpu = np.empty(len(inputs) - warmup), np.empty(len(inputs) - warmup)
    for i, args in enumerate(inputs[warmup:]):
        t0, c0 = time.perf_counter(), time.thread_time()
        ctrl.step(*args)
        wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return wall, cpu


def run(steps: int = 2000, batch: int = 64, batch_steps: int = 200, legs: str = "legs.onnx",
        arms: str = "arms.onnx", warmup: int = 50) -> dict:
    """Time `steps` calls of step() at N = 1 and `batch_steps` at N = `batch`; returns the figures."""
    from loco_manip_controller.policy_runtime import LowLevelController, OnnxPolicy, resolve_model

    info = machine_info()
    policies = OnnxPolicy(resolve_model(legs), "legs"), OnnxPolicy(resolve_model(arms), "arms")
    figures = {"machine": info, "policies": [str(p.path) for p in policies], "steps": steps}
    ctrl = LowLevelController(*policies)
    single, cpu = _time_steps(ctrl, _inputs(1, steps + warmup, ctrl.footstep_config), warmup)
    cpu_figures = percentiles_ms(cpu) | {"mean_ms": round(float(cpu.mean() * 1e3), 3)}
    figures["n1"] = percentiles_ms(single) | {"mean_ms": round(float(single.mean() * 1e3), 3), "cpu": cpu_figures}
    ctrl = LowLevelController(*policies, num_envs=batch)
    batched, _ = _time_steps(ctrl, _inputs(batch, batch_steps + warmup, ctrl.footstep_config, seed=1), warmup)
    figures["batch"] = percentiles_ms(batched) | {
        "num_envs": batch, "steps": batch_steps, "steps_per_s": round(batch_steps / float(batched.sum()), 1),
        "env_steps_per_s": round(batch * batch_steps / float(batched.sum()), 1)}
    figures["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return figures


def print_figures(f: dict) -> None:
    one, b = f["n1"], f["batch"]
    print(f"\nrefine-dp bench controller — {describe(f['machine'])}, {f['load_average_1min_at_end']} at end")
    print(f"  LowLevelController.step, walking inputs, policies {', '.join(Path(p).name for p in f['policies'])}")
    print(f"  N = 1 ({one['n']} steps): p50 {one['p50_ms']:.3f} ms, p99 {one['p99_ms']:.3f} ms, "
          f"max {one['max_ms']:.3f} ms, mean {one['mean_ms']:.3f} ms (goal p99 <= 3 ms)")
    cpu = one["cpu"]
    print(f"          CPU time of the step: p50 {cpu['p50_ms']:.3f} ms, p99 {cpu['p99_ms']:.3f} ms, "
          f"mean {cpu['mean_ms']:.3f} ms (wall - CPU: waiting for a core)")
    print(f"  N = {b['num_envs']} ({b['steps']} steps): p50 {b['p50_ms']:.3f} ms per step, {b['steps_per_s']:.1f} "
          f"steps/s = {b['env_steps_per_s']:.0f} env-steps/s")


def main(steps: int, batch: int, batch_steps: int, out: Path | None) -> int:
    figures = run(steps, batch, batch_steps)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2))
    print_figures(figures)
    return 0
