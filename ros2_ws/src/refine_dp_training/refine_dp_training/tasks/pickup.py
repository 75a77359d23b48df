"""Task 1, pickup: walk to a table, grasp the box, lift it (success: >= 10 cm above the table, held 1 s).

Scene `table_box` (t1_description/model/scene_table_box.xml, also sim_t1's): a table at x 0.8 m (top at
0.74 m, near edge at x 0.5 m) with a 5 cm, 0.2 kg box on it. The grippers close on the box and friction
holds it (tests/test_grasp_physics.py); nothing welds or attaches it.
"""
from __future__ import annotations

import numpy as np

from . import terms
from .spec import InitialState, ObjectPose, Randomization, StartRange, TaskSpec, Term

SUCCESS_LIFT_M = 0.10  # success: the box this far above its start on the table, held TASK.success_hold_s
                       # (also read by `refine-dp demo`'s summary, refine_dp/bringup.py)
TASK = TaskSpec(
    name="pickup",
    scene="table_box",
    objects=("box",),
    initial_state=InitialState(
        anchor="box",
        approach_yaw=0.0,  # the robot faces +x (the table) at polar angle 0
        objects={"box": ObjectPose(x=(-0.05, 0.10), y=(-0.15, 0.15), yaw=(-np.pi / 4, np.pi / 4))},
        pretrain=StartRange(radial=(0.80, 1.05), polar=(-0.35, 0.35), heading=(-0.3, 0.3)),
        ood=StartRange(radial=(0.60, 1.60), polar=(-0.80, 0.80), heading=(-1.2, 1.2)),
    ),
    randomization=Randomization(),
    stages=(
        Term("approach", terms.always()),
        Term("reach", terms.object_near_trunk("box", 0.6)),
        Term("grasp", terms.object_in_closed_hand("box", 0.04)),
        Term("lift", terms.object_lifted("box", 0.02)),
        Term("lifted", terms.object_lifted("box", SUCCESS_LIFT_M)),
    ),
    success=Term("box_lifted_10cm", terms.object_lifted("box", SUCCESS_LIFT_M)),
    success_hold_s=1.0,
    failures=(
        Term("fall", terms.fallen()),
        Term("object_dropped", terms.object_dropped("box")),
        Term("object_pushed", terms.object_displaced("box", 0.15)),
    ),
    time_limit_s=40.0,
    physics_dt=0.0025,  # at 5 ms the 0.2 kg box pinched between a finger and the table top (both contacts soft for
                        # so light a body: it sinks into the table, the pad into it) spins up past 100 rad/s in one
                        # step: MuJoCo blows up ("physics" failures). Heuristic episodes ending so at 5 -> 2.5 ms:
                        # 7/32 -> 3/32 (seed 20000), 9/48 -> 1/48 (seed 30000); 1.4x the CPU per planner step
    heuristic="refine_dp_training.tasks.heuristics.pickup:PickupHeuristic",
    description=__doc__.splitlines()[0],
)
