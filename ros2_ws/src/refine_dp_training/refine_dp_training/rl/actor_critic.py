"""Gaussian actor-critic with separate MLPs and the observation normalizer inside (rsl_rl style).

pi(a|s) = N(mu(s), diag(exp(log_std))^2): the log-std is a state-independent parameter, so the
exploration noise is one learnable number per action dimension, initialised from `init_log_std`.
Actor and critic share nothing but the normalizer (separate MLPs: a value loss cannot disturb the
policy's features).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.distributions import Normal

# One MLP definition, shared with the deployable planners' heads: a trained actor loads into
# refine_dp_planner.models.mlp_head.MLPHead as is (that is how fine-tuned planners are exported).
from refine_dp_planner.models.mlp_head import ACTIVATIONS, MLPHead, mlp  # noqa: F401  (re-exported)

from .normalizer import RunningNormalizer


@dataclass
class ActorCriticConfig:
    actor_hidden: tuple[int, ...] = (256, 128, 128)
    critic_hidden: tuple[int, ...] = (256, 256, 128)
    activation: str = "elu"
    init_log_std: float = 0.0
    normalize_obs: bool = True


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: ActorCriticConfig = ActorCriticConfig()):
        super().__init__()
        self.obs_dim, self.act_dim, self.cfg = obs_dim, act_dim, cfg
        self.normalizer = RunningNormalizer(obs_dim) if cfg.normalize_obs else nn.Identity()
        self.actor = mlp(obs_dim, tuple(cfg.actor_hidden), act_dim, cfg.activation)
        self.critic = mlp(obs_dim, tuple(cfg.critic_hidden), 1, cfg.activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(cfg.init_log_std)))
        # Small last actor layer: the initial policy mean is ~0 (centre of the action box), so
        # early behaviour is set by the exploration std, not by random weights.
        nn.init.orthogonal_(self.actor[-1].weight, gain=0.01)
        nn.init.zeros_(self.actor[-1].bias)

    def normalize(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        """Raw obs -> normalized obs; `update` merges the batch into the running statistics first."""
        if update and isinstance(self.normalizer, RunningNormalizer):
            self.normalizer.update(obs)
        return self.normalizer(obs)

    def distribution(self, obs_n: torch.Tensor) -> Normal:
        """pi(.|s) from a NORMALIZED observation."""
        mean = self.actor(obs_n)
        return Normal(mean, self.log_std.exp().expand_as(mean))

    def value(self, obs_n: torch.Tensor) -> torch.Tensor:
        """V(s) [B] from a NORMALIZED observation."""
        return self.critic(obs_n).squeeze(-1)

    @torch.no_grad()
    def act_inference(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action (policy mean) from a RAW observation: evaluation and export."""
        return self.actor(self.normalizer(obs))

    def actor_head(self) -> MLPHead:
        """`act_inference` as a stand-alone MLPHead (normalizer frozen in), for deployable planners."""
        norm = self.normalizer if isinstance(self.normalizer, RunningNormalizer) else None
        head = MLPHead(self.obs_dim, self.cfg.actor_hidden, self.act_dim, self.cfg.activation,
                       {"eps": norm.eps, "clip": norm.clip} if norm is not None else None)
        head.net.load_state_dict(self.actor.state_dict())
        if norm is not None:
            head.mean.copy_(norm.mean)
            head.var.copy_(norm.var)
        return head.eval()
