"""Offscreen PNG snapshots and a GIF video of a MuJoCo scene (EGL or OSMesa, chosen with MUJOCO_GL)."""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

# three-quarter view from the robot's right-front: the robot, its hands and the table_box table all in
# sight (from azimuth 135 the table hid the robot standing in front of it)
VIEW = dict(lookat=(0.2, 0.0, 0.6), distance=2.5, azimuth=245.0, elevation=-20.0)
# per scene where the default does not show the task: the door from behind the robot's right shoulder
# (the wall at x 1.0 hides the robot from the far side; the leaf opens away, on the robot's left)
SCENE_VIEWS = {"door": dict(lookat=(0.7, 0.0, 0.8), distance=3.2, azimuth=30.0, elevation=-25.0)}


def scene_view(scene: str | None) -> dict:
    """The camera (make_camera's arguments) that shows `scene`'s task: SCENE_VIEWS, else VIEW."""
    return dict(SCENE_VIEWS.get(scene or "", VIEW))


def make_camera(lookat=VIEW["lookat"], distance: float = VIEW["distance"], azimuth: float = VIEW["azimuth"],
                elevation: float = VIEW["elevation"]) -> mujoco.MjvCamera:
    camera = mujoco.MjvCamera()
    camera.lookat[:] = lookat
    camera.distance, camera.azimuth, camera.elevation = distance, azimuth, elevation
    return camera


def render_png(model: mujoco.MjModel, data: mujoco.MjData, path: Path, width: int = 640, height: int = 480,
               **view) -> Path:
    import imageio.v3 as iio

    with mujoco.Renderer(model, height, width) as renderer:
        renderer.update_scene(data, make_camera(**view))
        image = renderer.render()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return path


class VideoRecorder:
    """A frame every `period_s` of simulated time, rendered off the physics thread.

    The physics thread only copies the state (`capture`, a few microseconds); a worker thread with
    its own MjData and renderer (MuJoCo releases the GIL while it renders) draws the frames, without
    shadows and reflections (at 320x240 with software GL: ~35 ms a frame instead of ~160 ms).
    A worker that falls `max_pending` frames behind drops frames (counted) rather than hold memory.
    `finish` writes the GIF (t1_description.video.write_gif), playing in real time."""

    SPEC = mujoco.mjtState.mjSTATE_INTEGRATION

    def __init__(self, model: mujoco.MjModel, period_s: float = 0.2, width: int = 320, height: int = 240,
                 max_pending: int = 100, view: dict | None = None) -> None:
        self.model, self.period_s, self.size = model, float(period_s), (height, width)
        self.view = dict(view or VIEW)
        self.max_pending = max_pending
        self.frames: list[np.ndarray] = []
        self.dropped = 0
        self.error: str | None = None
        self.render_s = 0.0
        self._next_t = 0.0
        self._state_size = mujoco.mj_stateSize(model, self.SPEC)
        self._pending: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._work, name="video", daemon=True)
        self._thread.start()
        self._ready.wait(60.0)  # the GL context is made before physics runs (it holds the GIL a while)

    def capture(self, data: mujoco.MjData) -> None:
        """From the physics thread: keep the state if a frame is due."""
        if data.time < self._next_t or self.error is not None:
            return
        self._next_t = max(self._next_t + self.period_s, data.time)
        if self._pending.qsize() >= self.max_pending:
            self.dropped += 1
            return
        state = np.empty(self._state_size)
        mujoco.mj_getState(self.model, data, state, self.SPEC)
        self._pending.put(state)

    def _work(self) -> None:
        try:
            renderer = mujoco.Renderer(self.model, *self.size)
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
                renderer.scene.flags[flag] = False
            data = mujoco.MjData(self.model)
            camera = make_camera(**self.view)
        except Exception as e:  # no GL: no video, the run goes on
            self.error = f"{type(e).__name__}: {e} (set MUJOCO_GL=egl or osmesa)"
            return
        finally:
            self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    state = self._pending.get(timeout=0.1)
                except queue.Empty:
                    continue
                if state is None:
                    break
                t = time.perf_counter()
                mujoco.mj_setState(self.model, data, state, self.SPEC)
                mujoco.mj_forward(self.model, data)
                renderer.update_scene(data, camera)
                self.frames.append(renderer.render())
                self.render_s += time.perf_counter() - t
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            renderer.close()

    def finish(self, path: Path, timeout_s: float = 3.0) -> dict:
        """Render what is pending (at most `timeout_s` of wall time; the rest is dropped), write the GIF
        to `path`; returns what happened (for the node's report)."""
        from t1_description.video import write_gif

        self._pending.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(1.0)
        while not self._pending.empty():  # not rendered in time
            self.dropped += self._pending.get_nowait() is not None
        frames = list(self.frames)
        out = {"frames": len(frames), "frames_dropped": self.dropped, "period_s": self.period_s,
               "render_ms_per_frame": round(1e3 * self.render_s / len(frames), 1) if frames else None}
        if self.error is not None:
            out["error"] = self.error
        if frames:
            try:
                out["path"] = str(write_gif(path, frames, fps=1.0 / self.period_s))
            except Exception as e:
                out["error"] = f"{type(e).__name__}: {e}"
        return out
