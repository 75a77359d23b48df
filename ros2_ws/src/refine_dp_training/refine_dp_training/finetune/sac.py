"""Soft actor-critic pieces: numpy replay buffer, tanh-squashed Gaussian actor, twin Q, temperature.

Used by DSRL (`dsrl.py`), whose SAC acts in the diffusion policy's bounded latent-noise box, but
written for any continuous box action in [-bound, bound]^d (the tests drive it on a 1-step bandit).

SAC (Haarnoja et al. 2018, with the automatic temperature of the second paper), per update:

    a', logp' ~ pi(.|s')                                      (reparameterized, squashed)
    y        = r + discount * (1 - terminated) * (min_j Qbar_j(s', a') - alpha * logp')
               (without "- alpha * logp'" when backup_entropy is False; clipped to `bounds` if given)
    L_Q      = sum_j E[(Q_j(s, a) - y)^2]
    L_pi     = E[alpha * logp(a~|s) - min_j Q_j(s, a~)]         a~ ~ pi(.|s)
    L_alpha  = -E[log_alpha * (logp(a~|s) + target_entropy)]    (pushes entropy toward the target)
    Qbar    <- tau * Q + (1 - tau) * Qbar                       (polyak, every critic step)

`discount` is stored per transition: gamma^k for a transition that executed k environment steps
(an action chunk), so chunks cut short by an episode end are discounted correctly.

The squashed policy: u ~ N(mu(s), sigma(s)^2), a = bound * tanh(u), hence |a| < bound always, and

    log pi(a|s) = log N(u; mu, sigma) - sum_i log(bound * (1 - tanh(u_i)^2))

(the change of variables; the stable form of log(1 - tanh^2) is 2 (log 2 - u - softplus(-2u))).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..rl.actor_critic import mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


# ---------------------------------------------------------------------------------------------
# replay buffer
# ---------------------------------------------------------------------------------------------
class ReplayBuffer:
    """Fixed-capacity ring buffer of named numpy fields, sampled uniformly with its own RNG.

    fields: {name: (shape, dtype)}; `add(**batch)` appends rows [B, *shape]. Its state (the filled
    rows, the write position and the sampling RNG) goes into checkpoints, so a resumed run samples
    the same minibatches it would have sampled without the interruption.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], type]], seed: int = 0):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.fields = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in fields.items()}
        self.data = {k: np.zeros((self.capacity, *shape), dtype) for k, (shape, dtype) in self.fields.items()}
        self.pos, self.size = 0, 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, **batch: np.ndarray) -> None:
        missing = set(self.fields) - set(batch)
        if missing:
            raise KeyError(f"replay add() is missing fields {sorted(missing)}")
        n = len(next(iter(batch.values())))
        for k, (shape, _) in self.fields.items():
            x = np.asarray(batch[k])
            if x.shape != (n, *shape):
                raise ValueError(f"replay field {k!r} must be [{n}, {', '.join(map(str, shape))}], got {x.shape}")
        idx = (self.pos + np.arange(n)) % self.capacity
        for k in self.fields:
            self.data[k][idx] = batch[k]
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer: collect transitions first")
        idx = self.rng.integers(0, self.size, batch_size)
        return {k: torch.as_tensor(v[idx]) for k, v in self.data.items()}

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size,
                "rng": self.rng.bit_generator.state,
                "data": {k: v[:self.size].copy() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay checkpoint has capacity {state['capacity']}, this buffer {self.capacity}: "
                             "resume with the same replay_capacity")
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for k, v in state["data"].items():
            self.data[k][:self.size] = v
        self.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def _log_one_minus_tanh_sq(u: torch.Tensor) -> torch.Tensor:
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class SquashedGaussianActor(nn.Module):
    """pi(a|s): a = bound * tanh(u), u ~ N(mu(s), sigma(s)^2); |a| < bound by construction."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], bound: float, activation: str = "relu"):
        super().__init__()
        if bound <= 0:
            raise ValueError(f"action bound must be > 0, got {bound}")
        self.obs_dim, self.act_dim, self.bound = obs_dim, act_dim, float(bound)
        self.net = mlp(obs_dim, tuple(hidden), 2 * act_dim, activation)

    def _dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action [B, act_dim], log_prob [B]), reparameterized (gradients flow through both)."""
        mu, log_std = self._dist(obs)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (_log_one_minus_tanh_sq(u) + math.log(self.bound)).sum(-1)
        return self.bound * torch.tanh(u), logp

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """bound * tanh(mu(s)): the evaluation action."""
        return self.bound * torch.tanh(self._dist(obs)[0])


def layer_norm_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str) -> nn.Sequential:
    """Linear -> LayerNorm -> activation per hidden layer, then a Linear: a critic whose features stay
    normalized cannot extrapolate to arbitrarily large values off the data (Ball et al. 2023, RLPD;
    the public DSRL configs use it too)."""
    from ..rl.actor_critic import ACTIVATIONS
    layers, d = [], in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.LayerNorm(h), ACTIVATIONS[activation]()]
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class TwinQ(nn.Module):
    """Two independent Q(s, a) MLPs (clipped double-Q against overestimation), optionally with LayerNorm."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu",
                 layer_norm: bool = False):
        super().__init__()
        make = layer_norm_mlp if layer_norm else mlp
        self.q1 = make(obs_dim + act_dim, tuple(hidden), 1, activation)
        self.q2 = make(obs_dim + act_dim, tuple(hidden), 1, activation)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(obs, act))


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, parameter by parameter."""
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.mul_(1.0 - tau).add_(ps, alpha=tau)


def twin_q_step(critic: "TwinQ", optimizer, obs, action, target1, target2=None, max_grad_norm: float = 1.0,
                critic_target: "TwinQ | None" = None, tau: float = 0.0) -> float:
    """One regression step of both Q heads (head i toward target_i, or both toward target1), grad
    clipping, optimizer step, and a polyak update of critic_target if given. SAC's TD step and
    DSRL's two critics (Q^A by TD, Q^W by distillation) all go through here."""
    q1, q2 = critic(obs, action)
    loss = F.mse_loss(q1, target1) + F.mse_loss(q2, target1 if target2 is None else target2)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(critic.parameters(), max_grad_norm)
    optimizer.step()
    if critic_target is not None:
        polyak_update(critic_target, critic, tau)
    return loss.item()


class Temperature(nn.Module):
    """Entropy temperature alpha = exp(log_alpha), tuned so that E[-log pi] tracks target_entropy."""

    def __init__(self, init_alpha: float, target_entropy: float, learn: bool = True):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)), requires_grad=learn)
        self.target_entropy, self.learn = float(target_entropy), learn

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def loss(self, logp: torch.Tensor) -> torch.Tensor:
        return -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()


# ---------------------------------------------------------------------------------------------
# the algorithm
# ---------------------------------------------------------------------------------------------
@dataclass
class SACConfig:
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "relu"
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    learn_alpha: bool = True
    target_entropy: float | None = None   # None: -act_dim (the usual heuristic)
    tau: float = 0.005
    actor_update_interval: int = 1        # actor/alpha step every k critic steps (high UTD: critic-heavy)
    max_grad_norm: float = 10.0
    backup_entropy: bool = True           # the entropy bonus inside the TD target (soft Q); False: Q is the
                                          # plain return of the policy, entropy only regularizes the actor
    critic_layer_norm: bool = False       # LayerNorm in the critics' hidden layers


class SAC:
    """SAC on a box [-bound, bound]^act_dim. `update(batch)` is one critic step (+ actor step).

    batch: obs [B, obs_dim], action [B, act_dim], reward [B], next_obs [B, obs_dim],
    terminated [B] (1: no bootstrap), discount [B] (gamma^k of the transition).
    """

    def __init__(self, obs_dim: int, act_dim: int, bound: float, cfg: SACConfig = SACConfig()):
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden, bound, cfg.activation)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden, cfg.activation, cfg.critic_layer_norm)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        target = -float(act_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.temperature = Temperature(cfg.init_alpha, target, cfg.learn_alpha)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam(self.temperature.parameters(), lr=cfg.alpha_lr)
        self.num_updates = 0

    @torch.no_grad()
    def td_target(self, batch: dict, bounds: tuple[float, float] | None = None, critic_target=None) -> torch.Tensor:
        """y of the module docstring; `bounds` (lo, hi): what the return can be, y is clipped into it.
        critic_target: whose Qbar(s', pi(s')) to bootstrap from (default this SAC's; DSRL-NA passes a
        function of (next_obs, next_action) that decodes the noise first)."""
        next_a, next_logp = self.actor.sample(batch["next_obs"])
        next_v = (critic_target or self.critic_target.min_q)(batch["next_obs"], next_a)
        if self.cfg.backup_entropy:
            next_v = next_v - self.temperature.alpha * next_logp
        y = batch["reward"] + batch["discount"] * (1.0 - batch["terminated"]) * next_v
        return y if bounds is None else y.clamp(*bounds)

    def update_critic(self, obs, action, target) -> float:
        return twin_q_step(self.critic, self.critic_opt, obs, action, target, max_grad_norm=self.cfg.max_grad_norm,
                           critic_target=self.critic_target, tau=self.cfg.tau)

    def update_actor_and_alpha(self, obs: torch.Tensor, critic: TwinQ | None = None) -> dict:
        """Actor step against `critic` (default: this SAC's critic; DSRL-NA passes its noise critic)."""
        critic = critic or self.critic
        action, logp = self.actor.sample(obs)
        for p in critic.parameters():
            p.requires_grad_(False)
        try:
            actor_loss = (self.temperature.alpha * logp - critic.min_q(obs, action)).mean()
        finally:
            for p in critic.parameters():
                p.requires_grad_(True)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), self.cfg.max_grad_norm)
        self.actor_opt.step()
        alpha_loss = torch.zeros(())
        if self.temperature.learn:
            alpha_loss = self.temperature.loss(logp)
            self.alpha_opt.zero_grad()
            alpha_loss.backward()
            self.alpha_opt.step()
        return {"actor_loss": actor_loss.item(), "alpha": self.temperature.alpha.item(),
                "entropy": -logp.mean().item(), "alpha_loss": alpha_loss.item()}

    def update(self, batch: dict, bounds: tuple[float, float] | None = None) -> dict:
        target = self.td_target(batch, bounds)
        stats = {"critic_loss": self.update_critic(batch["obs"], batch["action"], target),
                 "q_target_mean": target.mean().item(), "q_target_max": target.max().item()}
        self.num_updates += 1
        if self.num_updates % self.cfg.actor_update_interval == 0:
            stats |= self.update_actor_and_alpha(batch["obs"])
        return stats

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "temperature": self.temperature.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("actor", "critic", "critic_target", "temperature", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.num_updates = int(state["num_updates"])
