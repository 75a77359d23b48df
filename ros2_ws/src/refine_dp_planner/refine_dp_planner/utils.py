"""Small helpers shared by the policy, checkpoints and exports."""
from __future__ import annotations

import copy
import os
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with requires_grad False: the reference/old policy for PPO ratios,
    the frozen DP under DSRL or residual RL."""
    return copy.deepcopy(module).eval().requires_grad_(False)


def git_revision(path: str | Path | None = None) -> str:
    """HEAD of the repository holding `path` (this file by default), '+dirty' if modified, or 'unknown'."""
    cwd = Path(path or __file__).resolve()
    cwd = cwd if cwd.is_dir() else cwd.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def atomic_write(path: str | Path, write) -> Path:
    """The project's one way to write a file: `write(f)` into a temp file (binary) in the same folder,
    fsync, then rename: a kill never leaves a torn file (the previous complete one or the new
    complete one). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj) -> Path:
    import json

    return atomic_write_text(path, json.dumps(obj, indent=2, default=float))


def atomic_torch_save(obj, path: str | Path) -> Path:
    """torch.save, atomically (atomic_write)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def dict_diff(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """Human-readable list of 'key: expected X, got Y' for nested dicts (missing keys included)."""
    diffs = []
    for key in sorted(set(expected) | set(actual), key=str):
        name = f"{prefix}{key}"
        if key not in actual:
            diffs.append(f"{name}: expected {expected[key]!r}, missing")
        elif key not in expected:
            diffs.append(f"{name}: unexpected {actual[key]!r}")
        elif isinstance(expected[key], dict) and isinstance(actual[key], dict):
            diffs.extend(dict_diff(expected[key], actual[key], name + "."))
        elif _norm(expected[key]) != _norm(actual[key]):
            diffs.append(f"{name}: expected {expected[key]!r}, got {actual[key]!r}")
    return diffs


def _norm(value):
    """Tuples and lists compare equal (JSON turns tuples into lists)."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value
