"""Scripted demonstrations for SparseReach-v0: an IK + PD reacher with a per-episode aim error.

The demonstrator computes the joint angles that put the fingertip on its AIMED point (two-link
inverse kinematics, the elbow on the side it already bends to) and drives them with a PD law,
torque = clip(kp * angle error - kd * joint velocity, -1, 1), plus N(0, 0.1^2) action noise. Its
aim is the target plus an error drawn once per episode, N(0, aim_std^2) per axis: with the default
1 cm it stops inside the 1.5 cm success radius in 81 % of the episodes and just beside the target
in the others. Every episode is kept, successful or not (a user's demonstrations are rarely all
good), so the policy cloned from them is a moderate one that RL can improve: the aim error is not
in the observation, so the clone cannot tell a good aim from a bad one, and its chunks carry the
demonstrator's spread of aims.

    refine-dp reach-demos --out runs/reach_demos          # 200 episodes, 1 cm aim error, 0.1 action noise

The dataset records the env it was collected in (`info.env_id`, `info.env_kwargs`): pretraining
evaluates there unless told otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from ...data.episodes import EpisodeWriter
from ...envs.gym_adapter import flatten_obs, obs_layout
from . import env as reach_env

LINKS = (0.1, 0.11)      # upper arm and forearm to the fingertip [m] (Reacher's model)
CONTROL_RATE_HZ = 50.0   # Reacher: frame_skip 2 x 0.01 s


def inverse_kinematics(goal: np.ndarray, elbow_sign: float) -> np.ndarray:
    """Joint angles (shoulder, elbow) putting the fingertip at goal xy; the elbow bends to elbow_sign."""
    l1, l2 = LINKS
    c2 = np.clip((goal @ goal - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    s2 = np.sqrt(1 - c2**2) * (1.0 if elbow_sign >= 0 else -1.0)
    return np.array([np.arctan2(goal[1], goal[0]) - np.arctan2(l2 * s2, l1 + l2 * c2), np.arctan2(s2, c2)])


def scripted_action(obs: dict, aim_error: np.ndarray, kp: float = 3.0, kd: float = 0.3) -> np.ndarray:
    o = obs["observation"]
    q, qd = np.arctan2(o[2:4], o[0:2]), o[4:6]
    error = inverse_kinematics(obs["desired_goal"] + aim_error, q[1]) - q
    error = (error + np.pi) % (2 * np.pi) - np.pi
    return np.clip(kp * error - kd * qd, -1.0, 1.0)


def collect(writer: EpisodeWriter, episodes: int, seed: int, aim_std: float, action_noise: float,
            env_kwargs: dict) -> dict:
    env = gym.make(reach_env.ENV_ID, **env_kwargs)
    rng = np.random.default_rng(seed)
    returns, lengths, successes = [], [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        aim_error = rng.normal(0.0, aim_std, 2)
        rows = {"obs": [], "actions": [], "rewards": [], "terminated": []}
        while True:
            action = np.clip(scripted_action(obs, aim_error) + rng.normal(0.0, action_noise, 2), -1, 1)
            rows["obs"].append(flatten_obs(obs, env.observation_space))
            obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
            rows["actions"].append(action)
            rows["rewards"].append(reward)
            rows["terminated"].append(terminated)
            if terminated or truncated:
                break
        writer.add_episode(np.array(rows["obs"]), np.array(rows["actions"]), np.array(rows["rewards"]),
                           bool(info["is_success"]), terminated=np.array(rows["terminated"], bool))
        returns.append(float(np.sum(rows["rewards"])))
        lengths.append(len(rows["rewards"]))
        successes.append(bool(info["is_success"]))
    env.close()
    return {"returns": returns, "lengths": lengths, "successes": successes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp reach-demos", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aim-std", type=float, default=0.01, help="per-episode aim error, std per axis [m]")
    p.add_argument("--action-noise", type=float, default=0.1, help="Gaussian noise on each torque (action units)")
    p.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON keyword arguments of SparseReach-v0")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    space = gym.make(reach_env.ENV_ID, **args.env_kwargs).observation_space
    info = {"env_id": reach_env.ENV_ID, "env_kwargs": args.env_kwargs, "aim_std": args.aim_std,
            "action_noise": args.action_noise, "seed": args.seed,
            "success_definition": "fingertip within the threshold of the target, slower than max_speed"}
    with EpisodeWriter(args.out, sum(n for _, n in obs_layout(space)), 2, obs_fields=obs_layout(space),
                       action_fields=[("joint_torque", 2)], control_rate_hz=CONTROL_RATE_HZ,
                       source="scripted IK + PD reacher with a per-episode aim error and action noise",
                       command=" ".join(["refine-dp reach-demos", *(sys.argv[1:] if argv is None else argv)]),
                       episodes_per_shard=50, info=info, overwrite=args.overwrite) as writer:
        result = collect(writer, args.episodes, args.seed, args.aim_std, args.action_noise, args.env_kwargs)
    summary = info | {"episodes": args.episodes, "success_rate": float(np.mean(result["successes"])),
                      "length_mean": float(np.mean(result["lengths"])), **result}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"reach-demos: {args.episodes} episodes, success {summary['success_rate']:.2f}, mean length "
          f"{summary['length_mean']:.1f} steps -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
