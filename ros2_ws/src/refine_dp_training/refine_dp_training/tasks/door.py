"""Task 3, door: reach the lever handle, turn it past the latch, push the door open and walk through
(success: the trunk 0.5 m past the door plane, DoorFacts.walked_through).

Scene `door` (t1_description/model/scene_door.xml; facts in t1_description.scenes.DoorFacts): a wall at
x 1.0 with a 0.90 m opening; a push door (hinge on the robot's left at y 0.445, opening away, +x) held by a
pure-MuJoCo latch that releases past handle angle 0.48 rad; the lever's grasp point at (0.91, -0.28, 0.92)
with the door closed. The planner observes the door leaf (MoCap body "door", a hinged body: TaskEnv computes
its pose from the hinge angle); the terms read the hinge and handle angles (TaskSpec.joints). The start is
relative to the opening's centre (1.0, 0.0): the anchor is the door, offset from its hinge-side origin.
"""
from __future__ import annotations

import numpy as np

from t1_description.scenes import scene_facts

from . import terms
from .spec import InitialState, Randomization, StartRange, TaskSpec, Term

FACTS = scene_facts("door")
HINGE, HANDLE = FACTS.hinge_joint, FACTS.handle_joint


def handle_point(door_angle, handle_angle) -> np.ndarray:
    """World position [..., 3] of the lever's grasp point (site door_handle) for hinge and handle angles."""
    a, h = np.asarray(door_angle, float), np.asarray(handle_angle, float)
    g0, sp, hp = np.asarray(FACTS.handle_grasp_point), np.asarray(FACTS.handle_spindle), np.asarray(FACTS.hinge_point)
    r = g0 - sp  # the lever turns about -x through the spindle (door frame = world at angle 0)
    ch, sh = np.cos(h), np.sin(h)
    lever = np.stack([np.full_like(h, r[0]), ch * r[1] + sh * r[2], -sh * r[1] + ch * r[2]], -1)
    p = sp + lever - hp  # then the leaf turns about +z through the hinge point
    ca, sa = np.cos(a), np.sin(a)
    return np.stack([hp[0] + ca * p[..., 0] - sa * p[..., 1], hp[1] + sa * p[..., 0] + ca * p[..., 1],
                     hp[2] + p[..., 2]], -1)


def hand_at_handle(distance: float, closed: bool = False):
    """A grip site within `distance` of the lever's grasp point (with that gripper closed, if `closed`)."""
    def test(s):
        p = handle_point(s.joints[HINGE], s.joints[HANDLE])
        near = np.linalg.norm(s.hand_pos - p[:, None], axis=-1) < distance
        if closed:
            near &= s.gripper_cmd > 0.5
        return near.any(-1)
    return test


def walked_through():
    return lambda s: FACTS.walked_through(s.root_pos)


TASK = TaskSpec(
    name="door",
    scene="door",
    objects=("door",),
    joints=(HINGE, HANDLE),
    initial_state=InitialState(
        anchor="door",
        anchor_offset=(0.0, -FACTS.hinge_point[1]),  # the opening's centre (door_plane_x, 0)
        approach_yaw=0.0,  # facing +x (the door) at polar 0
        pretrain=StartRange(radial=(1.00, 1.40), polar=(-0.30, 0.30), heading=(-0.3, 0.3)),
        ood=StartRange(radial=(0.80, 2.00), polar=(-0.70, 0.70), heading=(-1.0, 1.0)),
    ),
    # the door leaf's mass and friction are randomised like an object's (8 kg nominal)
    randomization=Randomization(),
    stages=(
        Term("approach", terms.always()),
        Term("reach handle", hand_at_handle(0.06)),
        Term("turn", terms.joint_at_least(HANDLE, FACTS.latch_release_rad)),
        Term("push", terms.joint_at_least(HINGE, 0.1)),
        Term("pass", terms.trunk_past_x(FACTS.door_plane_x)),
    ),
    success=Term("walked_through", walked_through()),
    failures=(
        Term("fall", terms.fallen()),
    ),
    time_limit_s=40.0,
    heuristic="refine_dp_training.tasks.heuristics.door:DoorHeuristic",
    description=__doc__.splitlines()[0],
)
