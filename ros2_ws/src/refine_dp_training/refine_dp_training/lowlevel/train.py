"""`refine-dp train-lowlevel`: PPO training of the T1 leg (footstep) or arm (hand-pose) policy.

    python -m refine_dp_training.lowlevel.train --part legs --out runs/lowlevel/legs [--resume]
        [--num-envs N] [--iterations K] [--export-only]

Writes under --out: config.json (env + PPO config, also inside every checkpoint), checkpoints/
(atomic, resumable), tb/ (tensorboard: PPO stats, eval, per-term reward means), eval.jsonl,
summary.json, and at the end (or with --export-only) policy/<part>.onnx + <part>.json through
loco_manip_controller.policy_runtime.export_onnx - the file the controller node loads.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import numpy as np

from . import terms
from .config import EnvConfig


def ppo_config(num_envs: int, save_interval: int, eval_interval: int, seed: int, steps_per_env: int = 24):
    from ..rl import ActorCriticConfig, PPOConfig, PPOTrainConfig, RunnerConfig
    return PPOTrainConfig(
        runner=RunnerConfig(num_steps_per_env=steps_per_env, save_interval=save_interval, eval_interval=eval_interval,
                            eval_episodes=8, eval_max_steps=1000, seed=seed, torch_threads=1),
        # returns reach the hundreds: no clipped value loss (see ppo.py); KL-adaptive lr (rsl_rl)
        ppo=PPOConfig(num_epochs=5, num_minibatches=4, gamma=0.99, lam=0.95, learning_rate=1e-3,
                      entropy_coef=0.003, use_clipped_value_loss=False, desired_kl=0.01),
        policy=ActorCriticConfig(actor_hidden=(256, 128, 128), critic_hidden=(256, 256, 128), activation="elu",
                                 init_log_std=-1.0),
    )


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("model_*.pt"))
    return ckpts[-1] if ckpts else None


def export_policy(runner, env_cfg: EnvConfig, out: Path, part: str) -> Path:
    from loco_manip_controller.policy_runtime import build_metadata, export_onnx

    from ..rl.checkpoint import git_revision
    env = runner.env
    meta = build_metadata(part, env.table, env_cfg.physics_dt, env_cfg.decimation, kp=env.kp, kd=env.kd,
                          variant=env_cfg.policy_variant, policy_contract=env_cfg.policy_contract(),
                          action_spec=env.act_spec,
                          extra={"iteration": runner.iteration, "env_steps": runner.env_steps,
                                 "git_revision": git_revision(), "last_eval": getattr(runner, "last_eval", None)})
    policy = runner.policy
    policy.eval()
    path = export_onnx(policy.actor, policy.normalizer, env.obs_dim, out / "policy" / f"{part}.onnx", meta)
    policy.train()
    return path


def make_runner(env, train_cfg, log_dir: Path | None = None, eval_env=None):
    """The PPO runner of a low-level part: rl.PPORunner, with the left-right mirror loss when the config asks
    for it (legs only)."""
    from ..rl import PPORunner
    runner = PPORunner(env, train_cfg, log_dir=log_dir, eval_env=eval_env)
    if train_cfg.ppo.symmetry_coef > 0.0:
        if env.cfg.task != "legs":
            raise ValueError("--symmetry is defined for the legs policy")
        from .symmetry import Mirror
        runner.alg.mirror = Mirror(env.obs_spec, env.act_spec, runner.policy.normalizer)
    return runner


def warm_start(runner, init_from: str | Path, part: str, out: Path) -> str:
    """--init-from: load `init_from` into a new run's runner and keep its lineage under `out`; returns what
    was done, in words. An exported policy (.onnx, e.g. the shipped legs): its actor and normalizer
    (warm_start.py; critic and optimizer stay fresh); a train-lowlevel checkpoint (.pt): policy, critic,
    normalizer and optimizer (same part and network; ValueError otherwise), the adaptive lr restarting at
    the run's configured learning rate."""
    import shutil

    init_from = Path(init_from)
    out.mkdir(parents=True, exist_ok=True)
    if init_from.suffix == ".onnx":
        from .warm_start import load_actor_from_onnx
        meta = load_actor_from_onnx(runner.policy, init_from, runner.env.obs_spec)
        shutil.copy2(init_from, out / "init_from.onnx")
        beside = init_from.with_name("lineage.json")  # a shipped file: its lineage goes on with the run
        if beside.is_file():
            (out / "init_from_lineage.json").write_text(json.dumps(json.loads(beside.read_text()).get(part),
                                                                   indent=2))
        return (f"warm start from {init_from} (actor + normalizer; its iteration {meta.get('iteration')}, "
                f"{meta.get('env_steps')} env steps); critic and optimizer fresh")
    import torch
    warm = torch.load(init_from, map_location="cpu", weights_only=False)
    # the source run prunes its old checkpoints: keep this one beside the new run for the lineage
    shutil.copy2(init_from, out / "init_from.pt")
    if warm["config"]["policy"] != runner.cfg.to_dict()["policy"] or warm["obs_dim"] != runner.env.obs_dim:
        raise ValueError(f"--init-from {init_from} has another network or observation size")
    runner.alg.load_state_dict(warm["alg"])
    runner.alg.learning_rate = runner.cfg.ppo.learning_rate  # the adaptive lr restarts for the new task
    for group in runner.alg.optimizer.param_groups:
        group["lr"] = runner.alg.learning_rate
    return f"warm start from {init_from} (its iteration {warm['iteration']}, {warm['env_steps']} env steps)"


def prune_checkpoints(out: Path, keep_last: int = 3, keep_every: int = 1000) -> None:
    """Delete old checkpoints except the newest `keep_last` and every `keep_every`-th iteration."""
    ckpts = sorted((out / "checkpoints").glob("model_*.pt"))
    for path in ckpts[:-keep_last]:
        iteration = int(path.stem.split("_")[1])
        if iteration % keep_every:
            path.unlink(missing_ok=True)


class _TermLogger:
    """Wraps the runner's rollout to log the mean of every reward term per iteration (tensorboard)
    and to prune old checkpoints (a 20 000-iteration run would otherwise keep 400 of them)."""

    def __init__(self, runner, keep_every: int = 1000):
        self.runner, self.keep_every = runner, keep_every
        self.inner = runner.rollout

    def __call__(self):
        self.inner()
        if self.runner.log_dir is not None:
            prune_checkpoints(self.runner.log_dir, keep_every=self.keep_every)
        writer = self.runner.writer
        if writer is not None:
            for k, v in self.runner.env.drain_term_means().items():
                writer.add_scalar(f"reward_terms/{k}", v, self.runner.env_steps)


def apply_env_overrides(cfg: EnvConfig, assignments: list[str]) -> EnvConfig:
    """EnvConfig with `key.sub=JSON` assignments applied; unknown keys raise KeyError naming them."""
    d = cfg.to_dict()
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node, parts = d, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise KeyError(f"{key!r}: {part!r} is not a section of EnvConfig")
            node = node[part]
        if parts[-1] not in node and not (parts[0] == "rewards" and len(parts) == 2):
            raise KeyError(f"{key!r}: no such field; fields here: {sorted(node)}")
        node[parts[-1]] = value
    out = EnvConfig.from_dict(d)
    terms.check_reward_names(out.rewards)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp train-lowlevel", description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("legs", "arms"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint under --out")
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--save-interval", type=int, default=100, help="iterations between checkpoints")
    p.add_argument("--keep-every", type=int, default=1000,
                   help="besides the newest 3, keep the checkpoints of every N-th iteration (the rest are deleted)")
    p.add_argument("--eval-interval", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--physics-dt", type=float, default=0.005)
    p.add_argument("--decimation", type=int, default=4)
    p.add_argument("--nthread", type=int, default=2)
    p.add_argument("--leg-policy", default="", help="arms: exported legs .onnx that balances (default: PD stand)")
    p.add_argument("--export-only", action="store_true", help="export the latest checkpoint to ONNX and exit")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="with --export-only: export this checkpoint of the run instead of the latest")
    p.add_argument("--steps-per-env", type=int, default=24,
                   help="rollout length per iteration; batch = num_envs x this (128 envs need more than 24: "
                        "3k-sample gradients are so noisy that the KL limit is spent on noise)")
    p.add_argument("--lr", type=float, default=None, help="new runs: PPO's starting learning rate (default 1e-3; "
                   "adaptive to the KL afterwards)")
    p.add_argument("--critic-warmup", type=int, default=0,
                   help="new runs: PPO updates that train only the critic first (use with --init-from a clone)")
    p.add_argument("--init-from", default="", help="warm start: policy, critic, normalizer and optimizer of "
                   "this checkpoint (same part and network), fresh counters and the current task config; or an "
                   "exported policy (.onnx, e.g. the shipped legs): its actor and normalizer only (lowlevel/"
                   "warm_start.py; new observation fields enter with zero weights), so use --critic-warmup")
    p.add_argument("--symmetry", type=float, default=None,
                   help="new runs (legs): weight of the left-right mirror loss (lowlevel/symmetry.py; 0: off)")
    p.add_argument("--desired-kl", type=float, default=None, help="new runs: the KL target of the adaptive lr")
    p.add_argument("--init-log-std", type=float, default=None,
                   help="new runs: the policy's initial log-std (default -1.0; a warm start from .onnx keeps this)")
    p.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE",
                   help="new runs: override one EnvConfig field, dotted for nested ones, value as JSON "
                        "(e.g. commands.max_vx=0.3, rewards.base_velocity=5); repeatable; recorded in config.json")
    args = p.parse_args(argv)

    from ..rl import PPOTrainConfig
    from .env import T1LowLevelEnv

    if args.checkpoint is not None and not args.export_only:
        print("error: --checkpoint goes with --export-only (training resumes from the latest)", file=sys.stderr)
        return 2
    if args.checkpoint is not None and not args.checkpoint.is_file():
        print(f"error: --checkpoint {args.checkpoint}: no such file", file=sys.stderr)
        return 2
    out = args.out
    cfg_path = out / "config.json"
    if (args.resume or args.export_only) and cfg_path.is_file():
        saved = json.loads(cfg_path.read_text())
        env_cfg = EnvConfig.from_dict(saved["env"])
        train_cfg = PPOTrainConfig.from_dict(saved["ppo"])
        if env_cfg.task != args.part:
            print(f"error: {out} holds a {env_cfg.task!r} run, not {args.part!r}", file=sys.stderr)
            return 2
    else:
        if (args.resume or args.export_only):
            print(f"error: --resume/--export-only needs {cfg_path} (no run under {out})", file=sys.stderr)
            return 2
        env_cfg = EnvConfig(task=args.part, num_envs=args.num_envs, physics_dt=args.physics_dt,
                            decimation=args.decimation, nthread=args.nthread, leg_policy_onnx=args.leg_policy)
        try:
            env_cfg = apply_env_overrides(env_cfg, args.env_set)
        except (KeyError, ValueError) as e:
            print(f"error: --env-set: {e}", file=sys.stderr)
            return 2
        train_cfg = ppo_config(args.num_envs, args.save_interval, args.eval_interval, args.seed, args.steps_per_env)
        train_cfg.ppo.critic_warmup_updates = args.critic_warmup
        if args.init_log_std is not None:
            train_cfg.policy.init_log_std = args.init_log_std
        if args.symmetry is not None:
            train_cfg.ppo.symmetry_coef = args.symmetry
        if args.desired_kl is not None:
            train_cfg.ppo.desired_kl = args.desired_kl
        if args.lr is not None:
            train_cfg.ppo.learning_rate = args.lr
        out.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(json.dumps({"env": env_cfg.to_dict(), "ppo": train_cfg.to_dict(),
                                        "init_from": args.init_from or None}, indent=2))
        (out / "command.txt").write_text("refine-dp train-lowlevel " + " ".join(
            argv if argv is not None else sys.argv[1:]) + "\n")

    ckpt = args.checkpoint or (latest_checkpoint(out) if (args.resume or args.export_only) else None)
    if args.export_only and ckpt is None:  # never export an untrained policy as if it were the run's
        print(f"error: --export-only: no checkpoint under {out / 'checkpoints'} (model_*.pt); "
              f"pass --checkpoint FILE", file=sys.stderr)
        return 2
    env = T1LowLevelEnv(env_cfg, seed=train_cfg.runner.seed)
    eval_cfg = EnvConfig.from_dict(env_cfg.to_dict())
    eval_cfg.num_envs, eval_cfg.obs_noise_scale = 8, 0.0
    eval_env = T1LowLevelEnv(eval_cfg, seed=10_000) if train_cfg.runner.eval_interval > 0 else None
    try:
        runner = make_runner(env, train_cfg, log_dir=out, eval_env=eval_env)
        if ckpt is not None:
            runner.load(ckpt)
            print(f"resumed from {ckpt} (iteration {runner.iteration}, {runner.env_steps} env steps)")
        elif args.init_from:
            print(warm_start(runner, args.init_from, args.part, out))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.export_only:
        path = export_policy(runner, env_cfg, out, args.part)
        print(f"exported {path}")
        return 0
    runner.rollout = _TermLogger(runner, args.keep_every)

    def _stop(signum, frame):  # SIGTERM: leave through `finally` so the last checkpoint is written
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    remaining = max(0, args.iterations - runner.iteration)
    try:
        runner.learn(remaining)
    except KeyboardInterrupt:
        print("interrupted: saving a checkpoint", file=sys.stderr)
        runner.save(runner.checkpoint_path(runner.iteration))
    path = export_policy(runner, env_cfg, out, args.part)
    print(f"exported {path}; iteration {runner.iteration}, {runner.env_steps} env steps")
    env.close()
    if eval_env is not None:
        eval_env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
