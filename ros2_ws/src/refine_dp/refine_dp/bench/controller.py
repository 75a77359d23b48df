"""`refine-dp bench controller`: the controller node's per-cycle compute, LowLevelController.step.

The node calls `step` at 50 Hz with one row (N = 1); the issue's goal is p99 <= 3 ms on the 2-core
VM. Evaluation and the training envs run the same code batched, so N = 64 is timed too (steps/s
of the batch and env-steps/s) to show that a change for N = 1 does not slow the batched path.

Inputs are those of a walk: footsteps from the FootstepPlanner at a velocity command that changes
every 2 s (standing for the first 2 s of every 8), hand targets moving on a circle, joint states
jittered around the default pose. They are made before the timing starts, so only `step` is timed:
the reference motion (leg IK), both observations (arm FK, hand pose errors), both ONNX policies
(one intra-op thread, as the node runs them) and the action scaling.

Two more figures from the same run, on the same inputs: the node's cycle (ControllerNode.step in
this process, no ROS graph: RobotState and FootstepCommand messages in, the JointCommand published,
tracking), and ONNX Runtime alone (both sessions on the step's observations): the ceiling that no
Python around the networks can beat. On a shared machine compare the ratio step / ONNX, which the
load moves less than the absolute times.
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


def _onnx_only(policies, steps: int, warmup: int) -> np.ndarray:
    """Seconds of both policies' session.run per step, on float32 observations of their sizes (no Python
    around them but the call itself)."""
    feeds = [(p.session.run, [p.session.get_outputs()[0].name],
              {p.session.get_inputs()[0].name: np.zeros((1, p.obs_spec.dim), np.float32)}) for p in policies]
    out = np.empty(steps + warmup)
    for i in range(steps + warmup):
        t0 = time.perf_counter()
        for run_, names, feed in feeds:
            run_(names, feed)
        out[i] = time.perf_counter() - t0
    return out[warmup:]


def _node_cycle(inputs, warmup: int) -> np.ndarray | None:
    """Seconds of ControllerNode.step (N = 1) per cycle, in this process on a private rclpy context; None
    without ROS 2. The inputs become the messages the node receives."""
    try:
        import rclpy

        from loco_manip_controller.controller_node import ControllerNode
        from refine_dp_msgs.msg import FootstepCommand, RobotState
    except ImportError:
        return None
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "-p", "legs_policy:=legs.onnx", "-p", "arms_policy:=arms.onnx",
                     "--log-level", "warn"], context=context)
    try:
        node = ControllerNode(context=context)
        names = list(node.names)
        messages = []
        for q, dq, g, w, fs, hand_pos, hand_rot in inputs:
            s = RobotState(name=names, position=q[0].tolist(), velocity=dq[0].tolist(),
                           safety_state=RobotState.SAFETY_ACTIVE)
            s.projected_gravity.x, s.projected_gravity.y, s.projected_gravity.z = g[0].tolist()
            s.imu_angular_velocity.x, s.imu_angular_velocity.y, s.imu_angular_velocity.z = w[0].tolist()
            f = FootstepCommand(swing_foot=int(fs.swing_foot[0]), countdown=float(fs.countdown[0]),
                                step_duration=float(fs.step_duration[0]), target_x=float(fs.target[0, 0]),
                                target_y=float(fs.target[0, 1]), target_yaw=float(fs.target[0, 2]),
                                step_index=int(fs.step_index[0]))
            messages.append((s, f, hand_pos, hand_rot))
        out = np.empty(len(messages))
        for i, (s, f, hand_pos, hand_rot) in enumerate(messages):
            now = node.clock.now()
            with node._lock:
                node._state, node._state_t, node._footstep, node._footstep_t = s, now, f, now
                node.hand_pos, node.hand_rot = hand_pos, hand_rot
            t0 = time.perf_counter()
            active, _, message = node.step(now)
            out[i] = time.perf_counter() - t0
            if not active:
                raise RuntimeError(f"bench controller: the node did not command ({message})")
        node.destroy_node()
        return out[warmup:]
    finally:
        rclpy.try_shutdown(context=context)


def run(steps: int = 2000, batch: int = 64, batch_steps: int = 200, legs: str = "legs.onnx",
        arms: str = "arms.onnx", warmup: int = 50) -> dict:
    """Time `steps` calls of step() at N = 1 and `batch_steps` at N = `batch`; returns the figures."""
    from loco_manip_controller.policy_runtime import LowLevelController, OnnxPolicy, resolve_model

    info = machine_info()
    policies = OnnxPolicy(resolve_model(legs), "legs"), OnnxPolicy(resolve_model(arms), "arms")
    figures = {"machine": info, "policies": [str(p.path) for p in policies], "steps": steps}
    ctrl = LowLevelController(*policies)
    inputs = _inputs(1, steps + warmup, ctrl.footstep_config)
    single, cpu = _time_steps(ctrl, inputs, warmup)
    onnx = _onnx_only(policies, steps, warmup)
    cpu_figures = percentiles_ms(cpu) | {"mean_ms": round(float(cpu.mean() * 1e3), 3)}
    figures["n1"] = percentiles_ms(single) | {"mean_ms": round(float(single.mean() * 1e3), 3), "cpu": cpu_figures}
    figures["onnx_only"] = percentiles_ms(onnx)
    figures["step_over_onnx"] = {"p50": round(float(np.median(single) / np.median(onnx)), 1),
                                 "p99": round(float(np.percentile(single, 99) / np.percentile(onnx, 99)), 1)}
    node = _node_cycle(inputs, warmup)
    figures["node_cycle"] = None if node is None else percentiles_ms(node)
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
    onnx, ratio, node = f["onnx_only"], f["step_over_onnx"], f["node_cycle"]
    print(f"          ONNX Runtime alone (both policies): p50 {onnx['p50_ms']:.3f} ms, p99 {onnx['p99_ms']:.3f} ms; "
          f"step / ONNX: p50 {ratio['p50']:.1f}x, p99 {ratio['p99']:.1f}x")
    if node is not None:
        print(f"          node cycle (ControllerNode.step: messages in, JointCommand out, tracking): "
              f"p50 {node['p50_ms']:.3f} ms, p99 {node['p99_ms']:.3f} ms")
    print(f"  N = {b['num_envs']} ({b['steps']} steps): p50 {b['p50_ms']:.3f} ms per step, {b['steps_per_s']:.1f} "
          f"steps/s = {b['env_steps_per_s']:.0f} env-steps/s")


def main(steps: int, batch: int, batch_steps: int, out: Path | None) -> int:
    figures = run(steps, batch, batch_steps)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2))
    print_figures(figures)
    return 0
