"""Behaviour-cloning pretraining of a DiffusionPolicy (or the MLP baseline) on windowed demonstrations.

One gradient step: a batch of (obs history, action chunk) windows of TRAINING episodes, the policy's
own `compute_loss` (epsilon MSE for diffusion, action MSE for the MLP), AdamW, gradient clipping,
linear-warmup + cosine learning rate, EMA update. Batches are drawn with replacement from a
dedicated torch.Generator; diffusion noise and timesteps from the global torch RNG.

Run directory (rundir.RunDir, as the fine-tuning loop and the PPO runner): config.json, summary.json,
tb/, checkpoints/step_<n>.pt (the newest keep_checkpoints kept), policy.pt.
Exact resume: checkpoints/step_<n>.pt holds model, EMA, optimizer, scheduler, both RNG states, the
step and the validation/evaluation history, so `--resume` continues the same run bit for bit (up to
the float non-determinism of the BLAS, none on a CPU with fixed threads). Validation loss uses a
fixed seed inside torch.random.fork_rng (comparable across steps, training RNG untouched).
policy.pt (the EMA policy, its config carrying the planner contract: act_steps, rate_hz from the
dataset's control rate, the dataset's observation/action layouts) is rewritten at every checkpoint
and at the end.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.ema import EMA
from refine_dp_planner.models.dit import DiTConfig
from refine_dp_planner.models.mlp_denoiser import MLPDenoiserConfig
from refine_dp_planner.models.mlp_policy import MLPPolicy, MLPPolicyConfig
from refine_dp_planner.policy import DiffusionPolicy

from ..data.episodes import EpisodeDataset, dim_names
from ..data.windows import WindowDataset
from ..rl.checkpoint import git_revision, rng_state, seed_everything, set_rng_state
from ..rundir import RunDir
from .artifacts import POLICY_FILE, save_policy_file
from .config import PretrainConfig

FORMAT = "refine_dp_training.pretrain_state/1"


def build_policy(cfg: PretrainConfig, obs_dim: int, act_dim: int, obs_fields=None, action_fields=None,
                 rate_hz: float = 10.0):
    """The policy of `cfg`, its config carrying the planner contract (act_steps, rate_hz, layouts)."""
    contract = dict(obs_horizon=cfg.obs_horizon, action_horizon=cfg.action_horizon, act_steps=cfg.act_steps,
                    rate_hz=float(rate_hz), obs_fields=obs_fields, action_fields=action_fields,
                    normalizer=cfg.normalizer)
    if cfg.model == "mlp":
        return MLPPolicy(MLPPolicyConfig(obs_dim, act_dim, hidden_dims=list(cfg.hidden_dims), **contract))
    return DiffusionPolicy(DiffusionPolicyConfig(
        obs_dim, act_dim, num_train_timesteps=cfg.num_train_timesteps, ddim_steps=cfg.ddim_steps,
        backbone=cfg.backbone, dit=DiTConfig(width=cfg.dit_width, depth=cfg.dit_depth, heads=cfg.dit_heads),
        mlp=MLPDenoiserConfig(hidden_dims=list(cfg.hidden_dims)), **contract))


def dataset_rate_hz(cfg: PretrainConfig, meta: dict) -> float:
    """The policy's rate: the dataset's control rate; --rate-hz only where the dataset records none."""
    recorded = meta.get("control_rate_hz")
    if recorded is None and cfg.rate_hz is None:
        raise ValueError(f"dataset {cfg.data} records no control_rate_hz: pass --rate-hz (steps per second of "
                         "its actions), or re-record it with EpisodeWriter(control_rate_hz=...)")
    if recorded is not None and cfg.rate_hz is not None and float(recorded) != float(cfg.rate_hz):
        raise ValueError(f"--rate-hz {cfg.rate_hz} contradicts dataset {cfg.data}'s control_rate_hz {recorded}: "
                         "drop --rate-hz")
    return float(recorded if recorded is not None else cfg.rate_hz)


def eval_env_of(cfg: PretrainConfig, meta: dict) -> tuple[str | None, dict, str]:
    """(env, env_kwargs, where they came from) of the rollout evaluation: --env, else the env the
    dataset records (metadata info.env_id / info.env_kwargs), else none. Presets never set it."""
    if cfg.eval_episodes <= 0:
        return None, {}, "evaluation off"
    info = meta.get("info") or {}
    if cfg.env:
        return cfg.env, dict(cfg.env_kwargs or {}), "--env"
    if info.get("env_id"):
        kwargs = info.get("env_kwargs") or {} if cfg.env_kwargs is None else cfg.env_kwargs
        return info["env_id"], dict(kwargs), "recorded in the dataset's metadata.json"
    return None, {}, "no --env and none recorded in the dataset"


def cosine_with_warmup(warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def eval_result(rec: dict) -> dict:
    """The rollout evaluation inside a history record (its eval_* keys, prefix removed)."""
    return {k[5:]: v for k, v in rec.items() if k.startswith("eval_")}


def eval_postfix(rec: dict) -> dict:
    from ..evalstats import fmt
    res = eval_result(rec)
    if not res:
        return {}
    return ({"success": fmt(res["success_mean"])} if res.get("success_defined") else {}) | \
        {"ret": fmt(res["return_mean"])}


def check_normalizer_ranges(obs: np.ndarray, actions: np.ndarray, meta: dict, ratio: float, data: str) -> None:
    """Refuse a min-max fit that outlier frames would stretch (normalizer.range_outliers), naming the dimensions."""
    from refine_dp_planner.normalizer import range_outliers

    bad = [(what, names[d], full, core) for what, x, names in
           (("obs", obs, dim_names(meta.get("obs_fields"), obs.shape[-1])),
            ("action", actions, dim_names(meta.get("action_fields"), actions.shape[-1])))
           for d, full, core in range_outliers(x, ratio)]
    if bad:
        listed = "; ".join(f"{w} {n}: half-range {f:.3g} vs {c:.3g} over the 1-99 % of frames ({f / c:.0f}x)"
                           for w, n, f, c in bad[:6])
        raise ValueError(
            f"{data}: {len(bad)} dimension(s) have outlier frames that would squeeze the min-max normalizer ({listed}); "
            "the policy could not resolve the normal values. Find and drop the episodes: python -m "
            f"refine_dp_training.tasks.check_demos {data} --clean {data.rstrip('/')}_clean, then pretrain on the "
            "clean copy; or pass --normalizer-outlier-ratio none to fit anyway")


class Pretrainer:
    def __init__(self, cfg: PretrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        data = EpisodeDataset(cfg.data)
        self.meta = data.meta
        self.env_name, self.env_kwargs, env_source = eval_env_of(cfg, self.meta)
        if self.env_name:  # sizes first: a dataset of another task must not train for minutes, then crash
            from ..finetune.common import check_env_dims, make_vec_env
            env = make_vec_env(self.env_name, 1, self.env_kwargs)
            check_env_dims(env, data.obs_dim, data.act_dim, self.env_name, f"dataset {cfg.data}")
            env.close()
            print(f"pretrain: evaluating in {self.env_name}"
                  + (f" {json.dumps(self.env_kwargs)}" if self.env_kwargs else "") + f" ({env_source})", flush=True)
        train_ids, val_ids = data.split(cfg.val_fraction, seed=cfg.seed)
        train_eps = [data[i] for i in train_ids]
        self.split = {"train": train_ids, "val": val_ids}
        pad = cfg.max_action_pad
        self.train_set = WindowDataset(train_eps, cfg.obs_horizon, cfg.action_horizon, pad)
        self.val_set = WindowDataset([data[i] for i in val_ids], cfg.obs_horizon, cfg.action_horizon, pad) \
            if val_ids else None
        fields = lambda key: [(f["name"], f["size"]) for f in self.meta[key]]  # noqa: E731
        self.policy = build_policy(cfg, data.obs_dim, data.act_dim, fields("obs_fields"), fields("action_fields"),
                                   dataset_rate_hz(cfg, self.meta))
        self.run = RunDir(self.out, "step", digits=7, keep=max(1, cfg.keep_checkpoints), tensorboard=cfg.tensorboard)
        # Normalizers from the TRAINING episodes only (validation stays unseen).
        train_obs, train_act = np.concatenate([e["obs"] for e in train_eps]), np.concatenate([e["actions"] for e in train_eps])
        if cfg.normalizer == "min_max" and cfg.normalizer_outlier_ratio is not None:
            check_normalizer_ranges(train_obs, train_act, self.meta, cfg.normalizer_outlier_ratio, cfg.data)
        self.policy.fit_normalizers(train_obs, train_act)
        self.ema = EMA(self.policy, power=cfg.ema_power)
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, cosine_with_warmup(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
        self.batch_gen = torch.Generator().manual_seed(cfg.seed)
        self.step, self.wall_s = 0, 0.0
        self.history: list[dict] = []  # validation / evaluation records

    # ---- one step -------------------------------------------------------------------------------
    def batch(self, dataset: WindowDataset, size: int, generator: torch.Generator) -> dict:
        idx = torch.randint(len(dataset), (size,), generator=generator)
        return {"obs": dataset.obs[dataset.obs_idx[idx]], "action": dataset.actions[dataset.act_idx[idx]]}

    def train_step(self) -> float:
        self.policy.train()
        loss = self.policy.compute_loss(self.batch(self.train_set, self.cfg.batch_size, self.batch_gen))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.policy)
        self.step += 1
        return float(loss.item())

    @torch.no_grad()
    def validation_loss(self) -> float:
        if self.val_set is None:
            return float("nan")
        model = self.ema.averaged
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            gen = torch.Generator().manual_seed(12345)
            losses = [model.compute_loss(self.batch(self.val_set, self.cfg.batch_size, gen)).item()
                      for _ in range(self.cfg.val_batches)]
        return float(np.mean(losses))

    def rollout_eval(self) -> dict | None:
        cfg = self.cfg
        if not self.env_name:
            return None
        from ..finetune.common import evaluate, make_chunked_env

        if getattr(self, "_eval_env", None) is None:
            self._eval_env = make_chunked_env(self.env_name, cfg.eval_episodes, cfg.obs_horizon, cfg.act_steps,
                                              env_kwargs=self.env_kwargs)
        policy = self.ema.averaged.eval()
        if cfg.model == "mlp":
            act = lambda o: policy.sample(torch.as_tensor(o, dtype=torch.float32)).numpy()  # noqa: E731
        else:
            act = lambda o: policy.sample(torch.as_tensor(o, dtype=torch.float32), eta=0.0).numpy()  # noqa: E731
        return evaluate(act, self._eval_env, cfg.eval_seed)

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": FORMAT, "config": self.cfg.to_dict(), "step": self.step, "wall_s": self.wall_s,
                "model": self.policy.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(), "batch_rng": self.batch_gen.get_state(), "history": self.history,
                "split": self.split, "git_revision": git_revision()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != FORMAT:
            raise ValueError(f"not a pretraining state checkpoint ({FORMAT})")
        mine, theirs = self.cfg.to_dict(), state["config"]
        diff = {k: (theirs.get(k), v) for k, v in mine.items()
                if theirs.get(k) != v and k not in ("steps", "progress", "tensorboard", "eval_every", "val_every",
                                                     "normalizer_outlier_ratio")}  # a fit-time check only
        if diff:
            raise ValueError(f"--resume with another config than the run's: {diff} (saved, now)")
        self.policy.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.batch_gen.set_state(state["batch_rng"])
        self.step, self.wall_s, self.history = state["step"], state["wall_s"], list(state["history"])

    def save(self) -> Path:
        path = self.run.save_checkpoint(self.state_dict(), self.step)
        save_policy_file(self.out / POLICY_FILE, self.policy, self.ema, self.policy_extra())
        return path

    def policy_extra(self) -> dict:
        return {"env": self.env_name, "env_kwargs": self.env_kwargs, "dataset": str(self.cfg.data), "step": self.step,
                "pretrain_config": self.cfg.to_dict()}

    def resume(self) -> None:
        self.load_state_dict(self.run.load_latest()[0])

    # ---- the loop -------------------------------------------------------------------------------
    def _scalar(self, name: str, value: float) -> None:
        self.run.scalars({name: value}, self.step)

    def record(self, with_eval: bool) -> dict:
        rec = {"step": self.step, "wall_s": round(self.wall_s, 2), "val_loss": self.validation_loss()}
        self._scalar("val/loss", rec["val_loss"])
        if with_eval:
            res = self.rollout_eval()
            if res is not None:
                rec |= {f"eval_{k}": v for k, v in res.items()}
                self._scalar("eval/return_mean", res["return_mean"])
                if res["success_defined"]:
                    self._scalar("eval/success_mean", res["success_mean"])
        self.history.append(rec)
        return rec

    def train(self, steps: int | None = None) -> dict:
        """Train until `steps` (default cfg.steps) gradient steps in total; returns the summary."""
        cfg, target = self.cfg, self.cfg.steps if steps is None else steps
        self.run.write_json("config.json", cfg.to_dict())
        bar = None
        if cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=target, initial=self.step, desc="pretrain", unit="step", dynamic_ncols=True)
        losses = []
        try:
            while self.step < target:
                t0 = time.perf_counter()
                losses.append(self.train_step())
                self.wall_s += time.perf_counter() - t0
                if self.step % 100 == 0:
                    self._scalar("train/loss", float(np.mean(losses[-100:])))
                    self._scalar("train/lr", self.scheduler.get_last_lr()[0])
                eval_now = cfg.eval_every > 0 and self.step % cfg.eval_every == 0
                if (cfg.val_every > 0 and self.step % cfg.val_every == 0) or eval_now:
                    rec = self.record(eval_now)
                    if bar is not None:
                        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", val=f"{rec['val_loss']:.4f}",
                                        **eval_postfix(rec))
                if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0:
                    self.save()
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        if not self.history or self.history[-1]["step"] != self.step or \
                (self.env_name and "eval_return_mean" not in self.history[-1]):
            self.record(with_eval=True)
        self.save()
        summary = {"step": self.step, "train_wall_s": self.wall_s, "final": self.history[-1],
                   "train_loss_last100": float(np.mean(losses[-100:])) if losses else None,
                   "history": self.history, "policy": str(self.out / POLICY_FILE),
                   "dataset": {"path": cfg.data, "episodes": self.meta["num_episodes"],
                               "train_episodes": len(self.split["train"]), "val_episodes": len(self.split["val"]),
                               "train_windows": len(self.train_set), "info": self.meta.get("info", {})},
                   "parameters": sum(p.numel() for p in self.policy.parameters()),
                   "git_revision": git_revision(), "config": cfg.to_dict()}
        self.run.write_json("summary.json", summary)
        self.run.close()
        return summary
