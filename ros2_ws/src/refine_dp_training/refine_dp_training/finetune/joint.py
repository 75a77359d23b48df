"""REFINE-DP joint optimisation (Sec. III-D, Alg. 1): DPPO on the planner, PPO on the controller, in turn.

Each iteration:
 1. one DPPO iteration of the diffusion planner (dppo.Method) in a T1 task env (t1-pickup, ...), the
    controller in the loop. A CommandRecorder between the chunked env and the TaskEnv keeps every command
    the planner issued (info["executed_action"]: after the planner node's clamps, i.e. what the controller
    was sent) in a lowlevel.replay.CommandBuffer, one trajectory per episode.
 2. for each part being trained (`controller_parts`: legs, arms or both): `controller_iterations` PPO
    iterations (rl.PPORunner, lowlevel.train.make_runner) in that part's low-level training env
    (lowlevel.env.T1LowLevelEnv) on its own tracking and smoothness rewards, its commands replayed from the
    buffer (lowlevel.replay.CommandReplay: each episode plays one recorded trajectory, 0.1 s per row) instead
    of the random ones it was trained under. The legs env's arms are driven by the current arm policy
    tracking the replayed hand poses; the arms env's legs by the current leg policy walking the replayed
    base velocity.
 3. the part is exported (lowlevel.train.export_policy: ONNX + metadata, as train-lowlevel writes them) and
    swapped into the LowLevelController of the task envs (training and evaluation) and of the other part's
    low-level env, so the next planner rollouts and evaluations run the updated controller.

Where the controller's PPO state starts (`legs_init`, `arms_init`): "" = the policy file the task env runs
(default the shipped models/PART.onnx): its actor and normalizer (lowlevel/warm_start.py), a fresh critic
trained alone for `controller_critic_warmup` updates, the env and PPO config of PART_train_config.json beside
it (the shipped controller has no training checkpoint; its runs are not in the repository); or a
train-lowlevel checkpoint model_*.pt or run folder (e.g. lowlevel/resume/RUN): policy, critic, normalizer and
optimizer, its run's config.json.

Outputs besides the planner's (common.run_finetune): OUT/controller/PART/ is a train-lowlevel run of each
trained part (config.json, checkpoints/model_*.pt, summary.json, policy/PART.onnx + PART.json), so
    refine-dp ship controller --legs OUT/controller/legs --arms OUT/controller/arms
ships it like any other, and `--env-kwargs '{"legs": "OUT/controller/legs/policy/legs.onnx"}'` runs a task
env (eval, another fine-tuning) with it. The planner's policy.pt was fine-tuned with that controller.

Resume: the planner's learner state, the controller's PPO state (policy, critic, optimizer, adaptive lr,
counters) and the command buffer are saved; the TaskEnv cannot export its physics state, so a resumed run
starts fresh episodes (in the task env and the low-level envs): it continues correctly, not bit for bit.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..lowlevel.replay import CommandBuffer, CommandReplay
from ..rl.checkpoint import rng_state, set_rng_state
from . import dppo
from .common import restore_env

PARTS = {"legs": ("legs",), "arms": ("arms",), "both": ("legs", "arms")}


@dataclass
class Config(dppo.Config):
    controller_parts: str = "both"          # "legs" | "arms" | "both": the controller parts that learn
    controller_iterations: int = 5          # PPO iterations of each part per planner iteration
    controller_num_envs: int = 32           # low-level envs per part
    controller_steps_per_env: int = 24      # control steps (50 Hz) per env per PPO iteration
    controller_lr: float = 1e-4             # PPO's starting learning rate (then adaptive to the KL, as trained)
    controller_critic_warmup: int = 10      # PPO updates that train only the critic after a warm start from .onnx
    controller_nthread: int = 1             # MuJoCo threads of each low-level env
    legs_init: str = ""                     # "": the legs file the task env runs (+ legs_train_config.json beside
                                            # it); else a train-lowlevel checkpoint model_*.pt or run folder
    arms_init: str = ""
    command_buffer_steps: int = 20_000      # planner steps of issued commands kept (oldest episodes dropped)

    def __post_init__(self):
        if self.controller_parts not in PARTS:
            raise ValueError(f"controller_parts must be one of {sorted(PARTS)}, got {self.controller_parts!r}")
        if self.controller_iterations < 1 or self.controller_num_envs < 1 or self.controller_steps_per_env < 1:
            raise ValueError("controller_iterations, controller_num_envs and controller_steps_per_env must be >= 1")


class CommandRecorder:
    """The task env, seen through: every step's executed planner commands go into `buffer` (one trajectory per
    episode; a reset closes the running ones). Everything else is the task env's."""

    def __init__(self, env, buffer: CommandBuffer):
        self.env, self.buffer = env, buffer

    def __getattr__(self, name):
        if name == "env":  # not yet set (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i in range(self.env.num_envs):
            self.buffer.finish(i)
        return self.env.reset(seed)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        obs, reward, terminated, truncated, info = self.env.step(actions, active)
        self.buffer.record(info["executed_action"], active, terminated | truncated)
        return obs, reward, terminated, truncated, info


def controller_source(part: str, init: str, running: Path) -> tuple[Path, dict]:
    """(the file the part's PPO state starts from: .onnx or model_*.pt, its train-lowlevel config {"env", "ppo"})."""
    from ..lowlevel.train import latest_checkpoint

    if not init:
        config = running.with_name(f"{part}_train_config.json")
        if not config.is_file():
            raise FileNotFoundError(f"{running}: no {config.name} beside it (the config it was trained under), so "
                                    f"the {part} cannot be trained further from it; pass --{part}-init with a "
                                    "train-lowlevel checkpoint (model_*.pt) or run folder")
        return running, json.loads(config.read_text())
    path = Path(init)
    if path.is_dir():
        ckpt = latest_checkpoint(path)
        if ckpt is None:
            raise FileNotFoundError(f"--{part}-init {init}: no checkpoints/model_*.pt in it")
        path = ckpt
    config = path.parent.parent / "config.json"
    if path.suffix != ".pt" or not path.is_file() or not config.is_file():
        raise FileNotFoundError(f"--{part}-init {init}: expected a train-lowlevel run folder or its "
                                "RUN/checkpoints/model_*.pt (with RUN/config.json)")
    return path, json.loads(config.read_text())


def swap_policy(controller, part: str, path: Path) -> None:
    """Run the exported `part` policy at `path` in LowLevelController `controller` from its next step on (its
    per-env memory - last actions, reference segments, the arm filter - carries over). The legs must keep the
    contract the footstep planner was built from."""
    from loco_manip_controller import contract
    from loco_manip_controller.policy_runtime import OnnxPolicy, PolicyMetadataError

    new = OnnxPolicy(path, part, controller.table)
    old = getattr(controller, part)
    if part == "legs" and old is not None:
        same = (contract.footstep_config(new.meta, str(path)) == controller.footstep_config
                and new.action_spec.base == old.action_spec.base and new.variant == old.variant
                and (new.action_spec.base != "reference"
                     or contract.reference_config(new.meta, str(path)) == contract.reference_config(old.meta)))
        if not same:
            raise PolicyMetadataError(f"{path}: the updated legs were trained under another contract (footstep "
                                      f"planner, reference motion or variant) than {old.path}, which the running "
                                      "controller was built from")
    setattr(controller, part, new)


class ControllerPart:
    """One part of the controller (legs or arms) under PPO in its low-level env, on replayed planner commands;
    its run folder `out` is a train-lowlevel run."""

    def __init__(self, part: str, cfg: Config, files: dict[str, Path], buffer: CommandBuffer, hold_steps: int,
                 control_hz: float, out: Path):
        from ..lowlevel.config import EnvConfig
        from ..lowlevel.env import T1LowLevelEnv
        from ..lowlevel.train import make_runner
        from ..rl import PPOTrainConfig

        self.part, self.out = part, out
        self.init_from, saved = controller_source(part, getattr(cfg, f"{part}_init"), files[part])
        env_cfg = EnvConfig.from_dict(saved["env"])
        if env_cfg.task != part:
            raise ValueError(f"{self.init_from}: its config is a {env_cfg.task!r} run, not a {part} one")
        if abs(env_cfg.control_hz - control_hz) > 1e-9:
            raise ValueError(f"{self.init_from}: trained at {env_cfg.control_hz:g} Hz, the task env's controller "
                             f"runs at {control_hz:g} Hz")
        env_cfg.num_envs, env_cfg.nthread = cfg.controller_num_envs, cfg.controller_nthread
        if part == "legs":  # the arms track the replayed hand poses with the arm policy in use, in every env
            env_cfg.arm_policy_onnx, env_cfg.arm_policy_fraction = str(files["arms"]), 1.0
        else:  # the legs walk the replayed velocity with the leg policy in use
            env_cfg.leg_policy_onnx = str(files["legs"])
        train_cfg = PPOTrainConfig.from_dict(saved["ppo"])
        rc = train_cfg.runner
        rc.num_steps_per_env, rc.seed, rc.eval_interval, rc.save_interval = cfg.controller_steps_per_env, cfg.seed, 0, 0
        rc.progress, rc.tensorboard, rc.torch_threads = False, False, max(1, cfg.torch_threads)
        train_cfg.ppo.learning_rate = cfg.controller_lr
        warm_from_onnx = self.init_from.suffix == ".onnx"
        train_cfg.ppo.critic_warmup_updates = cfg.controller_critic_warmup if warm_from_onnx else 0
        self.env_cfg, self.train_cfg = env_cfg, train_cfg
        max_rows = math.ceil(env_cfg.episode_s * control_hz / hold_steps)
        replay = CommandReplay(env_cfg.num_envs, buffer, max_rows, hold_steps)
        rng = rng_state()  # the runner seeds the global RNGs: leave the planner's as they were
        self.env = T1LowLevelEnv(env_cfg, seed=cfg.seed, commands=replay)
        self.runner = make_runner(self.env, train_cfg, log_dir=out)
        set_rng_state(rng)

    @property
    def policy_path(self) -> Path:
        return self.out / "policy" / f"{self.part}.onnx"

    def start(self) -> str:
        """A new run: the PPO state from `init_from` (lowlevel.train.warm_start), config.json written."""
        from ..lowlevel.train import warm_start

        message = warm_start(self.runner, self.init_from, self.part, self.out)
        self.write_config()
        return message

    def write_config(self) -> None:
        config = {"env": self.env_cfg.to_dict(), "ppo": self.train_cfg.to_dict(), "init_from": str(self.init_from)}
        (self.out / "config.json").write_text(json.dumps(config, indent=2))

    def use_policy(self, part: str, path: Path) -> None:
        """The other part's policy in this env is now `path`."""
        if part == "arms" and self.part == "legs":
            swap_policy(self.env.arm_policy, "arms", path)
            self.env_cfg.arm_policy_onnx = str(path)
        elif part == "legs" and self.part == "arms":
            swap_policy(self.env.leg_policy, "legs", path)
            self.env_cfg.leg_policy_onnx = str(path)

    def train(self, iterations: int) -> dict:
        """`iterations` PPO iterations on the buffer's commands, then checkpoint + export; returns the last stats."""
        from ..lowlevel.train import prune_checkpoints

        if self.env.commands.idle_rows.any():  # episodes started before the buffer held commands: restart them
            self.runner.obs = torch.as_tensor(self.env.reset(), dtype=torch.float32)
        history = self.runner.learn(iterations)
        prune_checkpoints(self.out, keep_last=3, keep_every=10**12)
        self.export()
        last = history[-1] if history else {}
        return {k: float(v) for k, v in last.items()
                if isinstance(v, (int, float)) and k not in ("iteration", "wall_s")}

    def export(self) -> Path:
        from ..lowlevel.train import export_policy

        self.write_config()
        return export_policy(self.runner, self.env_cfg, self.out, self.part)

    def state_dict(self) -> dict:
        r = self.runner
        return {"alg": r.alg.state_dict(), "iteration": r.iteration, "env_steps": r.env_steps, "wall_s": r.wall_s}

    def load_state_dict(self, state: dict) -> None:
        r = self.runner
        r.alg.load_state_dict(state["alg"])
        r.iteration, r.env_steps, r.wall_s = int(state["iteration"]), int(state["env_steps"]), float(state["wall_s"])
        r.obs = torch.as_tensor(self.env.reset(), dtype=torch.float32)


class Method(dppo.Method):
    """DPPO + controller PPO in turn (module docstring). Interface: finetune.common.FinetuneMethod."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        task_env = self.env.env
        if not hasattr(task_env, "controller") or not hasattr(task_env, "control_steps"):
            raise ValueError(f"--method joint trains the controller in the loop of a T1 task env (--env t1-pickup, "
                             f"...); {cfg.env} ({type(task_env).__name__}) has none")
        self.buffer = CommandBuffer(cfg.num_envs, cfg.command_buffer_steps)
        self.env.env = CommandRecorder(task_env, self.buffer)
        self.task_envs = [task_env]
        controller = task_env.controller
        files = {part: Path(getattr(controller, part).path) for part in ("legs", "arms")}
        out = Path(cfg.out) / "controller"
        self.parts = {part: ControllerPart(part, cfg, files, self.buffer, task_env.control_steps,
                                           controller.control_hz, out / part) for part in PARTS[cfg.controller_parts]}
        self.updated: dict[str, Path] = {}  # part -> the exported file the controllers run now
        for p in self.parts.values():  # (a resumed run then loads its own PPO state: load_state_dict)
            print(f"joint: {p.part}: {p.start()}", flush=True)

    def attach_eval_env(self, env) -> None:
        self.task_envs.append(env.env)
        for part, path in self.updated.items():
            swap_policy(env.env.controller, part, path)

    def _use(self, part: str, path: Path) -> None:
        """Every controller that runs `part` runs `path` from now on."""
        for env in self.task_envs:
            swap_policy(env.controller, part, path)
        for other in self.parts.values():
            other.use_policy(part, path)
        self.updated[part] = path

    def train_iteration(self, max_env_steps: int | None = None) -> dict:
        t0 = time.perf_counter()
        stats = super().train_iteration(max_env_steps)
        t_dp = time.perf_counter() - t0
        for part, learner in self.parts.items():
            part_stats = learner.train(self.cfg.controller_iterations)
            self._use(part, learner.policy_path)
            stats |= {f"controller_{part}/{k}": v for k, v in part_stats.items()}
        dt = time.perf_counter() - t0
        return stats | {"command_buffer_rows": len(self.buffer), "planner_fraction": t_dp / dt}

    def state_dict(self) -> dict:
        return {"dp": self.learner_state(), "buffer": self.buffer.state_dict(),
                "controller": {part: p.state_dict() for part, p in self.parts.items()}}

    def load_state_dict(self, state: dict) -> None:
        if set(state["controller"]) != set(self.parts):
            raise ValueError(f"the checkpoint trains the controller parts {sorted(state['controller'])}, this run "
                             f"{sorted(self.parts)}: resume with the run's saved config")
        self.load_learner_state(state["dp"])
        restore_env(self, {"env": None, "env_steps": state["dp"]["env_steps"]})  # the task env has no state
        self.buffer.load_state_dict(state["buffer"])
        for i in range(self.cfg.num_envs):  # the episodes those commands came from were cut
            self.buffer.finish(i)
        for part, p in self.parts.items():
            p.load_state_dict(state["controller"][part])
            self._use(part, p.export())
