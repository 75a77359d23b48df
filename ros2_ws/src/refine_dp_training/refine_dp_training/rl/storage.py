"""Rollout storage [T steps, N envs] and generalized advantage estimation (GAE).

GAE with the successor value written out explicitly (Schulman et al. 2016):

    delta_t = r_t + gamma_t * V'_t * (1 - terminated_t) - V(s_t)
    A_t     = delta_t + gamma_t * lambda * (1 - done_t) * A_{t+1}
    R_t     = A_t + V(s_t)                      (value target)

where V'_t is the value of the state reached by step t: V(s_{t+1}) inside an episode, V(final_obs_t)
when the episode ended at t (done = terminated or truncated), and the bootstrap V(s_T) after the
last stored step. A time-out (truncated, not terminated) therefore bootstraps from the true final
state of the cut episode, not from the first state of the next one; a termination does not
bootstrap. `done` stops the advantage recursion at every episode boundary.
gamma may be a tensor [T, N] (per-transition discount, e.g. gamma^k for an action chunk of k steps).
"""
from __future__ import annotations

from typing import Iterator

import torch


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
                terminated: torch.Tensor, dones: torch.Tensor, gamma, lam: float):
    """All tensors [T, N]; next_values[t] = V'_t as defined in the module docstring.

    Returns (advantages [T, N], returns [T, N]).
    """
    T = rewards.shape[0]
    gamma = torch.as_tensor(gamma, dtype=rewards.dtype).expand_as(rewards)
    not_term = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = rewards[t] + gamma[t] * next_values[t] * not_term[t] - values[t]
        next_adv = delta + gamma[t] * lam * not_done[t] * next_adv
        advantages[t] = next_adv
    return advantages, advantages + values


class RolloutStorage:
    """Fixed-size buffers filled one env step at a time; observations are stored NORMALIZED.

    Storing the normalized observation the policy actually saw makes the PPO ratio exactly 1 on
    the first minibatch (the normalizer keeps updating during the rollout).
    """

    FIELDS = ("obs", "actions", "rewards", "terminated", "dones", "values", "final_values", "log_probs",
              "mu", "sigma")

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, act_dim: int):
        self.num_steps, self.num_envs = num_steps, num_envs
        T, N = num_steps, num_envs
        self.obs = torch.zeros(T, N, obs_dim)
        self.actions = torch.zeros(T, N, act_dim)
        self.mu = torch.zeros(T, N, act_dim)
        self.sigma = torch.zeros(T, N, act_dim)
        for name in ("rewards", "terminated", "dones", "values", "final_values", "log_probs"):
            setattr(self, name, torch.zeros(T, N))
        self.advantages = torch.zeros(T, N)
        self.returns = torch.zeros(T, N)
        self.step = 0

    def add(self, **fields: torch.Tensor) -> None:
        if self.step >= self.num_steps:
            raise RuntimeError("rollout storage is full: call clear() after each update")
        for name in self.FIELDS:
            getattr(self, name)[self.step] = fields[name]
        self.step += 1

    def clear(self) -> None:
        self.step = 0

    def compute_returns(self, last_values: torch.Tensor, gamma, lam: float, normalize_advantages: bool = True):
        next_values = torch.cat([self.values[1:], last_values[None]], 0)
        next_values = torch.where(self.dones.bool(), self.final_values, next_values)
        self.advantages, self.returns = compute_gae(self.rewards, self.values, next_values, self.terminated,
                                                    self.dones, gamma, lam)
        if normalize_advantages:
            self.advantages = (self.advantages - self.advantages.mean()) / (self.advantages.std() + 1e-8)

    def minibatches(self, num_minibatches: int, num_epochs: int) -> Iterator[dict]:
        """Shuffled minibatches over all T*N samples, `num_epochs` passes (torch global RNG); sizes differ
        by at most one sample when num_minibatches does not divide T*N."""
        batch = self.num_steps * self.num_envs
        flat = {name: getattr(self, name).flatten(0, 1)
                for name in ("obs", "actions", "values", "log_probs", "mu", "sigma", "advantages", "returns")}
        for _ in range(num_epochs):
            perm = torch.randperm(batch)
            # equal parts when batch divides evenly (a budget's last, shorter rollout may not)
            for idx in torch.tensor_split(perm, min(num_minibatches, batch)):
                yield {name: x[idx] for name, x in flat.items()}
