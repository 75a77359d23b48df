"""PPO runner: rollouts on a `VecEnv`, updates, logging, evaluation, checkpoints, exact resume.

Per iteration: `num_steps_per_env` steps on all N envs (N * num_steps_per_env samples), GAE, then
`num_epochs` x `num_minibatches` PPO updates. Every `eval_interval` iterations a deterministic
evaluation (policy mean) on a separate env; every `save_interval` iterations an atomic checkpoint.

A checkpoint carries everything needed to continue the SAME run bit for bit: config, policy
(normalizer included), optimizer, adaptive learning rate, RNG states (torch, numpy, python), the
env state when the env can export it (`VecEnv.state_dict`), current observations, iteration,
env-step and wall-clock counters, and the git revision. Envs that cannot export their state are
reset on resume (the run continues correctly, just not bit-identically).

Outputs under `log_dir` (a rundir.RunDir, as the pretrainer and the fine-tuning loop):
checkpoints/model_<iteration>.pt (all kept; lowlevel/train.py prunes), tb/ (tensorboard), eval.jsonl
(one line per evaluation: iteration, env_steps, wall_s, return), summary.json.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..envs.vec_env import VecEnv
from ..rundir import RunDir
from .actor_critic import ActorCritic, ActorCriticConfig
from .checkpoint import atomic_torch_save, git_revision, rng_state, seed_everything, set_rng_state
from .ppo import PPO, PPOConfig


@dataclass
class RunnerConfig:
    num_steps_per_env: int = 24
    save_interval: int = 50
    eval_interval: int = 50       # 0: no periodic evaluation
    eval_episodes: int = 10
    eval_seed: int = 10_000
    eval_max_steps: int = 100_000  # safety cap on one evaluation's env steps (per env)
    seed: int = 0
    torch_threads: int = 1        # 1 on a 2-core machine: the env loop runs in this same process
    tensorboard: bool = True
    progress: bool = True


@dataclass
class PPOTrainConfig:
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    policy: ActorCriticConfig = field(default_factory=ActorCriticConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PPOTrainConfig":
        pol = dict(d["policy"])
        pol["actor_hidden"], pol["critic_hidden"] = tuple(pol["actor_hidden"]), tuple(pol["critic_hidden"])
        return cls(RunnerConfig(**d["runner"]), PPOConfig(**d["ppo"]), ActorCriticConfig(**pol))


def _mean(xs) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


class PPORunner:
    def __init__(self, env: VecEnv, cfg: PPOTrainConfig, log_dir: str | Path | None = None,
                 eval_env: VecEnv | None = None):
        self.env, self.cfg, self.eval_env = env, cfg, eval_env
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.run = RunDir(self.log_dir, "model", digits=6, keep=0, tensorboard=cfg.runner.tensorboard) \
            if self.log_dir is not None else None
        torch.set_num_threads(cfg.runner.torch_threads)
        seed_everything(cfg.runner.seed)
        self.policy = ActorCritic(env.obs_dim, env.act_dim, cfg.policy)
        self.alg = PPO(self.policy, cfg.ppo, env.num_envs, cfg.runner.num_steps_per_env)
        self.iteration = 0
        self.env_steps = 0
        self.wall_s = 0.0
        self.obs = torch.as_tensor(env.reset(seed=cfg.runner.seed), dtype=torch.float32)
        self.history: list[dict] = []

    # --- logging ----------------------------------------------------------------------------
    @property
    def writer(self):
        """The run's tensorboard SummaryWriter (None without log_dir or with tensorboard off)."""
        return self.run.writer if self.run is not None else None

    def _log(self, scalars: dict) -> None:
        if self.run is not None:
            self.run.scalars(scalars, self.env_steps)

    # --- training ---------------------------------------------------------------------------
    def rollout(self) -> None:
        env, alg = self.env, self.alg
        with torch.no_grad():  # not inference_mode: stored tensors are reused under autograd in update()
            for _ in range(self.cfg.runner.num_steps_per_env):
                actions, transition = alg.act(self.obs)
                obs, reward, terminated, truncated, info = env.step(actions.numpy())
                alg.process_env_step(transition, torch.as_tensor(reward, dtype=torch.float32),
                                     torch.as_tensor(terminated), torch.as_tensor(truncated),
                                     torch.as_tensor(info["final_obs"], dtype=torch.float32))
                self.obs = torch.as_tensor(obs, dtype=torch.float32)
                self.env_steps += env.num_envs
            alg.compute_returns(self.obs)

    def learn(self, num_iterations: int) -> list[dict]:
        """Run `num_iterations` more iterations; returns one stats dict per iteration."""
        rc = self.cfg.runner
        bar = None
        if rc.progress:
            from tqdm import tqdm
            bar = tqdm(total=num_iterations, desc="ppo", unit="it", dynamic_ncols=True)
        if self.iteration == 0 and rc.eval_interval > 0 and self.eval_env is not None:
            self._evaluate_and_record()
            if self.log_dir is not None and rc.save_interval > 0:
                self.save(self.checkpoint_path(0))  # the untrained policy: the low end of the quality range
        try:
            for _ in range(num_iterations):
                t0 = time.perf_counter()
                self.rollout()
                t_roll = time.perf_counter() - t0
                stats = self.alg.update()
                dt = time.perf_counter() - t0
                self.wall_s += dt
                self.iteration += 1
                episodes = self.env.episode_stats.drain()
                samples = rc.num_steps_per_env * self.env.num_envs
                stats |= {"iteration": self.iteration, "env_steps": self.env_steps, "wall_s": self.wall_s,
                          "train_return": _mean(episodes["return"]), "train_length": _mean(episodes["length"]),
                          "train_success": _mean(episodes["success"]) if episodes["success"] else float("nan"),
                          "env_steps_per_s": samples / dt, "rollout_fraction": t_roll / dt}
                self._log({f"train/{k}": v for k, v in stats.items() if k not in ("iteration", "env_steps")})
                if rc.eval_interval > 0 and self.eval_env is not None and self.iteration % rc.eval_interval == 0:
                    stats["eval_return"] = self._evaluate_and_record()["return"]
                if self.log_dir is not None and rc.save_interval > 0 and self.iteration % rc.save_interval == 0:
                    self.save(self.checkpoint_path(self.iteration))
                self.history.append(stats)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(ret=f"{stats['train_return']:.1f}", sps=f"{stats['env_steps_per_s']:.0f}",
                                    lr=f"{stats['learning_rate']:.1e}", steps=self.env_steps)
        finally:
            if bar is not None:
                bar.close()
        if self.log_dir is not None:
            self.save(self.checkpoint_path(self.iteration))
            self._write_summary()
        return self.history

    # --- evaluation -------------------------------------------------------------------------
    @torch.inference_mode()
    def evaluate(self, env: VecEnv | None = None, episodes: int | None = None, seed: int | None = None) -> dict:
        """Deterministic evaluation (policy mean, clipped to the action box); does not touch training RNG."""
        env = env or self.eval_env
        if env is None:
            raise ValueError("evaluate() needs an env: pass one or give PPORunner an eval_env")
        rc = self.cfg.runner
        episodes = episodes or rc.eval_episodes
        seed = rc.eval_seed if seed is None else seed
        obs = env.reset(seed=seed)
        env.episode_stats.drain()
        returns, lengths, successes = [], [], []
        for _ in range(rc.eval_max_steps):
            actions = self.policy.act_inference(torch.as_tensor(obs, dtype=torch.float32)).numpy()
            obs, _, _, _, info = env.step(env.clip_actions(actions))
            if "episode" in info:
                done = info["episode"]["done"]
                returns += info["episode"]["return"][done].tolist()
                lengths += info["episode"]["length"][done].tolist()
                successes += info["episode"]["success"][done].tolist()
                if len(returns) >= episodes:
                    break
        env.episode_stats.drain()
        returns, lengths, successes = returns[:episodes], lengths[:episodes], successes[:episodes]
        return {"return": _mean(returns), "return_std": float(np.std(returns)) if returns else float("nan"),
                "length": _mean(lengths), "success": _mean(successes), "episodes": len(returns)}

    def _evaluate_and_record(self) -> dict:
        result = self.evaluate()
        record = {"iteration": self.iteration, "env_steps": self.env_steps, "wall_s": self.wall_s} | result
        if self.iteration % max(self.cfg.runner.save_interval, 1) == 0:
            record["checkpoint"] = str(self.checkpoint_path(self.iteration)) if self.log_dir else None
        self._log({f"eval/{k}": v for k, v in result.items()})
        if self.run is not None:
            self.run.append_jsonl("eval.jsonl", record)
        self.last_eval = record
        return result

    # --- checkpoints ------------------------------------------------------------------------
    def checkpoint_path(self, iteration: int) -> Path:
        if self.run is None:
            raise ValueError("PPORunner has no log_dir: pass log_dir to write checkpoints")
        return self.run.checkpoint_path(iteration)

    def resume(self) -> Path:
        """Continue from the newest checkpoint under log_dir (--resume); returns its path."""
        if self.run is None:
            raise ValueError("PPORunner has no log_dir to resume from")
        _, path = self.run.load_latest()
        self.load(path)
        return path

    def save(self, path: str | Path) -> Path:
        env_state = self.env.state_dict()
        ckpt = {"format": "refine_dp_training.ppo/1", "config": self.cfg.to_dict(), "alg": self.alg.state_dict(),
                "obs_dim": self.env.obs_dim, "act_dim": self.env.act_dim,
                "iteration": self.iteration, "env_steps": self.env_steps, "wall_s": self.wall_s,
                "rng": rng_state(), "env_state": env_state, "obs": self.obs.clone(),
                "git_revision": git_revision(), "eval": getattr(self, "last_eval", None)}
        return atomic_torch_save(ckpt, path)

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint written by `save`, to continue the run exactly."""
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if (ckpt["obs_dim"], ckpt["act_dim"]) != (self.env.obs_dim, self.env.act_dim):
            raise ValueError(f"checkpoint {path} is for obs_dim={ckpt['obs_dim']}, act_dim={ckpt['act_dim']}, "
                             f"this env has {self.env.obs_dim}, {self.env.act_dim}: load it with the env it was trained on")
        if ckpt["config"]["policy"] != self.cfg.to_dict()["policy"]:
            raise ValueError(f"checkpoint {path} was trained with policy config {ckpt['config']['policy']}, "
                             f"this runner has {self.cfg.to_dict()['policy']}: build the runner from "
                             "PPOTrainConfig.from_dict(ckpt['config'])")
        self.alg.load_state_dict(ckpt["alg"])
        self.iteration, self.env_steps, self.wall_s = ckpt["iteration"], ckpt["env_steps"], ckpt["wall_s"]
        if ckpt["env_state"] is not None:
            self.env.load_state_dict(ckpt["env_state"])
            self.obs = ckpt["obs"].clone()
        else:
            warnings.warn(f"{type(self.env).__name__} has no exportable state: envs are reset on resume "
                          "(training continues correctly but not bit-identically)")
            self.obs = torch.as_tensor(self.env.reset(seed=self.cfg.runner.seed + self.iteration), dtype=torch.float32)
        set_rng_state(ckpt["rng"])
        if ckpt.get("eval") is not None:
            self.last_eval = ckpt["eval"]

    def _write_summary(self) -> None:
        last = self.history[-1] if self.history else {}
        summary = {"iteration": self.iteration, "env_steps": self.env_steps, "wall_s": self.wall_s,
                   "last_train": {k: v for k, v in last.items() if isinstance(v, (int, float))},
                   "last_eval": getattr(self, "last_eval", None), "git_revision": git_revision(),
                   "config": self.cfg.to_dict()}
        self.run.write_json("summary.json", summary)


def load_policy(path: str | Path) -> tuple[ActorCritic, dict]:
    """Policy (normalizer included, eval mode) and the raw checkpoint dict, for rollouts/evaluation."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("format") != "refine_dp_training.ppo/1":
        raise ValueError(f"{path} is not a refine_dp_training PPO checkpoint (format {ckpt.get('format')!r})")
    cfg = PPOTrainConfig.from_dict(ckpt["config"])
    policy = ActorCritic(ckpt["obs_dim"], ckpt["act_dim"], cfg.policy)
    policy.load_state_dict(ckpt["alg"]["policy"])
    return policy.eval(), ckpt
