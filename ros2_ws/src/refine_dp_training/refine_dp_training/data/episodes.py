"""The project's one on-disk format for demonstrations: a directory of npz shards + metadata.json.

    <dataset>/
      metadata.json            format version, field layouts, rates, source, creation command, counts
      shard_00000.npz          episodes 0 .. k-1
      shard_00001.npz          ...

Each shard holds whole episodes, concatenated along time (the Diffusion Policy/zarr "episode_ends"
convention, so a shard loads with one np.load and no per-episode files):

    obs            float32 [sum T_e, obs_dim]    observation at step t (before the action)
    actions        float32 [sum T_e, act_dim]    action executed at step t
    rewards        float32 [sum T_e]             reward received after the action at step t
    episode_ends   int64   [E]                   exclusive end index of each episode in the shard
    success        bool    [E]                   episode succeeded (task-defined)
    <extra>        any     [sum T_e, ...]        optional per-step fields (e.g. "terminated"), same
                                                 set in every shard

metadata.json:
    {"format": "refine_dp.episodes/1",
     "obs_dim": int, "act_dim": int,
     "obs_fields":    [{"name": str, "start": int, "size": int}, ...]   (cover 0..obs_dim)
     "action_fields": [{"name": str, "start": int, "size": int}, ...]   (cover 0..act_dim)
     "control_rate_hz": float | null, "source": str, "command": str, "created": ISO time,
     "extra_fields": [str], "num_episodes": int, "num_steps": int,
     "shards": [{"file": str, "num_episodes": int, "num_steps": int}, ...],
     "info": {...free-form, e.g. the expert checkpoint and its return}}

Crash safety: every shard and every metadata update is written to a temporary file and renamed
into place (os.replace), and metadata.json lists only complete shards, so a kill loses at most the
episodes buffered for the next shard, never an existing one. A reader trusts metadata.json.
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from refine_dp_planner.utils import atomic_write

FORMAT = "refine_dp.episodes/1"
REQUIRED = ("obs", "actions", "rewards")


@dataclass
class Field:
    name: str
    start: int
    size: int


def _layout(fields, dim: int, what: str) -> list[dict]:
    if fields is None:
        return [{"name": what, "start": 0, "size": dim}]
    out, pos = [], 0
    for f in fields:
        f = f if isinstance(f, dict) else {"name": f[0], "size": int(f[1])}
        f = {"name": f["name"], "start": f.get("start", pos), "size": int(f["size"])}
        if f["start"] != pos:
            raise ValueError(f"{what} field {f['name']!r} starts at {f['start']}, expected {pos}: fields must be contiguous")
        out.append(f)
        pos += f["size"]
    if pos != dim:
        raise ValueError(f"{what} fields cover {pos} dims but {what}_dim is {dim}: fix the field list")
    return out


def dim_names(fields: list[dict] | None, n: int) -> list[str]:
    """"name[i]" of each of n dimensions from a dataset's obs_fields / action_fields (the index alone without
    them, or when they do not cover n)."""
    names = [f"{f['name']}[{i}]" for f in (fields or []) for i in range(int(f["size"]))]
    return names if len(names) == n else [str(i) for i in range(n)]


class EpisodeWriter:
    """Append episodes; every `episodes_per_shard` episodes a shard is written (atomically).

    obs_fields/action_fields: list of (name, size) or {"name", "size"}; None = one field.
    Call close() (or use as a context manager) to write the last, partial shard.
    """

    def __init__(self, root: str | Path, obs_dim: int, act_dim: int, *, obs_fields=None, action_fields=None,
                 control_rate_hz: float | None = None, source: str = "", command: str | None = None,
                 episodes_per_shard: int = 50, info: dict | None = None, overwrite: bool = False):
        self.root = Path(root)
        if (self.root / "metadata.json").exists() and not overwrite:
            raise FileExistsError(f"{self.root} already holds a dataset: choose another --out or pass overwrite=True")
        self.root.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for old in self.root.glob("shard_*.npz"):
                old.unlink()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.episodes_per_shard = int(episodes_per_shard)
        self.meta = {"format": FORMAT, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                     "obs_fields": _layout(obs_fields, self.obs_dim, "obs"),
                     "action_fields": _layout(action_fields, self.act_dim, "action"),
                     "control_rate_hz": control_rate_hz, "source": source,
                     "command": command if command is not None else " ".join(sys.argv),
                     "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "extra_fields": None, "num_episodes": 0, "num_steps": 0, "shards": [], "info": info or {}}
        self._buffer: list[dict] = []

    def add_episode(self, obs, actions, rewards, success: bool, **extra) -> None:
        obs = np.asarray(obs, np.float32)
        actions = np.asarray(actions, np.float32)
        rewards = np.asarray(rewards, np.float32).reshape(-1)
        T = obs.shape[0]
        if obs.shape != (T, self.obs_dim) or actions.shape != (T, self.act_dim) or rewards.shape != (T,):
            raise ValueError(f"episode arrays must be obs [T, {self.obs_dim}], actions [T, {self.act_dim}], "
                             f"rewards [T]; got {obs.shape}, {actions.shape}, {rewards.shape}")
        if T == 0:
            raise ValueError("empty episode (T=0): nothing to store")
        if not (np.isfinite(obs).all() and np.isfinite(actions).all() and np.isfinite(rewards).all()):
            raise ValueError("episode contains NaN/inf in obs, actions or rewards: fix the recorder")
        names = sorted(extra)
        if self.meta["extra_fields"] is None:
            self.meta["extra_fields"] = names
        elif names != self.meta["extra_fields"]:
            raise ValueError(f"extra fields {names} differ from the dataset's {self.meta['extra_fields']}")
        for k, v in extra.items():
            if np.asarray(v).shape[:1] != (T,):
                raise ValueError(f"extra field {k!r} must have T={T} rows, got shape {np.asarray(v).shape}")
        self._buffer.append({"obs": obs, "actions": actions, "rewards": rewards, "success": bool(success),
                             **{k: np.asarray(v) for k, v in extra.items()}})
        if len(self._buffer) >= self.episodes_per_shard:
            self.flush()

    def flush(self) -> None:
        """Write buffered episodes as one new shard, then update metadata.json."""
        if not self._buffer:
            return
        eps, self._buffer = self._buffer, []
        lengths = [len(e["obs"]) for e in eps]
        arrays = {k: np.concatenate([e[k] for e in eps]) for k in ("obs", "actions", "rewards", *self.meta["extra_fields"])}
        arrays["episode_ends"] = np.cumsum(lengths).astype(np.int64)
        arrays["success"] = np.array([e["success"] for e in eps], bool)
        name = f"shard_{len(self.meta['shards']):05d}.npz"
        atomic_write(self.root / name, lambda f: np.savez(f, **arrays))
        self.meta["shards"].append({"file": name, "num_episodes": len(eps), "num_steps": int(sum(lengths))})
        self.meta["num_episodes"] += len(eps)
        self.meta["num_steps"] += int(sum(lengths))
        self._write_meta()

    def _write_meta(self) -> None:
        text = json.dumps(self.meta, indent=2).encode()
        atomic_write(self.root / "metadata.json", lambda f: f.write(text))

    def close(self) -> None:
        self.flush()
        if not self.meta["shards"]:
            self._write_meta()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DatasetError(ValueError):
    """A dataset that contradicts its format: the message names the file, the field and the fix."""


def _check_metadata(meta: dict, path: Path) -> None:
    missing = [k for k in ("obs_dim", "act_dim", "obs_fields", "action_fields", "shards", "num_episodes")
               if k not in meta]
    if missing:
        raise DatasetError(f"{path} lacks {missing} (see data/FORMAT.md)")
    for key, dim, what in (("obs_fields", meta["obs_dim"], "obs"), ("action_fields", meta["act_dim"], "action")):
        try:
            _layout(meta[key], int(dim), what)
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: {key} does not describe {what}_dim {dim}: {e}") from e


def _check_shard(z: dict, entry: dict, path: Path, obs_dim: int, act_dim: int, extra: list[str]) -> None:
    """What EpisodeWriter guarantees, checked on read: keys, shapes against metadata.json, episode
    bounds, finite values. Every message names the shard and the field."""
    import difflib

    for key in (*REQUIRED, "episode_ends", "success", *extra):
        if key not in z:
            close = difflib.get_close_matches(key, list(z), n=1, cutoff=0.5)
            raise DatasetError(f"{path}: no field {key!r}" + (f" (is {close[0]!r} meant to be it?)" if close else "")
                               + f"; the shard holds {sorted(z)}. Required: {[*REQUIRED, 'episode_ends', 'success']}"
                               + (f" and the extra fields of metadata.json {extra}" if extra else ""))
    T = len(z["obs"])
    for key, shape in (("obs", (T, obs_dim)), ("actions", (T, act_dim)), ("rewards", (T,))):
        if z[key].shape != shape:
            raise DatasetError(f"{path}: field {key!r} has shape {z[key].shape}, metadata.json implies {shape} "
                               f"(obs_dim {obs_dim}, act_dim {act_dim}, {T} steps in the shard)")
        if not np.issubdtype(z[key].dtype, np.number):
            raise DatasetError(f"{path}: field {key!r} has dtype {z[key].dtype}, not numeric")
    ends = np.asarray(z["episode_ends"])
    if ends.ndim != 1 or len(ends) == 0 or not np.issubdtype(ends.dtype, np.integer) or (np.diff(ends) <= 0).any() \
            or ends[0] <= 0 or ends[-1] != T:
        raise DatasetError(f"{path}: field 'episode_ends' must be increasing integers ending at the {T} steps of the "
                           f"shard, got {ends[:5]}...{ends[-2:] if len(ends) else ''}")
    if z["success"].shape != ends.shape:
        raise DatasetError(f"{path}: field 'success' has {z['success'].shape} entries for {len(ends)} episodes")
    for key in extra:
        if len(z[key]) != T:
            raise DatasetError(f"{path}: extra field {key!r} has {len(z[key])} rows for {T} steps")
    if (entry.get("num_episodes", len(ends)), entry.get("num_steps", T)) != (len(ends), T):
        raise DatasetError(f"{path}: metadata.json lists {entry.get('num_episodes')} episodes / {entry.get('num_steps')} "
                           f"steps for this shard, it holds {len(ends)} / {T}")
    for key in REQUIRED:
        bad = ~np.isfinite(z[key].reshape(T, -1)).all(1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            episode = int(np.searchsorted(ends, row, side="right"))
            raise DatasetError(f"{path}: field {key!r} has NaN/inf in {int(bad.sum())} rows, the first at row {row} "
                               f"(episode {episode} of the shard): fix or drop those episodes")


class EpisodeDataset:
    """All episodes of a dataset directory in memory (demonstration sets are small: MBs).

    `episodes[i]` is a dict obs [T, obs_dim], actions [T, act_dim], rewards [T], success, and the
    extra fields.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "metadata.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} not found: {self.root} is not a refine_dp episode dataset "
                                    "(write one with refine_dp_training.data.episodes.EpisodeWriter)")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{meta_path} is not valid JSON ({e})") from e
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path} has format {self.meta.get('format')!r}, this reader understands {FORMAT!r}")
        _check_metadata(self.meta, meta_path)
        self.obs_dim, self.act_dim = int(self.meta["obs_dim"]), int(self.meta["act_dim"])
        self.episodes: list[dict] = []
        extra = self.meta.get("extra_fields") or []
        for shard in self.meta["shards"]:
            path = self.root / shard["file"]
            if not path.is_file():
                raise DatasetError(f"{path}: listed in metadata.json but missing")
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            _check_shard(arrays, shard, path, self.obs_dim, self.act_dim, extra)
            ends = arrays["episode_ends"]
            starts = np.concatenate([[0], ends[:-1]])
            for e, (s, t) in enumerate(zip(starts, ends)):
                ep = {k: arrays[k][s:t] for k in (*REQUIRED, *extra)}
                ep["success"] = bool(arrays["success"][e])
                self.episodes.append(ep)
        if len(self.episodes) != self.meta["num_episodes"]:
            raise DatasetError(f"{self.root}: metadata says {self.meta['num_episodes']} episodes, shards hold "
                               f"{len(self.episodes)}: the dataset is corrupt")

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, i: int) -> dict:
        return self.episodes[i]

    def field_slice(self, name: str, kind: str = "obs") -> slice:
        """Slice of a named obs/action field (from metadata) into the flat vector."""
        for f in self.meta[f"{kind}_fields" if kind == "obs" else "action_fields"]:
            if f["name"] == name:
                return slice(f["start"], f["start"] + f["size"])
        raise KeyError(f"no {kind} field {name!r} in {self.root}; fields: "
                       f"{[f['name'] for f in self.meta['obs_fields' if kind == 'obs' else 'action_fields']]}")

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
        """Seeded split BY EPISODE (no window of a validation episode is ever trained on).

        At least one validation episode when val_fraction > 0 and there are >= 2 episodes.
        """
        n = len(self.episodes)
        perm = np.random.default_rng(seed).permutation(n)
        n_val = int(round(val_fraction * n))
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())
