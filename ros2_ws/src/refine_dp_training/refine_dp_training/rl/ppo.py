"""PPO with a clipped surrogate, clipped value loss and KL-adaptive learning rate (rsl_rl's recipe).

Our own compact implementation (rsl-rl-lib, the field's reference PPO, is not a dependency of this
project); storage (`storage.py`), model (`actor_critic.py`) and runner (`runner.py`) live apart.

Per minibatch, with ratio rho = pi(a|s) / pi_old(a|s) and normalized advantages A:

    L_clip  = -E[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ]
    L_value =  E[ max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2) ]
    L       =  L_clip + c_v L_value - c_ent H[pi]

(rsl_rl clips one gradient norm over all parameters; here actor and critic are clipped apart, see
update(). Clipped value loss limits each value move to +-clip_param, which is right for returns of
order 1 and far too slow for raw returns in the hundreds: turn it off there.)

The learning rate adapts to the KL between the rollout policy and the current one (measured on
each minibatch): lr /= 1.5 when KL > 2 * desired_kl, lr *= 1.5 when KL < desired_kl / 2, within
[min_lr, max_lr]. This makes the step size self-tuning, which matters when one PPO drives very
different problems (Hopper, T1 legs, T1 arms).

`kl_stop` > 0 adds the early stop of Schulman's PPO implementations: once a minibatch's KL exceeds it, the
actor takes no more steps in this update (the critic goes on). A fine-tuned policy with a small std
(a few % of the action range, over a chunk of ~200 action dimensions) can move its KL by 10-100 in
one Adam step that a healthy policy would take (mlp-ft on the door: KL 160 after the first actor
update, its success 0.75 -> 0.06): the adaptive rate only reacts after the damage, the stop bounds it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .actor_critic import ActorCritic
from .storage import RolloutStorage


@dataclass
class PPOConfig:
    num_epochs: int = 5
    num_minibatches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    value_loss_coef: float = 1.0
    use_clipped_value_loss: bool = True
    entropy_coef: float = 0.0
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    schedule: str = "adaptive"  # "adaptive" (KL) or "fixed"
    desired_kl: float = 0.01
    min_lr: float = 1e-5
    max_lr: float = 1e-2
    normalize_advantages: bool = True
    critic_warmup_updates: int = 0  # first updates train only the critic (warm starts: an untrained
                                    # critic's advantages would undo a cloned policy)
    kl_stop: float = 0.0  # > 0: no more actor steps in an update once a minibatch's KL exceeds this (module doc)
    symmetry_coef: float = 0.0  # weight of the mirror loss E||mu(s) - M_a mu(M_s s)||^2 (needs PPO.mirror)


def clipped_surrogate(log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                      clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, ratio): -mean(min(rho A, clip(rho, 1-clip, 1+clip) A))."""
    ratio = torch.exp(log_probs - old_log_probs)
    surrogate = ratio * advantages
    surrogate_clipped = ratio.clamp(1.0 - clip, 1.0 + clip) * advantages
    return -torch.min(surrogate, surrogate_clipped).mean(), ratio


def gaussian_kl(mu_old, sigma_old, mu, sigma) -> torch.Tensor:
    """KL(old || new) of diagonal Gaussians, summed over action dims, mean over the batch."""
    kl = torch.log(sigma / sigma_old) + (sigma_old.square() + (mu_old - mu).square()) / (2 * sigma.square()) - 0.5
    return kl.sum(-1).mean()


class PPO:
    def __init__(self, policy: ActorCritic, cfg: PPOConfig, num_envs: int, num_steps: int):
        if cfg.schedule not in ("adaptive", "fixed"):
            raise ValueError(f"PPO schedule must be 'adaptive' or 'fixed', got {cfg.schedule!r}")
        self.policy, self.cfg = policy, cfg
        self.learning_rate = cfg.learning_rate
        self.updates = 0
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
        self._critic_params = list(policy.critic.parameters())
        self._actor_params = [p for p in policy.parameters() if all(p is not q for q in self._critic_params)]
        self.storage = RolloutStorage(num_steps, num_envs, policy.obs_dim, policy.act_dim)
        self.mirror = None  # e.g. lowlevel.symmetry.Mirror: .obs(normalized obs), .action(action)

    # --- rollout ----------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Sample actions for raw obs [N, obs_dim]; returns (actions, the transition fields so far)."""
        obs_n = self.policy.normalize(obs, update=True)
        dist = self.policy.distribution(obs_n)
        actions = dist.sample()
        return actions, {"obs": obs_n, "actions": actions, "values": self.policy.value(obs_n),
                         "log_probs": dist.log_prob(actions).sum(-1), "mu": dist.mean, "sigma": dist.stddev}

    @torch.no_grad()
    def process_env_step(self, transition: dict, rewards, terminated, truncated, final_obs) -> None:
        """Complete the transition with the env's answer and store it.

        final_obs: raw [N, obs_dim] (the info["final_obs"] of the VecEnv); only rows of finished
        episodes are evaluated by the critic.
        """
        dones = terminated | truncated
        final_values = torch.zeros(dones.shape[0])
        if dones.any():
            # Normalize with the current statistics, frozen (these are not new samples).
            final_values[dones] = self.policy.value(self.policy.normalize(final_obs[dones]))
        self.storage.add(**transition, rewards=rewards, terminated=terminated.float(), dones=dones.float(),
                         final_values=final_values)

    @torch.no_grad()
    def compute_returns(self, last_obs: torch.Tensor) -> None:
        last_values = self.policy.value(self.policy.normalize(last_obs))
        self.storage.compute_returns(last_values, self.cfg.gamma, self.cfg.lam, self.cfg.normalize_advantages)

    # --- update -----------------------------------------------------------------------------
    def losses(self, mb: dict) -> dict:
        """All loss terms of one minibatch (no optimizer step), for the update and for tests."""
        cfg = self.cfg
        dist = self.policy.distribution(mb["obs"])
        log_probs = dist.log_prob(mb["actions"]).sum(-1)
        values = self.policy.value(mb["obs"])
        surrogate, ratio = clipped_surrogate(log_probs, mb["log_probs"], mb["advantages"], cfg.clip_param)
        if cfg.use_clipped_value_loss:
            v_clipped = mb["values"] + (values - mb["values"]).clamp(-cfg.clip_param, cfg.clip_param)
            value_loss = torch.max((values - mb["returns"]).square(), (v_clipped - mb["returns"]).square()).mean()
        else:
            value_loss = (values - mb["returns"]).square().mean()
        entropy = dist.entropy().sum(-1).mean()
        loss = surrogate + cfg.value_loss_coef * value_loss - cfg.entropy_coef * entropy
        mirror_loss = torch.zeros(())
        if cfg.symmetry_coef > 0.0:
            if self.mirror is None:
                raise ValueError("PPOConfig.symmetry_coef > 0 needs PPO.mirror (lowlevel.symmetry.Mirror)")
            mirrored = self.mirror.action(self.policy.actor(self.mirror.obs(mb["obs"])))
            mirror_loss = (dist.mean - mirrored).square().sum(-1).mean()
            loss = loss + cfg.symmetry_coef * mirror_loss
        with torch.no_grad():
            kl = gaussian_kl(mb["mu"], mb["sigma"], dist.mean, dist.stddev)
        return {"loss": loss, "surrogate": surrogate, "value_loss": value_loss, "entropy": entropy,
                "ratio": ratio, "kl": kl, "mirror_loss": mirror_loss}

    def update(self) -> dict:
        cfg = self.cfg
        stats = {"surrogate": 0.0, "value_loss": 0.0, "entropy": 0.0, "kl": 0.0, "clip_fraction": 0.0,
                 "mirror_loss": 0.0}
        n = 0
        warmup = self.updates < cfg.critic_warmup_updates
        stopped = False
        for mb in self.storage.minibatches(cfg.num_minibatches, cfg.num_epochs):
            out = self.losses(mb)
            if not warmup and cfg.schedule == "adaptive" and cfg.desired_kl > 0 and not stopped:
                kl = out["kl"].item()
                if kl > 2.0 * cfg.desired_kl:
                    self.learning_rate = max(cfg.min_lr, self.learning_rate / 1.5)
                elif 0.0 < kl < cfg.desired_kl / 2.0:
                    self.learning_rate = min(cfg.max_lr, self.learning_rate * 1.5)
                for group in self.optimizer.param_groups:
                    group["lr"] = self.learning_rate
            if not warmup and cfg.kl_stop > 0.0 and out["kl"].item() > cfg.kl_stop:
                stopped = True  # the policy moved far enough: the critic alone for the rest of the update
            if warmup or stopped:  # critic only: the policy stays where it is
                self.optimizer.zero_grad()
                (cfg.value_loss_coef * out["value_loss"]).backward()
                nn.utils.clip_grad_norm_(self._critic_params, cfg.max_grad_norm)
                for p in self._actor_params:
                    p.grad = None
                self.optimizer.step()
                stats["value_loss"] += out["value_loss"].item()
                n += 1
                continue
            self.optimizer.zero_grad()
            out["loss"].backward()
            # Actor and critic clipped apart: a large value error (unnormalized returns in the
            # hundreds) must not shrink the policy step through one shared norm.
            nn.utils.clip_grad_norm_(self._actor_params, cfg.max_grad_norm)
            nn.utils.clip_grad_norm_(self._critic_params, cfg.max_grad_norm)
            self.optimizer.step()
            for key in ("surrogate", "value_loss", "entropy", "kl", "mirror_loss"):
                stats[key] += out[key].item()
            stats["clip_fraction"] += ((out["ratio"] - 1.0).abs() > cfg.clip_param).float().mean().item()
            n += 1
        self.storage.clear()
        self.updates += 1
        stats = {k: v / max(n, 1) for k, v in stats.items()}
        stats["kl_stopped"] = float(stopped)
        stats["learning_rate"] = self.learning_rate
        stats["action_std"] = self.policy.log_std.exp().mean().item()
        return stats

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "learning_rate": self.learning_rate, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = float(state["learning_rate"])
        self.updates = int(state.get("updates", 0))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
