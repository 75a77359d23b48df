"""One run directory for every training loop (PPO runner, pretrainer, fine-tuning).

    <out>/
      config.json                 the run's typed config
      checkpoints/<prefix>_<n>.pt the newest `keep` kept (0: all); `latest_checkpoint` for --resume
      curve.csv, curve.jsonl      evaluation rows (CurveLogger)
      tb/                         tensorboard scalars
      summary.json                written at the end
      policy.pt                   what the run leaves for the next stage (pretrain, finetune)

Every file is written to a temporary file in the same folder, fsynced and renamed over the old one
(os.replace is atomic on POSIX), so a kill at any moment leaves either the previous complete file
or the new one; old checkpoints are pruned only after the new one is complete.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from refine_dp_planner.utils import atomic_torch_save, atomic_write_json, atomic_write_text  # noqa: F401 (re-exported)


class RunDir:
    """Checkpoints `checkpoints/<prefix>_<n:0{digits}d>.pt` (newest `keep` kept; 0 keeps all), JSON and
    text files, and a lazily opened tensorboard writer under `tb/` (none when tensorboard is False)."""

    def __init__(self, root: str | Path, prefix: str, digits: int = 6, keep: int = 0, tensorboard: bool = True):
        self.root, self.prefix, self.digits, self.keep = Path(root), prefix, digits, keep
        self.tensorboard = tensorboard
        self._writer = None

    # ---- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint_path(self, n: int) -> Path:
        return self.checkpoint_dir / f"{self.prefix}_{n:0{self.digits}d}.pt"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (zero-padded numbers sort by name)."""
        return sorted(self.checkpoint_dir.glob(f"{self.prefix}_*.pt"))

    def latest_checkpoint(self) -> Path | None:
        files = self.checkpoints()
        return files[-1] if files else None

    def save_checkpoint(self, payload: dict, n: int) -> Path:
        """Write checkpoint n atomically, then remove the ones beyond `keep`."""
        path = atomic_torch_save(payload, self.checkpoint_path(n))
        if self.keep > 0:
            for old in self.checkpoints()[:-self.keep]:
                old.unlink(missing_ok=True)
        return path

    def load_latest(self) -> tuple[dict, Path]:
        """(payload, path) of the newest checkpoint, for --resume; a clear error when there is none."""
        path = self.latest_checkpoint()
        if path is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {self.checkpoint_dir}; start without --resume")
        return torch.load(path, map_location="cpu", weights_only=False), path

    # ---- files ----------------------------------------------------------------------------------
    def write_json(self, name: str, obj) -> Path:
        return atomic_write_json(self.root / name, obj)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.root / name, text)

    def append_jsonl(self, name: str, row: dict) -> None:
        """One line appended and fsynced (a log: a kill loses at most the line being written)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # ---- tensorboard ----------------------------------------------------------------------------
    @property
    def writer(self):
        if self._writer is None and self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.root / "tb"))
        return self._writer

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        """Finite numbers of `values` as `<prefix>/<key>` (or `<key>`) at `step`; others skipped."""
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v):
                self.writer.add_scalar(f"{prefix}/{k}" if prefix else k, float(v), step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CurveLogger:
    """Evaluation rows -> curve.csv + curve.jsonl, rewritten whole and atomically (the rows live in the
    checkpoint, so a resumed run's curve has no duplicate or missing rows) and tensorboard `eval/*`."""

    def __init__(self, run: RunDir, columns: tuple[str, ...], step_key: str = "env_steps"):
        self.run, self.columns, self.step_key = run, columns, step_key
        self.rows: list[dict] = []

    def eval_row(self, row: dict) -> None:
        self.rows.append(row)
        self.run.scalars({k: row[k] for k in self.columns if k in row and k != self.step_key}, row[self.step_key],
                         "eval")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        self.run.write_text("curve.csv", buf.getvalue())
        self.run.write_text("curve.jsonl", "".join(json.dumps(r, default=float) + "\n" for r in self.rows))
