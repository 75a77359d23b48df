"""Per-object state from NatNet frames: world pose, pose in the robot root, filtered velocity.

ROS-free. Each frame, every mapped rigid body is updated:
- tracked (params bit 0 set and a finite pose): pose taken as is; velocity from a finite
  difference over the *source* timestamps (network jitter does not enter it), passed through a
  first-order low-pass  v <- v + a (v_raw - v),  a = dt / (tau + dt).
  Angular velocity (world frame) is rotvec(R_k R_{k-1}^T) / dt.
- lost: the last tracked pose is held, tracked=False, velocity set to zero and the filter
  re-seeded on reacquisition (a difference across a gap would be a spike).
The root frame is the trunk rigid body (`trunk_body`): p_root = R_t^T (p - p_t),
R_root = R_t^T R. root_valid is False while the trunk is not tracked (its held pose is still
used, so pose_in_root stays defined).
Before anything else each received pose is (1) converted to Z-up from the MoCap world's `up_axis`
(mocap_bridge/frames.py, the one place for it) and (2) moved from the rigid body's frame (where
Motive puts it: the markers' pivot) to the object's frame by the body's `offset` (the object
frame's pose in the rigid body frame, e.g. the trunk link origin): p = p_rb + R_rb t, R = R_rb R_off.
Quaternions here are x, y, z, w (NatNet and geometry_msgs order, scipy's as_quat order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_bridge.frames import check_up_axis, to_z_up
from mocap_bridge.natnet_protocol import FrameOfData

DEFAULT_BODIES_FILE = Path(__file__).resolve().parent / "config" / "bodies.yaml"


@dataclass
class TrackerConfig:
    trunk_body: str = "t1_trunk"  # MoCap rigid body that is the robot root (base_link)
    body_to_object: dict = field(default_factory=lambda: {"t1_trunk": "t1_trunk", "box": "box"})
    velocity_time_constant_s: float = 0.03  # low-pass tau; 0 = raw finite difference
    max_velocity_gap_s: float = 0.1  # longer gaps between tracked samples re-seed the filter
    publish_unmapped: bool = False  # bodies missing from the map: publish under their own name
    up_axis: str = "z_up"  # the MoCap world's up axis: "z_up", or "y_up" (Motive's default)
    body_offsets: dict = field(default_factory=dict)  # body name -> (xyz (3,), Rotation): object frame in rb frame


def load_tracker_config(path: str | Path | None = None, **overrides) -> TrackerConfig:
    """TrackerConfig from a YAML body-map file (see config/bodies.yaml); overrides win."""
    import yaml

    path = Path(path) if path else DEFAULT_BODIES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"MoCap body map {path} not found; pass body_map_file pointing at a YAML like "
            f"{DEFAULT_BODIES_FILE}"
        )
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    raw = raw.get("mocap_bridge", raw)
    bodies = raw.get("bodies", {})
    if not isinstance(bodies, dict) or not all(isinstance(k, str) for k in bodies):
        raise ValueError(f"{path}: 'bodies' must map MoCap body names to object names")
    names, offsets = {}, {}
    for body, entry in bodies.items():
        if isinstance(entry, str):
            names[body] = entry
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("object"), str):
            raise ValueError(f"{path}: bodies.{body} must be an object name or a mapping with 'object' "
                             "(a name) and optional 'offset' {xyz: [m], rpy_deg: [deg]}")
        names[body] = entry["object"]
        if "offset" in entry:
            offsets[body] = _parse_offset(entry["offset"], f"{path}: bodies.{body}.offset")
    cfg = TrackerConfig(body_to_object=names, body_offsets=offsets)
    for key in ("trunk_body", "velocity_time_constant_s", "max_velocity_gap_s", "publish_unmapped", "up_axis"):
        if key in raw:
            setattr(cfg, key, type(getattr(cfg, key))(raw[key]))
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    try:
        cfg.up_axis = check_up_axis(cfg.up_axis)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return cfg


def _parse_offset(raw, where: str) -> tuple:
    """{xyz: [x, y, z] m, rpy_deg: [roll, pitch, yaw] deg (fixed axes x, y, z)} -> (xyz, Rotation)."""
    if not isinstance(raw, dict) or set(raw) - {"xyz", "rpy_deg"}:
        raise ValueError(f"{where} must be a mapping with keys xyz (m) and rpy_deg (deg), got {raw!r}")
    try:
        xyz = np.asarray(raw.get("xyz", [0.0, 0.0, 0.0]), dtype=float)
        rpy = np.asarray(raw.get("rpy_deg", [0.0, 0.0, 0.0]), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: xyz and rpy_deg must be lists of 3 numbers, got {raw!r}") from None
    if xyz.shape != (3,) or rpy.shape != (3,) or not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(rpy))):
        raise ValueError(f"{where}: xyz and rpy_deg must be lists of 3 finite numbers, got {raw!r}")
    return xyz, Rotation.from_euler("xyz", rpy, degrees=True)


@dataclass
class ObjectEstimate:
    name: str  # object name (after the map)
    body_name: str  # MoCap rigid body name
    body_id: int
    tracked: bool
    position: np.ndarray  # world, m
    quat_xyzw: np.ndarray  # world
    linear_velocity: np.ndarray  # world, m/s (filtered)
    angular_velocity: np.ndarray  # world, rad/s (filtered)
    position_in_root: np.ndarray
    quat_in_root_xyzw: np.ndarray
    root_valid: bool
    source_time: float  # NatNet frame timestamp, s
    frame_number: int
    mean_error: float


class _BodyState:
    __slots__ = ("pos", "rot", "t", "vel", "omega", "seeded", "ever_tracked", "mean_error")

    def __init__(self):
        self.pos = np.zeros(3)
        self.rot = Rotation.identity()
        self.t = 0.0
        self.vel = np.zeros(3)
        self.omega = np.zeros(3)
        self.seeded = False
        self.ever_tracked = False
        self.mean_error = 0.0


class ObjectTracker:
    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self._states: dict = {}  # body name -> _BodyState
        self.unmapped_bodies: set = set()
        self.nonfinite_poses = 0

    def object_name(self, body_name: str) -> str | None:
        name = self.config.body_to_object.get(body_name)
        if name is None and (self.config.publish_unmapped or body_name == self.config.trunk_body):
            name = body_name
        return name

    def update(self, frame: FrameOfData, names_by_id: dict) -> list:
        """Fold one frame in; return estimates of the mapped bodies seen in it."""
        t = float(frame.timestamp)
        seen = []
        for rb in frame.rigid_bodies:
            body = names_by_id.get(rb.id)
            if body is None:
                continue  # the client counts unknown ids
            name = self.object_name(body)
            if name is None:
                self.unmapped_bodies.add(body)
                continue
            state = self._states.setdefault(body, _BodyState())
            finite = all(math.isfinite(v) for v in (*rb.position, *rb.quaternion_xyzw))
            q = np.asarray(rb.quaternion_xyzw, dtype=float)
            qn = float(np.linalg.norm(q)) if finite else 0.0
            tracked = rb.tracked and finite and qn > 1e-6
            if rb.tracked and not tracked:
                self.nonfinite_poses += 1
            if tracked:
                pos, rot = self._object_pose(body, rb.position, q / qn)
                self._fold(state, pos, rot, t)
                state.mean_error = float(rb.mean_error)
            else:
                state.vel[:] = 0.0
                state.omega[:] = 0.0
                state.seeded = False
            seen.append((name, body, rb.id, tracked, state))

        trunk = self._states.get(self.config.trunk_body)
        trunk_now = any(b == self.config.trunk_body and tr for _, b, _, tr, _ in seen)
        out = []
        for name, body, rid, tracked, s in seen:
            if not s.ever_tracked:
                continue  # nothing to hold yet
            if trunk is not None and trunk.ever_tracked:
                inv = trunk.rot.inv()
                p_root = inv.apply(s.pos - trunk.pos)
                q_root = (inv * s.rot).as_quat()
            else:
                p_root, q_root = np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])
            out.append(
                ObjectEstimate(
                    name=name,
                    body_name=body,
                    body_id=rid,
                    tracked=tracked,
                    position=s.pos.copy(),
                    quat_xyzw=s.rot.as_quat(),
                    linear_velocity=s.vel.copy(),
                    angular_velocity=s.omega.copy(),
                    position_in_root=p_root,
                    quat_in_root_xyzw=q_root,
                    root_valid=bool(trunk_now),
                    source_time=t,
                    frame_number=frame.frame_number,
                    mean_error=s.mean_error,
                )
            )
        return out

    def _object_pose(self, body: str, position, quat_xyzw) -> tuple:
        """A received rigid-body pose -> the object's frame in the Z-up world (module docstring)."""
        pos, quat = to_z_up(position, quat_xyzw, self.config.up_axis)
        rot = Rotation.from_quat(quat)
        offset = self.config.body_offsets.get(body)
        if offset is not None:
            pos, rot = pos + rot.apply(offset[0]), rot * offset[1]
        return np.asarray(pos, float), rot

    def _fold(self, s: _BodyState, pos: np.ndarray, rot: Rotation, t: float) -> None:
        dt = t - s.t
        if s.seeded and 0.0 < dt <= self.config.max_velocity_gap_s:
            v_raw = (pos - s.pos) / dt
            w_raw = (rot * s.rot.inv()).as_rotvec() / dt
            tau = self.config.velocity_time_constant_s
            a = dt / (tau + dt) if tau > 0 else 1.0
            s.vel += a * (v_raw - s.vel)
            s.omega += a * (w_raw - s.omega)
        elif s.seeded and dt <= 0.0:
            # same or older source time (e.g. a paused simulator): nothing to difference, but the
            # pose is still the newest measurement
            s.pos, s.rot = pos, rot
            return
        s.pos, s.rot, s.t = pos, rot, t
        s.seeded = True
        s.ever_tracked = True
