"""Offscreen PNG snapshots of a MuJoCo scene (EGL or OSMesa, chosen with MUJOCO_GL)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402


def render_png(model: mujoco.MjModel, data: mujoco.MjData, path: Path, width: int = 640, height: int = 480,
               lookat=(0.3, 0.0, 0.6), distance: float = 2.6, azimuth: float = 135.0, elevation: float = -20.0) -> Path:
    import imageio.v3 as iio

    camera = mujoco.MjvCamera()
    camera.lookat[:] = lookat
    camera.distance, camera.azimuth, camera.elevation = distance, azimuth, elevation
    with mujoco.Renderer(model, height, width) as renderer:
        renderer.update_scene(data, camera)
        image = renderer.render()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path
