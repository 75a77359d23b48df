"""Warm start of the arm policy: behaviour cloning of a privileged teacher, then PPO (`--init-from`).

    python -m refine_dp_training.lowlevel.distill --out runs/lowlevel/arms_bc [--num-envs 128] [--steps 600]
    refine-dp train-lowlevel --part arms --out runs/lowlevel/arms_v2 \\
        --init-from runs/lowlevel/arms_bc/checkpoints/model_000000.pt

Why: from scratch, PPO has to discover that the arm action is "the joints that put the hand on
the target" (an inverse-kinematics map) before it can learn anything about payloads; on 2 CPU
cores that takes far longer than the legs' imitation task. The teacher knows what the student
cannot: the joint path that generated the hand targets (targets are FK of smooth random arm-joint
paths, commands.ArmJointPaths) and the simulator's gravity/Coriolis torques (payload included). It
commands  q_des = IK(q_measured -> target) + bias / kp + (kd / kp) dq_path  (PD with the bias
cancelled and the damping lag led; the IK starts from the measured joints, so the label is a
function of what the student observes, not of the hidden joint path). The student sees only the policy observation (hand targets, hand poses and
errors, joints), so cloning it teaches the IK map; PPO then improves on it with the student's own
information (it must infer payloads from the tracking error).

Data: the teacher's actions plus exploration noise are executed (so the data covers recoveries),
the teacher's noiseless action is the label. Writes a PPO checkpoint in the format of
`refine-dp train-lowlevel` (policy + normalizer; critic untrained) and distill.json (BC losses,
the teacher's and the student's hand errors).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mujoco
import numpy as np
import torch

from loco_manip_controller import policy_io as pio
from t1_description.kinematics import arm_kinematics, pose_errors

from .config import EnvConfig
from .env import T1LowLevelEnv
from .sim import STATE_SPEC
from .train import ppo_config


ROT_WEIGHT = 0.3   # m per rad: orientation error weight in the IK (hands are ~0.3 m from the wrist)
IK_DAMPING = 0.03  # DLS lambda


def ik_solve(q_start: np.ndarray, target_pos: np.ndarray, target_rot: np.ndarray, iterations: int = 4,
             lower: np.ndarray | None = None, upper: np.ndarray | None = None) -> np.ndarray:
    """Damped-least-squares IK of both arms [N, 14] from q_start towards the hand targets (root frame),
    Jacobians by finite differences of ArmKinematics.fk. A deterministic function of (q, target):
    what the student can learn, unlike the joint path that generated the target (a 7-DoF arm reaches
    a 6-D pose in many ways)."""
    kin = arm_kinematics()
    q = np.array(q_start, dtype=np.float64)
    n, eps = len(q), 1e-4
    for _ in range(iterations):
        pos, rot = kin.fk(q)
        dp, drot = pose_errors(target_pos, target_rot, pos, rot)
        err = np.concatenate([dp, ROT_WEIGHT * drot], -1)  # [N, 2, 6]
        jac = np.zeros((n, 2, 6, 7))
        for k in range(14):
            qk = q.copy()
            qk[:, k] += eps
            pk, rk = kin.fk(qk)
            dpk, drk = pose_errors(pk, rk, pos, rot)  # the motion of the hand for +eps on joint k
            h = k // 7
            jac[:, h, :, k % 7] = np.concatenate([dpk[:, h], ROT_WEIGHT * drk[:, h]], -1) / eps
        jjt = jac @ np.swapaxes(jac, -1, -2) + IK_DAMPING ** 2 * np.eye(6)
        dq = np.swapaxes(jac, -1, -2) @ np.linalg.solve(jjt, err[..., None])  # [N, 2, 7, 1]
        q = q + dq[..., 0].reshape(n, 14)
        if lower is not None:
            q = np.clip(q, lower, upper)
    return q


def teacher_targets(env: T1LowLevelEnv, q_path: np.ndarray, q_path_prev: np.ndarray) -> np.ndarray:
    """Privileged arm targets [N, 14] for the current state (one mj_forward per env): the IK solution
    from the measured arm joints, plus the simulator's gravity/Coriolis torque (payload included)
    over kp, plus a damping lead from the target's joint-space velocity."""
    sim, idx = env.sim, env.sim.idx
    arm_dofs = idx.qvel[env.arm_idx]
    arm_act = idx.ctrl[env.arm_idx]
    d = sim.datas[0]
    out = np.empty_like(q_path)
    dq_path = (q_path - q_path_prev) / env.dt
    q_meas = sim.state[:, sim.layout.joint_q][:, env.arm_idx]
    tp, tr = arm_kinematics().fk(q_path)
    q_ik = ik_solve(q_meas, tp, tr, lower=env.table.lower[env.arm_idx], upper=env.table.upper[env.arm_idx])
    for i, m in enumerate(sim.models):
        mujoco.mj_setState(m, d, sim.state[i], STATE_SPEC)
        mujoco.mj_forward(m, d)
        kp, kd = m.actuator_gainprm[arm_act, 0], -m.actuator_biasprm[arm_act, 2]
        out[i] = q_ik[i] + d.qfrc_bias[arm_dofs] / kp + (kd / kp) * dq_path[i]
    return out


def collect(env: T1LowLevelEnv, steps: int, noise: float, rng: np.random.Generator, student=None, seed: int = 0):
    """(obs, teacher labels, median hand error of what was executed). The teacher's action plus noise
    is executed, or with `student` (DAgger) the student's own action: labels stay the teacher's."""
    obs_buf, act_buf, err_teacher = [], [], []
    obs = env.reset(seed)
    default = env.table.default_q[env.arm_idx]
    q_prev = env.arm_paths.current().copy()
    for k in range(steps):
        q_path = env.arm_paths.current()
        target = teacher_targets(env, q_path, q_prev)
        label = np.clip((target - default) / pio.ARM_ACTION.scale, -pio.ARM_ACTION.clip, pio.ARM_ACTION.clip)
        obs_buf.append(obs.copy())
        act_buf.append(label.astype(np.float32))
        q_prev = q_path.copy()
        if student is not None:
            with torch.no_grad():
                executed = student.act_inference(torch.as_tensor(obs)).numpy()
        else:
            executed = label
        obs, _, term, trunc, _ = env.step(executed + rng.normal(0.0, noise, label.shape))
        done = term | trunc
        q_prev[done] = env.arm_paths.current()[done]  # reset envs start a new path
        err_teacher.append(np.mean(env.last_context.hand_pos_error))
        if k % 100 == 0:
            who = "student" if student is not None else "teacher"
            print(f"collect {k}/{steps}: {who} hand error {np.mean(err_teacher[-100:]):.4f} m", flush=True)
    return np.concatenate(obs_buf), np.concatenate(act_buf), float(np.median(err_teacher))


def evaluate_student(env: T1LowLevelEnv, policy, steps: int) -> float:
    obs, errs = env.reset(123), []
    for _ in range(steps):
        with torch.no_grad():
            a = policy.act_inference(torch.as_tensor(obs)).numpy()
        obs, *_ = env.step(a)
        errs.append(np.mean(env.last_context.hand_pos_error))
    return float(np.median(errs))


def _fit(policy, x: torch.Tensor, y: torch.Tensor, epochs: int, smoothness: float = 0.0,
         smoothness_sigma: float = 0.2) -> list[float]:
    """MSE regression of the actor (normalizer fixed) on (x, y); 10 % held out; val losses per epoch.

    smoothness > 0 adds CAPS' spatial smoothness term (Mysore et al. 2021): the squared change of the
    action when the normalized observation is perturbed by N(0, smoothness_sigma^2), so the clone does
    not pass observation ripple (joint velocities) on to its joint targets."""
    opt = torch.optim.Adam(policy.actor.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    n, val = len(x), len(x) // 10
    perm = torch.randperm(n)
    tr, va = perm[val:], perm[:val]
    losses = []
    for epoch in range(epochs):
        for b in tr[torch.randperm(len(tr))].split(512):
            z = policy.normalizer(x[b])
            pred = policy.actor(z)
            loss = (pred - y[b]).square().mean()
            if smoothness > 0:
                loss = loss + smoothness * (policy.actor(z + smoothness_sigma * torch.randn_like(z)) - pred).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            vl = (policy.actor(policy.normalizer(x[va])) - y[va]).square().mean().item()
        losses.append(vl)
        print(f"bc epoch {epoch}: val mse {vl:.4f} (action units^2)", flush=True)
    return losses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m refine_dp_training.lowlevel.distill", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--steps", type=int, default=600, help="control steps of data collection (x num-envs samples)")
    p.add_argument("--noise", type=float, default=0.2, help="exploration noise std in action units (0.25 rad)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--dagger-rounds", type=int, default=2,
                   help="rounds of: run the student, label its states with the teacher, retrain on all data")
    p.add_argument("--nthread", type=int, default=1)
    p.add_argument("--init-log-std", type=float, default=-1.5, help="PPO's starting exploration around the clone")
    p.add_argument("--smoothness", type=float, default=0.0,
                   help="weight of the spatial smoothness term (CAPS) in the cloning loss (0: off)")
    p.add_argument("--smoothness-sigma", type=float, default=0.2, help="its perturbation std (normalized obs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    env_cfg = EnvConfig(task="arms", num_envs=args.num_envs, nthread=args.nthread)
    train_cfg = ppo_config(args.num_envs, 100, 100, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps({"env": env_cfg.to_dict(), "ppo": train_cfg.to_dict()}, indent=2))
    env = T1LowLevelEnv(env_cfg, seed=args.seed)
    obs, act, teacher_err = collect(env, args.steps, args.noise, rng)

    from ..rl import PPORunner
    runner = PPORunner(env, train_cfg, log_dir=args.out, eval_env=None)
    policy = runner.alg.policy
    x, y = torch.as_tensor(obs), torch.as_tensor(act)
    policy.normalizer.update(x)  # fixed from the teacher's data on: later rounds only add samples
    with torch.no_grad():
        policy.log_std.fill_(args.init_log_std)
    losses, rounds = [], []
    for r in range(args.dagger_rounds + 1):
        if r > 0:
            policy.eval()
            o, a, err = collect(env, args.steps, 0.0, rng, student=policy, seed=args.seed + r)
            policy.train()
            x, y = torch.cat([x, torch.as_tensor(o)]), torch.cat([y, torch.as_tensor(a)])
            rounds.append({"round": r, "student_hand_pos_error_median_m": err, "samples": len(x)})
            print(f"dagger round {r}: student hand error {err:.4f} m while collecting; {len(x)} samples", flush=True)
        losses += _fit(policy, x, y, args.epochs if r == 0 else max(5, args.epochs // 2), args.smoothness,
                       args.smoothness_sigma)
    policy.eval()
    student_err = evaluate_student(env, policy, 300)
    policy.train()
    runner.obs = torch.as_tensor(env.reset(args.seed), dtype=torch.float32)
    path = runner.save(runner.checkpoint_path(0))
    report = {"samples": len(x), "teacher_hand_pos_error_median_m": teacher_err, "dagger": rounds,
              "student_hand_pos_error_median_m": student_err, "val_mse": losses, "checkpoint": str(path),
              "wall_s": round(time.perf_counter() - t0, 1), "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "distill.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "val_mse"}, indent=2))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
