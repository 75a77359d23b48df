"""Task 4, stair-assisted retrieval: step onto the 10 cm platform, reach the box on the wall shelf (out of
reach from the floor), grasp it and lift it (success: >= 5 cm above the shelf, held 1 s).

Scene `stairs` (t1_description/model/scene_stairs.xml; facts in t1_description.scenes.StairsFacts):
platform x 0.35..1.30, y -0.8..0.8, top 0.10 m, against the wall at x 1.30; shelf top 0.84 m; box at
(1.08, 0, 0.865), 0.15 m beyond any hand's reach from the floor. NOT YET SOLVABLE: it needs legs that step
up 10 cm (`requires=("step_up_0.10",)`); the shipped legs fall on a 10 cm step (`refine-dp eval step_up_down`),
and TaskEnv's footstep planner plans on flat ground. The spec, env and terms run; `solvable=False` says so.
"""
from __future__ import annotations

import numpy as np

from t1_description.scenes import STAND_TRUNK_Z, scene_facts

from . import terms
from .spec import InitialState, ObjectPose, Randomization, StartRange, TaskSpec, Term

FACTS = scene_facts("stairs")


def on_platform(margin: float = 0.06):
    """Trunk raised by the step (more than `margin` above standing on the floor) over the platform."""
    px, py = FACTS.platform.x_range, FACTS.platform.y_range

    def test(s):
        p = s.root_pos
        over = (p[:, 0] > px[0]) & (p[:, 0] < px[1]) & (p[:, 1] > py[0]) & (p[:, 1] < py[1])
        return over & (p[:, 2] > STAND_TRUNK_Z + margin)
    return test


TASK = TaskSpec(
    name="stairs",
    scene="stairs",
    objects=("box",),
    initial_state=InitialState(
        anchor="box",
        approach_yaw=0.0,  # facing +x (the platform and the wall) at polar 0
        # the box slides along the shelf only (its back is 5 cm from the wall)
        objects={"box": ObjectPose(x=(-0.03, 0.03), y=(-0.15, 0.15), yaw=(-np.pi / 4, np.pi / 4))},
        # from the floor before the platform: box x 1.05..1.11 - r cos(polar) keeps the toes (trunk + 0.13 m)
        # clear of the platform's edge (x 0.35)
        pretrain=StartRange(radial=(1.05, 1.30), polar=(-0.30, 0.30), heading=(-0.3, 0.3)),
        ood=StartRange(radial=(1.05, 1.80), polar=(-0.50, 0.50), heading=(-1.0, 1.0)),
    ),
    randomization=Randomization(),
    stages=(
        Term("approach", terms.always()),
        Term("step up", on_platform()),
        Term("reach", lambda s: on_platform()(s) & terms.hand_near("box", 0.10)(s)),
        Term("grasp", terms.object_in_closed_hand("box", 0.04)),
        Term("lift", terms.object_lifted("box", 0.02)),
    ),
    success=Term("box_lifted_5cm", terms.object_lifted("box", 0.05)),
    success_hold_s=1.0,
    failures=(
        Term("fall", terms.fallen()),
        Term("object_dropped", terms.object_dropped("box")),
        Term("object_pushed", terms.object_displaced("box", 0.15)),
    ),
    time_limit_s=40.0,
    requires=FACTS.requires,
    solvable=False,
    unsolvable_reason="needs legs that step up 10 cm (step_up_0.10): the shipped legs fall on a 10 cm step "
                      "(eval step_up_down) and the env's footstep planner plans on flat ground",
    description=__doc__.splitlines()[0],
)
