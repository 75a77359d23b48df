"""PPO-Gaussian from the DP's data, and the chunk-level PPO machinery the PPO baselines share.

`ChunkPPO` is PPO in the action-chunk MDP (`envs.chunked.ChunkedVecEnv`): one PPO transition is one
chunk step (observation history in, `act_steps` executed actions out). Its reward is the
gamma-discounted sum over the executed steps and its discount gamma^executed (an SMDP step, exact
for chunks cut short by an episode end); GAE over chunk steps; value targets kept O(1) by
`RunningReturnScaler`. PPO itself (clipped surrogate, value loss, KL-adaptive learning rate,
storage, GAE) is `rl/`'s. A subclass says only what its policy sees and how its action becomes a
chunk (`policy_input`, `to_chunk`, `act_deterministic`):

- PPO-Gaussian (this file): the usual Gaussian MLP policy, initialized by behaviour cloning on the
  demonstrations the DP was pretrained on (same episodes, same windows), then PPO. With
  obs_horizon = act_steps = 1 (the defaults) it is plain per-step PPO: the reference point
  "what a standard policy gets from the same data and the same env steps".
- MLP-FT (`mlp_ft.py`): the deterministic MLP as the mean of a mean-reverting (OU) process.
- Residual RL (`residual.py`): a Gaussian residual on top of the frozen DP's chunk.

A critic warm-up (`critic_warmup_iters`, value-only updates) keeps PPO's first policy steps from
following the advantages of an untrained critic, which would undo the behaviour-cloned start.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.episodes import EpisodeDataset
from ..data.windows import WindowDataset
from ..envs.chunked import ChunkedVecEnv
from ..rl.actor_critic import ActorCritic, ActorCriticConfig
from ..rl.ppo import PPO, PPOConfig
from ..rl.storage import RolloutStorage
from .common import (FinetuneConfig, Pretrained, RunningReturnScaler, check_env_dims, chunk_steps_within, env_checkpoint,
                     load_pretrained, make_chunked_env, restore_env, run_finetune)


@dataclass
class ChunkPPOConfig(FinetuneConfig):
    """PPO fields shared by ppo-gaussian, mlp-ft and residual (per-method defaults in subclasses)."""

    num_envs: int = 8
    steps_per_iter: int = 64           # chunk steps per env per iteration
    gamma: float = 0.99                # per ENVIRONMENT step
    lam: float = 0.95
    epochs: int = 10
    minibatches: int = 8
    clip: float = 0.2
    learning_rate: float = 3e-4
    lr_schedule: str = "adaptive"      # "adaptive" (KL) or "fixed"
    desired_kl: float = 0.01
    min_lr: float = 1e-5
    max_lr: float = 1e-3
    kl_stop: float = 0.0               # > 0: the actor's steps in an iteration stop past this KL (rl/ppo.py)
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0
    critic_warmup_iters: int = 2       # value-only iterations before the policy moves
    reward_scaling: bool = True        # divide rewards by the running std of the return
    hidden_dim: int = 64
    hidden_layers: int = 2
    torch_threads: int = 1
    checkpoint_every: int = 5

    def ppo_config(self) -> PPOConfig:
        return PPOConfig(num_epochs=self.epochs, num_minibatches=self.minibatches, clip_param=self.clip,
                         gamma=self.gamma, lam=self.lam, value_loss_coef=self.value_coef,
                         use_clipped_value_loss=False, entropy_coef=self.entropy_coef,
                         learning_rate=self.learning_rate, max_grad_norm=self.max_grad_norm,
                         schedule=self.lr_schedule, desired_kl=self.desired_kl, min_lr=self.min_lr,
                         max_lr=self.max_lr, kl_stop=self.kl_stop)


class ChunkPPO:
    """PPO over chunk steps. Subclasses set self.policy (ActorCritic interface) before `_setup()`.

    policy_input(obs_hist, ...) -> policy input [N, in_dim] (raw; the policy normalizes inside)
    to_chunk(u, obs_hist) -> raw chunk [N, >= act_steps, Da] to execute for PPO action u
    """

    def __init__(self, cfg: ChunkPPOConfig, env: ChunkedVecEnv):
        self.cfg, self.env = cfg, env
        self.obs_horizon, self.act_steps = env.obs_horizon, env.act_steps
        self.iteration = 0
        self.chunk_gamma = cfg.gamma ** self.act_steps
        self.scaler = RunningReturnScaler(env.num_envs, self.chunk_gamma) if cfg.reward_scaling else None

    def _setup(self) -> None:
        self.alg = PPO(self.policy, self.cfg.ppo_config(), self.env.num_envs, self.cfg.steps_per_iter)
        self.discounts = torch.zeros(self.cfg.steps_per_iter, self.env.num_envs)
        self.obs = self.env.reset(seed=self.cfg.seed)

    @property
    def env_steps(self) -> int:
        return self.env.env_steps

    # ---- hooks ------------------------------------------------------------------------------
    def policy_input(self, obs_hist: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def final_input(self, final_hist: np.ndarray, done: np.ndarray) -> torch.Tensor:
        """Policy input of the final histories of finished episodes (rows of `done`; others zero)."""
        x = torch.zeros(len(done), self.policy.obs_dim)
        if done.any():
            x[torch.as_tensor(done)] = self.policy_input(final_hist[done])
        return x

    def to_chunk(self, u: torch.Tensor, obs_hist: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def after_step(self, u: torch.Tensor, done: np.ndarray) -> None:
        """Called after every env step (MLP-FT keeps its previous action here)."""

    def before_iteration(self) -> None:
        """Called before each rollout (MLP-FT updates its schedules here)."""

    # ---- training ---------------------------------------------------------------------------
    def train_iteration(self, max_env_steps: int | None = None) -> dict:
        self.before_iteration()
        alg, env = self.alg, self.env
        T = chunk_steps_within(max_env_steps, self.cfg.steps_per_iter, env.num_envs, self.act_steps)
        full = alg.storage
        if T < full.num_steps:   # the budget's last, shorter rollout
            alg.storage = RolloutStorage(T, env.num_envs, full.obs.shape[-1], full.actions.shape[-1])
        try:
            return self._iteration(T)
        finally:
            alg.storage = full

    def _iteration(self, T: int) -> dict:
        alg, env = self.alg, self.env
        with torch.no_grad():
            for t in range(T):
                x = self.policy_input(self.obs)
                u, transition = alg.act(x)
                chunk = self.to_chunk(u, self.obs)
                obs, reward, terminated, truncated, info = env.step(chunk)
                done = terminated | truncated
                if self.scaler is not None:
                    reward = self.scaler(reward, done)
                final = self.final_input(info["final_obs"], done)
                self.discounts[t] = torch.as_tensor(info["chunk_discount"], dtype=torch.float32)
                alg.process_env_step(transition, torch.as_tensor(reward, dtype=torch.float32),
                                     torch.as_tensor(terminated), torch.as_tensor(truncated), final)
                self.after_step(u, done)
                self.obs = obs
            last = alg.policy.value(alg.policy.normalize(self.policy_input(self.obs)))
            alg.storage.compute_returns(last, self.discounts[:T].clone(), self.cfg.lam, normalize_advantages=True)
        warmup = self.iteration < self.cfg.critic_warmup_iters
        stats = self._critic_update() if warmup else alg.update()
        self.iteration += 1
        episodes = env.episode_stats.drain()
        if episodes["return"]:
            stats["train_return"] = float(np.mean(episodes["return"]))
            stats["train_length"] = float(np.mean(episodes["length"]))
        stats["critic_warmup"] = float(warmup)
        return stats

    def _critic_update(self) -> dict:
        """Value-only PPO epochs: the actor's parameters get no gradient (Adam skips them)."""
        alg, total, n = self.alg, 0.0, 0
        for mb in alg.storage.minibatches(self.cfg.minibatches, self.cfg.epochs):
            loss = (alg.policy.value(mb["obs"]) - mb["returns"]).square().mean()
            alg.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(alg._critic_params, self.cfg.max_grad_norm)
            alg.optimizer.step()
            total, n = total + loss.item(), n + 1
        alg.storage.clear()
        return {"value_loss": total / max(n, 1)}

    # ---- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"alg": self.alg.state_dict(), "iteration": self.iteration,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None} | env_checkpoint(self)

    def load_state_dict(self, state: dict) -> None:
        self.alg.load_state_dict(state["alg"])
        self.iteration = int(state["iteration"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        restore_env(self, state)


# ---------------------------------------------------------------------------------------------
# PPO-Gaussian with behaviour cloning from the DP's dataset
# ---------------------------------------------------------------------------------------------
@dataclass
class PPOGaussianConfig(ChunkPPOConfig):
    dataset: str = ""                  # demonstrations (default: the pretrained DP's dataset)
    obs_horizon: int = 1               # the usual PPO sees the current observation only
    act_steps: int | None = 1
    steps_per_iter: int = 256          # 8 envs x 256 = 2048 samples per iteration (the Hopper recipe)
    critic_warmup_iters: int = 3
    init_log_std: float = -1.5         # exploration std 0.22: wide noise undoes the cloned behaviour
    bc_epochs: int = 30
    bc_batch_size: int = 256
    bc_lr: float = 1e-3


def resolve_dataset(cfg: PPOGaussianConfig, pre: Pretrained | None) -> Path:
    if cfg.dataset:
        return Path(cfg.dataset)
    if pre is None and cfg.pretrained:
        pre = load_pretrained(cfg.pretrained)
    extra = (pre.checkpoint.get("extra") or {}) if pre is not None else {}
    if not extra.get("dataset"):
        raise ValueError("ppo-gaussian needs demonstrations for its behaviour-cloning start: pass --dataset DIR "
                         "(or a --pretrained policy.pt that records its dataset)")
    return Path(extra["dataset"])


def behaviour_clone(policy: ActorCritic, episodes: list[dict], obs_horizon: int, act_steps: int, epochs: int,
                    batch_size: int, lr: float) -> float:
    """Fit the Gaussian's mean to the demonstrations (MSE on windows, raw action units); the obs
    normalizer is set to the dataset's statistics first (and keeps updating during PPO). Returns
    the final epoch's mean loss."""
    data = WindowDataset(episodes, obs_horizon, act_steps, max_action_pad=0)
    obs = data.obs[data.obs_idx].flatten(1)
    act = data.actions[data.act_idx].flatten(1)
    if isinstance(policy.normalizer, nn.Module) and hasattr(policy.normalizer, "mean"):
        policy.normalizer.mean.copy_(obs.mean(0))
        policy.normalizer.var.copy_(obs.var(0, unbiased=False))
        policy.normalizer.count.fill_(len(obs))
    opt = torch.optim.Adam(policy.actor.parameters(), lr=lr)
    obs_n = policy.normalize(obs)
    loss_sum = 0.0
    for _ in range(epochs):
        perm, loss_sum, n = torch.randperm(len(obs)), 0.0, 0
        for i in range(0, len(obs), batch_size):
            idx = perm[i:i + batch_size]
            loss = (policy.actor(obs_n[idx]) - act[idx]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum, n = loss_sum + loss.item(), n + 1
        loss_sum /= max(n, 1)
    return loss_sum


class PPOGaussian(ChunkPPO):
    def __init__(self, cfg: PPOGaussianConfig, pre: Pretrained | None = None, env: ChunkedVecEnv | None = None,
                 episodes: list[dict] | None = None):
        """episodes: demonstrations to clone (default: loaded from cfg.dataset / the DP's dataset)."""
        torch.manual_seed(cfg.seed)
        act_steps = cfg.act_steps or 1
        dataset_meta: dict = {}   # layouts and control rate of the demos, for the deployable's contract
        what = "the demonstrations passed in"
        if episodes is None:
            path = resolve_dataset(cfg, pre)
            data = EpisodeDataset(path)
            episodes, dataset_meta, what = data.episodes, data.meta, f"dataset {path}"
        dims = (episodes[0]["obs"].shape[1], episodes[0]["actions"].shape[1])
        if env is None:
            env = make_chunked_env(cfg.env, cfg.num_envs, cfg.obs_horizon, act_steps, cfg.gamma, cfg.env_kwargs,
                                   (*dims, what))
        check_env_dims(env, *dims, cfg.env, what)
        super().__init__(cfg, env)
        self.dataset_meta = dataset_meta
        hidden = (cfg.hidden_dim,) * cfg.hidden_layers
        self.policy = ActorCritic(env.obs_dim * env.obs_horizon, env.act_dim * env.act_steps,
                                  ActorCriticConfig(actor_hidden=hidden, critic_hidden=hidden, activation="elu",
                                                    init_log_std=cfg.init_log_std, normalize_obs=True))
        self.bc_loss = behaviour_clone(self.policy, episodes, env.obs_horizon, env.act_steps, cfg.bc_epochs,
                                       cfg.bc_batch_size, cfg.bc_lr)
        self._setup()

    def policy_input(self, obs_hist: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs_hist, dtype=torch.float32).flatten(1)

    def to_chunk(self, u: torch.Tensor, obs_hist: np.ndarray) -> np.ndarray:
        return u.reshape(len(u), self.act_steps, self.env.act_dim).numpy()

    @torch.no_grad()
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray:
        return self.to_chunk(self.policy.act_inference(self.policy_input(obs_hist)), obs_hist)

    def train_iteration(self, max_env_steps: int | None = None) -> dict:
        return super().train_iteration(max_env_steps) | ({"bc_loss": self.bc_loss} if self.iteration == 0 else {})

    def deployable(self):
        """The Gaussian's mean as a planner emitting act_steps actions; None when the demos' control
        rate is unknown (demos passed in memory), since a planner without a rate cannot be run."""
        from refine_dp_planner.deployable import GaussianDeployable

        rate = self.dataset_meta.get("control_rate_hz")
        if rate is None:
            return None
        fields = lambda key: [[f["name"], f["size"]] for f in self.dataset_meta[key]]  # noqa: E731
        env = self.env
        return GaussianDeployable(self.policy.actor_head(), {
            "obs_dim": env.obs_dim, "action_dim": env.act_dim, "obs_horizon": env.obs_horizon,
            "action_horizon": self.act_steps, "act_steps": self.act_steps, "rate_hz": float(rate),
            "obs_fields": fields("obs_fields"), "action_fields": fields("action_fields")})


Config = PPOGaussianConfig
Method = PPOGaussian


def run(cfg: PPOGaussianConfig, resume: bool = False, episodes: list[dict] | None = None) -> dict:
    """`refine-dp finetune --method ppo-gaussian`: BC on the demos, then PPO; returns the summary."""
    torch.set_num_threads(max(1, cfg.torch_threads))
    return run_finetune(PPOGaussian(cfg, episodes=episodes), cfg, resume=resume, method_name="ppo-gaussian")
