"""DiffusionPolicy: normalizers + denoiser + noise schedule, with the training loss and the sampler.

Observations and actions enter and leave in raw units; everything inside (noise, chains, means,
stds) is in the normalized action space [-1, 1]. Checkpoints carry the config, all weights and the
normalizer statistics (buffers), the EMA weights and the git revision.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.contract import with_act_steps
from refine_dp_planner.diffusion import sampler as diffusion_sampler
from refine_dp_planner.diffusion.sampler import SampleOutput, ddim_timesteps
from refine_dp_planner.diffusion.schedule import DiffusionSchedule
from refine_dp_planner.ema import EMA
from refine_dp_planner.models.dit import DiTDenoiser
from refine_dp_planner.models.mlp_denoiser import MLPDenoiser
from refine_dp_planner.normalizer import Normalizer
from refine_dp_planner.utils import atomic_torch_save, dict_diff, frozen_copy, git_revision

CHECKPOINT_FORMAT = "refine_dp_planner.diffusion_policy/1"


class ConfigMismatchError(ValueError):
    """A checkpoint's config differs from the one the caller expects."""


def make_denoiser(config: DiffusionPolicyConfig) -> nn.Module:
    args = (config.action_dim, config.action_horizon, config.obs_dim, config.obs_horizon)
    if config.backbone == "dit":
        return DiTDenoiser(*args, config.dit)
    return MLPDenoiser(*args, config.mlp)


def _as_tensor(x, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float32, device=device)


class DiffusionPolicy(nn.Module):
    def __init__(self, config: DiffusionPolicyConfig):
        super().__init__()
        self.config = config
        self.obs_normalizer = Normalizer(config.obs_dim, config.normalizer)
        self.action_normalizer = Normalizer(config.action_dim, config.normalizer)
        self.denoiser = make_denoiser(config)
        self.schedule = DiffusionSchedule(config.num_train_timesteps, config.clip_x0)

    @property
    def device(self) -> torch.device:
        return self.obs_normalizer.center.device

    def fit_normalizers(self, obs, actions) -> None:
        """Fit both normalizers on dataset arrays (obs [..., Do], actions [..., Da], raw units)."""
        self.obs_normalizer.fit(obs)
        self.action_normalizer.fit(actions)

    def _check_fitted(self) -> None:
        if not (bool(self.obs_normalizer.fitted) and bool(self.action_normalizer.fitted)):
            raise RuntimeError("DiffusionPolicy normalizers are not fitted: call fit_normalizers(obs, actions) "
                               "on the dataset, or load a trained checkpoint")

    def _check_obs(self, obs: torch.Tensor) -> None:
        c = self.config
        if obs.dim() != 3 or obs.shape[1:] != (c.obs_horizon, c.obs_dim):
            raise ValueError(f"obs history must be [B, {c.obs_horizon}, {c.obs_dim}] (obs_horizon, obs_dim), "
                             f"got {tuple(obs.shape)}")
        if not torch.isfinite(obs).all():
            raise ValueError("obs history contains NaN/inf: check the observation sources (poses, MoCap)")

    # ---- training -------------------------------------------------------------------------------
    def compute_loss(self, batch: dict) -> torch.Tensor:
        """Epsilon-prediction MSE: E_{t, eps} || eps - eps_theta(sqrt(abar_t) a + sqrt(1-abar_t) eps, t, o) ||^2.

        batch: {'obs': [B, To, Do], 'action': [B, Ta, Da]} in raw units.
        """
        obs = self.obs_normalizer.normalize(batch["obs"])
        x0 = self.action_normalizer.normalize(batch["action"])
        t = torch.randint(0, self.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, t, noise)
        return F.mse_loss(self.denoiser(x_t, t, obs), noise)

    # ---- sampling -------------------------------------------------------------------------------
    def timesteps(self, ddim_steps: int | None = None, method: str = "ddim") -> list[int]:
        """Descending timesteps of the sampler: 'ddim' over ddim_steps, 'ddpm' over all T."""
        T = self.config.num_train_timesteps
        if method == "ddpm":
            return ddim_timesteps(T, T)
        if method != "ddim":
            raise ValueError(f"unknown sampling method {method!r}: use 'ddim' or 'ddpm'")
        return ddim_timesteps(T, ddim_steps or self.config.ddim_steps, self.config.timestep_spacing)

    @torch.no_grad()
    def sample(self, obs, noise=None, *, eta: float | None = None, ddim_steps: int | None = None,
               method: str = "ddim", return_chain: bool = False, std_floor: float = 0.0,
               noise_clip: float | None = None, generator: torch.Generator | None = None):
        """Raw obs history [B, To, Do] -> raw action chunk [B, Ta, Da].

        noise: initial x_K [B, Ta, Da] in the normalized space (None: N(0, I) from `generator`).
        method 'ddim' (ddim_steps, eta default from config) or 'ddpm' (all T steps, eta 1).
        return_chain: also return the SampleOutput (chain, per-step means/stds; normalized space).
        """
        self._check_fitted()
        obs = _as_tensor(obs, self.device)
        self._check_obs(obs)
        if noise is not None:
            noise = _as_tensor(noise, self.device)
            expected = (obs.shape[0], self.config.action_horizon, self.config.action_dim)
            if tuple(noise.shape) != expected:
                raise ValueError(f"initial noise must be {list(expected)} (B, action_horizon, action_dim), got {tuple(noise.shape)}")
        if eta is None:
            eta = 1.0 if method == "ddpm" else self.config.eta
        out = diffusion_sampler.sample(
            self.denoiser, self.schedule, self.obs_normalizer.normalize(obs), self.timesteps(ddim_steps, method),
            action_shape=(self.config.action_horizon, self.config.action_dim), eta=eta, noise=noise,
            generator=generator, std_floor=std_floor, noise_clip=noise_clip, return_chain=return_chain)
        actions = self.action_normalizer.unnormalize(out.actions.clamp(-1.0, 1.0))
        return (actions, out) if return_chain else actions

    def step_distributions(self, obs, chain: torch.Tensor, timesteps, *, eta: float, std_floor: float = 0.0,
                           step_indices=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step Gaussian means/stds along a recorded chain under the current weights (with grad)."""
        obs_n = self.obs_normalizer.normalize(_as_tensor(obs, self.device))
        return diffusion_sampler.step_distributions(self.denoiser, self.schedule, obs_n, chain, timesteps, eta=eta,
                                                    std_floor=std_floor, step_indices=step_indices)

    def frozen_copy(self) -> "DiffusionPolicy":
        return frozen_copy(self)

    # ---- checkpoints ----------------------------------------------------------------------------
    def save(self, path: str | Path, ema: EMA | None = None, extra: dict | None = None) -> None:
        """Write {format, config, state_dict (incl. normalizer stats), ema, git_revision, extra} atomically."""
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "state_dict": self.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "git_revision": git_revision(),
            "extra": extra or {},
        }, path)

    @classmethod
    def load(cls, path: str | Path, config: DiffusionPolicyConfig | None = None, *, use_ema: bool = False,
             map_location: str | torch.device = "cpu") -> tuple["DiffusionPolicy", dict]:
        """Rebuild a policy from a checkpoint; returns (policy, checkpoint dict).

        config: the config the caller expects; any difference raises ConfigMismatchError naming the
        fields. use_ema: load the EMA weights (the ones to deploy) instead of the raw ones.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"diffusion policy checkpoint {path} not found: train one with "
                                    f"`refine-dp pretrain` or check the path")
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (format={ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt)})")
        ckpt["config"] = with_act_steps(ckpt["config"], ckpt.get("extra"))
        if config is not None:
            diffs = dict_diff(config.to_dict(), ckpt["config"])
            if diffs:
                raise ConfigMismatchError(f"checkpoint {path} was trained with another config: " + "; ".join(diffs))
        policy = cls(DiffusionPolicyConfig.from_dict(ckpt["config"])).to(map_location)
        if use_ema:
            if ckpt.get("ema") is None:
                raise ValueError(f"checkpoint {path} has no EMA weights: load with use_ema=False")
            policy.load_state_dict(ckpt["ema"]["model"])
        else:
            policy.load_state_dict(ckpt["state_dict"])
        return policy, ckpt
