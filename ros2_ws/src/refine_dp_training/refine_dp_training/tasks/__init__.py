"""T1 loco-manipulation tasks: specs (spec.py, terms.py), the vectorised env (env.py), MoCap model
(mocap.py), heuristic demonstration planners (heuristics/), and the tools (collect, evaluate, bench).

Adding a task: write `tasks/<name>.py` with `TASK = TaskSpec(...)` (spec.py says what each field is;
terms.py has the shared terms), add `"<name>": "refine_dp_training.tasks.<name>"` to TASK_MODULES,
and (for demonstrations) a heuristic class named by `TaskSpec.heuristic`. `refine-dp collect/eval task
--task <name>`, `refine-dp finetune --env t1-<name>` then work.
"""
from __future__ import annotations

import importlib

from .spec import InitialState, ObjectPose, Randomization, StartRange, TaskSpec, Term  # noqa: F401

TASK_MODULES = {
    "pickup": "refine_dp_training.tasks.pickup",
    "pick_place": "refine_dp_training.tasks.pick_place",
    "door": "refine_dp_training.tasks.door",
    "stairs": "refine_dp_training.tasks.stairs",  # not yet solvable (TaskSpec.solvable): needs step-up legs
}


def task_names() -> tuple[str, ...]:
    return tuple(TASK_MODULES)


def get_task(name: str) -> TaskSpec:
    """The TaskSpec registered as `name` (its module's TASK)."""
    if name not in TASK_MODULES:
        raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(TASK_MODULES)} "
                       "(add yours to refine_dp_training.tasks.TASK_MODULES)")
    return importlib.import_module(TASK_MODULES[name]).TASK


def make_heuristic(spec: TaskSpec, num_envs: int, **kwargs):
    """The task's demonstration planner (`TaskSpec.heuristic`, "module:Class"), for num_envs envs."""
    if not spec.heuristic:
        raise ValueError(f"task {spec.name!r} names no heuristic planner (TaskSpec.heuristic)")
    module, _, cls = spec.heuristic.partition(":")
    return getattr(importlib.import_module(module), cls)(spec, num_envs, **kwargs)
