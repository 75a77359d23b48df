"""The door task's heuristic demonstrator (tasks/heuristics/door.py) in TaskEnv with the shipped legs and arms:
from seeded starts near the door it grasps the lever (fingers and friction only: nothing welds the hand to it),
turns it past the latch release, pushes the leaf open and walks through (in one of two seeded episodes: it
succeeds in ~80 % of the pretrain starts with the legs shipped in session 12, ~30 % with the legs before;
`refine-dp eval task --task door --planner heuristic`)."""
import numpy as np

from refine_dp_training.tasks import get_task, make_heuristic
from refine_dp_training.tasks.env import TaskEnv
from refine_dp_training.tasks.heuristics.door import TURN, DoorHeuristic
from refine_dp_training.tasks.spec import StartRange


def test_door_heuristic_turns_the_handle_opens_the_door_and_walks_through():
    spec = get_task("door")
    n = 2
    env = TaskEnv(spec, n, seed=0, start=StartRange(radial=(1.0, 1.1), polar=(-0.1, 0.1), heading=(-0.1, 0.1)))
    heuristic = make_heuristic(spec, n, seed=0)
    assert isinstance(heuristic, DoorHeuristic)
    obs = env.reset(seed=0)
    heuristic.reset()
    names = env.stage_names
    best, done, success = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
    closed_while_turning = np.zeros(n, bool)
    for _ in range(int(spec.time_limit_s / env.planner_dt)):
        actions = heuristic.act(obs)
        turning = heuristic.stage == TURN
        obs, _, term, trunc, info = env.step(actions)
        live = ~done
        closed_while_turning |= live & turning & (info["executed_action"][:, -1] > 0.5)  # the right gripper
        best = np.where(live, np.maximum(best, info["stage"]), best)
        success |= live & info["success"]
        done |= term | trunc
        if done.all():
            break
    env.close()
    # an episode walked through, having turned the lever past the release with the closed hand and swung the
    # leaf open (stage "push": the hinge >= 0.1 rad, which the latch holds at ~0 with the handle at rest)
    assert success.any(), f"no episode walked through (stages reached: {[names[b] for b in best]})"
    assert (best[success] == names.index("pass")).all() and closed_while_turning[success].all()
