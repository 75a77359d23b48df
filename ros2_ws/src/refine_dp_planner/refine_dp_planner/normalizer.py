"""Per-dimension normalizers as torch modules whose statistics are buffers.

Buffers, not attributes, so the statistics travel inside the policy's state_dict (checkpoint), are
traced into the exported ONNX graph as constants, and are written to the engine's metadata.json.
"min_max" maps each dimension's [min, max] to [-1, 1] (the Diffusion Policy convention, which is what
the x0 clip to [-1, 1] assumes); "mean_std" standardizes. Both are affine: y = (x - center) / scale,
x = y * scale + center, so the round trip is exact up to float rounding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

NORMALIZER_KINDS = ("min_max", "mean_std")


def range_outliers(data, ratio: float, quantile: float = 0.01) -> list[tuple[int, float, float]]:
    """Dimensions whose min-max half-range is more than `ratio` times their [quantile, 1 - quantile] half-range:
    (dim, full half-range, quantile half-range) each. A min-max normalizer fitted on such a dimension squeezes
    almost all of it into a sliver of [-1, 1] (a few frames of a box the physics shot away made the pickup
    planners blind to the box: 25 m against 0.5 m). Dimensions constant within the quantiles are skipped."""
    x = np.asarray(data, dtype=np.float64).reshape(-1, np.shape(data)[-1])
    lo, hi = x.min(0), x.max(0)
    qlo, qhi = np.quantile(x, [quantile, 1.0 - quantile], axis=0)
    full, core = (hi - lo) / 2, (qhi - qlo) / 2
    return [(int(d), float(full[d]), float(core[d])) for d in np.flatnonzero((core > 1e-9) & (full > ratio * core))]


class Normalizer(nn.Module):
    """Affine per-dimension normalizer over the last axis of size `dim`."""

    def __init__(self, dim: int, kind: str = "min_max", eps: float = 1e-6):
        super().__init__()
        if kind not in NORMALIZER_KINDS:
            raise ValueError(f"unknown normalizer kind {kind!r}: use one of {NORMALIZER_KINDS}")
        self.dim, self.kind, self.eps = int(dim), kind, eps
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, data: torch.Tensor | np.ndarray) -> "Normalizer":
        """Fit to data [..., dim]. Constant dimensions get scale 1 (they normalize to 0, not NaN)."""
        x = torch.as_tensor(np.asarray(data) if not torch.is_tensor(data) else data, dtype=torch.float64)
        x = x.reshape(-1, x.shape[-1])
        if x.shape[-1] != self.dim:
            raise ValueError(f"normalizer expects last dim {self.dim}, data has {x.shape[-1]}")
        if not torch.isfinite(x).all():
            raise ValueError("normalizer fit data contains NaN/inf: clean the dataset first")
        if self.kind == "min_max":
            lo, hi = x.min(0).values, x.max(0).values
            center, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            center, scale = x.mean(0), x.std(0, unbiased=False)
        scale = torch.where(scale < self.eps, torch.ones_like(scale), scale)
        self.center.copy_(center.float())
        self.scale.copy_(scale.float())
        self.fitted.fill_(True)
        return self

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.dim:
            raise ValueError(f"normalizer expects last dim {self.dim}, got shape {tuple(x.shape)}")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return (x - self.center) / self.scale

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y)
        return y * self.scale + self.center

    forward = normalize

    def stats(self) -> dict:
        """JSON-friendly statistics (for metadata.json)."""
        return {"kind": self.kind, "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_stats(cls, stats: dict) -> "Normalizer":
        norm = cls(len(stats["center"]), stats["kind"])
        norm.center.copy_(torch.tensor(stats["center"], dtype=torch.float32))
        norm.scale.copy_(torch.tensor(stats["scale"], dtype=torch.float32))
        norm.fitted.fill_(True)
        return norm

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind!r}, fitted={bool(self.fitted)}"
