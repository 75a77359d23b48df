"""`refine-dp eval task`: a planner (or the task's heuristic) on a T1 task, with the whole controller in the loop.

    refine-dp eval task --task pickup --planner heuristic --episodes 100 --out runs/eval/pickup_heuristic
    refine-dp eval task --task pickup --planner runs/dp/policy.pt   --episodes 100 --out runs/eval/pickup_dp
    refine-dp eval task --task pickup --planner engine/ ...         # an exported engine (ONNX Runtime)
        [--start pretrain|ood|LEVEL] [--num-envs 50] [--seed 10000] [--no-video]

Every env contributes its first episode only (taking the first N finished episodes would over-count
short ones). A diffusion planner runs as the node runs it: an observation history of its obs_horizon
(padded with the first observation at an episode start), a chunk sampled every act_steps planner steps,
each action through the clamps (TaskEnv). Metrics (summary.json): success rate with its 95 % Wilson
interval, completion time of the successes, hand position / orientation tracking error (commanded vs FK of
the measured arm joints, every control step) and hand speed (relative to the trunk), footstep error
(landed swing foot vs its target, tracking.score_touchdowns), falls, failures by reason and by the stage
they reached; plots (summary.png) and a video of one episode.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


class EnginePlanner:
    """A planner engine (exported folder or policy.pt) acting in N envs the way PlannerCore does per robot."""

    stage_names = ()

    def __init__(self, path: str | Path, num_envs: int, obs_dim: int, seed: int = 0):
        from refine_dp_planner.engines import make_engine
        path = Path(path)
        backend = "onnxruntime" if (path / "metadata.json").is_file() else "torch"
        self.engine = make_engine(backend, path, expected={"obs_dim": obs_dim}, seed=seed)
        self.n = num_envs
        self.to, _ = self.engine.obs_shape
        self.act_steps = self.engine.act_steps
        self.history = None
        self.chunk = None
        self.index = np.zeros(num_envs, np.int64)
        self.fresh = np.ones(num_envs, bool)
        self.stage = np.zeros(num_envs, np.int64)

    def reset(self, mask=None) -> None:
        mask = np.ones(self.n, bool) if mask is None else np.asarray(mask, bool)
        self.fresh |= mask

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        if self.history is None:
            self.history = np.repeat(obs[:, None], self.to, axis=1)
        f = self.fresh
        self.history[f] = obs[f, None]                      # episode start: pad with the first observation
        self.history[~f] = np.concatenate([self.history[~f, 1:], obs[~f, None]], axis=1)
        replan = f | (self.index >= self.act_steps)
        if self.chunk is None:
            self.chunk = np.asarray(self.engine.sample(self.history))
        elif replan.any():
            self.chunk[replan] = np.asarray(self.engine.sample(self.history[replan]))
        self.index[replan] = 0
        self.fresh[:] = False
        action = self.chunk[np.arange(self.n), self.index]
        self.index += 1
        return action


def evaluate(task: str, planner: str, episodes: int, out: Path, num_envs: int = 50, seed: int = 10_000,
             start="pretrain", video: bool = True, progress: bool = True, legs=None, arms=None,
             physics_dt: float | None = None, measured_feet: bool = False) -> dict:
    from ..evalstats import success_summary
    from . import make_heuristic
    from .collect import _render
    from .env import TaskEnv

    out.mkdir(parents=True, exist_ok=True)
    results = {"success": [], "time": [], "failure": [], "stage": [], "planner_stage": []}
    metrics = {"hand_pos_error": [], "hand_rot_error_deg": [], "hand_speed": [], "footstep_error": []}
    video_states, video_success, model, names = None, None, None, None
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=episodes, desc=f"eval {task}", unit="ep", dynamic_ncols=True)
    batch = 0
    while len(results["success"]) < episodes:
        n = min(num_envs, episodes - len(results["success"]))
        env = TaskEnv(task, n, start=start, seed=seed + batch * num_envs, record_envs=(0,) if video and batch == 0 else (),
                      legs=legs, arms=arms, physics_dt=physics_dt, measured_feet=measured_feet)
        names = (env.failure_names, env.stage_names)
        controller = env.controller_identity()
        pl = make_heuristic(env.spec, n, seed=seed + batch * num_envs) if planner == "heuristic" else \
            EnginePlanner(planner, n, env.obs_dim, seed=seed + batch)
        obs = env.reset(seed=seed + batch * num_envs)
        pl.reset()
        planner_stages = tuple(getattr(pl, "stage_names", ()))
        env.measure = np.ones(n, bool)
        first = np.ones(n, bool)
        end0, recording = None, bool(env.record_envs)
        while first.any():
            actions = pl.act(obs)
            planner_stage = getattr(pl, "stage", np.zeros(n, np.int64)).copy()
            obs, _, term, trunc, info = env.step(actions)
            done = (term | trunc) & first
            for i in np.flatnonzero(done):
                results["success"].append(bool(info["success"][i]))
                results["time"].append(float(info["episode"]["time"][i]))
                results["failure"].append(env.failure_names[info["failure"][i]])
                results["stage"].append(env.stage_names[info["stage"][i]])
                results["planner_stage"].append(planner_stages[planner_stage[i]] if planner_stages else None)
                if bar is not None:
                    bar.update(1)
            if done[0] and recording and end0 is None:
                end0 = len(env.state_log)
                video_success = bool(info["success"][0])
                video_states, model = [s[0] for s in env.state_log[:end0]], env.sim.base_model
                env.record_envs, env.state_log = (), []
            first &= ~done
            env.measure = first.copy()
            if (term | trunc).any():
                pl.reset(term | trunc)
        for k in metrics:
            metrics[k] += env.metrics[k]
        env.close()
        batch += 1
    if bar is not None:
        bar.close()
    s = np.array(results["success"])
    times = np.array(results["time"])
    failures = {k: int(sum(1 for f, ok in zip(results["failure"], s) if f == k and not ok)) for k in names[0][1:]}
    by_stage = {k: int(sum(1 for st, ok in zip(results["stage"], s) if st == k and not ok)) for k in names[1]}

    def stats(x):
        x = np.asarray(x, float)
        return {"median": float(np.median(x)), "mean": float(np.mean(x)), "p90": float(np.percentile(x, 90))} \
            if len(x) else None

    summary = {"task": task, "planner": planner, "start": str(start), "episodes": len(s),
               "controller": controller, "physics_dt": env.sim.physics_dt,
               "measured_feet": env.measured_feet,
               **success_summary(int(s.sum()), len(s)),
               "completion_time_s": stats(times[s]), "falls": failures.get("fall", 0),
               "fall_rate": failures.get("fall", 0) / len(s), "failures": failures, "failures_by_stage": by_stage,
               # the heuristic's own stage when an episode failed (where its stage machine was stuck or fell)
               "failures_by_planner_stage": {k: int(sum(1 for st, ok in zip(results["planner_stage"], s)
                                                        if st == k and not ok))
                                             for k in dict.fromkeys(x for x in results["planner_stage"] if x)},
               "hand_pos_error_m": stats(metrics["hand_pos_error"]),
               "hand_rot_error_deg": stats(metrics["hand_rot_error_deg"]),
               "hand_speed_m_s": stats(metrics["hand_speed"]), "footstep_error_m": stats(metrics["footstep_error"]),
               "footsteps": len(metrics["footstep_error"]), "seed": seed, "wall_s": time.perf_counter() - t0}
    _plots(results, metrics, names, out / "summary.png")
    summary["plot"] = "summary.png"
    if video and video_states:
        name = f"episode0_{'success' if video_success else 'failure'}.gif"
        problem = _render(model, video_states, out / name)
        summary["video"] = name if problem is None else None
        if problem:
            summary["video_error"] = problem
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    return summary


def _plots(results: dict, metrics: dict, names, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    failure_names, stage_names = names
    ok = np.array(results["success"])
    reached = [sum(1 for st, s in zip(results["stage"], ok) if st == k and not s) for k in stage_names]
    ax[0].bar(list(stage_names) + ["success"], reached + [int(ok.sum())],
              color=["tab:red"] * len(stage_names) + ["tab:green"])
    ax[0].set_title("episodes by the stage reached (failures) / successes", fontsize=9)
    ax[0].tick_params(axis="x", labelsize=7, rotation=30)
    if metrics["hand_pos_error"]:
        ax[1].hist(np.array(metrics["hand_pos_error"]) * 100, bins=50)
    ax[1].set_xlabel("hand position tracking error (cm)")
    t = np.array(results["time"])
    if ok.any():
        ax[2].hist(t[ok], bins=20, color="tab:green", alpha=0.7, label="success")
    if (~ok).any():
        ax[2].hist(t[~ok], bins=20, color="tab:red", alpha=0.5, label="failure")
    ax[2].set_xlabel("episode length (s)")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp eval task", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--planner", required=True, help="'heuristic', a policy.pt, or an exported engine folder")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-envs", type=int, default=50)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--start", default="pretrain", help="pretrain | ood | a curriculum level in [0, 1]")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="threads of a torch planner (policy.pt): 2 beside the physics threads on a 2-core machine "
                        "made a DiT's sampling 20-40x slower (contention)")
    p.add_argument("--legs", default=None, help="leg policy .onnx (default: the shipped one)")
    p.add_argument("--arms", default=None, help="arm policy .onnx (default: the shipped one)")
    p.add_argument("--physics-dt", type=float, default=None,
                   help="MuJoCo step in s (default: the task's, TaskSpec.physics_dt; sim_t1 runs 0.002)")
    p.add_argument("--measured-feet", action="store_true",
                   help="the footstep planner on measured feet (TaskEnv measured_feet; the footstep node's parameter)")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, args.torch_threads))
    start = args.start if args.start in ("pretrain", "ood") else float(args.start)
    summary = evaluate(args.task, args.planner, args.episodes, args.out, args.num_envs, args.seed, start,
                       not args.no_video, not args.no_progress, args.legs, args.arms, args.physics_dt,
                       args.measured_feet)
    lo, hi = summary["success_ci95"]
    print(f"{args.task} / {args.planner}: success {summary['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] "
          f"({summary['successes']}/{summary['episodes']}), falls {summary['falls']}, failures {summary['failures']}")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
