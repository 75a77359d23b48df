"""MLP-FT: the paper's fine-tuned deterministic-MLP baseline (REFINE-DP, Sec. IV-B).

The paper: "we convert the pre-trained deterministic MLP into a stochastic policy during fine-tuning
by interpreting its output as the mean and sampling around it ... through a stochastic process with
a mean-reverting update [...] The interpolation coefficient pulls samples toward the mean policy,
while [the noise scale] controls the exploration magnitude. We adopt a linear schedule for [the
coefficient] and a decreasing noise schedule for [the noise], encouraging exploration in early steps
and concentration around the mean policy in later steps." (The equation itself is lost in our copy.)

Our reading, a discrete Ornstein-Uhlenbeck process in time around the MLP's output mu_theta(s):

    a_t = (1 - alpha) a_{t-1} + alpha mu_theta(s_t) + sigma eps_t,      eps_t ~ N(0, I)

over policy steps t (one executed chunk per step, normalized action space [-1, 1]), with a_{-1} =
mu_theta(s_0) at an episode start. alpha (the pull toward the mean) grows LINEARLY from
alpha_start to alpha_end and sigma DECREASES from sigma_start to sigma_end over the fine-tuning
budget (fraction p = env_steps / budget_env_steps, frozen during an iteration so PPO's ratios are
consistent). Early: weak pull and large sigma, i.e. temporally correlated, wide exploration (the
stationary spread of the process is sigma / sqrt(alpha (2 - alpha)), larger than sigma); late:
alpha -> 1 and small sigma, i.e. samples concentrated at the MLP's output.

As a PPO policy this is a Gaussian with a known state augmentation:
pi_theta(a_t | s_t, a_{t-1}) = N((1 - alpha) a_{t-1} + alpha mu_theta(s_t), sigma^2 I), so the log-
likelihood is exact and gradients reach the MLP through alpha mu_theta. The critic sees (s_t, a_{t-1}).
Evaluation is deterministic: the MLP's output (what the fine-tuned MLP is deployed as).

Why not a chain over "steps" inside one decision (x_{k-1} = (1-alpha_k) x_k + alpha_k mu + sigma_k eps,
a denoising look-alike): with a linear alpha ending at 1 that chain forgets every step but the last,
so its "early-step exploration" would have no effect on the executed action.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from ..envs.chunked import ChunkedVecEnv
from ..rl.actor_critic import mlp
from .common import Pretrained, load_pretrained, planner_env, run_finetune
from .ppo_gaussian import ChunkPPO, ChunkPPOConfig


@dataclass
class MLPFTConfig(ChunkPPOConfig):
    use_ema: bool = True
    # Hopper: 0.3 / 0.3 (stationary spread ~0.42 of the action range) wrecked the clone within 25k
    # steps (1948 -> 976, then 779 at 150k); 0.8 / 0.1 explores around it and lifted it to 2852 at 75k
    alpha_start: float = 0.8           # pull toward the MLP's mean at the start of fine-tuning ...
    alpha_end: float = 1.0             # ... and at the end (linear in between)
    sigma_start: float = 0.1           # exploration std (normalized action units) at the start ...
    sigma_end: float = 0.03            # ... and at the end
    sigma_schedule: str = "exp"        # "exp" (geometric) or "linear" decrease
    learning_rate: float = 1e-4        # the pretrained MLP moves slowly
    max_lr: float = 3e-4
    obs_clip: float = 5.0

    def __post_init__(self):
        if not (0 < self.alpha_start <= 1 and 0 < self.alpha_end <= 1):
            raise ValueError(f"alpha_start/alpha_end must be in (0, 1], got {self.alpha_start}, {self.alpha_end}")
        if not (self.sigma_start >= self.sigma_end > 0):
            raise ValueError(f"need sigma_start >= sigma_end > 0 (decreasing noise), got {self.sigma_start}, {self.sigma_end}")
        if self.sigma_schedule not in ("exp", "linear"):
            raise ValueError(f"sigma_schedule must be 'exp' or 'linear', got {self.sigma_schedule!r}")


def schedule(cfg: MLPFTConfig, progress: float) -> tuple[float, float]:
    """(alpha, sigma) at fine-tuning progress p in [0, 1]: alpha linear, sigma decreasing."""
    p = float(np.clip(progress, 0.0, 1.0))
    alpha = cfg.alpha_start + (cfg.alpha_end - cfg.alpha_start) * p
    if cfg.sigma_schedule == "linear":
        sigma = cfg.sigma_start + (cfg.sigma_end - cfg.sigma_start) * p
    else:
        sigma = cfg.sigma_start * (cfg.sigma_end / cfg.sigma_start) ** p
    return alpha, sigma


class MeanRevertingMLPPolicy(nn.Module):
    """ActorCritic interface over input x = [flattened raw obs history | previous action (normalized)].

    mean = (1 - alpha) a_prev + alpha mu_theta(s) on the executed part of the MLP's chunk; std = sigma.
    """

    def __init__(self, mlp_policy: nn.Module, act_steps: int, hidden: tuple[int, ...], obs_clip: float):
        super().__init__()
        c = mlp_policy.config
        self.mlp_policy, self.act_steps, self.obs_clip = mlp_policy, act_steps, obs_clip
        self.obs_shape = (c.obs_horizon, c.obs_dim)
        self.obs_feat = c.obs_horizon * c.obs_dim
        self.act_dim = act_steps * c.action_dim
        self.obs_dim = self.obs_feat + self.act_dim
        self.critic = mlp(self.obs_dim, hidden, 1, "elu")
        self.register_buffer("alpha", torch.tensor(1.0))
        self.register_buffer("sigma", torch.tensor(0.1))

    @property
    def log_std(self) -> torch.Tensor:
        return self.sigma.log().expand(self.act_dim)

    def set_schedule(self, alpha: float, sigma: float) -> None:
        self.alpha.fill_(alpha)
        self.sigma.fill_(sigma)

    def normalize(self, x: torch.Tensor, update: bool = False) -> torch.Tensor:
        return x  # the MLP normalizes its observations itself; the previous action is already normalized

    def mlp_mean(self, obs_flat: torch.Tensor) -> torch.Tensor:
        """mu_theta(s): executed part of the MLP's chunk, normalized action space, [B, act_steps*Da]."""
        obs = obs_flat.reshape(-1, *self.obs_shape)
        chunk = self.mlp_policy(self.mlp_policy.obs_normalizer.normalize(obs))
        return chunk[:, :self.act_steps].flatten(1)

    def distribution(self, x: torch.Tensor) -> Normal:
        obs_flat, prev = x[:, :self.obs_feat], x[:, self.obs_feat:]
        mean = (1.0 - self.alpha) * prev + self.alpha * self.mlp_mean(obs_flat)
        return Normal(mean, self.sigma.expand_as(mean))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        obs = x[:, :self.obs_feat].reshape(-1, *self.obs_shape)
        obs_n = self.mlp_policy.obs_normalizer.normalize(obs).clamp(-self.obs_clip, self.obs_clip).flatten(1)
        return self.critic(torch.cat([obs_n, x[:, self.obs_feat:]], -1)).squeeze(-1)


class MLPFT(ChunkPPO):
    def __init__(self, cfg: MLPFTConfig, pre: Pretrained | None = None, env: ChunkedVecEnv | None = None):
        torch.manual_seed(cfg.seed)
        pre = pre or load_pretrained(cfg.pretrained, use_ema=cfg.use_ema)
        if pre.kind != "mlp":
            raise ValueError(f"mlp-ft fine-tunes the deterministic MLP baseline; {pre.path} is a {pre.kind!r} "
                             "policy: pretrain one with `refine-dp pretrain --model mlp` (or the pretrain config's MLP option)")
        act_steps = cfg.act_steps or pre.act_steps
        env = planner_env(cfg, pre, act_steps, env)
        super().__init__(cfg, env)
        self.mlp_policy = pre.policy.eval().requires_grad_(True)  # eval: no dropout noise in the ratios
        self.action_normalizer = self.mlp_policy.action_normalizer
        self.policy = MeanRevertingMLPPolicy(self.mlp_policy, env.act_steps, (cfg.hidden_dim,) * cfg.hidden_layers,
                                             cfg.obs_clip)
        self._setup()
        self.prev = torch.zeros(env.num_envs, self.policy.act_dim)
        self.fresh = np.ones(env.num_envs, bool)   # episode start: a_{-1} = mu(s_0)
        self.before_iteration()

    @property
    def progress(self) -> float:
        return self.env_steps / max(self.cfg.budget_env_steps, 1)

    def before_iteration(self) -> None:
        self.policy.set_schedule(*schedule(self.cfg, self.progress))

    def policy_input(self, obs_hist: np.ndarray, prev: torch.Tensor | None = None) -> torch.Tensor:
        obs_flat = torch.as_tensor(obs_hist, dtype=torch.float32).flatten(1)
        if prev is None:
            prev = self.prev.clone()
            if self.fresh.any():
                with torch.no_grad():
                    prev[torch.as_tensor(self.fresh)] = self.policy.mlp_mean(obs_flat[torch.as_tensor(self.fresh)])
        return torch.cat([obs_flat, prev], -1)

    def final_input(self, final_hist: np.ndarray, done: np.ndarray) -> torch.Tensor:
        # the state reached by the last step: its history and the action just taken
        return self.policy_input(final_hist, prev=self._last_u)

    def to_chunk(self, u: torch.Tensor, obs_hist: np.ndarray) -> np.ndarray:
        self._last_u = u.clamp(-1.0, 1.0)
        chunk = self._last_u.reshape(len(u), self.act_steps, -1)
        return self.action_normalizer.unnormalize(chunk).numpy()

    def after_step(self, u: torch.Tensor, done: np.ndarray) -> None:
        self.prev = self._last_u.clone()
        self.fresh = np.asarray(done, bool).copy()

    @torch.no_grad()
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray:
        return self.mlp_policy.sample(torch.as_tensor(obs_hist, dtype=torch.float32)).numpy()

    def deployable(self):
        """The fine-tuned MLP's chunk (act_deterministic); contract act_steps = this run's."""
        from refine_dp_planner.deployable import MLPDeployable

        return MLPDeployable(self.mlp_policy, self.act_steps)

    def state_dict(self) -> dict:
        return super().state_dict() | {"prev": self.prev.clone(), "fresh": self.fresh.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prev, self.fresh = state["prev"].clone(), state["fresh"].copy()
        if state["env"] is None:  # restored with fresh episodes: every env starts one
            self.fresh[:] = True
        self.before_iteration()


Config = MLPFTConfig
Method = MLPFT


def run(cfg: MLPFTConfig, resume: bool = False, pre: Pretrained | None = None) -> dict:
    """`refine-dp finetune --method mlp-ft`: PPO on the MLP under mean-reverting exploration."""
    torch.set_num_threads(max(1, cfg.torch_threads))
    return run_finetune(MLPFT(cfg, pre), cfg, resume=resume, method_name="mlp-ft")
