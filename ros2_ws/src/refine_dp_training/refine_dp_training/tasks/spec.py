"""What a T1 task is: a list of named terms (the mjlab / Isaac Lab manager style).

A task is a `TaskSpec`: the scene (an MJCF of t1_description/model, the very file sim_t1 loads for
`refine-dp bringup --sim --scene NAME`), the objects the planner observes (MoCap bodies, in the
order of the observation), the initial-state distribution, the domain randomisation, ordered stage
labels, the sparse success test and the failure tests. Every test is a `Term`: a name and a
function of a `terms.TaskState` (batched ground truth) returning a bool per env. `TaskEnv`
(env.py) runs any spec; nothing in the env knows a particular task.

The robot's start is parameterised as in the paper, relative to an anchor object: radial distance
r (trunk to object, horizontal), polar angle theta (direction from the object to the robot, 0 =
straight back along the scene's approach direction) and heading psi (robot yaw relative to facing
the object). `StartRange` gives the ranges; a spec carries a pre-training range and a wider
out-of-distribution one (the fine-tuning curriculum widens from the first towards the second).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

Range = tuple[float, float]
PHYSICS = "physics"  # the failure name of an episode ended by a numerical blow-up of the simulation (TaskEnv)


@dataclass(frozen=True)
class StartRange:
    """Uniform ranges of the robot's start relative to the anchor object."""

    radial: Range      # m, horizontal distance trunk -> object
    polar: Range       # rad, direction object -> robot relative to the scene's approach direction
    heading: Range     # rad, robot yaw relative to facing the object (0: looking straight at it)

    def scaled(self, fraction: float, towards: "StartRange") -> "StartRange":
        """The range `fraction` (0..1) of the way from this one to `towards` (a curriculum level)."""
        f = float(np.clip(fraction, 0.0, 1.0))
        mix = lambda a, b: (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]))  # noqa: E731
        return StartRange(mix(self.radial, towards.radial), mix(self.polar, towards.polar),
                          mix(self.heading, towards.heading))


@dataclass(frozen=True)
class ObjectPose:
    """Uniform offsets of a free object from its pose in the scene file (world frame)."""

    x: Range = (0.0, 0.0)   # m
    y: Range = (0.0, 0.0)   # m
    yaw: Range = (0.0, 0.0)  # rad, about the world z axis


@dataclass(frozen=True)
class InitialState:
    anchor: str                              # object the robot's start is relative to
    pretrain: StartRange
    ood: StartRange
    approach_yaw: float = 0.0                # world yaw the robot faces at polar 0 (towards the object)
    objects: dict = field(default_factory=dict)  # name -> ObjectPose (free bodies moved at reset)
    anchor_offset: tuple[float, float] = (0.0, 0.0)  # world xy from the anchor's reset position to the point
                                                     # the start is relative to (e.g. a door's opening centre,
                                                     # the door body's origin being on its hinge)


@dataclass(frozen=True)
class Randomization:  # the defaults: every task's (pickup, pick-and-place, door, stairs)
    """Per-episode domain randomisation. MoCap noise/dropouts use sim_t1's natnet_* parameters' meaning
    (t1_sim.natnet_server: Gaussian position noise, a random rotation of Gaussian angle per axis, a dropped
    body sent untracked), applied to the trunk and to every object; the planner sees what mocap_bridge
    makes of it (tasks/mocap.py)."""

    object_mass_scale: Range = (0.75, 1.5)     # x the scene's mass, per object
    object_friction_scale: Range = (0.7, 1.3)  # x the scene's sliding friction, per object geom
    natnet_noise_pos_std: float = 0.002        # m
    natnet_noise_rot_std_deg: float = 0.5      # deg per axis
    natnet_dropout_prob: float = 0.02          # per body per frame
    latency_s: Range = (0.0, 0.01)             # controller -> motors delay (physics steps of the old target)

    @staticmethod
    def none() -> "Randomization":
        return Randomization((1.0, 1.0), (1.0, 1.0), 0.0, 0.0, 0.0, (0.0, 0.0))


@dataclass(frozen=True)
class Term:
    """A named test of the batched task state: fn(state: terms.TaskState) -> bool [N]."""

    name: str
    fn: Callable


@dataclass(frozen=True)
class TaskSpec:
    name: str
    scene: str                       # t1_description/model/scene_<scene>.xml, shared with sim_t1
    objects: tuple[str, ...]         # planner observation objects (MoCap bodies = MuJoCo free bodies), in order
    initial_state: InitialState
    stages: tuple[Term, ...]         # ordered progress labels; an env's stage = the last one that has held
    success: Term                    # sparse success test ...
    failures: tuple[Term, ...]       # each ends the episode as a failure, reported by name ("physics": the simulation
                                     # blew up, never a term; "timeout": the limit)
    success_hold_s: float = 0.0      # ... that must hold this long (continuously)
    time_limit_s: float = 30.0
    physics_dt: float = 0.005        # s, TaskEnv's MuJoCo step (divides the controller's 20 ms); a scene whose contacts
                                     # blow up at 5 ms takes a finer one (pickup: the light box pinched by the fingers)
    randomization: Randomization = field(default_factory=Randomization)
    heuristic: str = ""              # "module:Class" of the task's demonstration planner (collect, eval)
    description: str = ""
    joints: tuple[str, ...] = ()     # scene joints the terms read (TaskState.joints[name]: [N] qpos), e.g. a door hinge
    requires: tuple[str, ...] = ()   # robot capabilities beyond flat walking and grasping (scenes.SceneFacts.requires)
    solvable: bool = True            # False: the shipped controller cannot do it yet (collect/eval should report
    unsolvable_reason: str = ""      # `unsolvable_reason` next to any figure); the spec, env and heuristic still run

    def with_randomization(self, **changes) -> "TaskSpec":
        return replace(self, randomization=replace(self.randomization, **changes))

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.stages)

    @property
    def failure_names(self) -> tuple[str, ...]:
        """Failure reasons by code: 0 none, 1.. the failure terms, then "physics" (a numerical blow-up of the
        simulation: a velocity above env.MAX_SPEED, a non-finite state or MuJoCo's own reset of an unstable one, e.g.
        a box pinched between a finger and the table; not the robot's doing) and "timeout"."""
        return ("none",) + tuple(t.name for t in self.failures) + (PHYSICS, "timeout")
