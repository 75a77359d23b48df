"""Animated GIFs of rendered frames: the one writer of the training evals and sim_t1's video."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_gif(path: Path | str, frames, fps: float) -> Path:
    """Write `frames` ([H, W, 3] uint8 each) as a looping GIF playing at `fps` frames per second.

    imageio's v3 API (the pillow plugin) takes the frame duration in milliseconds; the v2
    `mimsave(..., duration=1/fps)` it replaces wrote a frame duration of 0 with imageio 2.38."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(list(frames)), extension=".gif", duration=1000.0 / fps, loop=0)
    return path
