"""The one planner-engine interface: raw obs history in, raw action chunk out, whatever the backend."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Engine(ABC):
    """engine.sample(obs_history [B, To, Do] raw, noise [B, Ta, Da] N(0, I) or None) -> actions [B, Ta, Da] raw.

    `metadata` is the export's metadata.json (or the equivalent for a torch policy). noise=None draws
    the initial noise from the engine's own generator (seeded by `seed`).
    """

    backend: str = "?"

    def __init__(self, metadata: dict, seed: int | None = None):
        self.metadata = metadata
        self.rng = np.random.default_rng(seed)

    @property
    def obs_shape(self) -> tuple[int, int]:
        return self.metadata["obs_horizon"], self.metadata["obs_dim"]

    @property
    def action_shape(self) -> tuple[int, int]:
        return self.metadata["action_horizon"], self.metadata["action_dim"]

    @property
    def act_steps(self) -> int:
        """Actions of each chunk executed before the next is sampled (what the planner was trained with)."""
        return int(self.metadata["act_steps"])

    @property
    def rate_hz(self) -> float:
        return float(self.metadata["rate_hz"])

    def sample(self, obs_history: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        obs = np.asarray(obs_history, dtype=np.float32)
        if obs.ndim != 3 or obs.shape[1:] != self.obs_shape:
            raise ValueError(f"{self.backend} engine: obs_history must be [B, {self.obs_shape[0]}, {self.obs_shape[1]}] "
                             f"(obs_horizon, obs_dim), got {obs.shape}")
        if not np.isfinite(obs).all():
            raise ValueError(f"{self.backend} engine: obs_history contains NaN/inf; check the observation sources")
        if noise is None:
            noise = self.rng.standard_normal((obs.shape[0], *self.action_shape), dtype=np.float32)
        noise = np.asarray(noise, dtype=np.float32)
        if noise.shape != (obs.shape[0], *self.action_shape):
            raise ValueError(f"{self.backend} engine: noise must be [{obs.shape[0]}, {self.action_shape[0]}, "
                             f"{self.action_shape[1]}] (B, action_horizon, action_dim), got {noise.shape}")
        return self._sample(np.ascontiguousarray(obs), np.ascontiguousarray(noise))

    @abstractmethod
    def _sample(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        ...

    def __repr__(self) -> str:
        m = self.metadata
        return (f"{type(self).__name__}(kind={m.get('kind')}, backbone={m.get('backbone')}, "
                f"obs=[{m['obs_horizon']}x{m['obs_dim']}], actions=[{m['action_horizon']}x{m['action_dim']}], "
                f"act_steps={m.get('act_steps')}, rate_hz={m.get('rate_hz')}, ddim_steps={m.get('ddim_steps')}, "
                f"eta={m.get('eta')})")
