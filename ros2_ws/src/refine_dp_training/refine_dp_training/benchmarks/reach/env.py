"""SparseReach-v0: gymnasium's Reacher (MuJoCo) as a goal-conditioned task with a sparse reward.

The two-link arm of `Reacher-v5` (same model, physics, 50-step limit at 50 Hz, random start and
target) with what a user's own task typically has instead of Reacher's dense distance reward:

- observation: a Dict in the goal-conditioned layout of gymnasium-robotics, so the Dict route of
  `GymVecEnv` is exercised (flattened in the Dict's key order, which gymnasium sorts):
      achieved_goal  fingertip xy [m]                         2
      desired_goal   target xy [m]                            2
      observation    cos q (2), sin q (2), joint velocities   6
- reward 1 and `terminated` on the first step with the fingertip within `threshold` of the target
  moving slower than `max_speed` (a reach that stops there, not one that sweeps through), else 0;
  so an episode's return is 1 or 0 and equals its success.
- `info["is_success"]` on every step (what `GymVecEnv` reads for the success rate).

Registered as `SparseReach-v0` by importing this module, so `--env
refine_dp_training.benchmarks.reach.env:SparseReach-v0` works from any command (gymnasium's
`module:Id` route; `ENV_FACTORIES["SparseReach-v0"]` is the short name). Keyword arguments
(`--env-kwargs '{"threshold": 0.02}'`) go to `SparseReach.__init__`.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

ENV_ID = "SparseReach-v0"
MAX_EPISODE_STEPS = 50


class SparseReach(gym.Wrapper):
    def __init__(self, threshold: float = 0.015, max_speed: float = 0.2, **reacher_kwargs):
        super().__init__(ReacherEnv(**reacher_kwargs))
        self.threshold, self.max_speed = float(threshold), float(max_speed)
        box = lambda n, lim=np.inf: gym.spaces.Box(-lim, lim, (n,), np.float64)  # noqa: E731
        self.observation_space = gym.spaces.Dict(
            {"achieved_goal": box(2), "desired_goal": box(2), "observation": box(6)})

    def _obs(self) -> dict:
        base = self.env.unwrapped
        q, qd = base.data.qpos[:2], base.data.qvel[:2]
        return {"achieved_goal": base.get_body_com("fingertip")[:2].copy(),
                "desired_goal": base.get_body_com("target")[:2].copy(),
                "observation": np.concatenate([np.cos(q), np.sin(q), qd])}

    def fingertip_speed(self) -> float:
        base = self.env.unwrapped
        jacp = np.zeros((3, base.model.nv))
        import mujoco
        mujoco.mj_jacBody(base.model, base.data, jacp, None, base.model.body("fingertip").id)
        return float(np.linalg.norm((jacp @ base.data.qvel)[:2]))

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        return self._obs(), info

    def step(self, action):
        _, _, _, truncated, info = self.env.step(action)
        obs = self._obs()
        dist = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
        success = dist < self.threshold and self.fingertip_speed() < self.max_speed
        info = {"is_success": success, "distance": dist}
        return obs, float(success), success, truncated, info


def make(**kwargs) -> gym.Env:
    return SparseReach(**kwargs)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=make, max_episode_steps=MAX_EPISODE_STEPS)
