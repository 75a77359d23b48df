"""The batched ground truth that task terms read, and the terms tasks share.

`TaskState` is built by `TaskEnv` once per planner step from the simulator rows (no per-env Python);
a term is a plain function of it returning bool [N]. Factories below return such functions with
their thresholds bound, so a task spec reads as a list: `Term("fall", fallen())`,
`Term("object_dropped", object_dropped("box"))`, ...
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the low-level env's fall thresholds (lowlevel/config.py EnvConfig): trunk below 0.45 m, or tilted so far
# that projected gravity z > -0.5 (60 deg) - the hardware interface's damping trigger too
FALL_HEIGHT = 0.45
FALL_GRAVITY_Z = -0.5


@dataclass
class ObjectTruth:
    pos: np.ndarray        # [N, 3] world
    quat: np.ndarray       # [N, 4] w, x, y, z (MuJoCo order)
    start_pos: np.ndarray  # [N, 3] at the episode's start (after settling)
    peak_z: np.ndarray     # [N] highest z since the start
    vel: np.ndarray | None = None  # [N, 3] world linear velocity (free bodies; None for jointed ones)


@dataclass
class TaskState:
    """Ground truth of N envs after a planner step (world frame, MuJoCo quaternions w, x, y, z)."""

    t: np.ndarray            # [N] s since the episode started
    root_pos: np.ndarray     # [N, 3]
    root_quat: np.ndarray    # [N, 4]
    gravity: np.ndarray      # [N, 3] unit gravity in the trunk frame
    hand_pos: np.ndarray     # [N, 2, 3] world, left/right grip sites
    gripper_cmd: np.ndarray  # [N, 2] last commanded (0 open .. 1 closed)
    objects: dict            # name -> ObjectTruth
    joints: dict = field(default_factory=dict)  # TaskSpec.joints: name -> [N] qpos (a door hinge, a handle)

    def lift(self, name: str) -> np.ndarray:
        o = self.objects[name]
        return o.pos[:, 2] - o.start_pos[:, 2]

    def hand_distance(self, name: str) -> np.ndarray:
        """[N, 2] distance of each grip site to the object's centre."""
        return np.linalg.norm(self.hand_pos - self.objects[name].pos[:, None], axis=-1)


# ---- shared terms (factories: thresholds bound, the returned function takes a TaskState) -------------
def always():
    return lambda s: np.ones(len(s.t), bool)


def fallen(height: float = FALL_HEIGHT, gravity_z: float = FALL_GRAVITY_Z):
    """Trunk below `height` or tilted past projected-gravity z `gravity_z`."""
    return lambda s: (s.root_pos[:, 2] < height) | (s.gravity[:, 2] > gravity_z)


def object_near_trunk(name: str, distance: float):
    """The object within `distance` (horizontal) of the trunk."""
    return lambda s: np.linalg.norm(s.objects[name].pos[:, :2] - s.root_pos[:, :2], axis=-1) < distance


def object_in_closed_hand(name: str, distance: float = 0.04, closed: float = 0.5):
    """A grip site within `distance` of the object with that gripper commanded closed."""
    return lambda s: ((s.hand_distance(name) < distance) & (s.gripper_cmd > closed)).any(-1)


def object_lifted(name: str, height: float):
    """The object at least `height` above where it started."""
    return lambda s: s.lift(name) >= height


def object_dropped(name: str, below: float = 0.1, lost_after: float = 0.05, back_within: float = 0.01):
    """The object fell: more than `below` under its start (off its support), or it had been lifted at least
    `lost_after` and is back within `back_within` of its start height (out of the hand)."""
    def dropped(s):
        o = s.objects[name]
        lift = o.pos[:, 2] - o.start_pos[:, 2]
        peak = o.peak_z - o.start_pos[:, 2]
        return (lift < -below) | ((peak >= lost_after) & (lift < back_within))
    return dropped


def object_displaced(name: str, distance: float, unless_lifted: float = 0.02):
    """The object pushed more than `distance` (horizontal) from its start while not lifted (knocked away)."""
    def displaced(s):
        o = s.objects[name]
        moved = np.linalg.norm(o.pos[:, :2] - o.start_pos[:, :2], axis=-1)
        return (moved > distance) & (s.lift(name) < unless_lifted)
    return displaced


def hand_near(name: str, distance: float):
    """A grip site within `distance` of the object's centre (either hand, gripper in any state)."""
    return lambda s: (s.hand_distance(name) < distance).any(-1)


def joint_at_least(joint: str, value: float):
    """Scene joint `joint` (TaskSpec.joints) at or beyond `value`."""
    return lambda s: s.joints[joint] >= value


def trunk_past_x(x: float):
    """The trunk's origin beyond world x `x` (e.g. a door plane)."""
    return lambda s: s.root_pos[:, 0] > x


def trunk_above(z: float):
    """The trunk's origin above world z `z` (e.g. standing on a step)."""
    return lambda s: s.root_pos[:, 2] > z


def grippers_open(below: float = 0.5):
    """Both grippers commanded open (below `below`)."""
    return lambda s: (s.gripper_cmd < below).all(-1)
