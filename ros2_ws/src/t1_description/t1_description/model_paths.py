"""Where the T1 model files are, how to load them, and where the robot lives inside a MuJoCo model.

Why: every simulator user (sim_t1, training envs, tests) must load the same files and index
qpos/qvel/ctrl the same way. The gripper finger joints sit inside the arm chains (MuJoCo numbers
joints depth first), so qpos[7:36] is NOT the 29 table joints: use `robot_indices(model)`.

    model = load_model("floor")
    idx = robot_indices(model)
    q = data.qpos[idx.qpos]        # 29 joints, joint-table (= SDK) order
    data.ctrl[idx.ctrl] = tau       # 29 motor torques (Nm)
    data.ctrl[idx.gripper_ctrl] = [0.0, 1.0]   # left open, right closed
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from t1_description.joint_table import load_joint_table

if TYPE_CHECKING:  # mujoco is only needed to load, not to find, the files
    import mujoco

MODEL_DIR = Path(__file__).resolve().parent / "model"
ROBOT_FILE = "t1.xml"
URDF_FILE = "t1.urdf"
SCENE_PREFIX = "scene_"
ROOT_BODY = "Trunk"
ROOT_JOINT = "root"
STAND_KEYFRAME = "stand"
GRIPPER_ACTUATORS = ("left_gripper", "right_gripper")
HAND_SITES = ("left_hand", "right_hand")
FOOT_SITES = ("left_foot", "right_foot")


def available_scenes() -> tuple[str, ...]:
    """Scene names (model/scene_<name>.xml) found next to the robot file."""
    return tuple(sorted(p.stem[len(SCENE_PREFIX):] for p in MODEL_DIR.glob(f"{SCENE_PREFIX}*.xml")))


def mjcf_path(scene: str = "floor") -> Path:
    """Path of model/scene_<scene>.xml; "robot" gives t1.xml (the robot alone, no floor)."""
    path = MODEL_DIR / (ROBOT_FILE if scene == "robot" else f"{SCENE_PREFIX}{scene}.xml")
    if not path.is_file():
        raise FileNotFoundError(
            f"no MuJoCo scene {scene!r} ({path} missing); available scenes: "
            f"{', '.join(available_scenes()) or 'none'} (or 'robot' for the robot alone)"
        )
    return path


def urdf_path() -> Path:
    """Path of the T1 URDF (for rviz / TF; same joints, limits, axes and origins as the MJCF)."""
    path = MODEL_DIR / URDF_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} missing; regenerate it with: python -m t1_description.model.generate"
        )
    return path


def load_model(scene: str = "floor") -> "mujoco.MjModel":
    """Compile a scene into an MjModel (needs the `mujoco` package)."""
    try:
        import mujoco
    except ImportError as exc:  # pragma: no cover - the venv has mujoco
        raise ImportError("load_model needs the 'mujoco' Python package: pip install mujoco") from exc
    return mujoco.MjModel.from_xml_path(str(mjcf_path(scene)))


@dataclass(frozen=True)
class RobotIndices:
    """Addresses of the robot inside a compiled model; joint arrays are in joint-table order."""

    root_qpos: np.ndarray  # 7: x y z, qw qx qy qz (world)
    root_qvel: np.ndarray  # 6: linear velocity (world), angular velocity (trunk frame)
    qpos: np.ndarray  # 29 hinge qpos addresses
    qvel: np.ndarray  # 29 hinge dof addresses
    ctrl: np.ndarray  # 29 motor actuator ids
    gripper_ctrl: np.ndarray  # 2 actuator ids: left_gripper, right_gripper (0 open .. 1 closed)
    gripper_qpos: np.ndarray  # 4 finger slide qpos addresses (left 1, 2, right 1, 2)
    root_body: int
    hand_sites: np.ndarray  # left_hand, right_hand site ids
    foot_sites: np.ndarray  # left_foot, right_foot site ids


def robot_indices(model: "mujoco.MjModel") -> RobotIndices:
    """Look up the robot's addresses by name; raises KeyError naming anything missing."""
    import mujoco

    def ident(objtype, name: str) -> int:
        i = mujoco.mj_name2id(model, objtype, name)
        if i < 0:
            raise KeyError(f"the MuJoCo model has no {objtype.name.removeprefix('mjOBJ_').lower()} named {name!r}")
        return i

    jt = load_joint_table()
    J, A = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_ACTUATOR
    joints = [ident(J, n) for n in jt.names]
    root = ident(J, ROOT_JOINT)
    fingers = [ident(J, f"{s}_gripper_finger_{i}") for s in ("left", "right") for i in (1, 2)]
    S = mujoco.mjtObj.mjOBJ_SITE
    return RobotIndices(
        root_qpos=model.jnt_qposadr[root] + np.arange(7),
        root_qvel=model.jnt_dofadr[root] + np.arange(6),
        qpos=model.jnt_qposadr[joints].astype(np.int64),
        qvel=model.jnt_dofadr[joints].astype(np.int64),
        ctrl=np.array([ident(A, n) for n in jt.names], dtype=np.int64),
        gripper_ctrl=np.array([ident(A, n) for n in GRIPPER_ACTUATORS], dtype=np.int64),
        gripper_qpos=model.jnt_qposadr[fingers].astype(np.int64),
        root_body=ident(mujoco.mjtObj.mjOBJ_BODY, ROOT_BODY),
        hand_sites=np.array([ident(S, n) for n in HAND_SITES], dtype=np.int64),
        foot_sites=np.array([ident(S, n) for n in FOOT_SITES], dtype=np.int64),
    )
