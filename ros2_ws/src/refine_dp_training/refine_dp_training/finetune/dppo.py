"""DPPO: PPO over the denoising-step-augmented MDP of a pretrained diffusion policy (Ren et al. 2024).

The two-layer MDP. An ENV step of the chunked env (`envs.chunked`) is one planner decision: the
observation history o (To frames) -> an action chunk a = x_0 (Ta actions, first act_steps executed).
Inside that decision the sampler takes K denoising steps x_K -> x_{K-1} -> ... -> x_0, each a
Gaussian policy step (maths written once, in refine_dp_planner.diffusion.sampler.denoise_step):

    pi_theta(x_{k-1} | x_k, o) = N(mu_theta(x_k, t_k, o), max(sigma_k, sigma_min)^2)

so the chain's likelihood is the product of its K step likelihoods, and PPO can be applied to each
(env step, denoising step) pair with the env step's advantage. Choices (each after the DPPO
reference and FACTS.md "DPPO defaults" unless said otherwise):

- Sampling during training: the pretrained sampler's timesteps with eta = `sampling_eta` (1: with
  K = T consecutive steps this IS DDPM ancestral sampling; the Hopper DP is pretrained with T = 20,
  as DPPO's gym configs), per-step std floored at `min_sampling_std` (0.1) so the last, otherwise
  noise-free steps still explore, step noise clipped at +-`noise_clip` (3 sigma), x0 clipped to
  [-1, 1] (the schedule's clip_x0). The whole chain x_K..x_0 of the fine-tuned steps is stored.
  The log-prob floor should not exceed the sampling floor: a step sampled at std s and scored with a
  floor k*s lets the PPO clip and approx-KL see about 1/k^2 of the real change (a warning says so).
  Door DiT, sampling 0.02 and log-prob 0.1: two actor iterations at lr 1e-5 moved each fine-tuned
  step's mean by 0.5-1.4 sampling sigmas at approx-KL 4e-4 and success fell 12/32 -> 0/32; the same
  parameter change with random signs left it at 15/32, i.e. the step along the gradient was too long,
  not a wrong direction. Equal floors (0.02, clamp shifted by log 5) put the clip back in charge.
- Only the last `ft_denoising_steps` (10 of 20) are fine-tuned: the trainable policy is used for
  them, a frozen copy of the pretrained denoiser for the earlier, noisier steps (cheaper, and the
  coarse shape of the action distribution stays the pretrained one).
- Log-probs: per element, std floored at `min_logprob_std` (0.1), each element's log-prob clamped to
  [logprob_min, logprob_max] = [-5, 2] (calibrated to std 0.1, whose mode density is 1.38: with a
  smaller floor shift both by log(0.1 / floor); a logprob_max below the mode density is refused, as it
  would zero the gradient of every sample near its mean), then AVERAGED over the executed actions (first act_steps of
  the chunk) and action dims (the reference's reduction; the small clip coefficients below are
  calibrated to this per-element average, a sum would make ratios Ta*Da times sharper). The chain's
  log-prob is the SUM of these per-step log-probs.
- Advantages: GAE over env steps of the chunked MDP. A chunk transition lasts `executed` env steps,
  so its reward is sum_k gamma^k r_k (the chunked env's discount = gamma) and its bootstrap is
  discounted by gamma^executed (exact SMDP discounting; lambda per decision). Time-outs bootstrap
  from V(final history); terminations do not. Rewards are divided by the running std of the
  discounted return (reward_scale, DPPO's reward_scale_running) so value targets stay O(1).
  Advantages are normalized over the batch, then shared along the chain with weight
  gamma_denoising^(ft_steps - 1 - j) for fine-tuned step j (0 = noisiest): the last step gets the
  full advantage.
- Clip coefficients per denoising step: eps_j = base + (last - base) * (e^{rate j/(J-1)} - 1) /
  (e^{rate} - 1), from `clip_coef_base` (1e-3, noisiest) to `clip_coef` (1e-2, last) with rate 3
  (FACTS.md; DPPO's Hopper config uses 1e-2 flat: pass --clip-coef-base 0.01).
- Minibatches of `batch_size` (env step, denoising step) pairs, shuffled over all T*N*J pairs,
  `update_epochs` passes; an epoch loop stops early when the mean approx-KL exceeds target_kl.
  The old log-probs are computed after the rollout by the same function the update uses, so the
  ratio is exactly 1 before the first update.
- Critic: MLP 3x256 (Mish) on the flattened NORMALIZED obs history (the policy's fixed dataset
  normalizer), its own Adam (critic_lr 1e-3), value loss 0.5 * MSE (vf_coef), no value clipping.
  The first `critic_warmup_iterations` iterations train only the critic (a random critic's
  advantages would push the pretrained actor in random directions), and so does an iteration whose
  rollouts earned no reward at all (a sparse task with no success in the batch: its normalized
  advantages would be the critic's noise at unit scale).
- Actor: Adam with actor_lr 1e-4 (FACTS: 1e-5..1e-4), gradient norms clipped apart (max_grad_norm).
- Evaluation: eta 0 (deterministic DDIM over the same timesteps, fine-tuned denoiser for the late
  steps, frozen one for the early ones), initial noise seeded by common.evaluate.
- Exact resume: state_dict holds actor, frozen base, critic, both optimizers, reward scaler, the
  env's full state (MuJoCo qpos/qvel/RNG via ChunkedVecEnv.state_dict), the current obs history,
  counters; common.run_finetune adds the global RNG states.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from refine_dp_planner.diffusion.sampler import denoise_step, gaussian_log_prob
from refine_dp_planner.diffusion import sampler as diffusion_sampler
from refine_dp_planner.policy import DiffusionPolicy

from ..rl.checkpoint import seed_everything
from ..rl.storage import compute_gae
from .common import (FinetuneConfig, RunningReturnScaler, chunk_steps_within, env_checkpoint, load_pretrained, planner_env,
                     restore_env)


@dataclass
class Config(FinetuneConfig):
    num_envs: int = 10
    n_steps: int = 100                   # chunk steps per env per iteration (x act_steps env steps)
    ft_denoising_steps: int = 10
    sampling_eta: float = 1.0
    sampling_steps: int | None = None    # None: the pretrained config's ddim_steps
    min_sampling_std: float = 0.1
    min_logprob_std: float = 0.1
    noise_clip: float = 3.0
    logprob_min: float = -5.0
    logprob_max: float = 2.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    gamma_denoising: float = 0.99
    clip_coef: float = 0.01              # last (least noisy) fine-tuned step
    clip_coef_base: float = 0.001        # noisiest fine-tuned step
    clip_coef_rate: float = 3.0
    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    update_epochs: int = 5
    batch_size: int = 1000               # (env step, denoising step) pairs per minibatch
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    target_kl: float | None = 1.0
    actor_kl_stop: float | None = None   # a minibatch's approx-KL above this ends the actor's steps in this update
                                         # (the critic goes on); the epoch-level target_kl acts only after a whole
                                         # epoch of steps (door DiT at actor lr 1e-5: collapsed at approx-KL 1e-5)
    critic_warmup_iterations: int = 2
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    reward_scale: bool = True
    use_ema: bool = True                 # start from the pretrained EMA weights


def check_logprob_floors(cfg: Config) -> None:
    """Refuse a log-prob clamp that flattens every step near its mean; warn when the log-prob Gaussian is
    wider than the sampled one (see the module docstring)."""
    mode = -math.log(cfg.min_logprob_std) - 0.5 * math.log(2 * math.pi)
    if cfg.logprob_max <= mode:
        shift = math.log(0.1 / cfg.min_logprob_std)
        raise ValueError(
            f"--logprob-max {cfg.logprob_max} is below the log-density at the mean of a step with std "
            f"--min-logprob-std {cfg.min_logprob_std} ({mode:.2f}): the clamp would zero the gradient of every "
            f"sample near its mean. The defaults [-5, 2] are calibrated to std 0.1; for this floor pass "
            f"--logprob-min {-5 + shift:.2f} --logprob-max {2 + shift:.2f}")
    if cfg.min_logprob_std > cfg.min_sampling_std * 1.01:
        k = cfg.min_logprob_std / cfg.min_sampling_std
        warnings.warn(
            f"DPPO: --min-logprob-std {cfg.min_logprob_std} > --min-sampling-std {cfg.min_sampling_std}: steps at the "
            f"sampling floor are scored by a Gaussian {k:.1f}x wider than the one sampled, so the PPO clip and "
            f"approx-KL see about 1/{k * k:.0f} of the policy's real change (door DiT at 0.1 vs 0.02 collapsed "
            "in two iterations); set --min-logprob-std to the sampling floor and shift --logprob-min/--logprob-max "
            "by log(0.1 / floor)", stacklevel=3)


def clip_schedule(num_steps: int, base: float, last: float, rate: float) -> torch.Tensor:
    """Per fine-tuned step clip coefficient, index 0 = noisiest, num_steps-1 = last (monotone)."""
    if num_steps == 1:
        return torch.tensor([last])
    j = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    w = (torch.exp(rate * j) - 1) / (math.exp(rate) - 1) if rate != 0 else j
    return (base + (last - base) * w).float()


class Critic(nn.Module):
    def __init__(self, in_dim: int, hidden: list[int]):
        super().__init__()
        layers, d = [], in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Mish()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        """Normalized obs history [B, To, Do] -> V [B]."""
        return self.net(obs_n.flatten(1)).squeeze(-1)


class DPPOActor(nn.Module):
    """The fine-tuned diffusion policy: trainable `policy` for the last J steps, frozen `base` denoiser
    for the others; everything (chain, means) in the normalized action space."""

    def __init__(self, policy: DiffusionPolicy, ft_denoising_steps: int, sampling_steps: int | None,
                 eta: float, min_sampling_std: float, min_logprob_std: float, noise_clip: float,
                 logprob_clamp: tuple[float, float], act_steps: int):
        super().__init__()
        self.policy = policy.train().requires_grad_(True)
        self.base = policy.frozen_copy().denoiser   # frozen: eval mode, requires_grad False
        self.timesteps = policy.timesteps(sampling_steps)   # descending, K of them
        K = len(self.timesteps)
        if not 1 <= ft_denoising_steps <= K:
            raise ValueError(f"ft_denoising_steps {ft_denoising_steps} must be in [1, {K}] (the sampler's steps)")
        self.K, self.J = K, ft_denoising_steps
        self.ft_start = K - ft_denoising_steps   # chain index of the first fine-tuned step
        self.ft_t = set(self.timesteps[self.ft_start:])
        self.eta, self.min_sampling_std, self.min_logprob_std = eta, min_sampling_std, min_logprob_std
        self.noise_clip, self.logprob_clamp, self.act_steps = noise_clip, logprob_clamp, act_steps
        ab = policy.schedule.alpha_bar.double().cpu()
        ts = self.timesteps + [-1]
        # Per fine-tuned step j: (t, alpha_bar_t, alpha_bar_prev); alpha_bar after the last step = 1.
        self.register_buffer("ft_steps_t", torch.tensor(self.timesteps[self.ft_start:]), persistent=False)
        self.register_buffer("ft_ab", torch.tensor([float(ab[ts[k]]) for k in range(self.ft_start, K)]), persistent=False)
        self.register_buffer("ft_ab_prev", torch.tensor([float(ab[ts[k + 1]]) if ts[k + 1] >= 0 else 1.0
                                                         for k in range(self.ft_start, K)]), persistent=False)

    def _denoiser(self, x, t, obs):
        """Dispatch per step: the sampler calls one step at a time, so t is constant over the batch."""
        return (self.policy.denoiser if int(t[0]) in self.ft_t else self.base)(x, t, obs)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.obs_normalizer.normalize(obs)

    @torch.no_grad()
    def sample(self, obs_n: torch.Tensor, deterministic: bool = False):
        """Normalized obs [B, To, Do] -> (raw action chunk [B, Ta, Da], fine-tuned chain [B, J+1, Ta, Da])."""
        out = diffusion_sampler.sample(
            self._denoiser, self.policy.schedule, obs_n, self.timesteps,
            action_shape=(self.policy.config.action_horizon, self.policy.config.action_dim),
            eta=0.0 if deterministic else self.eta, std_floor=0.0 if deterministic else self.min_sampling_std,
            noise_clip=None if deterministic else self.noise_clip, return_chain=not deterministic)
        actions = self.policy.action_normalizer.unnormalize(out.actions.clamp(-1.0, 1.0))
        return actions, (None if deterministic else out.chain[:, self.ft_start:])

    def step_log_prob(self, obs_n: torch.Tensor, x_t: torch.Tensor, x_next: torch.Tensor,
                      j: torch.Tensor) -> torch.Tensor:
        """log pi(x_next | x_t, o) [M] of M (env step, fine-tuned step j) pairs (see module docstring)."""
        eps = self.policy.denoiser(x_t, self.ft_steps_t[j], obs_n)
        shape = (-1,) + (1,) * (x_t.dim() - 1)
        mean, std, _ = denoise_step(x_t, eps, self.ft_ab[j].reshape(shape), self.ft_ab_prev[j].reshape(shape),
                                    self.eta, self.policy.schedule.clip_x0, self.min_logprob_std)
        logp = gaussian_log_prob(x_next, mean, std).clamp(*self.logprob_clamp)
        return logp[:, :self.act_steps].mean(dim=(-2, -1))

    def chain_log_probs(self, obs_n: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Per fine-tuned step log-probs [B, J] of stored chains [B, J+1, Ta, Da] (sum over J: the chain's)."""
        B, J = chain.shape[0], self.J
        j = torch.arange(J).repeat(B)
        obs_rep = obs_n.repeat_interleave(J, dim=0)
        logp = self.step_log_prob(obs_rep, chain[:, :-1].flatten(0, 1), chain[:, 1:].flatten(0, 1), j)
        return logp.reshape(B, J)


class Method:
    """DPPO on a chunked env; see the module docstring. Interface: finetune.common.FinetuneMethod."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        check_logprob_floors(cfg)
        seed_everything(cfg.seed)
        pre = load_pretrained(cfg.pretrained, use_ema=cfg.use_ema)
        if pre.kind != "diffusion":
            raise ValueError(f"DPPO fine-tunes a diffusion policy; {pre.path} holds a {pre.kind!r} policy "
                             "(use --method mlp-ft for the MLP baseline)")
        self.obs_horizon = pre.obs_horizon
        self.act_steps = cfg.act_steps or pre.act_steps
        self.env = planner_env(cfg, pre, self.act_steps)   # sizes checked before anything else is built
        self.actor = DPPOActor(pre.policy, cfg.ft_denoising_steps, cfg.sampling_steps, cfg.sampling_eta,
                               cfg.min_sampling_std, cfg.min_logprob_std, cfg.noise_clip,
                               (cfg.logprob_min, cfg.logprob_max), self.act_steps)
        pc = pre.policy.config
        self.critic = Critic(pc.obs_dim * pc.obs_horizon, list(cfg.critic_hidden))
        self.actor_opt = torch.optim.Adam(self.actor.policy.denoiser.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.clip_coefs = clip_schedule(self.actor.J, cfg.clip_coef_base, cfg.clip_coef, cfg.clip_coef_rate)
        self.scaler = RunningReturnScaler(cfg.num_envs, cfg.gamma) if cfg.reward_scale else None
        self.obs = self.env.reset(seed=cfg.seed)
        self.iteration, self.env_steps = 0, 0

    @property
    def env_steps(self) -> int:
        return self.env.env_steps

    @env_steps.setter
    def env_steps(self, value: int) -> None:
        self.env.env_steps = value

    # ---- rollout --------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, T: int | None = None) -> dict:
        """T chunk steps of every env (default cfg.n_steps)."""
        cfg, N, T = self.cfg, self.cfg.num_envs, T or self.cfg.n_steps
        buf = {k: [] for k in ("obs_n", "chain", "reward", "terminated", "done", "final_obs_n", "executed")}
        for _ in range(T):
            obs_n = self.actor.normalize_obs(torch.as_tensor(self.obs, dtype=torch.float32))
            actions, chain = self.actor.sample(obs_n)
            self.obs, reward, term, trunc, info = self.env.step(actions.numpy())
            done = term | trunc
            if self.scaler is not None:
                reward = self.scaler(reward, done)
            buf["obs_n"].append(obs_n)
            buf["chain"].append(chain)
            buf["reward"].append(torch.as_tensor(reward, dtype=torch.float32))
            buf["terminated"].append(torch.as_tensor(term, dtype=torch.float32))
            buf["done"].append(torch.as_tensor(done, dtype=torch.float32))
            buf["final_obs_n"].append(self.actor.normalize_obs(torch.as_tensor(info["final_obs"], dtype=torch.float32)))
            buf["executed"].append(torch.as_tensor(info["executed_steps"], dtype=torch.float32))
        b = {k: torch.stack(v) for k, v in buf.items()}   # [T, N, ...]
        last_obs_n = self.actor.normalize_obs(torch.as_tensor(self.obs, dtype=torch.float32))
        # Values, old log-probs: computed after the rollout by the functions the update uses.
        b["values"] = self.critic(b["obs_n"].flatten(0, 1)).reshape(T, N)
        final_values = self.critic(b["final_obs_n"].flatten(0, 1)).reshape(T, N)
        next_values = torch.cat([b["values"][1:], self.critic(last_obs_n)[None]], 0)
        next_values = torch.where(b["done"].bool(), final_values, next_values)
        gamma_t = cfg.gamma ** b["executed"]
        adv, ret = compute_gae(b["reward"], b["values"], next_values, b["terminated"], b["done"], gamma_t,
                               cfg.gae_lambda)
        b["returns"] = ret
        b["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
        b["old_logp"] = torch.cat([self.actor.chain_log_probs(o, c) for o, c in zip(
            b["obs_n"].flatten(0, 1).split(4096), b["chain"].flatten(0, 1).split(4096))]).reshape(T, N, -1)
        return b

    # ---- update ---------------------------------------------------------------------------------
    def pair_losses(self, b: dict, idx: torch.Tensor) -> dict:
        """PPO losses of the (env step, fine-tuned step) pairs `idx` (flat over T*N*J)."""
        cfg, J = self.cfg, self.actor.J
        s, j = idx // J, idx % J
        obs = b["obs_n"].flatten(0, 1)[s]
        chain = b["chain"].flatten(0, 1)[s]            # [M, J+1, Ta, Da]
        rows = torch.arange(len(idx))
        logp = self.actor.step_log_prob(obs, chain[rows, j], chain[rows, j + 1], j)
        old = b["old_logp"].flatten(0, 1)[s, j]
        adv = b["advantages"].flatten()[s] * cfg.gamma_denoising ** (J - 1 - j).float()
        log_ratio = logp - old
        ratio = log_ratio.exp()
        clip = self.clip_coefs[j]
        pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
        v_loss = 0.5 * (self.critic(obs) - b["returns"].flatten()[s]).square().mean()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clipfrac = ((ratio - 1).abs() > clip).float().mean()
        return {"pg_loss": pg_loss, "v_loss": v_loss, "ratio": ratio, "approx_kl": approx_kl, "clipfrac": clipfrac}

    def update(self, b: dict) -> dict:
        cfg = self.cfg
        # a batch without any reward (a sparse task's rollouts with no success) carries no advantage signal:
        # normalized, its advantages are the critic's noise at unit scale, and stepping the actor on them walks
        # it away from the pretrained policy (door DiT: 12 % -> 0 % in 12 such iterations); only the critic learns
        informative = bool(b["reward"].abs().sum() > 0)
        train_actor = self.iteration >= cfg.critic_warmup_iterations and informative
        n_pairs = b["old_logp"].numel()
        stats = {"pg_loss": [], "v_loss": [], "approx_kl": [], "clipfrac": [], "ratio": []}
        stopped = False
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(n_pairs)
            kls = []
            for start in range(0, n_pairs, cfg.batch_size):
                out = self.pair_losses(b, perm[start:start + cfg.batch_size])
                if train_actor and cfg.actor_kl_stop is not None and float(out["approx_kl"]) > cfg.actor_kl_stop:
                    train_actor, stopped = False, True  # far enough from the rollout policy: the critic alone
                self.critic_opt.zero_grad(set_to_none=True)
                self.actor_opt.zero_grad(set_to_none=True)
                loss = cfg.vf_coef * out["v_loss"] + (out["pg_loss"] if train_actor else 0.0)
                loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_opt.step()
                if train_actor:
                    nn.utils.clip_grad_norm_(self.actor.policy.denoiser.parameters(), cfg.max_grad_norm)
                    self.actor_opt.step()
                for k in stats:
                    stats[k].append(float(out[k].detach().mean()))
                kls.append(float(out["approx_kl"]))
            if cfg.target_kl is not None and train_actor and np.mean(kls) > cfg.target_kl:
                break
        return {k: float(np.mean(v)) for k, v in stats.items()} | {"actor_trained": float(train_actor or stopped),
                                                                    "actor_kl_stopped": float(stopped),
                                                                    "reward_in_batch": float(informative)}

    def train_iteration(self, max_env_steps: int | None = None) -> dict:
        t0 = time.perf_counter()
        steps0 = self.env_steps
        b = self.rollout(chunk_steps_within(max_env_steps, self.cfg.n_steps, self.cfg.num_envs, self.act_steps))
        t_roll = time.perf_counter() - t0
        stats = self.update(b)
        self.iteration += 1
        episodes = self.env.episode_stats.drain()
        dt = time.perf_counter() - t0
        return stats | {"train_return": float(np.mean(episodes["return"])) if episodes["return"] else float("nan"),
                        "train_episodes": len(episodes["return"]), "value_mean": float(b["values"].mean()),
                        "env_steps_per_s": (self.env_steps - steps0) / dt, "rollout_fraction": t_roll / dt}

    # ---- evaluation, state ----------------------------------------------------------------------
    @torch.no_grad()
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray:
        obs_n = self.actor.normalize_obs(torch.as_tensor(obs_hist, dtype=torch.float32))
        return self.actor.sample(obs_n, deterministic=True)[0].numpy()

    def deployable(self):
        """act_deterministic as one module: DDIM (eta 0) over the same timesteps, the frozen base denoiser
        for the first K - J steps and the fine-tuned one for the last J; contract act_steps = this run's."""
        from refine_dp_planner.deployable import DiffusionDeployable

        a = self.actor
        base = a.policy.frozen_copy()
        base.denoiser = a.base
        return DiffusionDeployable(base, len(a.timesteps), 0.0, a.policy.denoiser, a.J, self.act_steps)

    def state_dict(self) -> dict:
        return self.learner_state() | env_checkpoint(self)

    def learner_state(self) -> dict:
        """All but the env's state: actor, critic, optimizers, reward scaler, counters."""
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "iteration": self.iteration, "env_steps": self.env_steps}

    def load_state_dict(self, state: dict) -> None:
        self.load_learner_state(state)
        restore_env(self, state)

    def load_learner_state(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        if "env_steps" in state:  # checkpoints before it kept env_steps in the env state only
            self.env_steps = int(state["env_steps"])
