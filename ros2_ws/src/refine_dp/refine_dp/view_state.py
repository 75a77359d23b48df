"""What `refine-dp view` draws, computed from the graph's messages without ROS or a browser.

`ViewState` takes the messages of the planner's topics (rclpy messages live, or rosbags'
deserialized ones from a bag: both have the same fields) and turns them, at the view's rate, into
`ViewFrame`s: every MuJoCo body's world pose (the T1 from RobotState's joints and the MoCap trunk,
the scene's objects from their MoCap poses), the commanded hand poses and the tracked footstep in
the world, the planner's current chunk (its planner_chunk/* PoseArrays: hand paths and base path, placed
in the world at the trunk pose they arrived at; without them, e.g. the scripted commander, the trail of
the executed commands of the chunk), and one plot sample (base velocity commanded vs walked, hand tracking error).
`load_bag` replays a recording into the list of frames the timeline slider walks through.

The robot is drawn from the MJCF the simulator runs (t1_description), so the view is the model:
mj_kinematics on qpos = [trunk pose, joint table positions, object joints].
Quaternions: geometry_msgs order (x, y, z, w) in messages, MuJoCo/viser order (w, x, y, z) here.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from refine_dp_planner.messages import CHUNK_TOPICS  # the planner's current chunk (PoseArrays)
from t1_description.joint_table import load_joint_table
from t1_description.model_paths import STAND_KEYFRAME, load_model, robot_indices

TRUNK_OBJECT = "t1_trunk"       # the MoCap body that is the robot root (mocap_bridge/config/bodies.yaml)
WALKED_TAU_S = 0.5              # low-pass of the walked velocity: the gait's sway averages out
PLOT_WINDOW_S = 10.0            # seconds of history in the live plots
FOOTSTEP_HISTORY = 6            # earlier footstep targets drawn (fading)
CHUNK_TRAIL = 24                # commanded hand positions of the current chunk kept
VIEW_TOPICS = ("robot_state", "objects", "high_level_command", "footstep_command", "planner_status", *CHUNK_TOPICS)


def _wxyz(q) -> np.ndarray:
    """geometry_msgs Quaternion (x, y, z, w) -> (w, x, y, z)."""
    return np.array([q.w, q.x, q.y, q.z], dtype=float)


def _pos(p) -> np.ndarray:
    return np.array([p.x, p.y, p.z], dtype=float)


def _rot(wxyz) -> Rotation:
    w, x, y, z = wxyz
    return Rotation.from_quat([x, y, z, w])


def _to_wxyz(rot: Rotation) -> np.ndarray:
    x, y, z, w = rot.as_quat()
    return np.array([w, x, y, z])


def _stamp(msg) -> float:
    s = msg.header.stamp
    return s.sec + s.nanosec * 1e-9


@dataclass(frozen=True)
class Geom:
    """One drawable MuJoCo geom, in its body's frame: kind box|sphere|capsule|cylinder, MuJoCo size."""
    name: str
    body: int
    kind: str
    size: tuple[float, float, float]
    pos: tuple[float, float, float]
    wxyz: tuple[float, float, float, float]
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class PlotSample:
    t: float
    vx_cmd: float
    vy_cmd: float
    vx_walked: float
    vy_walked: float
    left_hand_error_m: float     # |commanded - measured| hand position (NaN before a command)
    right_hand_error_m: float


@dataclass
class ViewFrame:
    """Everything drawn at one instant (world frame, metres, quaternions w, x, y, z)."""
    t: float
    q: np.ndarray                    # 29 joint positions, joint-table order
    trunk_pos: np.ndarray
    trunk_wxyz: np.ndarray
    body_pos: np.ndarray             # [nbody, 3]
    body_wxyz: np.ndarray            # [nbody, 4]
    hand_pos: np.ndarray             # [2, 3] measured hand sites (left, right)
    hand_target_pos: np.ndarray | None = None     # [2, 3] commanded
    hand_target_wxyz: np.ndarray | None = None    # [2, 4]
    grippers: tuple[float, float] = (0.0, 0.0)
    footstep: dict | None = None     # swing ("left"/"right"), target pos [3], yaw, step_index
    chunk: tuple[int, int] | None = None          # (chunk_id, chunk_index) of the executed command
    chunk_trail: np.ndarray | None = None         # [n, 2, 3] commanded hand positions of this chunk so far
    chunk_hands: np.ndarray | None = None         # [Ta, 2, 3] the planner's current chunk: hand targets
    chunk_base: np.ndarray | None = None          # [Ta + 1, 3] ... and base path (on the floor, z = 0)
    footsteps: list[dict] = field(default_factory=list)   # earlier footstep targets, oldest first
    planner: dict | None = None      # engine, inference_ms, stale
    sample: PlotSample | None = None
    text: str = ""
    robot_seen: bool = False         # false until the first robot_state: the view then draws no robot


def scene_geoms(model, max_group: int = 2) -> list[Geom]:
    """The model's drawable geoms (planes are left to the view's grid; group > max_group are contact
    helpers, e.g. the feet's contact spheres)."""
    import mujoco

    kinds = {int(mujoco.mjtGeom.mjGEOM_BOX): "box", int(mujoco.mjtGeom.mjGEOM_SPHERE): "sphere",
             int(mujoco.mjtGeom.mjGEOM_CAPSULE): "capsule", int(mujoco.mjtGeom.mjGEOM_CYLINDER): "cylinder"}
    geoms = []
    for g in range(model.ngeom):
        kind = kinds.get(int(model.geom_type[g]))
        if kind is None or model.geom_group[g] > max_group or model.geom_rgba[g, 3] == 0:
            continue
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
        geoms.append(Geom(name=name, body=int(model.geom_bodyid[g]), kind=kind,
                          size=tuple(map(float, model.geom_size[g])), pos=tuple(map(float, model.geom_pos[g])),
                          wxyz=tuple(map(float, model.geom_quat[g])), rgba=tuple(map(float, model.geom_rgba[g]))))
    return geoms


class ViewState:
    """Latest messages -> ViewFrame. Not thread-safe: the live view calls it under one lock."""

    def __init__(self, scene: str = "table_box", trunk_object: str = TRUNK_OBJECT):
        import mujoco

        self.mujoco = mujoco
        self.scene, self.trunk_object = scene, trunk_object
        self.model = load_model(scene)
        self.data = mujoco.MjData(self.model)
        key = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_KEY, STAND_KEYFRAME)
        if key >= 0:
            mujoco.mj_resetDataKeyframe(self.model, self.data, key)
        mujoco.mj_kinematics(self.model, self.data)
        self.rest_qpos = self.data.qpos.copy()
        self.rest_xquat = self.data.xquat.copy()
        self.idx = robot_indices(self.model)
        self.jt = load_joint_table()
        self.geoms = scene_geoms(self.model)
        self.body_names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}"
                           for b in range(self.model.nbody)]
        self.robot_bodies = self._subtree(self.idx.root_body)
        self.object_joints = self._object_joints()
        fingers = [int(np.flatnonzero(self.model.jnt_qposadr == a)[0]) for a in self.idx.gripper_qpos]
        self.finger_range = self.model.jnt_range[fingers].T       # (lo[4], hi[4])
        self.q = self.jt.default_q.astype(float).copy()
        self.trunk_pos = self.data.qpos[self.idx.root_qpos[:3]].copy()
        self.trunk_wxyz = self.data.qpos[self.idx.root_qpos[3:]].copy()
        self.trunk_from_mocap = False
        self.robot_seen = False
        self.objects: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.walked = np.zeros(2)             # heading-frame velocity, low-passed
        self._walked_t: float | None = None
        self.command = None
        self.footstep = None
        self.footsteps: deque[dict] = deque(maxlen=FOOTSTEP_HISTORY)
        self.chunk_trail: deque[np.ndarray] = deque(maxlen=CHUNK_TRAIL)
        self.chunk_plan: dict[str, np.ndarray] = {}   # planner_chunk topic -> world positions [n, 3]
        self.planner = None
        self.history: deque[PlotSample] = deque()
        self._name_map: tuple[tuple[str, ...], np.ndarray] | None = None

    # ------------------------------------------------------------------ model structure
    def _subtree(self, root: int) -> set[int]:
        bodies = {root}
        for b in range(root + 1, self.model.nbody):  # MuJoCo numbers bodies depth first
            if int(self.model.body_parentid[b]) in bodies:
                bodies.add(b)
        return bodies

    def _object_joints(self) -> dict[str, tuple[str, int, int]]:
        """Scene body name -> (joint kind free|hinge, qpos address, joint id) of the bodies an
        ObjectState can move (box: free joint; door leaf: hinge)."""
        mj = self.mujoco
        out = {}
        for b, name in enumerate(self.body_names):
            if b in self.robot_bodies or self.model.body_jntnum[b] != 1:
                continue
            j = int(self.model.body_jntadr[b])
            kind = {int(mj.mjtJoint.mjJNT_FREE): "free", int(mj.mjtJoint.mjJNT_HINGE): "hinge"}.get(
                int(self.model.jnt_type[j]))
            if kind:
                out[name] = (kind, int(self.model.jnt_qposadr[j]), j)
        return out

    # ------------------------------------------------------------------ messages
    def on_robot_state(self, msg, t: float) -> None:
        names = tuple(msg.name)
        if self._name_map is None or self._name_map[0] != names:
            index = {n: i for i, n in enumerate(self.jt.names)}
            unknown = [n for n in names if n not in index]
            if unknown:
                raise ValueError(f"robot_state names joints {unknown} that the joint table does not have")
            self._name_map = (names, np.array([index[n] for n in names], dtype=np.int64))
        self.q[self._name_map[1]] = np.asarray(msg.position, dtype=float)
        self.robot_seen = True
        if msg.root_pose_valid:
            self.trunk_pos, self.trunk_wxyz = _pos(msg.root_pose.position), _wxyz(msg.root_pose.orientation)
            self.trunk_from_mocap = True
        elif not self.trunk_from_mocap:  # no MoCap yet: IMU attitude at the stand pose
            self.trunk_wxyz = _wxyz(msg.imu_orientation)

    def on_objects(self, msg, t: float) -> None:
        for o in msg.objects:
            if not o.tracked:
                continue
            pos, wxyz = _pos(o.pose.position), _wxyz(o.pose.orientation)
            if o.name == self.trunk_object:
                self.trunk_pos, self.trunk_wxyz, self.trunk_from_mocap = pos, wxyz, True
                self._update_walked(_pos(o.twist.linear), t)
            else:
                self.objects[o.name] = (pos, wxyz)

    def _update_walked(self, v_world: np.ndarray, t: float) -> None:
        yaw = self._yaw()
        c, s = math.cos(yaw), math.sin(yaw)
        v = np.array([c * v_world[0] + s * v_world[1], -s * v_world[0] + c * v_world[1]])
        dt = 0.0 if self._walked_t is None else max(0.0, t - self._walked_t)
        self._walked_t = t
        self.walked += (1.0 - math.exp(-dt / WALKED_TAU_S)) * (v - self.walked)

    def on_high_level_command(self, msg, t: float) -> None:
        previous = self.command
        self.command = {
            "v": (float(msg.vx), float(msg.vy), float(msg.wz)),
            "hand_pos": np.array([_pos(msg.left_hand_pose.position), _pos(msg.right_hand_pose.position)]),
            "hand_wxyz": np.array([_wxyz(msg.left_hand_pose.orientation), _wxyz(msg.right_hand_pose.orientation)]),
            "grippers": (float(msg.left_gripper), float(msg.right_gripper)),
            "chunk": (int(msg.chunk_id), int(msg.chunk_index)),
        }
        if previous is not None and previous["chunk"][0] != self.command["chunk"][0]:
            self.chunk_trail.clear()
        self.chunk_trail.append(self.trunk_pos + _rot(self.trunk_wxyz).apply(self.command["hand_pos"]))

    def _on_chunk(self, topic: str, msg) -> None:
        """A planner_chunk PoseArray (base_link at the chunk's start) -> world, at the trunk pose now."""
        pts = np.array([_pos(p.position) for p in msg.poses], dtype=float).reshape(-1, 3)
        if topic == "base":   # the base path on the floor, turned by the trunk's yaw only
            yaw = self._yaw()
            pts = np.column_stack([pts[:, :2], np.zeros(len(pts))])
            pts = Rotation.from_euler("z", yaw).apply(pts) + [self.trunk_pos[0], self.trunk_pos[1], 0.0]
        else:
            pts = self.trunk_pos + _rot(self.trunk_wxyz).apply(pts)
        self.chunk_plan[topic] = pts

    def on_planner_chunk_base(self, msg, t: float) -> None:
        self._on_chunk("base", msg)

    def on_planner_chunk_left_hand(self, msg, t: float) -> None:
        self._on_chunk("left_hand", msg)

    def on_planner_chunk_right_hand(self, msg, t: float) -> None:
        self._on_chunk("right_hand", msg)

    def on_footstep_command(self, msg, t: float) -> None:
        self.footstep = msg

    def on_planner_status(self, msg, t: float) -> None:
        self.planner = {"engine": msg.engine, "inference_ms": float(msg.inference_ms), "stale": bool(msg.stale)}

    def on_message(self, topic: str, msg, t: float) -> None:
        handler = getattr(self, f"on_{topic.lstrip('/').replace('/', '_')}", None)
        if handler is not None:
            handler(msg, t)

    # ------------------------------------------------------------------ frames
    def _yaw(self) -> float:
        return float(_rot(self.trunk_wxyz).as_euler("ZYX")[0])

    def frame(self, t: float) -> ViewFrame:
        """Kinematics of the latest state; appends one plot sample to `history` (last PLOT_WINDOW_S)."""
        m, d, idx = self.model, self.data, self.idx
        d.qpos[:] = self.rest_qpos
        d.qpos[idx.root_qpos[:3]] = self.trunk_pos
        d.qpos[idx.root_qpos[3:]] = self.trunk_wxyz / (np.linalg.norm(self.trunk_wxyz) or 1.0)
        d.qpos[idx.qpos] = self.q
        if self.command is not None:  # commanded grippers (0 open .. 1 closed) over the finger slides' range
            lo, hi = self.finger_range
            d.qpos[idx.gripper_qpos] = lo + np.clip(np.repeat(self.command["grippers"], 2), 0, 1) * (hi - lo)
        for name, (pos, wxyz) in self.objects.items():
            joint = self.object_joints.get(name)
            if joint is None:
                continue
            kind, adr, j = joint
            if kind == "free":
                d.qpos[adr:adr + 3], d.qpos[adr + 3:adr + 7] = pos, wxyz
            else:  # hinge: the angle of the body's rotation from its rest pose about the joint axis
                b = self.body_names.index(name)
                rel = _rot(self.rest_xquat[b]).inv() * _rot(wxyz)
                d.qpos[adr] = float(rel.as_rotvec() @ m.jnt_axis[j])
        self.mujoco.mj_kinematics(m, d)
        trunk = _rot(self.trunk_wxyz)
        hand_pos = d.site_xpos[idx.hand_sites].copy()
        f = ViewFrame(t=t, q=self.q.copy(), trunk_pos=self.trunk_pos.copy(), trunk_wxyz=self.trunk_wxyz.copy(),
                      body_pos=d.xpos.copy(), body_wxyz=d.xquat.copy(), hand_pos=hand_pos, planner=self.planner,
                      robot_seen=self.robot_seen)
        errors = (math.nan, math.nan)
        v_cmd = (0.0, 0.0, 0.0)
        if self.command is not None:
            c = self.command
            f.hand_target_pos = self.trunk_pos + trunk.apply(c["hand_pos"])
            f.hand_target_wxyz = np.array([_to_wxyz(trunk * _rot(w)) for w in c["hand_wxyz"]])
            f.grippers, f.chunk, v_cmd = c["grippers"], c["chunk"], c["v"]
            f.chunk_trail = np.array(self.chunk_trail)
        plan = self.chunk_plan
        if "left_hand" in plan and "right_hand" in plan and len(plan["left_hand"]) == len(plan["right_hand"]):
            f.chunk_hands = np.stack([plan["left_hand"], plan["right_hand"]], axis=1)
        if "base" in plan:
            f.chunk_base = plan["base"].copy()
            errors = tuple(float(e) for e in np.linalg.norm(f.hand_target_pos - hand_pos, axis=1))
        f.footstep = self._footstep_world()
        if f.footstep and (not self.footsteps or self.footsteps[-1]["step_index"] != f.footstep["step_index"]):
            self.footsteps.append(f.footstep)
        f.footsteps = list(self.footsteps)[:-1] if f.footstep else list(self.footsteps)
        f.sample = PlotSample(t, v_cmd[0], v_cmd[1], float(self.walked[0]), float(self.walked[1]), *errors)
        self.history.append(f.sample)
        while self.history and self.history[0].t < t - PLOT_WINDOW_S:
            self.history.popleft()
        f.text = self._text(f)
        return f

    def _footstep_world(self) -> dict | None:
        """The footstep being tracked: target swing-foot pose, from the stance foot's sole in its yaw frame."""
        fs = self.footstep
        if fs is None or fs.swing_foot == 0:
            return None
        stance = 1 if fs.swing_foot == 1 else 0          # swing left -> the right foot stands
        site = self.idx.foot_sites[stance]
        p = self.data.site_xpos[site]
        yaw = float(Rotation.from_matrix(self.data.site_xmat[site].reshape(3, 3)).as_euler("ZYX")[0])
        c, s = math.cos(yaw), math.sin(yaw)
        target = p + np.array([c * fs.target_x - s * fs.target_y, s * fs.target_x + c * fs.target_y, fs.target_z])
        return {"swing": "left" if fs.swing_foot == 1 else "right", "pos": target, "yaw": yaw + fs.target_yaw,
                "step_index": int(fs.step_index)}

    def _text(self, f: ViewFrame) -> str:
        if not f.robot_seen:
            return f"t {f.t:.2f} s\nwaiting for robot_state"
        lines = [f"t {f.t:.2f} s", f"trunk {f.trunk_pos[0]:+.2f} {f.trunk_pos[1]:+.2f} {f.trunk_pos[2]:.2f} m"
                 + ("" if self.trunk_from_mocap else " (no MoCap)")]
        if f.sample is not None:
            s = f.sample
            lines.append(f"v cmd {s.vx_cmd:+.2f} {s.vy_cmd:+.2f} m/s")
            lines.append(f"walked {s.vx_walked:+.2f} {s.vy_walked:+.2f} m/s")
        if f.chunk is not None:
            lines.append(f"chunk {f.chunk[0]} action {f.chunk[1]}")
        if f.planner:
            lines.append(f"planner {f.planner['engine']} {f.planner['inference_ms']:.0f} ms"
                         + (" STALE" if f.planner["stale"] else ""))
        return "\n".join(lines)


def plot_arrays(samples) -> dict[str, np.ndarray]:
    """Plot samples -> columns (t relative to the newest sample)."""
    if not samples:
        return {k: np.zeros(0) for k in PlotSample.__dataclass_fields__}
    cols = {k: np.array([getattr(s, k) for s in samples], dtype=float) for k in PlotSample.__dataclass_fields__}
    cols["t"] = cols["t"] - cols["t"][-1]
    return cols


@dataclass
class Replay:
    """A recording as view frames at a fixed rate, and the plot samples of each frame."""
    frames: list[ViewFrame]
    state: ViewState
    bags: list[Path] = field(default_factory=list)

    def window(self, i: int) -> list[PlotSample]:
        t = self.frames[i].t
        samples = []
        for f in reversed(self.frames[:i + 1]):
            if f.t < t - PLOT_WINDOW_S:
                break
            samples.append(f.sample)
        return samples[::-1]


def load_bag(path, scene: str = "table_box", rate_hz: float = 25.0, trunk_object: str = TRUNK_OBJECT) -> Replay:
    """Replay a rosbag2 recording (a bag, or a folder of `refine-dp record` segments) into frames every
    1/rate_hz s of its receive time, the time the recorder stamped each message with."""
    from rosbags.rosbag2 import Reader

    from refine_dp_planner.bags import find_bags, typestore

    store = typestore()
    bags = find_bags([path])
    state = ViewState(scene, trunk_object=trunk_object)
    frames: list[ViewFrame] = []
    period_ns = int(1e9 / rate_hz)
    next_ns = None
    t0 = None
    for bag in bags:
        with Reader(bag) as reader:
            conns = [c for c in reader.connections if c.topic.lstrip("/") in VIEW_TOPICS]
            for conn, stamp_ns, raw in reader.messages(connections=conns):
                if t0 is None:
                    t0, next_ns = stamp_ns, stamp_ns
                while stamp_ns >= next_ns:   # frames at fixed times, from the messages received before
                    frames.append(state.frame((next_ns - t0) * 1e-9))
                    next_ns += period_ns
                state.on_message(conn.topic, store.deserialize_cdr(raw, conn.msgtype), (stamp_ns - t0) * 1e-9)
    if t0 is None:
        raise ValueError(f"{path}: no messages on {VIEW_TOPICS}; record them with `refine-dp record`")
    frames.append(state.frame((next_ns - t0) * 1e-9))
    return Replay(frames=frames, state=state, bags=bags)
