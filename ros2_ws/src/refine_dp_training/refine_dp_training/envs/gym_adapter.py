"""Gymnasium environments behind the project's `VecEnv` interface (synchronous, in-process).

Why a loop over `gym.Env` instances and not `gymnasium.vector.SyncVectorEnv`/`AsyncVectorEnv`:
- the chunk wrapper needs to step a SUBSET of envs (per-env early stop at episode end), which
  gymnasium's vector envs cannot do;
- auto-reset here is "same step" with the final observation kept, the convention the PPO
  bootstrapping needs, independent of gymnasium's autoreset-mode default (NEXT_STEP in 1.x);
- async (one process per env) does not pay on this 2-core machine for MuJoCo envs whose step costs
  tens of microseconds: pipe round trips dominate. `python -m
  refine_dp_training.benchmarks.hopper.vec_speed` measures it (numbers in the benchmark's README).

Observations: a Box, or a Dict of Boxes (goal-conditioned envs: "observation", "achieved_goal",
"desired_goal") flattened into one vector in the ORDER OF THE DICT SPACE'S KEYS (gymnasium sorts the
keys of a plain dict: achieved_goal, desired_goal, observation), each part flattened C-order;
`obs_fields` names the parts, so a dataset recorded through `flatten_obs` carries the same layout.
Success: `info["is_success"]` (gymnasium-robotics) or `info["success"]`, or a `success_fn`; an
episode counts as a success if the flag was set at any of its steps.

Exact resume: for MuJoCo envs `state_dict()` captures qpos/qvel/act/time, the env RNG, the
time-limit counter and the last observation, so a resumed run continues the same episodes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .vec_env import EpisodeTracker, VecEnv

try:
    import gymnasium as gym
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("refine_dp_training.envs.gym_adapter needs gymnasium: "
                      "pip install 'gymnasium[mujoco]>=1.0'") from exc


def _time_limit(env):
    """The TimeLimit wrapper inside `env`, or None."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def obs_layout(space) -> list[tuple[str, int]]:
    """[(name, size)] of the flat observation of `space`: one "obs" part for a Box, one part per key
    (in the Dict's key order) for a Dict of Boxes."""
    if isinstance(space, gym.spaces.Box):
        return [("obs", int(np.prod(space.shape)))]
    if isinstance(space, gym.spaces.Dict):
        bad = [k for k, s in space.spaces.items() if not isinstance(s, gym.spaces.Box)]
        if bad:
            raise TypeError(f"Dict observation keys {bad} are not Box spaces: only Dicts of Boxes can be flattened")
        return [(k, int(np.prod(s.shape))) for k, s in space.spaces.items()]
    raise TypeError(f"observation space {space} is neither a Box nor a Dict of Boxes: wrap the env so that it "
                    "returns one (gymnasium.wrappers.FlattenObservation, or your own ObservationWrapper)")


def flatten_obs(obs, space) -> np.ndarray:
    """One flat float32 vector of an observation of `space` (a Box, or a Dict in its key order)."""
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in space.spaces])
    return np.asarray(obs, np.float32).reshape(-1)


class GymVecEnv(VecEnv):
    """N gymnasium envs stepped in a loop; Box actions, Box or Dict-of-Box observations.

    success_fn(info, terminated, truncated) -> bool, optional: defines per-step success for tasks
    whose env does not report one (default: info.get("success") / info.get("is_success")).
    """

    supports_active_mask = True

    def __init__(self, env_fns: list[Callable[[], "gym.Env"]] | None = None, *, env_id: str | None = None,
                 num_envs: int = 1, env_kwargs: dict | None = None,
                 success_fn: Callable[[dict, bool, bool], bool] | None = None):
        if env_fns is None:
            if env_id is None:
                raise ValueError("GymVecEnv needs env_fns or env_id (e.g. env_id='Hopper-v5')")
            env_fns = [lambda: gym.make(env_id, **(env_kwargs or {})) for _ in range(num_envs)]
        self.envs = [fn() for fn in env_fns]
        first = self.envs[0]
        if not isinstance(first.action_space, gym.spaces.Box):
            raise TypeError(f"GymVecEnv supports Box (continuous) action spaces only, got {first.action_space}")
        self.observation_space = first.observation_space
        self.obs_fields = obs_layout(self.observation_space)
        self.num_envs = len(self.envs)
        self.obs_dim = sum(size for _, size in self.obs_fields)
        self.act_dim = int(np.prod(first.action_space.shape))
        self.action_low = first.action_space.low.astype(np.float64).reshape(-1)
        self.action_high = first.action_space.high.astype(np.float64).reshape(-1)
        self.success_fn = success_fn
        self.episode_stats = EpisodeTracker(self.num_envs)
        self._obs = np.zeros((self.num_envs, self.obs_dim), np.float32)

    def _success(self, info: dict, terminated: bool, truncated: bool) -> bool | None:
        if self.success_fn is not None:
            return bool(self.success_fn(info, terminated, truncated))
        for key in ("success", "is_success"):
            if key in info:
                return bool(info[key])
        return None

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else int(seed) + i)
            self._obs[i] = flatten_obs(obs, self.observation_space)
        self.episode_stats.reset_all()
        return self._obs.copy()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        actions = self.clip_actions(self._check_actions(actions))
        active = self._check_active(active)
        n = self.num_envs
        reward = np.zeros(n, np.float64)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        success = np.zeros(n, bool)
        has_success = False
        final_obs = self._obs.copy()
        for i, env in enumerate(self.envs):
            if active is not None and not active[i]:
                continue
            obs, r, term, trunc, info = env.step(actions[i].astype(env.action_space.dtype).reshape(env.action_space.shape))
            reward[i], terminated[i], truncated[i] = r, term, trunc
            s = self._success(info, term, trunc)
            if s is not None:
                has_success, success[i] = True, s
            obs = flatten_obs(obs, self.observation_space)
            final_obs[i] = obs
            if term or trunc:
                obs, _ = env.reset()
                obs = flatten_obs(obs, self.observation_space)
            self._obs[i] = obs
        info_out: dict = {"final_obs": final_obs}
        if has_success:
            info_out["success"] = success
        episode = self.episode_stats.record(reward, terminated | truncated, success if has_success else None, active)
        if episode is not None:
            info_out["episode"] = episode
        return self._obs.copy(), reward, terminated, truncated, info_out

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # --- exact resume for MuJoCo envs -------------------------------------------------------
    def state_dict(self) -> dict | None:
        states = []
        for env in self.envs:
            base = env.unwrapped
            data = getattr(base, "data", None)
            if data is None or not hasattr(data, "qpos"):
                return None  # not a MuJoCo env: cannot capture the physics state
            limit = _time_limit(env)
            states.append({"qpos": data.qpos.copy(), "qvel": data.qvel.copy(), "act": data.act.copy(),
                           "time": float(data.time), "rng": base.np_random.bit_generator.state,
                           "elapsed": None if limit is None else limit._elapsed_steps})
        return {"envs": states, "obs": self._obs.copy(), "tracker": self.episode_stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        import mujoco

        if len(state["envs"]) != self.num_envs:
            raise ValueError(f"env state has {len(state['envs'])} envs, this VecEnv has {self.num_envs}: "
                             "resume with the same num_envs")
        for env, s in zip(self.envs, state["envs"]):
            base = env.unwrapped
            env.reset()  # gymnasium refuses step() before a first reset; everything is overwritten below
            base.data.qpos[:], base.data.qvel[:], base.data.act[:] = s["qpos"], s["qvel"], s["act"]
            base.data.time = s["time"]
            mujoco.mj_forward(base.model, base.data)
            base.np_random.bit_generator.state = s["rng"]
            limit = _time_limit(env)
            if limit is not None and s["elapsed"] is not None:
                limit._elapsed_steps = s["elapsed"]
        self._obs[:] = state["obs"]
        self.episode_stats.load_state_dict(state["tracker"])
