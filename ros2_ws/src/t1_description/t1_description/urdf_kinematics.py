"""A tiny URDF forward kinematics in numpy.

Why: the project checks that its URDF (rviz, TF) and its MJCF (simulation) describe the same
robot, and tools without MuJoCo (the hardware node publishing TF) need link poses. Only what
the T1 URDF uses is supported: revolute, continuous, prismatic and fixed joints with
origin xyz/rpy and an axis. Rotations use scipy (URDF rpy = extrinsic x-y-z).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

_SUPPORTED = ("revolute", "continuous", "prismatic", "fixed")


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray  # 4x4 pose of the joint frame in the parent link frame
    axis: np.ndarray  # unit axis in the joint (= child link) frame
    lower: float
    upper: float
    effort: float
    velocity: float


@dataclass(frozen=True)
class UrdfModel:
    name: str
    root: str
    links: tuple[str, ...]
    joints: tuple[UrdfJoint, ...]  # parents before children

    @property
    def movable_joints(self) -> tuple[UrdfJoint, ...]:
        return tuple(j for j in self.joints if j.type != "fixed")

    def joint(self, name: str) -> UrdfJoint:
        for j in self.joints:
            if j.name == name:
                return j
        raise KeyError(f"URDF {self.name!r} has no joint {name!r}")


def _floats(text: str | None, n: int, default: float, what: str) -> np.ndarray:
    if text is None:
        return np.full(n, default)
    vals = np.array([float(v) for v in text.split()])
    if vals.shape != (n,):
        raise ValueError(f"{what}: expected {n} numbers, got {text!r}")
    return vals


def pose_matrix(xyz: Sequence[float], rpy: Sequence[float]) -> np.ndarray:
    """4x4 transform of a URDF origin (rpy is roll-pitch-yaw about fixed x, y, z)."""
    t = np.eye(4)
    t[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix()
    t[:3, 3] = xyz
    return t


def parse_urdf(path: Path | str) -> UrdfModel:
    """Parse the kinematic tree of a URDF file; errors name the file and the joint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"URDF {path} does not exist")
    return parse_urdf_string(path.read_text(), source=str(path))


def parse_urdf_string(text: str, source: str = "<urdf string>") -> UrdfModel:
    """Parse the kinematic tree of URDF text; `source` names it in errors."""
    path = source
    root_el = ET.fromstring(text)
    links = tuple(l.get("name") for l in root_el.findall("link"))
    raw = []
    for el in root_el.findall("joint"):
        name, jtype = el.get("name"), el.get("type")
        where = f"{path}: joint {name!r}"
        if jtype not in _SUPPORTED:
            raise ValueError(f"{where}: type {jtype!r} is not supported ({_SUPPORTED})")
        origin_el = el.find("origin")
        xyz = _floats(None if origin_el is None else origin_el.get("xyz"), 3, 0.0, where)
        rpy = _floats(None if origin_el is None else origin_el.get("rpy"), 3, 0.0, where)
        axis_el = el.find("axis")
        axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, 0.0, where)
        if axis_el is None:
            axis = np.array([1.0, 0.0, 0.0])
        if jtype != "fixed":
            axis = axis / np.linalg.norm(axis)
        lim = el.find("limit")
        get = (lambda k, d: float(lim.get(k, d))) if lim is not None else (lambda k, d: d)
        lower, upper = (-np.inf, np.inf) if jtype == "continuous" else (get("lower", 0.0), get("upper", 0.0))
        raw.append(UrdfJoint(name, jtype, el.find("parent").get("link"), el.find("child").get("link"),
                             pose_matrix(xyz, rpy), axis, lower, upper,
                             get("effort", np.inf), get("velocity", np.inf)))
    children = {j.child for j in raw}
    roots = [l for l in links if l not in children]
    if len(roots) != 1:
        raise ValueError(f"{path}: expected one root link, found {roots}")
    ordered, frontier = [], [roots[0]]
    while frontier:
        parent = frontier.pop(0)
        for j in raw:
            if j.parent == parent:
                ordered.append(j)
                frontier.append(j.child)
    if len(ordered) != len(raw):
        raise ValueError(f"{path}: joints not connected to the root {roots[0]!r}")
    return UrdfModel(root_el.get("name", str(source)), roots[0], links, tuple(ordered))


def _joint_motion(joint: UrdfJoint, q: float) -> np.ndarray:
    t = np.eye(4)
    if joint.type in ("revolute", "continuous"):
        t[:3, :3] = Rotation.from_rotvec(joint.axis * q).as_matrix()
    elif joint.type == "prismatic":
        t[:3, 3] = joint.axis * q
    return t


def forward_kinematics(model: UrdfModel, q: Mapping[str, float] | None = None,
                       root_pose: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """World 4x4 pose of every link for joint positions `q` (name -> value; missing joints are 0).

    `root_pose` is the root link's pose (identity by default). Unknown names in `q` raise, so a
    typo cannot silently leave a joint at zero.
    """
    q = dict(q or {})
    known = {j.name for j in model.movable_joints}
    unknown = sorted(set(q) - known)
    if unknown:
        raise KeyError(f"URDF {model.name!r} has no movable joints {unknown}")
    poses = {model.root: np.eye(4) if root_pose is None else np.asarray(root_pose, dtype=float)}
    for j in model.joints:
        poses[j.child] = poses[j.parent] @ j.origin @ _joint_motion(j, float(q.get(j.name, 0.0)))
    return poses
