"""Check a task's demonstrations for objects that jumped (a MuJoCo blow-up the env did not catch) before pre-training.

    python -m refine_dp_training.tasks.check_demos runs/demos/pickup_v2 [--max-object-speed 3.0] [--clean OUT]

Why: a box pinched between a finger and the table can be shot away at 4-90 m/s, under TaskEnv's MAX_SPEED
(100 m/s), so the episode is not ended as "physics"; flying up, it passes the pickup success test (lifted
10 cm for 1 s) and `collect` keeps it. 13 of the 400 demos of runs/demos/pickup_v2 end so, with the box up
to 50 m away: the planner's min-max normalizer then spans box x [0, 50.7] m, z [0, 49.5] m, a 3 cm box offset
is 0.001 in normalized units (a hand's 3 cm: 0.1) and the DiT trained on it does not react to where the box
is (issue #15). This reports, per episode, the fastest step of each observed object between two tracked
observations (base_link, so the robot's own walking and turning count: < 0.6 m/s), flags those above
--max-object-speed, and shows how far the flagged episodes stretch each observation dimension's min-max
range (what `pretrain --normalizer min_max` fits). --clean writes a copy without the flagged episodes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from refine_dp_planner.planner_io import OBJECT_FEATURES

from ..data.episodes import EpisodeDataset, EpisodeWriter, dim_names

ROBOT_FIELDS = ("hands", "grippers", "gravity")  # the observation fields that are not task objects


def object_fields(data: EpisodeDataset) -> list[dict]:
    return [f for f in data.meta["obs_fields"] if f["name"] not in ROBOT_FIELDS and f["size"] == OBJECT_FEATURES]


def max_object_speed(obs: np.ndarray, field: dict, dt: float) -> float:
    """Fastest motion (m/s) of an object between consecutive steps where it is tracked and present
    (a dropout is zeros or tracked flag 0, not a jump)."""
    x = obs[:, field["start"]:field["start"] + field["size"]]
    seen = (x[:, -1] > 0) & (np.abs(x[:, :3]).sum(-1) > 0)
    both = seen[1:] & seen[:-1]
    step = np.linalg.norm(np.diff(x[:, :3], axis=0), axis=-1)[both]
    return float(step.max() / dt) if len(step) else 0.0


def min_max_half_range(episodes: list[dict]) -> np.ndarray:
    x = np.concatenate([e["obs"] for e in episodes])
    return (x.max(0) - x.min(0)) / 2


def check(root: Path, max_speed: float) -> tuple[EpisodeDataset, np.ndarray]:
    """Print the report; returns the dataset and the flagged episodes [E] bool."""
    data = EpisodeDataset(root)
    dt = 1.0 / float(data.meta.get("control_rate_hz") or 10.0)
    fields = object_fields(data)
    speed = np.array([[max_object_speed(e["obs"], f, dt) for f in fields] for e in data.episodes])
    speed = speed.reshape(len(data), len(fields))
    bad = (speed > max_speed).any(-1)
    print(f"{root}: {len(data)} episodes; objects {[f['name'] for f in fields]}")
    for k, f in enumerate(fields):
        q = np.quantile(speed[:, k], [0.5, 0.9, 0.99]) if len(data) else np.zeros(3)
        print(f"  {f['name']}: fastest step per episode, m/s: median {q[0]:.2f}, p90 {q[1]:.2f}, p99 {q[2]:.2f}, "
              f"max {speed[:, k].max(initial=0):.2f}")
    print(f"  {bad.sum()} episodes with an object faster than {max_speed} m/s: {np.flatnonzero(bad).tolist()}")
    if bad.any() and (~bad).any():
        full = min_max_half_range(data.episodes)
        clean = min_max_half_range([e for e, b in zip(data.episodes, bad) if not b])
        ratio = full / np.maximum(clean, 1e-6)
        names = dim_names(data.meta["obs_fields"], len(full))
        print("  min-max half-range of the observation dims they stretch (all / without them):")
        for i in np.flatnonzero(ratio > 1.5):
            print(f"    {names[i]:>12}: {full[i]:8.3f} / {clean[i]:.3f}  ({ratio[i]:.0f}x)")
    return data, bad


def write_clean(data: EpisodeDataset, bad: np.ndarray, out: Path, max_speed: float) -> None:
    m = data.meta
    info = dict(m.get("info") or {}, cleaned_from=str(data.root), dropped_episodes=np.flatnonzero(bad).tolist(),
                max_object_speed=max_speed)
    extra = m.get("extra_fields") or []
    with EpisodeWriter(out, m["obs_dim"], m["act_dim"], obs_fields=m["obs_fields"], action_fields=m["action_fields"],
                       control_rate_hz=m.get("control_rate_hz"), source=m.get("source", ""), info=info) as w:
        for e, b in zip(data.episodes, bad):
            if not b:
                w.add_episode(e["obs"], e["actions"], e["rewards"], e["success"], **{k: e[k] for k in extra})
    summary = clean_summary(data.root, bad, max_speed)
    if summary is not None:  # the collection's summary travels with the copy (what `ship planner` reports)
        (Path(out) / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out}: {int((~bad).sum())} episodes")


def clean_summary(root: Path, bad: np.ndarray, max_speed: float) -> dict | None:
    """`collect`'s summary.json of `root` (None without one), saying which episodes the clean copy dropped and
    why; its attempts and success rate are the collection's (the dropped ones counted as successes there)."""
    path = Path(root) / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    return s | {"episodes_kept": int((~bad).sum()), "cleaned_from": str(root),
                "dropped_episodes": np.flatnonzero(bad).tolist(),
                "dropped_why": f"a task object faster than {max_speed} m/s (shot away by the physics: a false success; "
                               "the success rate above still counts them)"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="check_demos", description=__doc__.split("\n")[0])
    p.add_argument("dataset", type=Path)
    p.add_argument("--max-object-speed", type=float, default=3.0,
                   help="m/s in base_link; clean pickup demos stay below 1.3, door demos below 1.7 (walking, "
                        "turning, MoCap noise); the ejected boxes of the pickup demos start at 4.5")
    p.add_argument("--clean", type=Path, default=None, help="write the episodes that pass here")
    args = p.parse_args(argv)
    data, bad = check(args.dataset, args.max_object_speed)
    if args.clean is not None:
        write_clean(data, bad, args.clean, args.max_object_speed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
