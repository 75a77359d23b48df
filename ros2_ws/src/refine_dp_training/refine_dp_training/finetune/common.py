"""What every fine-tuning method shares: config base, pretrained loading, envs, evaluation, logging, resume.

A method (dppo.py, mlp_ft.py, residual.py, dsrl.py, ppo_gaussian.py) is a class with

    env_steps: int                       training ENVIRONMENT steps so far (never chunks; evals excluded)
    iteration: int                       training iterations so far
    obs_horizon, act_steps: int          of the chunked env it acts in (the eval env is built alike)
    train_iteration(max_env_steps)       collect + update once, collecting at most about max_env_steps env
                  -> dict                steps (whole chunk steps of all envs: the budget is met to within
                                         num_envs x act_steps); returns scalars to log
    act_deterministic(obs_hist) -> chunk evaluation actions: obs [N, To, Do] -> chunk [N, Ta, Da], numpy
    deployable() -> Deployable           act_deterministic as one torch module (refine_dp_planner.deployable):
                                         written as policy.pt, which `refine-dp export planner` takes
    attach_eval_env(env)  (optional)     called with the evaluation env before anything runs (joint.py puts
                                         its updated controller into it)
    state_dict() / load_state_dict(d)    EVERYTHING needed to continue bit for bit (weights, optimizers,
                                         counters, scalers, the env through env_checkpoint/restore_env: an env
                                         that cannot export its state resumes with fresh episodes)

and `run_finetune(method, cfg)` drives it: budget in env steps, deterministic evaluation every
`eval_every_env_steps` (and at 0 and at the end), atomic checkpoints every `checkpoint_every`
iterations, exact resume from the latest one, curve.csv / curve.jsonl (return vs env steps vs
wall-clock), tensorboard scalars, summary.json and policy.pt (the deployable planner, rewritten at
every checkpoint) under `cfg.out` (one rundir.RunDir, as the pretrainer and the PPO runner).

Evaluation is unbiased and reproducible: `eval_episodes` envs, seeded with `eval_seed` at every
evaluation, each contributing its FIRST episode (taking the first N finished episodes of fewer envs
would over-count short ones, i.e. falls). It uses its own env and its own torch.Generator, so it
never touches the training RNG or env state, and a resumed run evaluates exactly like an unbroken one.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from ..envs.chunked import ChunkedVecEnv
from ..envs.vec_env import VecEnv
from ..pretrain.artifacts import POLICY_FILE, Pretrained, load_policy_file  # noqa: F401  (Pretrained re-exported)
from ..rl.checkpoint import git_revision, rng_state, set_rng_state
from ..rundir import CurveLogger, RunDir

CHECKPOINT_FORMAT = "refine_dp_training.finetune/1"


# ---- config -------------------------------------------------------------------------------------
@dataclass
class FinetuneConfig:
    """Fields every method has; a method subclasses this and adds its own (all with defaults)."""

    pretrained: str = ""                 # policy.pt of `refine-dp pretrain` (or its output folder)
    env: str | None = None               # ENV_FACTORIES name, gymnasium id or "your.module:Id-v0"; None: the
                                         # env the pretrained policy records (its pretraining's)
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments of the env (JSON on the command line)
    out: str = "runs/finetune"
    seed: int = 0
    num_envs: int = 8
    budget_env_steps: int = 500_000      # training env steps (executed actions over all envs)
    act_steps: int | None = None         # actions executed per chunk; None: as pretrained
    eval_every_env_steps: int = 50_000   # 0: evaluate only at the start and the end
    eval_episodes: int = 10
    eval_seed: int = 10_000
    checkpoint_every: int = 5            # iterations
    keep_checkpoints: int = 3
    torch_threads: int = 1               # 2 threads on a shared 2-core VM are far slower (contention)
    tensorboard: bool = True
    progress: bool = True
    # OOD curriculum (REFINE-DP Sec. IV; envs with set_start_range: the T1 tasks): train and evaluate at a
    # start level (0 = the pre-training range of radial distance, polar angle and heading, 1 = the OOD
    # range), raised by curriculum_step whenever an evaluation's success reaches curriculum_threshold
    curriculum: bool = False
    curriculum_start: float = 0.0
    curriculum_step: float = 0.25
    curriculum_threshold: float = 0.8

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- pretrained policies ------------------------------------------------------------------------
def load_pretrained(path: str | Path, use_ema: bool = True) -> Pretrained:
    """Load `refine-dp pretrain`'s policy.pt (or the folder holding it); EMA weights by default."""
    return load_policy_file(path, use_ema=use_ema)


# ---- environments -------------------------------------------------------------------------------
def _toy(cls_name: str) -> Callable[..., VecEnv]:
    def make(num_envs: int, **kwargs) -> VecEnv:
        from ..envs import toy
        return getattr(toy, cls_name)(num_envs=num_envs, **kwargs)
    return make


def _hopper(num_envs: int, **kwargs) -> VecEnv:
    """Hopper-v5 with the demos' success definition: reaching the time limit without falling."""
    from ..envs.gym_adapter import GymVecEnv
    return GymVecEnv(env_id="Hopper-v5", num_envs=num_envs, env_kwargs=kwargs,
                     success_fn=lambda info, terminated, truncated: bool(truncated and not terminated))


def _sparse_reach(num_envs: int, **kwargs) -> VecEnv:
    """The sparse-reward benchmark (benchmarks/reach/env.py): success from info["is_success"]."""
    from ..benchmarks.reach import env as reach_env
    from ..envs.gym_adapter import GymVecEnv
    return GymVecEnv(env_id=reach_env.ENV_ID, num_envs=num_envs, env_kwargs=kwargs)


# name -> factory(num_envs, **env_kwargs) -> VecEnv. T1 tasks register here by name; any other name
# is made by gymnasium: a registered id ("Pusher-v5"), or "package.module:Id-v0", which imports
# package.module first (where the user's code calls gymnasium.register and wraps its env).
ENV_FACTORIES: dict[str, Callable[..., VecEnv]] = {
    "toy-pointmass": _toy("PointMassVecEnv"),
    "toy-bandit": _toy("BanditVecEnv"),
    "toy-sparse-reach": _toy("SparseReachVecEnv"),
    "Hopper-v5": _hopper,
    "SparseReach-v0": _sparse_reach,
}


def _t1_task(task: str) -> Callable[..., VecEnv]:
    """A T1 task (refine_dp_training.tasks) as `t1-<task>`: TaskEnv, the whole controller in the loop; env
    kwargs go to TaskEnv (start="pretrain"|"ood"|level, randomize, physics_dt, nthread, legs, arms)."""
    def make(num_envs: int, **kwargs) -> VecEnv:
        from ..tasks.env import TaskEnv
        return TaskEnv(task, num_envs, **kwargs)
    return make


def _register_t1_tasks() -> None:
    from ..tasks import task_names
    ENV_FACTORIES.update({f"t1-{t}": _t1_task(t) for t in task_names()})


_register_t1_tasks()


def gym_env_id(name: str) -> str:
    """A gymnasium id, importing the module of a "module:Id" name first (gymnasium's own convention,
    resolved here so that a missing module or id gets an error that says what to do)."""
    import importlib

    import gymnasium as gym

    module, sep, env_id = name.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ValueError(f"--env {name!r}: cannot import module {module!r} ({e}); it must be importable in "
                             "this Python (pip install -e your package, or set PYTHONPATH)") from e
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        hint = (f"{module} was imported but did not register {env_id!r} (call gymnasium.register there)" if sep
                else "register it in your module and pass --env your.module:Id")
        raise ValueError(f"unknown env {name!r}: not one of {sorted(ENV_FACTORIES)} and not a gymnasium id "
                         f"({e}); {hint}") from e
    return env_id


def recorded_env(policy_path: str | Path) -> tuple[str | None, dict]:
    """(env, env_kwargs) a policy.pt records (pretraining's evaluation env; a fine-tuned one's env)."""
    ckpt = torch.load(Path(policy_path) / POLICY_FILE if Path(policy_path).is_dir() else policy_path,
                      map_location="cpu", weights_only=False)
    extra = (ckpt.get("extra") or {}) if isinstance(ckpt, dict) else {}
    return extra.get("env"), dict(extra.get("env_kwargs") or {})


def make_vec_env(name: str, num_envs: int, env_kwargs: dict | None = None) -> VecEnv:
    """The VecEnv of `name` (ENV_FACTORIES or gymnasium), keyword arguments passed to the env."""
    if not name:
        raise ValueError("no env given: pass --env (a name, a gymnasium id or your.module:Id-v0)")
    kwargs = dict(env_kwargs or {})
    if name in ENV_FACTORIES:
        return ENV_FACTORIES[name](num_envs, **kwargs)
    from ..envs.gym_adapter import GymVecEnv
    return GymVecEnv(env_id=gym_env_id(name), num_envs=num_envs, env_kwargs=kwargs)


def check_env_dims(env, obs_dim: int, act_dim: int, env_name: str, what: str) -> None:
    """Refuse, before anything trains, a policy or dataset whose sizes are not the env's."""
    if (env.obs_dim, env.act_dim) != (obs_dim, act_dim):
        raise ValueError(f"size mismatch: env {env_name!r} has observation size {env.obs_dim} and action size "
                         f"{env.act_dim}, but {what} has {obs_dim} and {act_dim}: pass the --env (and --env-kwargs) "
                         "the data was recorded in")


def make_chunked_env(name: str, num_envs: int, obs_horizon: int, act_steps: int, discount: float = 1.0,
                     env_kwargs: dict | None = None, expect: tuple[int, int, str] | None = None) -> ChunkedVecEnv:
    """The action-chunk MDP a planner acts in (history obs_horizon, act_steps executed per chunk).
    expect: (obs_dim, act_dim, what) of the policy or dataset that will act in it, checked first."""
    env = make_vec_env(name, num_envs, env_kwargs)
    if expect is not None:
        check_env_dims(env, *expect[:2], name, expect[2])
    return ChunkedVecEnv(env, obs_horizon, act_steps, discount)


def policy_dims(pre: "Pretrained") -> tuple[int, int, str]:
    """(obs_dim, act_dim, description) of a pretrained planner, for make_chunked_env(expect=...)."""
    c = pre.policy.config
    return c.obs_dim, c.action_dim, f"the {pre.kind} policy {pre.path}"


def planner_env(cfg, pre: "Pretrained", act_steps: int, env: ChunkedVecEnv | None = None) -> ChunkedVecEnv:
    """A method's training env around pretrained planner `pre`: cfg.num_envs envs of cfg.env (with
    cfg.env_kwargs), history pre.obs_horizon, discount cfg.gamma inside chunks; its sizes are checked
    against the policy's before anything runs (an env passed in, as tests do, is checked too)."""
    expect = policy_dims(pre)
    if env is None:
        return make_chunked_env(cfg.env, cfg.num_envs, pre.obs_horizon, act_steps, cfg.gamma, cfg.env_kwargs, expect)
    check_env_dims(env, expect[0], expect[1], cfg.env, expect[2])
    return env


# ---- deterministic evaluation -------------------------------------------------------------------
def deterministic_act_fn(pre: Pretrained) -> Callable[[np.ndarray], np.ndarray]:
    """Evaluation actor of a pretrained planner: DDIM with eta 0 (initial noise from the global torch
    RNG, which `evaluate` seeds and isolates), or the MLP's output."""
    policy = pre.policy
    if pre.kind == "mlp":
        return lambda obs: policy.sample(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    return lambda obs: policy.sample(torch.as_tensor(obs, dtype=torch.float32), eta=0.0).numpy()


def run_episodes(act_fn: Callable[[np.ndarray], np.ndarray], env: ChunkedVecEnv, seed: int,
                 max_chunks: int = 100_000) -> dict:
    """The first episode of each of env.num_envs envs (env i seeded `seed + i`), per episode:
    {"return", "length", "success": arrays [N], "success_defined": bool, "eval_env_steps": int}.

    act_fn(obs [N, To, Do]) -> chunk [N, Ta, Da] in raw units. Each env contributes its FIRST episode
    (taking the first N finished episodes of fewer envs would over-count short ones, i.e. falls).
    The global torch RNG is seeded with `seed` inside and restored after (torch.random.fork_rng), so
    an act_fn may draw noise (a DP's initial x_K) and training randomness is left untouched.
    `success_defined`: whether the env reported success at all (info["success"]).
    """
    obs = env.reset(seed=seed)
    env.episode_stats.drain()
    n = env.num_envs
    done = np.zeros(n, bool)
    ret, length, success = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, bool)
    steps0, success_defined = env.env_steps, False
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(max_chunks):
            obs, _, _, _, info = env.step(act_fn(obs))
            success_defined |= "success" in info
            if "episode" in info:
                new = info["episode"]["done"] & ~done
                ret[new] = info["episode"]["return"][new]
                length[new] = info["episode"]["length"][new]
                success[new] = info["episode"]["success"][new]
                done |= new
                if done.all():
                    break
    env.episode_stats.drain()
    if not done.all():
        raise RuntimeError(f"evaluation: {int((~done).sum())} of {n} episodes did not end within {max_chunks} "
                           "chunks: the env needs a time limit")
    return {"return": ret, "length": length, "success": success, "success_defined": bool(success_defined),
            "eval_env_steps": env.env_steps - steps0}


def summarize_episodes(ep: dict) -> dict:
    """Means, stds and the success count with its Wilson 95 % interval of run_episodes' arrays."""
    from ..evalstats import wilson_interval
    ret, length, success = (np.asarray(ep[k], float) for k in ("return", "length", "success"))
    n, k = len(ret), int(success.sum())
    return {"return_mean": float(ret.mean()), "return_std": float(ret.std()),
            "success_mean": float(success.mean()), "success_std": float(success.std()),
            "length_mean": float(length.mean()), "length_std": float(length.std()), "episodes": n,
            "eval_env_steps": int(ep.get("eval_env_steps", 0)), "success_defined": bool(ep["success_defined"]),
            "successes": k, "success_ci95": list(wilson_interval(k, n))}


def evaluate(act_fn: Callable[[np.ndarray], np.ndarray], env: ChunkedVecEnv, seed: int,
             max_chunks: int = 100_000) -> dict:
    """run_episodes, summarized: return/success/length mean and std, successes, success_ci95."""
    return summarize_episodes(run_episodes(act_fn, env, seed, max_chunks))


# ---- reward scaling -----------------------------------------------------------------------------
class RunningReturnScaler:
    """Divide rewards by the running std of the discounted return (DPPO's reward_scale_running).

    Keeps value targets O(1) whatever the env's reward scale (Hopper returns are in the thousands, a
    sparse task's are 0 or 1), which is what the critics' learning rates, the PPO defaults and SAC's
    entropy temperature assume. Per env: G <- gamma G + r, reset at episode ends; the std is a
    running estimate over all G seen. It also keeps the smallest and largest G seen: `value_bounds()`
    is then the range a value can take, [min(0, G_min), max(0, G_max)] * scale, in scaled units
    (an off-policy critic's targets are clipped to it: DSRL).
    """

    def __init__(self, num_envs: int, gamma: float, eps: float = 1e-8):
        self.gamma, self.eps = gamma, eps
        self.ret = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4
        self.ret_min, self.ret_max = 0.0, 0.0

    def update(self, reward: np.ndarray, done: np.ndarray) -> None:
        """Account one step of rewards (raw units) without scaling them."""
        self.ret = self.ret * self.gamma + reward
        self.ret_min = min(self.ret_min, float(self.ret.min()))
        self.ret_max = max(self.ret_max, float(self.ret.max()))
        b_mean, b_var, b_n = float(self.ret.mean()), float(self.ret.var()), len(self.ret)
        delta, total = b_mean - self.mean, self.count + b_n
        self.mean += delta * b_n / total
        self.var = (self.var * self.count + b_var * b_n + delta**2 * self.count * b_n / total) / total
        self.count = total
        self.ret[np.asarray(done, bool)] = 0.0

    @property
    def scale(self) -> float:
        return 1.0 / float(np.sqrt(self.var + self.eps))

    def value_bounds(self, scaled: bool = True) -> tuple[float, float]:
        k = self.scale if scaled else 1.0
        return min(0.0, self.ret_min) * k, max(0.0, self.ret_max) * k

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.update(reward, done)
        return reward * self.scale

    def state_dict(self) -> dict:
        return {"ret": self.ret.copy(), "mean": self.mean, "var": self.var, "count": self.count,
                "ret_min": self.ret_min, "ret_max": self.ret_max}

    def load_state_dict(self, s: dict) -> None:
        self.ret, self.mean, self.var, self.count = s["ret"].copy(), s["mean"], s["var"], s["count"]
        self.ret_min, self.ret_max = s.get("ret_min", 0.0), s.get("ret_max", 0.0)


# ---- learning curve, checkpoints ----------------------------------------------------------------
CURVE_COLUMNS = ("iteration", "env_steps", "wall_s", "return_mean", "return_std", "success_mean",
                 "success_std", "successes", "length_mean", "length_std", "episodes", "eval_env_steps",
                 "start_level")


def env_checkpoint(method) -> dict:
    """{"env", "obs", "env_steps"} of a method's env for its checkpoint; "env" and "obs" are None for an env
    that cannot export its state (the T1 task envs' physics)."""
    state = method.env.state_dict()
    return {"env": state, "obs": None if state is None else method.obs.copy(), "env_steps": int(method.env.env_steps)}


def restore_env(method, saved: dict) -> None:
    """The env where the checkpoint left it, bit for bit; an env that could not export its state starts
    fresh episodes instead, with a warning: training continues correctly, not bit for bit. Returns after
    setting method.obs; the caller re-initialises its own per-episode state (e.g. mlp-ft's first action)."""
    if saved.get("env") is not None:
        method.env.load_state_dict(saved["env"])
        method.obs = saved["obs"].copy()
        return
    warnings.warn(f"{type(method.env.env).__name__} cannot export its state: resumed with fresh episodes "
                  "(training continues correctly, not bit for bit)")
    method.obs = method.env.reset(seed=method.cfg.seed + method.iteration)
    method.env.env_steps = int(saved["env_steps"])


def next_start_level(level: float, success: float, step: float, threshold: float) -> float:
    """The OOD curriculum's rule: one `step` wider (at most 1, the OOD range) once success >= threshold."""
    if success >= threshold and level < 1.0:
        return min(1.0, level + step)
    return level


def set_start_level(env, level: float) -> None:
    """Move the start distribution of `env`'s next resets to curriculum `level` (through wrappers to the
    VecEnv that has set_start_range, e.g. tasks.env.TaskEnv)."""
    inner = env
    while not hasattr(inner, "set_start_range"):
        if not hasattr(inner, "env"):
            raise ValueError(f"--curriculum needs an env with start levels (set_start_range, the T1 tasks' "
                             f"t1-TASK); {type(env).__name__} has none: drop --curriculum")
        inner = inner.env
    inner.set_start_range(float(level))


def run_dir(out: str | Path, keep: int = 3, tensorboard: bool = False) -> RunDir:
    """The fine-tuning run directory: checkpoints/iter_<iteration>.pt."""
    return RunDir(out, "iter", digits=6, keep=keep, tensorboard=tensorboard)


def checkpoint_dir(out: str | Path) -> Path:
    return run_dir(out).checkpoint_dir


def latest_checkpoint(out: str | Path) -> Path | None:
    return run_dir(out).latest_checkpoint()


def save_checkpoint(out: str | Path, iteration: int, payload: dict, keep: int = 3) -> Path:
    """Atomic `checkpoints/iter_<iteration>.pt` = payload + format, global RNG states, git revision;
    older files beyond `keep` are removed after the new one is complete."""
    return run_dir(out, keep).save_checkpoint({"format": CHECKPOINT_FORMAT, "rng": rng_state(),
                                               "git_revision": git_revision(), **payload}, iteration)


def load_checkpoint(path: str | Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a fine-tuning checkpoint ({CHECKPOINT_FORMAT})")
    return ckpt


# ---- the loop -----------------------------------------------------------------------------------
class FinetuneMethod(Protocol):
    env_steps: int
    iteration: int
    obs_horizon: int
    act_steps: int

    def train_iteration(self, max_env_steps: int | None = None) -> dict: ...
    def act_deterministic(self, obs_hist: np.ndarray) -> np.ndarray: ...
    def deployable(self) -> torch.nn.Module: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


def run_finetune(method: FinetuneMethod, cfg: FinetuneConfig, resume: bool = False, method_name: str = "",
                 eval_env: ChunkedVecEnv | None = None) -> dict:
    """Train `method` until cfg.budget_env_steps; returns (and writes) summary.json's dict.

    resume: continue from the latest checkpoint under cfg.out (error if there is none). The config
    must be the one the run started with (budget, progress and tensorboard may change); it is saved
    as config.json beside the checkpoints. eval_env: default cfg.eval_episodes envs of cfg.env with
    the method's obs_horizon/act_steps (none when eval_episodes is 0).
    """
    if eval_env is None and cfg.eval_episodes > 0:
        eval_env = make_chunked_env(cfg.env, cfg.eval_episodes, method.obs_horizon, method.act_steps,
                                    env_kwargs=cfg.env_kwargs)
    if eval_env is not None and hasattr(method, "attach_eval_env"):
        method.attach_eval_env(eval_env)  # joint.py: the evaluation runs the controller being trained too
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    run = run_dir(out, cfg.keep_checkpoints, cfg.tensorboard)
    logger = CurveLogger(run, CURVE_COLUMNS)
    wall_s, next_eval, level = 0.0, 0, cfg.curriculum_start
    if resume:
        path = run.latest_checkpoint()
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint under {run.checkpoint_dir}; start without --resume")
        ckpt = load_checkpoint(path)
        if ckpt["config"] != cfg.to_dict():
            diff = {k: (ckpt["config"].get(k), v) for k, v in cfg.to_dict().items() if ckpt["config"].get(k) != v}
            allowed = {"budget_env_steps", "progress", "tensorboard"}
            if set(diff) - allowed:
                raise ValueError(f"--resume with another config than the run's ({path}): {diff}")
        method.load_state_dict(ckpt["method"])
        logger.rows, wall_s, next_eval = list(ckpt["curve"]), ckpt["wall_s"], ckpt["next_eval"]
        level = ckpt.get("start_level", level)
        set_rng_state(ckpt["rng"])
    else:
        if run.latest_checkpoint() is not None:
            raise FileExistsError(f"{out} already holds a fine-tuning run ({run.latest_checkpoint()}): pass --resume "
                                  "to continue it, or choose another --out")
        run.write_json("config.json", cfg.to_dict() | {"method": method_name})

    def apply_level() -> None:
        for env in (method.env, eval_env):
            if env is not None:
                set_start_level(env, level)

    if cfg.curriculum:
        if eval_env is None:
            raise ValueError("--curriculum widens the start range on evaluation success: set --eval-episodes > 0")
        apply_level()

    def do_eval() -> dict:
        nonlocal level
        res = evaluate(method.act_deterministic, eval_env, cfg.eval_seed)
        row = {"iteration": method.iteration, "env_steps": method.env_steps, "wall_s": round(wall_s, 2)} | res
        if cfg.curriculum:
            row["start_level"] = level
            new = next_start_level(level, row.get("success_mean", 0.0), cfg.curriculum_step, cfg.curriculum_threshold)
            if new != level:
                print(f"curriculum: success {row.get('success_mean', 0.0):.2f} >= {cfg.curriculum_threshold} at start "
                      f"level {level:.2f}: now {new:.2f}", flush=True)
                level = new
                apply_level()
        logger.eval_row(row)
        return row

    def checkpoint() -> None:
        run.save_checkpoint({"format": CHECKPOINT_FORMAT, "rng": rng_state(), "git_revision": git_revision(),
                             "config": cfg.to_dict(), "method_name": method_name, "method": method.state_dict(),
                             "curve": logger.rows, "wall_s": wall_s, "next_eval": next_eval, "start_level": level},
                            method.iteration)
        write_policy_file(method, out / POLICY_FILE, method_name, cfg)

    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.budget_env_steps, initial=min(method.env_steps, cfg.budget_env_steps),
                   desc=method_name or "finetune", unit="step", dynamic_ncols=True)
    last = {}
    try:
        if eval_env is not None and method.env_steps >= next_eval:
            last = do_eval()
            next_eval = method.env_steps + cfg.eval_every_env_steps if cfg.eval_every_env_steps > 0 else 2**62
        while method.env_steps < cfg.budget_env_steps:
            t0, before = time.perf_counter(), method.env_steps
            stats = method.train_iteration(cfg.budget_env_steps - method.env_steps)
            wall_s += time.perf_counter() - t0
            run.scalars(stats | {"wall_s": wall_s}, method.env_steps, "train")
            if eval_env is not None and method.env_steps >= next_eval:
                last = do_eval()
                next_eval += cfg.eval_every_env_steps
            if cfg.checkpoint_every > 0 and method.iteration % cfg.checkpoint_every == 0:
                checkpoint()
            if bar is not None:
                bar.update(min(method.env_steps, cfg.budget_env_steps) - min(before, cfg.budget_env_steps))
                bar.set_postfix(progress_fields(last, stats))
        if eval_env is not None and (not logger.rows or logger.rows[-1]["env_steps"] != method.env_steps):
            last = do_eval()
        checkpoint()
    finally:
        if bar is not None:
            bar.close()
        run.close()
    summary = {"method": method_name, "env": cfg.env, "pretrained": cfg.pretrained,
               "iteration": method.iteration, "env_steps": method.env_steps, "train_wall_s": wall_s,
               "first_eval": logger.rows[0] if logger.rows else None,
               "last_eval": logger.rows[-1] if logger.rows else None,
               "best_eval": max(logger.rows, key=lambda r: r["return_mean"]) if logger.rows else None,
               "start_level": level if cfg.curriculum else None,
               "policy": str(out / POLICY_FILE) if (out / POLICY_FILE).exists() else None,
               "git_revision": git_revision(), "config": cfg.to_dict()}
    run.write_json("summary.json", summary)
    if logger.rows:
        plot_curve(logger.rows, out / "curve.png", title=f"{method_name} on {cfg.env}")
    return summary


def progress_fields(last_eval: dict, stats: dict) -> dict:
    """What the progress bar shows: the last evaluation's success (where the env defines it) and
    return, and the training return."""
    from ..evalstats import fmt
    out = {}
    if last_eval.get("success_defined"):
        out["eval_success"] = fmt(last_eval["success_mean"])
    out["eval_return"] = fmt(last_eval.get("return_mean", float("nan")))
    out["train_return"] = fmt(stats.get("train_return", float("nan")))
    return out


def chunk_steps_within(max_env_steps: int | None, per_iteration: int, num_envs: int, act_steps: int) -> int:
    """Chunk steps (of all envs) of a rollout that stops at about max_env_steps: a method collecting
    `per_iteration` chunk steps per iteration collects fewer in the last one, so a budget is a budget."""
    if max_env_steps is None:
        return per_iteration
    return max(1, min(per_iteration, -(-int(max_env_steps) // (num_envs * act_steps))))


def write_policy_file(method: FinetuneMethod, path: Path, method_name: str, cfg: FinetuneConfig) -> None:
    """policy.pt: the method's deterministic actor as a deployable planner (refine-dp export planner)."""
    from refine_dp_planner.deployable import save_deployable

    with torch.random.fork_rng(devices=[]):   # building the module draws initial weights: leave training's RNG alone,
        planner = method.deployable() if hasattr(method, "deployable") else None   # or a killed run would not resume exactly
    if planner is None:
        return
    save_deployable(planner, path, extra={
        "method": method_name, "env": cfg.env, "env_kwargs": cfg.env_kwargs, "pretrained": cfg.pretrained,
        "iteration": method.iteration,
        "env_steps": method.env_steps, "finetune_config": cfg.to_dict()})


def plot_curve(rows: list[dict], path: str | Path, title: str = "") -> None:
    """curve.png: evaluation return (mean +- std) against env steps and against training wall-clock."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["env_steps"] for r in rows], float)
    wall = np.array([r["wall_s"] for r in rows], float) / 60
    mean = np.array([r["return_mean"] for r in rows])
    std = np.array([r["return_std"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, x, label in ((axes[0], steps, "env steps"), (axes[1], wall, "training wall-clock [min]")):
        ax.plot(x, mean, marker="o")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("deterministic eval return")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
