"""`refine-dp collect`: heuristic demonstrations of a T1 task, successes only (as the paper keeps them).

    refine-dp collect --task pickup --episodes 200 --out data/pickup [--num-envs 16] [--seed 0]
        [--start pretrain|ood|LEVEL] [--videos 2] [--resume] [--no-randomize]

The task's heuristic planner (TaskSpec.heuristic) drives TaskEnv: the whole controller in the loop, domain
randomisation and MoCap noise on. Every finished episode counts towards the heuristic's own success rate
(printed with its 95 % Wilson interval and written to summary.json with the failures by reason and by the
stage they reached); only successful episodes enter the dataset (data/FORMAT.md: obs = the planner
observation before the action, actions = the clamped action executed, rewards = the sparse task reward,
control_rate_hz 10; extra per-step fields `stage` (the task's stage label index) and `heuristic_stage`).
A few episodes are rendered to GIFs (videos/). Progress: a bar over the kept episodes.

Resume: shards are written every `--shard-episodes` successes together with collect_state.json (the
counters up to that shard), both atomically; `--resume` continues from them with fresh seeds, so a kill
loses at most the episodes of the shard being filled and never double-counts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering, chosen before mujoco is imported

STATE_FILE = "collect_state.json"


class _Appender:
    """An EpisodeWriter that continues an existing dataset (its metadata and shard numbering)."""

    @staticmethod
    def open(root: Path, **kwargs):
        from ..data.episodes import EpisodeWriter
        meta_path = root / "metadata.json"
        if not meta_path.exists():
            return EpisodeWriter(root, **kwargs)
        writer = EpisodeWriter.__new__(EpisodeWriter)
        writer.root = root
        writer.meta = json.loads(meta_path.read_text())
        writer.obs_dim, writer.act_dim = int(writer.meta["obs_dim"]), int(writer.meta["act_dim"])
        writer.episodes_per_shard = int(kwargs.get("episodes_per_shard", 10))
        writer._buffer = []
        if writer.obs_dim != kwargs["obs_dim"] or writer.act_dim != kwargs["act_dim"]:
            raise ValueError(f"{root} holds a dataset of obs {writer.obs_dim} / action {writer.act_dim}, this task's "
                             f"are {kwargs['obs_dim']} / {kwargs['act_dim']}: choose another --out")
        had, now = writer.meta.get("info", {}).get("controller"), kwargs.get("info", {}).get("controller")
        if had and now and {k: v["sha256"] for k, v in had.items()} != {k: v["sha256"] for k, v in now.items()}:
            raise ValueError(f"{root} was collected with another controller in the loop ({had}) than this run's "
                             f"({now}): demos of two controllers do not mix; choose another --out, or pass the "
                             "dataset's --legs / --arms")
        return writer


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _render(model, states: list, path: Path, fps: int = 5, size=(240, 320)) -> str | None:
    """GIF of one episode's state rows (one per control step at 50 Hz); None, or the reason it failed."""
    try:
        import mujoco

        from t1_description.video import write_gif

        from ..lowlevel.sim import STATE_SPEC
        renderer = mujoco.Renderer(model, *size)
        d = mujoco.MjData(model)
        cam = mujoco.MjvCamera()
        cam.distance, cam.elevation, cam.azimuth = 2.0, -20.0, 135.0
        frames = []
        for s in states[:: max(1, int(round(50 / fps)))]:
            mujoco.mj_setState(model, d, s, STATE_SPEC)
            mujoco.mj_forward(model, d)
            cam.lookat[:] = [0.5 * d.qpos[0] + 0.3, 0.5 * d.qpos[1], 0.7]
            renderer.update_scene(d, cam)
            frames.append(renderer.render())
        renderer.close()
        write_gif(path, frames, fps)
        return None
    except Exception as exc:  # videos are optional: say why, keep the data
        return f"{type(exc).__name__}: {exc}"


class EpisodeRecorder:
    """Per-env step buffers of a running TaskEnv; hands back finished episodes."""

    def __init__(self, n: int):
        self.buf = [dict(obs=[], actions=[], rewards=[], stage=[], heuristic_stage=[]) for _ in range(n)]

    def add(self, obs, info, reward, heuristic_stage) -> None:
        for i, b in enumerate(self.buf):
            b["obs"].append(obs[i])
            b["actions"].append(info["executed_action"][i])
            b["rewards"].append(reward[i])
            b["stage"].append(info["stage"][i])
            b["heuristic_stage"].append(heuristic_stage[i])

    def pop(self, i: int) -> dict:
        b = self.buf[i]
        self.buf[i] = dict(obs=[], actions=[], rewards=[], stage=[], heuristic_stage=[])
        return {k: np.asarray(v) for k, v in b.items()}


def collect(task: str, episodes: int, out: Path, num_envs: int = 16, seed: int = 0, start="pretrain",
            videos: int = 2, resume: bool = False, randomize: bool = True, shard_episodes: int = 10,
            max_attempts: int | None = None, progress: bool = True, legs=None, arms=None) -> dict:
    from refine_dp_planner.planner_io import ACTION_FIELDS

    from ..evalstats import success_summary
    from . import make_heuristic
    from .env import TaskEnv

    out = Path(out)
    state_path = out / STATE_FILE
    if (out / "metadata.json").exists() and not resume:
        raise FileExistsError(f"{out} already holds a dataset: pass --resume to continue it, or another --out")
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else {
        "attempts": 0, "successes": 0, "failures": {}, "failure_stage": {}, "success_time_s": [], "runs": 0,
        "wall_s": 0.0}
    run = int(state["runs"])
    state["runs"] = run + 1
    if state["successes"] >= episodes:
        print(f"{out}: {state['successes']} episodes already collected (asked {episodes})")
        return state
    run_seed = seed + 100_003 * run  # a resumed run draws new episodes
    controller = {k: str(v) for k, v in (("legs", legs), ("arms", arms)) if v}  # default: the shipped policies
    env = TaskEnv(task, num_envs, start=start, randomize=randomize, seed=run_seed,
                  record_envs=tuple(range(min(videos, num_envs))) if run == 0 else (), **controller)
    planner = make_heuristic(env.spec, num_envs, seed=run_seed)
    out.mkdir(parents=True, exist_ok=True)
    info_meta = {"task": env.spec.name, "scene": env.spec.scene, "heuristic": env.spec.heuristic,
                 "start_range": vars(env.start_range), "randomize": randomize,
                 "randomization": vars(env.spec.randomization), "seed": seed, "num_envs": num_envs,
                 "stage_names": list(env.stage_names), "heuristic_stage_names": list(planner.stage_names),
                 "failure_names": list(env.failure_names), "kept": "successes only",
                 # the env a planner trained on these demos is evaluated in (refine-dp pretrain reads these)
                 "env_id": f"t1-{env.spec.name}", "env_kwargs": {"start": start, "randomize": randomize, **controller},
                 "controller": env.controller_identity()}
    writer = _Appender.open(out, obs_dim=env.obs_dim, act_dim=env.act_dim, obs_fields=env.obs_fields,
                            action_fields=ACTION_FIELDS, control_rate_hz=1.0 / env.planner_dt,
                            source=f"heuristic:{env.spec.heuristic}", episodes_per_shard=shard_episodes,
                            info=info_meta)
    pending = {"attempts": 0, "successes": 0, "failures": {}, "failure_stage": {}, "success_time_s": []}

    def commit() -> None:  # the counters of the episodes now on disk
        for k in ("attempts", "successes"):
            state[k] += pending[k]
            pending[k] = 0
        for k in ("failures", "failure_stage"):
            for name, c in pending[k].items():
                state[k][name] = state[k].get(name, 0) + c
            pending[k] = {}
        state["success_time_s"] += pending["success_time_s"]
        pending["success_time_s"] = []
        _write_json(state_path, state)

    flush = writer.flush

    def flush_and_commit():
        flush()
        commit()
    writer.flush = flush_and_commit

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=episodes, initial=state["successes"], desc=f"collect {task}", unit="ep", dynamic_ncols=True)
    recorder = EpisodeRecorder(num_envs)
    video_states: dict[int, list] = {}
    recording = set(env.record_envs)
    log_start = 0
    obs = env.reset(seed=run_seed)
    planner.reset()
    t0 = time.perf_counter()
    kept = state["successes"]
    attempts_cap = max_attempts if max_attempts is not None else 50 * episodes
    while kept < episodes and state["attempts"] + pending["attempts"] < attempts_cap:
        stage_before = planner.stage.copy()
        actions = planner.act(obs)
        next_obs, reward, term, trunc, info = env.step(actions)
        recorder.add(obs, info, reward, stage_before)
        obs = next_obs
        done = term | trunc
        for i in np.flatnonzero(done):
            ep = recorder.pop(i)
            pending["attempts"] += 1
            success = bool(info["success"][i])
            if success:
                if kept < episodes:
                    writer.add_episode(ep["obs"], ep["actions"], ep["rewards"], True,
                                       stage=ep["stage"].astype(np.int16),
                                       heuristic_stage=ep["heuristic_stage"].astype(np.int16))
                    kept += 1
                pending["successes"] += 1
                pending["success_time_s"].append(float(info["episode"]["time"][i]))
                if bar is not None:
                    bar.update(1)
            else:
                reason = env.failure_names[info["failure"][i]]
                pending["failures"][reason] = pending["failures"].get(reason, 0) + 1
                where = env.stage_names[info["stage"][i]]
                pending["failure_stage"][where] = pending["failure_stage"].get(where, 0) + 1
            if i in recording:  # this env's first episode: keep its states for a video
                j = env.record_envs.index(i)
                video_states[i] = ([s[j] for s in env.state_log[log_start:]], success)
                recording.discard(i)
                if not recording:
                    env.record_envs, env.state_log = (), []
        if done.any():
            planner.reset(done)
        if bar is not None:
            n_att = state["attempts"] + pending["attempts"]
            bar.set_postfix(attempts=n_att, heuristic_success=f"{(state['successes'] + pending['successes']) / max(n_att, 1):.2f}")
    writer.close()
    commit()
    if bar is not None:
        bar.close()
    state["wall_s"] += time.perf_counter() - t0
    videos_written = []
    if video_states:
        (out / "videos").mkdir(exist_ok=True)
        for i, (states, success) in sorted(video_states.items()):
            path = out / "videos" / f"episode_env{i}_{'success' if success else 'failure'}.gif"
            problem = _render(env.sim.base_model, states, path)
            videos_written.append(str(path.relative_to(out)) if problem is None else f"failed: {problem}")
    env.close()
    n = state["attempts"]
    summary = {"task": task, "episodes_kept": kept, "heuristic": env.spec.heuristic, "attempts": n,
               **success_summary(state["successes"], n),
               "failures": state["failures"], "failure_stage": state["failure_stage"],
               "success_time_s_mean": float(np.mean(state["success_time_s"])) if state["success_time_s"] else None,
               "wall_s": state["wall_s"], "runs": state["runs"], "videos": videos_written,
               "dataset": {"episodes": writer.meta["num_episodes"], "steps": writer.meta["num_steps"],
                           "shards": len(writer.meta["shards"])}}
    state_v = dict(state)
    _write_json(state_path, state_v)
    _write_json(out / "summary.json", summary)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp collect", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--episodes", type=int, required=True, help="successful episodes to keep")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", default="pretrain", help="pretrain | ood | a curriculum level in [0, 1]")
    p.add_argument("--videos", type=int, default=2, help="episodes rendered to GIF (the first of envs 0..K-1)")
    p.add_argument("--resume", action="store_true", help="continue the dataset in --out")
    p.add_argument("--no-randomize", action="store_true", help="nominal masses/friction, perfect MoCap, no latency")
    p.add_argument("--shard-episodes", type=int, default=10)
    p.add_argument("--max-attempts", type=int, default=None, help="stop after this many episodes (default 50 x --episodes)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--legs", default=None, help="leg policy .onnx (default: the shipped one)")
    p.add_argument("--arms", default=None, help="arm policy .onnx (default: the shipped one)")
    args = p.parse_args(argv)
    start = args.start if args.start in ("pretrain", "ood") else float(args.start)
    try:
        summary = collect(args.task, args.episodes, args.out, args.num_envs, args.seed, start, args.videos, args.resume,
                          not args.no_randomize, args.shard_episodes, args.max_attempts, not args.no_progress,
                          args.legs, args.arms)
    except (FileExistsError, KeyError, ValueError) as e:
        print(f"refine-dp collect: {e}", file=sys.stderr)
        return 2
    lo, hi = summary.get("success_ci95", (float("nan"), float("nan")))
    print(f"heuristic success {summary.get('success_rate', float('nan')):.2f} [{lo:.2f}, {hi:.2f}] "
          f"({summary.get('successes')}/{summary.get('attempts')} episodes); kept {summary.get('episodes_kept')}; "
          f"failures {summary.get('failures')}; dataset {summary.get('dataset')}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
