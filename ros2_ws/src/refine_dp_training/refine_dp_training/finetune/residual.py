"""Residual RL on a frozen diffusion policy (Ankile et al. 2024, "From imitation to refinement").

The DP is never updated. Each chunk step it proposes a chunk (its usual sampling: x_K ~ N(0, I),
DDIM with eta 0); a small Gaussian policy sees the observation history AND that proposal and outputs
a residual for the executed actions, trained with PPO (`ppo_gaussian.ChunkPPO`):

    a_exec = clip(a_dp + residual_scale * clip(u, -1, 1), -1, 1)      (DP's normalized action space)
    u ~ N(mu_phi(s, a_dp), diag(exp(log_std))^2)

so a correction never exceeds `residual_scale` per dimension (in normalized units; 0.1 = 5 % of the
demonstrated range). The residual's last layer starts near zero (rl.ActorCritic's init), so
fine-tuning starts from the DP's own behaviour; with a zero residual the executed chunk IS the DP's.
The actions after the executed ones are the DP's, unchanged (they are never executed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..envs.chunked import ChunkedVecEnv
from ..rl.actor_critic import ActorCritic, ActorCriticConfig
from .common import Pretrained, load_pretrained, planner_env, run_finetune
from .ppo_gaussian import ChunkPPO, ChunkPPOConfig


@dataclass
class ResidualConfig(ChunkPPOConfig):
    use_ema: bool = True
    residual_scale: float = 0.1        # |residual| <= this, per action dim, normalized units
    init_log_std: float = -0.5         # std of u (before the scale): exp(-0.5) * 0.1 = 0.06 normalized
    ddim_steps: int | None = None      # DDIM steps of the frozen DP (None: its config's)

    def __post_init__(self):
        if self.residual_scale <= 0:
            raise ValueError(f"residual_scale must be > 0, got {self.residual_scale}")


class Residual(ChunkPPO):
    def __init__(self, cfg: ResidualConfig, pre: Pretrained | None = None, env: ChunkedVecEnv | None = None):
        torch.manual_seed(cfg.seed)
        pre = pre or load_pretrained(cfg.pretrained, use_ema=cfg.use_ema)
        act_steps = cfg.act_steps or pre.act_steps
        env = planner_env(cfg, pre, act_steps, env)
        super().__init__(cfg, env)
        self.kind = pre.kind
        self.base = pre.policy.eval().requires_grad_(False)
        c = self.base.config
        self.exec_dim = env.act_steps * c.action_dim
        hidden = (cfg.hidden_dim,) * cfg.hidden_layers
        self.policy = ActorCritic(c.obs_horizon * c.obs_dim + self.exec_dim, self.exec_dim,
                                  ActorCriticConfig(actor_hidden=hidden, critic_hidden=hidden, activation="elu",
                                                    init_log_std=cfg.init_log_std, normalize_obs=True))
        self._setup()
        self._proposal: torch.Tensor | None = None

    # ---- the frozen base --------------------------------------------------------------------
    def propose(self, obs_hist) -> torch.Tensor:
        """The base policy's chunk in its normalized action space [N, Ta, Da]."""
        obs = torch.as_tensor(obs_hist, dtype=torch.float32)
        with torch.no_grad():
            raw = (self.base.sample(obs, eta=0.0, ddim_steps=self.cfg.ddim_steps) if self.kind == "diffusion"
                   else self.base.sample(obs))
            return self.base.action_normalizer.normalize(raw)

    def _input(self, obs_hist, proposal: torch.Tensor) -> torch.Tensor:
        obs_flat = torch.as_tensor(obs_hist, dtype=torch.float32).flatten(1)
        return torch.cat([obs_flat, proposal[:, :self.act_steps].flatten(1)], -1)

    def compose(self, proposal: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Raw chunk: proposal + bounded residual on the executed part (normalized space), clipped."""
        residual = self.cfg.residual_scale * u.clamp(-1.0, 1.0).reshape(len(u), self.act_steps, -1)
        chunk = proposal.clone()
        chunk[:, :self.act_steps] = (proposal[:, :self.act_steps] + residual).clamp(-1.0, 1.0)
        return self.base.action_normalizer.unnormalize(chunk)

    # ---- ChunkPPO hooks ---------------------------------------------------------------------
    def policy_input(self, obs_hist) -> torch.Tensor:
        self._proposal = self.propose(obs_hist)
        return self._input(obs_hist, self._proposal)

    def to_chunk(self, u: torch.Tensor, obs_hist) -> np.ndarray:
        return self.compose(self._proposal, u).numpy()

    def final_input(self, final_hist: np.ndarray, done: np.ndarray) -> torch.Tensor:
        x = torch.zeros(len(done), self.policy.obs_dim)
        if done.any():  # the DP's proposal at the final state (for the bootstrap value only)
            idx = torch.as_tensor(done)
            x[idx] = self._input(final_hist[done], self.propose(final_hist[done]))
        return x

    @torch.no_grad()
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray:
        proposal = self.propose(obs_hist)
        u = self.policy.act_inference(self._input(obs_hist, proposal))
        return self.compose(proposal, u).numpy()

    def deployable(self):
        """act_deterministic as one module (the frozen base, the residual's mean, the same composition)."""
        from refine_dp_planner.deployable import ResidualDeployable

        return ResidualDeployable(self.base, self.policy.actor_head(), self.cfg.residual_scale, self.act_steps,
                                  self.cfg.ddim_steps)


Config = ResidualConfig
Method = Residual


def run(cfg: ResidualConfig, resume: bool = False, pre: Pretrained | None = None) -> dict:
    """`refine-dp finetune --method residual`: PPO on a bounded Gaussian residual over the frozen DP."""
    torch.set_num_threads(max(1, cfg.torch_threads))
    return run_finetune(Residual(cfg, pre), cfg, resume=resume, method_name="residual")
