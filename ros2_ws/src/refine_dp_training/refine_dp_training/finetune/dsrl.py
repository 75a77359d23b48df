"""DSRL: diffusion steering by RL in the latent-noise space of a FROZEN diffusion policy.

Wagenmaker et al. 2025 (papers/dsrl.txt). The DP's weights never change. An RL policy pi^W(w | s)
picks the initial noise w (shape [Ta, Da], the chunk's shape); deterministic DDIM (eta 0) maps it
to the action chunk a = DP(s, w), so the pair (env, DP) is a new MDP whose action is w. Two variants:

- DSRL-SAC (`variant="sac"`): SAC on that latent MDP. The actor is tanh-squashed onto the box
  |w_i| <= noise_bound (1.5: the DP was trained on N(0, I) noise, a box of 1.5 sigma keeps the
  steered noise where the DP's denoiser is reliable). Critic Q(s, w), TD on (s, w, r, s').
- DSRL-NA (`variant="na"`, noise aliasing): many w map to the same chunk, so learn the value of
  ACTIONS and transfer it to noises:
      Q^A(s, a)  by TD on executed chunks:  y = r + g (1 - term) (min Qbar^A(s', DP(s', w')) - alpha logpi(w'|s')),
                                            w' ~ pi^W(.|s')
      Q^W(s, w)  distilled:                 Q^W_j(s, w) <- Q^A_j(s, DP(s, w)),  w ~ N(0, I) clipped to the bound
      pi^W       maximizes Q^W (SAC actor loss with entropy), tanh-squashed onto the same box.
  Every noise the DP ever sees is inside the box: the actor by construction, the distillation
  samples by clipping (the public code skipped that clip).

What this implementation takes care of (the public code's known bugs):
- ONE denoising pass per chunk step while acting: the chunk DP(s, w) that is executed is the one
  computed for the transition; nothing is denoised again to store it (`NoiseDecoder.passes` counts).
- Env steps are EXECUTED actions: `ChunkedVecEnv.env_steps` (N envs x executed actions per chunk),
  not chunk calls; the replay stores gamma^executed as each transition's discount.
- Critics see s = the flattened obs history, normalized by the DP's own (frozen) obs normalizer;
  Q^A sees the EXECUTED part of the chunk (act_steps x Da) in the DP's normalized action space.

Defaults that hold on sparse and dense rewards alike (the first defaults, SAC's usual ones, made a
sparse task's policy worse: its critic's values grew to 25-35 where returns cannot exceed 1):
- Rewards are scaled as DPPO scales them (`reward_scale`): divided by the running std of the
  discounted return (common.RunningReturnScaler, fed with every collected chunk reward). The
  replay keeps RAW rewards and the batch is scaled by the current std when sampled, so old and new
  transitions share one scale. Without it the entropy temperature means different things on
  different tasks: an entropy bonus of alpha * dim(w) ~ 0.8 per chunk step is nothing beside
  Hopper's ~12 reward per chunk and everything beside a sparse task's 0-or-1.
- The critic learns the return, not the soft return (`backup_entropy` False): the TD target has no
  "- alpha log pi" term. With it, a high-entropy actor earns alpha * H / (1 - gamma^act_steps)
  ~ 0.1 * 8 / 0.04 = 20 of value from entropy alone, which is where the 25-35 came from: the critic
  then ranked noises by their entropy bonus and the actor steered towards the box edges, where the
  DP is least reliable. Entropy still regularizes the actor (its loss keeps alpha log pi).
- TD targets (and DSRL-NA's distillation targets) are clipped to what the return allows
  (`bound_targets`): [min(0, G_min), max(0, G_max)] * scale, G the discounted returns seen so far
  (RunningReturnScaler.value_bounds). A sparse task's values then stay in [0, 1] (scaled), and
  bootstrapping cannot inflate values beyond any return ever observed.
- The entropy target is set for the noise box (`target_entropy` None): dim(w) * (H - 1), H the entropy of
  the pretrained DP's own noise, N(0, 1) truncated to [-noise_bound, noise_bound]: one nat per dimension
  below the DP's behaviour (SAC's usual -1 per dimension assumes a [-1, 1] box; differential entropy is not
  scale-free). init_alpha 0.1, on the scaled rewards above.
- The critics have LayerNorm (`critic_layer_norm`): without it they extrapolated freely to noises the
  replay never held, and the actor chased those values.

UTD: `utd` gradient steps per collected chunk transition (per env); fractions accumulate.
Before `learning_starts` env steps, w ~ N(0, I) clipped to the box (the pretrained DP's own
behaviour) fills the replay and no update runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..envs.chunked import ChunkedVecEnv
from .common import (FinetuneConfig, Pretrained, RunningReturnScaler, env_checkpoint, load_pretrained, planner_env,
                     restore_env, run_finetune)
from .sac import SAC, ReplayBuffer, SACConfig, TwinQ, twin_q_step

VARIANTS = ("sac", "na")


@dataclass
class DSRLConfig(FinetuneConfig):
    variant: str = "sac"               # "sac" (DSRL-SAC) or "na" (DSRL-NA, noise aliasing)
    noise_bound: float = 1.5           # |w_i| <= noise_bound for every noise the DP receives
    ddim_steps: int | None = None      # DDIM steps of the frozen DP (None: its config's)
    use_ema: bool = True
    num_envs: int = 4
    gamma: float = 0.99                # per ENVIRONMENT step; a chunk of k steps is discounted gamma^k
    utd: float = 2.0                   # gradient steps per collected chunk transition
    batch_size: int = 256
    replay_capacity: int = 200_000     # chunk transitions
    learning_starts: int = 5_000       # env steps of N(0, I) noise before the first update
    hidden_dim: int = 256
    hidden_layers: int = 2
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    target_entropy: float | None = None   # None: dim(w) * (H(N(0,1) on [-bound, bound]) - 1), module docstring
    reward_scale: bool = True          # rewards / running std of the discounted return (DPPO's scaling)
    backup_entropy: bool = False       # True: the soft-Q target of plain SAC (entropy bonus inside the TD target)
    bound_targets: bool = True         # clip critic targets to the range of discounted returns seen
    critic_layer_norm: bool = True     # LayerNorm in the critics: no runaway extrapolation off the replay's noises
    tau: float = 0.005
    actor_update_interval: int = 1
    obs_clip: float = 5.0              # normalized obs are clipped to +-obs_clip before the networks
    checkpoint_every: int = 1000       # iterations (one chunk step of all envs each); replay included
    eval_every_env_steps: int = 20_000
    torch_threads: int = 1

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown DSRL variant {self.variant!r}: use one of {VARIANTS}")
        if self.noise_bound <= 0:
            raise ValueError(f"noise_bound must be > 0, got {self.noise_bound}")

    def sac_config(self, noise_dim: int) -> SACConfig:
        target = self.target_entropy
        if target is None:
            target = noise_dim * (truncated_normal_entropy(self.noise_bound) - 1.0)
        return SACConfig(hidden=(self.hidden_dim,) * self.hidden_layers, actor_lr=self.actor_lr,
                         critic_lr=self.critic_lr, alpha_lr=self.alpha_lr, init_alpha=self.init_alpha,
                         target_entropy=target, tau=self.tau, actor_update_interval=self.actor_update_interval,
                         backup_entropy=self.backup_entropy, critic_layer_norm=self.critic_layer_norm)


def truncated_normal_entropy(bound: float) -> float:
    """Differential entropy [nats] of N(0, 1) truncated to [-bound, bound]: the DP's own noise, per
    dimension, inside the steering box (1.05 for bound 1.5; log(sqrt(2 pi e)) = 1.42 untruncated)."""
    z = math.erf(bound / math.sqrt(2.0))
    pdf = math.exp(-bound * bound / 2.0) / math.sqrt(2.0 * math.pi)
    return math.log(math.sqrt(2.0 * math.pi * math.e) * z) - bound * pdf / z


class NoiseDecoder:
    """w -> action chunk through the frozen DP: DDIM with eta 0, so the same (s, w) always gives the
    same chunk. One call = one denoising pass (ddim_steps denoiser evaluations, batched)."""

    def __init__(self, dp: nn.Module, bound: float, ddim_steps: int | None = None):
        self.dp, self.bound, self.ddim_steps = dp, float(bound), ddim_steps
        self.shape = (dp.config.action_horizon, dp.config.action_dim)
        self.passes = 0

    @torch.no_grad()
    def __call__(self, obs_hist, w: torch.Tensor) -> torch.Tensor:
        """obs_hist raw [B, To, Do]; w [B, Ta*Da] or [B, Ta, Da] -> raw chunk [B, Ta, Da]."""
        w = w.reshape(w.shape[0], *self.shape)
        if float(w.abs().max()) > self.bound + 1e-5:
            raise ValueError(f"DSRL noise {float(w.abs().max()):.3f} exceeds noise_bound {self.bound}: "
                             "every steering noise must be inside the box")
        self.passes += 1
        return self.dp.sample(obs_hist, noise=w, eta=0.0, ddim_steps=self.ddim_steps)


class DSRL:
    """The fine-tuning method (common.FinetuneMethod): collect one chunk step on all envs, update."""

    def __init__(self, cfg: DSRLConfig, pre: Pretrained | None = None, env: ChunkedVecEnv | None = None):
        """pre: the frozen DP (default: loaded from cfg.pretrained); env: the chunked training env
        (default: cfg.num_envs envs of cfg.env, discount gamma inside chunks)."""
        torch.manual_seed(cfg.seed)
        pre = pre or load_pretrained(cfg.pretrained, use_ema=cfg.use_ema)
        if pre.kind != "diffusion":
            raise ValueError(f"DSRL steers a diffusion policy's noise; {pre.path} is a {pre.kind!r} policy")
        act_steps = cfg.act_steps or pre.act_steps
        if env is None and not 1 <= act_steps <= pre.action_horizon:
            raise ValueError(f"act_steps {act_steps} must be in [1, action_horizon={pre.action_horizon}]")
        env = planner_env(cfg, pre, act_steps, env)
        dp = pre.policy.eval().requires_grad_(False)
        self.cfg, self.env, self.dp = cfg, env, dp
        self.obs_horizon, self.act_steps = env.obs_horizon, env.act_steps
        c = dp.config
        self.obs_feat = c.obs_horizon * c.obs_dim
        self.noise_dim = c.action_horizon * c.action_dim
        self.exec_dim = self.act_steps * c.action_dim
        self.decoder = NoiseDecoder(dp, cfg.noise_bound, cfg.ddim_steps)
        self.sac = SAC(self.obs_feat, self.noise_dim, cfg.noise_bound, cfg.sac_config(self.noise_dim))
        self.scaler = RunningReturnScaler(env.num_envs, cfg.gamma ** self.act_steps)
        if cfg.variant == "na":  # Q^A on executed actions; self.sac.critic is Q^W (no TD, distilled)
            q_args = (self.obs_feat, self.exec_dim, self.sac.cfg.hidden, self.sac.cfg.activation, cfg.critic_layer_norm)
            self.q_action, self.q_action_target = TwinQ(*q_args), TwinQ(*q_args)
            self.q_action_target.load_state_dict(self.q_action.state_dict())
            self.q_action_target.requires_grad_(False)
            self.q_action_opt = torch.optim.Adam(self.q_action.parameters(), lr=cfg.critic_lr)
        To, Do = c.obs_horizon, c.obs_dim
        self.replay = ReplayBuffer(cfg.replay_capacity, {
            "obs": ((To, Do), np.float32), "next_obs": ((To, Do), np.float32),
            "noise": ((self.noise_dim,), np.float32), "action": ((self.exec_dim,), np.float32),
            "reward": ((), np.float32), "terminated": ((), np.float32), "discount": ((), np.float32)}, seed=cfg.seed)
        self.obs = env.reset(seed=cfg.seed)
        self.iteration, self.update_credit, self.num_updates = 0, 0.0, 0

    @property
    def env_steps(self) -> int:
        return self.env.env_steps

    # ---- encodings --------------------------------------------------------------------------
    def encode(self, obs_hist) -> torch.Tensor:
        """Raw obs history [B, To, Do] -> the networks' input [B, To*Do] (DP-normalized, clipped)."""
        x = torch.as_tensor(obs_hist, dtype=torch.float32)
        return self.dp.obs_normalizer.normalize(x).clamp(-self.cfg.obs_clip, self.cfg.obs_clip).flatten(1)

    def executed(self, chunk: torch.Tensor) -> torch.Tensor:
        """Raw chunk [B, Ta, Da] -> its executed part in the DP's normalized action space [B, act_steps*Da]."""
        return self.dp.action_normalizer.normalize(chunk[:, :self.act_steps]).flatten(1)

    def random_noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.noise_dim).clamp(-self.cfg.noise_bound, self.cfg.noise_bound)

    # ---- acting -----------------------------------------------------------------------------
    @torch.no_grad()
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray:
        w = self.sac.actor.deterministic(self.encode(obs_hist))
        return self.decoder(obs_hist, w).numpy()

    def deployable(self):
        """act_deterministic as one module: the actor's bound * tanh(mu(s)) as the DP's initial noise."""
        from refine_dp_planner.deployable import DSRLDeployable
        from refine_dp_planner.models.mlp_head import MLPHead

        actor = self.sac.actor
        head = MLPHead(actor.obs_dim, self.sac.cfg.hidden, 2 * actor.act_dim, self.sac.cfg.activation)
        head.net.load_state_dict(actor.net.state_dict())
        return DSRLDeployable(self.dp, head, self.cfg.noise_bound, self.cfg.obs_clip, self.act_steps,
                              self.cfg.ddim_steps)

    def train_iteration(self, max_env_steps: int | None = None) -> dict:
        """One chunk step of every env (at most num_envs x act_steps env steps), then the updates."""
        cfg, n = self.cfg, self.env.num_envs
        with torch.no_grad():
            if self.env_steps < cfg.learning_starts:
                w = self.random_noise(n)
            else:
                w, _ = self.sac.actor.sample(self.encode(self.obs))
            chunk = self.decoder(self.obs, w)  # the one denoising pass of this step
        next_obs, reward, terminated, truncated, info = self.env.step(chunk.numpy())
        self.scaler.update(reward, terminated | truncated)  # the replay keeps raw rewards (scaled when sampled)
        self.replay.add(obs=self.obs, next_obs=info["final_obs"], noise=w.numpy(),
                        action=self.executed(chunk).numpy(), reward=reward.astype(np.float32),
                        terminated=terminated.astype(np.float32),
                        discount=info["chunk_discount"].astype(np.float32))
        self.obs = next_obs
        self.iteration += 1
        stats: dict = {}
        if self.env_steps >= cfg.learning_starts and len(self.replay) >= cfg.batch_size:
            self.update_credit += cfg.utd * n
            k = int(self.update_credit)
            self.update_credit -= k
            for _ in range(k):
                stats = self.update(self.replay.sample(cfg.batch_size))
        episodes = self.env.episode_stats.drain()
        if episodes["return"]:
            stats["train_return"] = float(np.mean(episodes["return"]))
            stats["train_length"] = float(np.mean(episodes["length"]))
        stats["noise_abs_mean"] = float(w.abs().mean())
        return stats

    # ---- updates ----------------------------------------------------------------------------
    def value_bounds(self) -> tuple[float, float] | None:
        """The range critic targets are clipped to (scaled units), or None (bound_targets off)."""
        return self.scaler.value_bounds(scaled=self.cfg.reward_scale) if self.cfg.bound_targets else None

    def update(self, b: dict) -> dict:
        self.num_updates += 1
        s, s2 = self.encode(b["obs"]), self.encode(b["next_obs"])
        if self.cfg.reward_scale:
            b = b | {"reward": b["reward"] * self.scaler.scale}
        bounds = self.value_bounds()
        if self.cfg.variant == "sac":
            stats = self.sac.update({"obs": s, "action": b["noise"], "reward": b["reward"], "next_obs": s2,
                                     "terminated": b["terminated"], "discount": b["discount"]}, bounds)
        else:
            stats = self._update_noise_aliasing(b, s, s2, bounds)
        with torch.no_grad():
            stats["q_mean"] = float(self.sac.critic.min_q(s, self.sac.actor.deterministic(s)).mean())
        return stats | {"reward_scale": self.scaler.scale if self.cfg.reward_scale else 1.0,
                        "value_bound_hi": float("nan") if bounds is None else bounds[1]}

    def _update_noise_aliasing(self, b: dict, s: torch.Tensor, s2: torch.Tensor, bounds) -> dict:
        sac = self.sac
        # Q^A: TD on executed actions; the next action is the DP's chunk for the actor's next noise.
        y = sac.td_target({"next_obs": s2, "reward": b["reward"], "discount": b["discount"],
                           "terminated": b["terminated"]}, bounds,
                          critic_target=lambda s_next, w_next: self.q_action_target.min_q(
                              s_next, self.executed(self.decoder(b["next_obs"], w_next))))
        qa_loss = twin_q_step(self.q_action, self.q_action_opt, s, b["action"], y,
                              max_grad_norm=sac.cfg.max_grad_norm, critic_target=self.q_action_target, tau=sac.cfg.tau)
        # Q^W: distil Q^A(s, DP(s, w)) over w ~ N(0, I) clipped to the box (aliasing: any w whose
        # chunk was never executed still gets the value of that chunk), clipped like the TD targets.
        with torch.no_grad():
            w = self.random_noise(s.shape[0])
            t1, t2 = self.q_action(s, self.executed(self.decoder(b["obs"], w)))
            if bounds is not None:
                t1, t2 = t1.clamp(*bounds), t2.clamp(*bounds)
        qw_loss = twin_q_step(sac.critic, sac.critic_opt, s, w, t1, t2, max_grad_norm=sac.cfg.max_grad_norm)
        stats = {"critic_loss": qa_loss, "noise_critic_loss": qw_loss, "q_target_max": y.max().item()}
        sac.num_updates += 1
        if sac.num_updates % sac.cfg.actor_update_interval == 0:
            stats |= sac.update_actor_and_alpha(s)  # maximizes Q^W (sac.critic)
        return stats

    # ---- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"sac": self.sac.state_dict(), "replay": self.replay.state_dict(), "scaler": self.scaler.state_dict(),
                 "iteration": self.iteration, "update_credit": self.update_credit,
                 "num_updates": self.num_updates, "decoder_passes": self.decoder.passes} | env_checkpoint(self)
        if self.cfg.variant == "na":
            state |= {"q_action": self.q_action.state_dict(), "q_action_target": self.q_action_target.state_dict(),
                      "q_action_opt": self.q_action_opt.state_dict()}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.sac.load_state_dict(state["sac"])
        self.replay.load_state_dict(state["replay"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.update_credit = int(state["iteration"]), float(state["update_credit"])
        restore_env(self, state)
        self.num_updates, self.decoder.passes = int(state["num_updates"]), int(state["decoder_passes"])
        if self.cfg.variant == "na":
            for name in ("q_action", "q_action_target", "q_action_opt"):
                getattr(self, name).load_state_dict(state[name])


Config = DSRLConfig
Method = DSRL


def run(cfg: DSRLConfig, resume: bool = False, pre: Pretrained | None = None) -> dict:
    """`refine-dp finetune --method dsrl-sac|dsrl-na`: train, evaluate, checkpoint; returns the summary.
    `pre` replaces loading cfg.pretrained (tests pass a tiny DP)."""
    torch.set_num_threads(max(1, cfg.torch_threads))
    return run_finetune(DSRL(cfg, pre), cfg, resume=resume, method_name=f"dsrl-{cfg.variant}")
