"""The planner's loop without ROS: observations in, one clamped HighLevelCommand action out per tick.

Executes each sampled action chunk for `replan_every` ticks, then samples a new one from the
latest observation history. When observations go stale it stops commanding motion: zero base
velocity, hands held at their last commanded (or measured) poses, grippers unchanged.

The engine's metadata is the contract: replan_every defaults to its act_steps (the actions per
chunk the policy was trained, and fine-tuned, executing) and the tick period is 1 / its rate_hz.
A replan_every that contradicts act_steps is refused, naming both values, unless
override_act_steps is set (a deliberate experiment, not a configuration mistake).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from refine_dp_planner.planner_io import (ACTION_DIM, Clamps, ObservationHistory, PlannerAction, build_observation,
                                          clamp_action)


@dataclass
class PlannerStatusInfo:
    inference_ms: float = 0.0
    chunk_id: int = 0
    chunk_index: int = 0
    observation_age_s: float = float("inf")
    stale: bool = True
    clamped: bool = False
    message: str = "waiting for observations"


@dataclass
class PlannerCore:
    engine: object                       # refine_dp_planner.engines.Engine
    object_names: tuple[str, ...]
    replan_every: int | None = None      # None: the engine's act_steps
    clamps: Clamps = field(default_factory=Clamps)
    stale_after_s: float = 0.5
    override_act_steps: bool = False     # allow a replan_every other than the engine's act_steps

    def __post_init__(self):
        to, _ = self.engine.obs_shape
        ta, da = self.engine.action_shape
        if da != ACTION_DIM:
            raise ValueError(f"engine outputs {da} action values per step; the planner expects {ACTION_DIM}")
        act_steps = self.engine.act_steps
        if self.replan_every is None:
            self.replan_every = act_steps
        elif self.replan_every != act_steps and not self.override_act_steps:
            raise ValueError(f"replan_every {self.replan_every} contradicts the engine's act_steps {act_steps} (the "
                             f"actions per chunk it was trained to execute): leave replan_every unset to use "
                             f"{act_steps}, or set override_act_steps to run {self.replan_every} on purpose")
        if not 1 <= self.replan_every <= ta:
            raise ValueError(f"replan_every {self.replan_every} must be in [1, action chunk {ta}]")
        self.dt = 1.0 / self.engine.rate_hz
        self.history = ObservationHistory(to)
        self.chunk: np.ndarray | None = None
        self.index = 0
        self.previous: PlannerAction | None = None
        self.grippers = np.zeros(2)
        self.status = PlannerStatusInfo()
        self._robot = None        # (arm_q [14], gravity [3], t)
        self._objects: dict = {}  # name -> (pos, quat_xyzw, tracked)
        self._objects_t = -np.inf

    def observe_robot(self, arm_q, gravity, t: float) -> None:
        self._robot = (np.asarray(arm_q, float), np.asarray(gravity, float), t)

    def observe_objects(self, objects: dict, t: float) -> None:
        self._objects, self._objects_t = objects, t

    def _hold(self, now: float, age: float, reason: str) -> PlannerAction | None:
        """No fresh observations: stop, and keep the hands where they were commanded."""
        self.history.clear()
        self.chunk = None
        self.status = PlannerStatusInfo(chunk_id=self.status.chunk_id, observation_age_s=age, stale=True,
                                        message=reason)
        if self.previous is None:
            return None
        hold = PlannerAction(np.zeros(3), self.previous.hand_pos, self.previous.hand_rot, self.grippers.copy())
        self.previous = hold
        return hold

    def step(self, now: float | None = None) -> PlannerAction | None:
        now = time.monotonic() if now is None else now
        if self._robot is None:
            return self._hold(now, float("inf"), "no RobotState yet")
        age = max(now - self._robot[2], now - self._objects_t if self.object_names else 0.0)
        if age > self.stale_after_s:
            return self._hold(now, age, f"observations stale ({age:.2f} s > {self.stale_after_s:g} s)")
        arm_q, gravity, _ = self._robot
        self.history.push(build_observation(arm_q, self.grippers, gravity, self._objects, self.object_names))
        if self.chunk is None or self.index >= self.replan_every:
            t0 = time.perf_counter()
            self.chunk = self.engine.sample(self.history.array()[None])[0]
            self.status.inference_ms = (time.perf_counter() - t0) * 1e3
            self.status.chunk_id += 1
            self.index = 0
        action = PlannerAction.from_vector(self.chunk[self.index])
        action, clamped = clamp_action(action, self.previous, self.dt, self.clamps)
        self.status.chunk_index, self.status.clamped = self.index, clamped
        self.status.observation_age_s, self.status.stale = age, False
        self.status.message = "ok"
        self.index += 1
        self.previous, self.grippers = action, action.grippers.copy()
        return action
