"""DDPM forward process with the cosine noise schedule (Nichol & Dhariwal 2021), epsilon prediction.

Notation (Ho et al. 2020, as in the DPPO code): timesteps t = 0 .. T-1 (t = 0 is the least noisy),
    beta_t,  alpha_t = 1 - beta_t,  alpha_bar_t = prod_{s<=t} alpha_s,
    q(x_t | x_0) = N( sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I ).
The cosine schedule defines alpha_bar directly, f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2) with
s = 0.008, and betas are clipped at 0.999 so the last step is not singular. Everything lives in the
normalized action space [-1, 1], which is why x_0 estimates are clipped there.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def cosine_alpha_bar(num_train_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """alpha_bar_t for t = 0 .. T-1 (float64) from the cosine schedule, via clipped betas.

    Computed as the cumulative product of the clipped betas (not f(t)/f(0) directly) so that
    beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} holds exactly for the returned values.
    """
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    T = num_train_timesteps
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((steps / T) + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1.0 - f[1:] / f[:-1], min=0.0, max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


class DiffusionSchedule(nn.Module):
    """Constants of the forward process and of the DDPM posterior q(x_{t-1} | x_t, x_0).

    All tables are non-persistent buffers: they follow `.to(device)` but are rebuilt from the config
    instead of being stored in checkpoints (a checkpoint from another schedule is caught by the
    config check, not silently loaded with stale tables).
    """

    def __init__(self, num_train_timesteps: int = 100, clip_x0: float | None = 1.0):
        super().__init__()
        self.num_train_timesteps = int(num_train_timesteps)
        self.clip_x0 = clip_x0
        alpha_bar = cosine_alpha_bar(self.num_train_timesteps)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        betas = 1.0 - alpha_bar / alpha_bar_prev
        # Posterior q(x_{t-1} | x_t, x_0) = N(coef_x0 * x_0 + coef_xt * x_t, post_var), Ho et al. eq. 6-7.
        post_var = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        # post_var[0] == 0: the log is clipped to post_var[1] as in Ho et al. / DPPO.
        post_logvar = torch.log(torch.cat([post_var[1:2], post_var[1:]])) if self.num_train_timesteps > 1 else \
            torch.log(torch.clamp(post_var, min=1e-20))
        tables = {
            "betas": betas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(),
            "sqrt_one_minus_alpha_bar": (1.0 - alpha_bar).sqrt(),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": post_logvar,
            "posterior_coef_x0": betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
            "posterior_coef_xt": (1.0 - alpha_bar_prev) * (1.0 - betas).sqrt() / (1.0 - alpha_bar),
        }
        for name, value in tables.items():
            self.register_buffer(name, value.float(), persistent=False)

    @staticmethod
    def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """table[t] reshaped to broadcast against `like` ([B, ...])."""
        return table[t].reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        return self._gather(self.sqrt_alpha_bar, t, x0) * x0 + self._gather(self.sqrt_one_minus_alpha_bar, t, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 estimate from an epsilon prediction, clipped to [-clip_x0, clip_x0] when set."""
        x0 = (x_t - self._gather(self.sqrt_one_minus_alpha_bar, t, x_t) * eps) / self._gather(self.sqrt_alpha_bar, t, x_t)
        return x0.clamp(-self.clip_x0, self.clip_x0) if self.clip_x0 is not None else x0

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self._gather(self.posterior_coef_x0, t, x_t) * x0 + self._gather(self.posterior_coef_xt, t, x_t) * x_t
        var = self._gather(self.posterior_variance, t, x_t)
        logvar = self._gather(self.posterior_log_variance_clipped, t, x_t)
        return mean, var, logvar
