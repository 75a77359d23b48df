"""What the task heuristics share."""
from __future__ import annotations

import numpy as np


def redraw(params, p: dict, rng: np.random.Generator, n: int, mask=None) -> np.ndarray | None:
    """New per-episode parameters (params.draw) in the rows of `p` that `mask` selects (all by default);
    -> the boolean mask, or None when it selects nothing."""
    mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
    k = int(mask.sum())
    if k == 0:
        return None
    draw = params.draw(rng, k)
    for key in p:
        p[key][mask] = draw[key]
    return mask
