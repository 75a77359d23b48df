"""Tiny numpy `VecEnv`s for tests and smoke runs (microseconds per step, exact state capture).

- `BanditVecEnv`: a 1-step continuous bandit; reward 1 - mean((a - target)^2). PPO must learn it.
- `PointMassVecEnv`: a 2-D point pushed by velocity actions toward the origin; time limit
  (truncation) and leaving the arena (termination) both happen, so bootstrapping is exercised.
- `SparseReachVecEnv`: a 2-D point driven toward a goal it observes; reward 1 and termination on
  arrival, 0 otherwise (returns are 0 or 1), success flag, time limit: the sparse-reward toy.
- `CounterVecEnv`: observation = (step index in the episode, episode index), reward 1 per step,
  fixed per-env episode lengths; it records every executed action, so tests can check exactly
  what a wrapper executed and when.
"""
from __future__ import annotations

import numpy as np

from .vec_env import EpisodeTracker, VecEnv


class _ToyBase(VecEnv):
    supports_active_mask = True

    def __init__(self, num_envs: int, obs_dim: int, act_dim: int, bound: float = 1.0):
        self.num_envs, self.obs_dim, self.act_dim = num_envs, obs_dim, act_dim
        self.action_low = -bound * np.ones(act_dim)
        self.action_high = bound * np.ones(act_dim)
        self.episode_stats = EpisodeTracker(num_envs)
        self.rng = np.random.default_rng(0)

    def _finish(self, obs_next, reward, terminated, truncated, active, success=None):
        """Shared auto-reset bookkeeping: final_obs, reset of done envs, episode stats."""
        done = terminated | truncated
        if active is not None:
            reward = np.where(active, reward, 0.0)
            done &= active
            terminated &= active
            truncated &= active
        final_obs = obs_next.copy()
        for i in np.flatnonzero(done):
            obs_next[i] = self._reset_one(i)
        info = {"final_obs": final_obs}
        if success is not None:
            info["success"] = success
        episode = self.episode_stats.record(reward, done, success, active)
        if episode is not None:
            info["episode"] = episode
        return obs_next.astype(np.float32), reward, terminated, truncated, info

    def _reset_one(self, i: int) -> np.ndarray:
        raise NotImplementedError


class BanditVecEnv(_ToyBase):
    def __init__(self, num_envs: int = 16, obs_dim: int = 2, act_dim: int = 2, target: float = 0.5):
        super().__init__(num_envs, obs_dim, act_dim)
        self.target = target * np.ones(act_dim)
        self._obs = np.zeros((num_envs, obs_dim), np.float32)

    def _reset_one(self, i):
        self._obs[i] = self.rng.uniform(-1, 1, self.obs_dim)
        return self._obs[i].copy()

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.episode_stats.reset_all()
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._obs.copy()

    def step(self, actions, active=None):
        a = self.clip_actions(self._check_actions(actions))
        active = self._check_active(active)
        reward = 1.0 - ((a - self.target) ** 2).mean(-1)
        terminated = np.ones(self.num_envs, bool)
        obs, r, te, tr, info = self._finish(self._obs.copy(), reward, terminated, np.zeros(self.num_envs, bool), active)
        self._obs = obs.copy()
        return obs, r, te, tr, info

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "obs": self._obs.copy(), "tracker": self.episode_stats.state_dict()}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self._obs = state["obs"].copy()
        self.episode_stats.load_state_dict(state["tracker"])


class PointMassVecEnv(_ToyBase):
    """obs = (x, y, t / max_steps); action = velocity in [-1, 1]^2; reward = -|pos| * dt."""

    def __init__(self, num_envs: int = 8, max_steps: int = 20, dt: float = 0.1, arena: float = 2.0):
        super().__init__(num_envs, 3, 2)
        self.max_steps, self.dt, self.arena = max_steps, dt, arena
        self.pos = np.zeros((num_envs, 2))
        self.t = np.zeros(num_envs, np.int64)

    def _obs(self):
        return np.concatenate([self.pos, (self.t / self.max_steps)[:, None]], 1).astype(np.float32)

    def _reset_one(self, i):
        self.pos[i] = self.rng.uniform(-1.5, 1.5, 2)
        self.t[i] = 0
        return self._obs()[i]

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.episode_stats.reset_all()
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._obs()

    def _move(self, actions, active):
        """Move the stepped envs by their clipped velocity for dt; returns the checked active mask."""
        a = self.clip_actions(self._check_actions(actions))
        active = self._check_active(active)
        moving = np.ones(self.num_envs, bool) if active is None else active
        self.pos[moving] += a[moving] * self.dt
        self.t[moving] += 1
        return active

    def step(self, actions, active=None):
        active = self._move(actions, active)
        reward = -np.linalg.norm(self.pos, axis=1) * self.dt
        terminated = np.abs(self.pos).max(1) > self.arena
        truncated = (self.t >= self.max_steps) & ~terminated
        return self._finish(self._obs(), reward, terminated, truncated, active)

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "pos": self.pos.copy(), "t": self.t.copy(),
                "tracker": self.episode_stats.state_dict()}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["rng"]
        self.pos, self.t = state["pos"].copy(), state["t"].copy()
        self.episode_stats.load_state_dict(state["tracker"])


class SparseReachVecEnv(PointMassVecEnv):
    """obs = (x, y, goal x, goal y); action = velocity in [-1, 1]^2; reward 1 (and terminated) within
    `radius` of the goal, else 0; truncated after `max_steps`."""

    def __init__(self, num_envs: int = 8, max_steps: int = 20, dt: float = 0.1, radius: float = 0.15):
        super().__init__(num_envs, max_steps, dt, arena=np.inf)
        self.obs_dim, self.radius = 4, radius
        self.goal = np.zeros((num_envs, 2))

    def _obs(self):
        return np.concatenate([self.pos, self.goal], 1).astype(np.float32)

    def _reset_one(self, i):
        self.pos[i], self.goal[i] = self.rng.uniform(-1, 1, 2), self.rng.uniform(-1, 1, 2)
        self.t[i] = 0
        return self._obs()[i]

    def step(self, actions, active=None):
        active = self._move(actions, active)
        success = np.linalg.norm(self.pos - self.goal, axis=1) < self.radius
        truncated = (self.t >= self.max_steps) & ~success
        return self._finish(self._obs(), success.astype(np.float64), success.copy(), truncated, active, success)

    def state_dict(self):
        return super().state_dict() | {"goal": self.goal.copy()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.goal = state["goal"].copy()


class CounterVecEnv(_ToyBase):
    """Env i has episodes of length `lengths[i]`; obs = (t, episode index); truncated at the end."""

    def __init__(self, lengths: list[int], act_dim: int = 1, terminate: bool = False):
        super().__init__(len(lengths), 2, act_dim, bound=1e9)
        self.lengths = np.asarray(lengths, np.int64)
        self.terminate = terminate
        self.t = np.zeros(self.num_envs, np.int64)
        self.episode = np.zeros(self.num_envs, np.int64)
        self.executed: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]

    def _obs(self):
        return np.stack([self.t, self.episode], 1).astype(np.float32)

    def _reset_one(self, i):
        self.t[i] = 0
        self.episode[i] += 1
        return self._obs()[i]

    def reset(self, seed=None):
        self.t[:] = 0
        self.episode[:] = 0
        self.episode_stats.reset_all()
        return self._obs()

    def step(self, actions, active=None):
        a = self._check_actions(actions)
        active = self._check_active(active)
        moving = np.ones(self.num_envs, bool) if active is None else active
        for i in np.flatnonzero(moving):
            self.executed[i].append(a[i].copy())
        self.t[moving] += 1
        end = self.t >= self.lengths
        terminated = end if self.terminate else np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool) if self.terminate else end
        success = end.copy()
        return self._finish(self._obs(), np.ones(self.num_envs), terminated, truncated, active, success)
