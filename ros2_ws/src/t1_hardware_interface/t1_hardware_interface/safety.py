"""The hardware interface's safety layer: a ROS-free state machine between JointCommand and LowCmd.

Time is always passed in (`now`, seconds on the caller's monotonic clock), so every threshold is
testable without sleeping. The node calls, from its 500 Hz loop:
    controller.on_state(measured)          # each LowState (stamped on receipt)
    controller.on_command(request, now)    # each JointCommand (50 Hz)
    out = controller.step(now)             # MotorCommand to send, or None: send nothing
and reads `controller.state`, `.reason`, `drain_transitions()` for RobotState and the log.

States (values equal refine_dp_msgs/RobotState SAFETY_*):
    WAITING   no LowState yet; nothing is sent.
    RAMPING   from the pose measured at entry to the table's default pose over `ramp_time`
              (smoothstep), table gains; JointCommands are ignored.
    READY     ramp done: hold the default pose until the first JointCommand.
    ACTIVE    follow JointCommand.
    HOLD      no JointCommand for > hold_after: PD on the last sent position, dq = tau = 0.
              A new JointCommand returns to ACTIVE.
    DAMPING   no JointCommand for > damping_after, e-stop, or LowState back after a gap
              (no_state_recovery "damping"): kp = 0, kd = damping_kd, q = measured. Latched: only
              reset() leaves it.
    FALLEN    |roll| or |pitch| > fall_tilt_limit or projected gravity z > fall_gravity_z_limit:
              damping, latched until reset(); reset is refused while still tilted.
    NO_STATE  no LowState for > state_timeout: nothing is sent (the robot's own timeout takes
              over). When LowState returns: the latched state if any, else DAMPING (latched) or,
              with no_state_recovery "ramp", RAMPING.
Precedence each step: NO_STATE, then FALLEN, then the latched DAMPING, then the command watchdogs.

JointCommand (see `JointCommandRequest`):
    rejected, with a reason, and counted: non-finite values, array lengths that differ from
    len(name) (velocity and effort may also be empty = zeros), unknown or repeated names,
    negative kp/kd, an empty name list.
    A command may name a subset of joints: the others keep their previous goal (initially the
    default pose with table gains), so an arm controller and a leg controller could share the topic.

Clamps (each counted in `clamp_counts`):
    on command   position to [lower, upper]; velocity to +-velocity_limit; feed-forward torque to
                 +-torque_scale*effort_limit; kp to [0, kp_max_scale*table kp], kd likewise.
    every step   (position-holding states) the sent position moves at most
                 velocity_scale*velocity_limit*dt from the last sent one ("step"); it is then
                 clipped to the limits again, and last pulled toward the measured position so that
                 |kp*(q_target - q_measured) + tau_ff| <= torque_scale*effort_limit ("pd_torque").
                 The damping term kd*(dq_target - dq) is left out of that estimate: it opposes
                 motion, and the robot clips the total torque per motor anyway.
Between 50 Hz commands the 500 Hz output holds the latest goal, or with `interpolate` moves
linearly from the goal in force when the command arrived to the new one over `command_period`
(position only; velocity, torque and gains step).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import TYPE_CHECKING, Sequence

import numpy as np

from t1_description.robot_types import JointCommandRequest, MeasuredState, MotorCommand

if TYPE_CHECKING:
    from t1_description.joint_table import JointTable


class Safety(IntEnum):
    """Safety states; the values are refine_dp_msgs/RobotState.SAFETY_*."""

    WAITING = 0
    RAMPING = 1
    READY = 2
    ACTIVE = 3
    HOLD = 4
    DAMPING = 5
    FALLEN = 6
    NO_STATE = 7


def _default_damping_kd() -> dict[str, float]:
    return {"head": 0.5, "left_arm": 1.0, "right_arm": 1.0, "waist": 3.0, "left_leg": 3.0, "right_leg": 3.0}


@dataclass
class SafetyConfig:
    """Thresholds and limits of the safety layer (node parameters of the same names)."""

    ramp_time: float = 1.0              # s, start-up/reset ramp to the default pose
    hold_after: float = 0.1             # s without JointCommand -> HOLD
    damping_after: float = 0.5          # s without JointCommand -> DAMPING (latched)
    state_timeout: float = 0.05         # s without LowState -> NO_STATE (send nothing)
    fall_tilt_limit: float = 1.0        # rad, |roll| or |pitch| above -> FALLEN
    fall_gravity_z_limit: float = -0.5  # projected gravity z above -> FALLEN (upright: -1)
    velocity_scale: float = 1.0         # sent position moves <= scale * velocity_limit * dt per step
    max_step_dt: float = 0.01           # s, cap on the dt used for that step limit after a late step
    kp_max_scale: float = 1.5           # kp <= scale * table kp
    kd_max_scale: float = 2.0           # kd <= scale * table kd
    torque_scale: float = 1.0           # feed-forward and PD torque estimate <= scale * effort_limit
    interpolate: bool = False           # linear interpolation between commands (else hold)
    command_period: float = 0.02        # s, the controller's period, for interpolation
    no_state_recovery: str = "damping"  # after NO_STATE: "damping" (latched) or "ramp"
    damping_kd: dict[str, float] = field(default_factory=_default_damping_kd)  # per joint group

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
                if not np.isfinite(value):
                    raise ValueError(f"SafetyConfig.{f.name} must be finite, got {value}")
        positive = ("ramp_time", "hold_after", "damping_after", "state_timeout", "velocity_scale",
                    "max_step_dt", "kp_max_scale", "kd_max_scale", "torque_scale", "command_period")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SafetyConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.damping_after <= self.hold_after:
            raise ValueError(f"SafetyConfig.damping_after ({self.damping_after}) must exceed "
                             f"hold_after ({self.hold_after})")
        if self.no_state_recovery not in ("damping", "ramp"):
            raise ValueError(f"SafetyConfig.no_state_recovery must be 'damping' or 'ramp', "
                             f"got {self.no_state_recovery!r}")
        if any(v < 0 for v in self.damping_kd.values()):
            raise ValueError(f"SafetyConfig.damping_kd values must be >= 0, got {self.damping_kd}")


@dataclass(frozen=True)
class CommandVerdict:
    accepted: bool
    reason: str = ""
    ignored: bool = False  # well-formed but not followed in this state (e.g. while RAMPING)


@dataclass(frozen=True)
class Transition:
    time: float
    old: Safety
    new: Safety
    reason: str


class SafetyController:
    """The state machine described in the module docstring."""

    def __init__(self, table: "JointTable", config: SafetyConfig | None = None):
        self.table = table
        self.config = config or SafetyConfig()
        c, n = self.config, len(table.names)
        self._name_index = {name: i for i, name in enumerate(table.names)}
        self._damping_kd = np.zeros(n)
        unknown = sorted(set(c.damping_kd) - set(table.groups))
        if unknown:
            raise ValueError(f"SafetyConfig.damping_kd names unknown joint groups {unknown}; "
                             f"the joint table's groups are {sorted(set(table.groups))}")
        missing = sorted(set(table.groups) - set(c.damping_kd))
        if missing:
            raise ValueError(f"SafetyConfig.damping_kd has no value for joint groups {missing}")
        for group, kd in c.damping_kd.items():
            self._damping_kd[table.indices(group)] = kd
        self._kp_max = c.kp_max_scale * table.kp
        self._kd_max = c.kd_max_scale * table.kd
        self._tau_max = c.torque_scale * table.effort_limit
        self._step_max = c.velocity_scale * table.velocity_limit

        self.state = Safety.WAITING
        self.reason = "waiting for the first LowState"
        self.counts = {"accepted": 0, "rejected": 0, "ignored": 0}
        self.clamp_counts = {k: 0 for k in ("position", "velocity", "effort", "kp", "kd", "step", "pd_torque")}
        self._transitions: list[Transition] = []
        self._measured: MeasuredState | None = None
        self._latch: tuple[Safety, str] | None = None
        self._goal = self._default_goal()
        self._interp_from = self._goal["q"].copy()
        self._interp_start = -np.inf
        self._last_cmd_time = -np.inf
        self._ramp_start_q = table.default_q.copy()
        self._ramp_start_time = 0.0
        self._sent_q: np.ndarray | None = None
        self._last_step_time: float | None = None

    # ---- inputs ---------------------------------------------------------------------------
    def on_state(self, measured: MeasuredState) -> None:
        self._measured = measured

    def on_command(self, req: JointCommandRequest, now: float) -> CommandVerdict:
        problem = self._validate(req)
        if problem:
            self.counts["rejected"] += 1
            return CommandVerdict(False, f"JointCommand rejected: {problem}")
        if self.state not in (Safety.READY, Safety.ACTIVE, Safety.HOLD):
            self.counts["ignored"] += 1
            return CommandVerdict(False, f"JointCommand ignored in {self.state.name}", ignored=True)
        self._merge(req, now)
        self.counts["accepted"] += 1
        if self.state != Safety.ACTIVE:
            self._transition(now, Safety.ACTIVE, "following JointCommand")
        return CommandVerdict(True)

    def estop(self, now: float, reason: str = "e-stop") -> None:
        """Damping, latched until reset(). A FALLEN robot stays FALLEN (also damping)."""
        if self._latch is None or self._latch[0] != Safety.FALLEN:
            self._latch = (Safety.DAMPING, reason)
        if self.state not in (Safety.WAITING, Safety.NO_STATE, Safety.FALLEN):
            self._transition(now, Safety.DAMPING, reason)

    def reset(self, now: float) -> tuple[bool, str]:
        """Clear latches and ramp to the default pose again; refused while tilted or without state."""
        s = self._measured
        if s is None or now - s.stamp > self.config.state_timeout:
            return False, "reset refused: no recent LowState"
        tilt = self._tilt_problem(s)
        if tilt:
            return False, f"reset refused: still tilted ({tilt})"
        self._latch = None
        self._start_ramp(now, "reset: ramping to the default pose")
        return True, "reset: ramping to the default pose"

    def drain_transitions(self) -> list[Transition]:
        out, self._transitions = self._transitions, []
        return out

    # ---- the 500 Hz step ------------------------------------------------------------------
    def step(self, now: float) -> MotorCommand | None:
        c, s = self.config, self._measured
        dt = 0.0 if self._last_step_time is None else min(max(now - self._last_step_time, 0.0), c.max_step_dt)
        self._last_step_time = now
        if s is None:
            return None
        age = now - s.stamp
        if age > c.state_timeout:
            if self.state not in (Safety.NO_STATE, Safety.WAITING):
                self._transition(now, Safety.NO_STATE, f"no LowState for {age * 1e3:.0f} ms "
                                                       f"(> {c.state_timeout * 1e3:.0f} ms): sending nothing")
            self._sent_q = None
            return None
        if self.state in (Safety.WAITING, Safety.NO_STATE):
            self._resume(now)
        tilt = self._tilt_problem(s)
        if tilt and self.state != Safety.FALLEN:
            self._latch = (Safety.FALLEN, f"fall detected: {tilt}")
            self._transition(now, Safety.FALLEN, self._latch[1])

        if self.state == Safety.ACTIVE or self.state == Safety.HOLD:
            silent = now - self._last_cmd_time
            if silent > c.damping_after:
                self._latch = (Safety.DAMPING, f"no JointCommand for {silent * 1e3:.0f} ms "
                                               f"(> {c.damping_after * 1e3:.0f} ms): damping")
                self._transition(now, Safety.DAMPING, self._latch[1])
            elif silent > c.hold_after and self.state == Safety.ACTIVE:
                self._hold_last_sent(s)
                self._transition(now, Safety.HOLD, f"no JointCommand for {silent * 1e3:.0f} ms "
                                                   f"(> {c.hold_after * 1e3:.0f} ms): holding the last target")
        if self.state in (Safety.DAMPING, Safety.FALLEN):
            self._sent_q = None
            return self.damping_command()
        if self.state == Safety.RAMPING:
            a = (now - self._ramp_start_time) / c.ramp_time
            if a >= 1.0:
                self._goal = self._default_goal()
                self._transition(now, Safety.READY, "ramp done: holding the default pose")
            else:
                w = a * a * (3.0 - 2.0 * a)  # smoothstep: zero velocity at both ends
                self._goal["q"] = self._ramp_start_q + (self.table.default_q - self._ramp_start_q) * w
        return self._pd_command(s, self._goal_q(now), dt)

    def damping_command(self) -> MotorCommand | None:
        """kp 0, per-group damping kd, q = measured (None before any LowState)."""
        s = self._measured
        if s is None:
            return None
        zeros = np.zeros_like(s.q)
        return MotorCommand(q=s.q.copy(), dq=zeros, tau=zeros.copy(), kp=zeros.copy(), kd=self._damping_kd.copy())

    # ---- internals ------------------------------------------------------------------------
    def _transition(self, now: float, new: Safety, reason: str) -> None:
        self._transitions.append(Transition(now, self.state, new, reason))
        self.state, self.reason = new, reason

    def _resume(self, now: float) -> None:
        """First LowState, or LowState back after NO_STATE."""
        if self._latch is not None:
            self._transition(now, *self._latch)
        elif self.state == Safety.WAITING:
            self._start_ramp(now, "LowState received: ramping to the default pose")
        elif self.config.no_state_recovery == "ramp":
            self._start_ramp(now, "LowState back: ramping to the default pose")
        else:
            self._latch = (Safety.DAMPING, "LowState back after a gap: damping until reset")
            self._transition(now, *self._latch)

    def _start_ramp(self, now: float, reason: str) -> None:
        self._ramp_start_q = self._measured.q.copy()
        self._ramp_start_time = now
        self._goal = self._default_goal()
        self._goal["q"] = self._ramp_start_q.copy()
        self._interp_start = -np.inf
        self._sent_q = None
        self._transition(now, Safety.RAMPING, reason)

    def _default_goal(self) -> dict[str, np.ndarray]:
        n = len(self.table.names)
        return {"q": self.table.default_q.copy(), "dq": np.zeros(n), "tau": np.zeros(n),
                "kp": self.table.kp.copy(), "kd": self.table.kd.copy()}

    def _hold_last_sent(self, s: MeasuredState) -> None:
        self._goal["q"] = (s.q if self._sent_q is None else self._sent_q).copy()
        self._goal["dq"] = np.zeros_like(s.q)
        self._goal["tau"] = np.zeros_like(s.q)
        self._interp_start = -np.inf

    def _tilt_problem(self, s: MeasuredState) -> str:
        c = self.config
        roll, pitch = float(s.rpy[0]), float(s.rpy[1])
        if abs(roll) > c.fall_tilt_limit:
            return f"|roll| {abs(roll):.2f} > {c.fall_tilt_limit:.2f} rad"
        if abs(pitch) > c.fall_tilt_limit:
            return f"|pitch| {abs(pitch):.2f} > {c.fall_tilt_limit:.2f} rad"
        if s.gravity[2] > c.fall_gravity_z_limit:
            return f"projected gravity z {s.gravity[2]:.2f} > {c.fall_gravity_z_limit:.2f}"
        return ""

    def _validate(self, req: JointCommandRequest) -> str:
        n = len(req.names)
        if n == 0:
            return "empty name list"
        for key in ("position", "kp", "kd", "velocity", "effort"):
            arr = np.asarray(getattr(req, key))
            allowed = (n, 0) if key in ("velocity", "effort") else (n,)
            if arr.ndim != 1 or len(arr) not in allowed:
                return f"{key} has {arr.size} entries for {n} names"
            if not np.all(np.isfinite(arr)):
                bad = [req.names[i] for i in np.flatnonzero(~np.isfinite(arr))]
                return f"non-finite {key} for {bad}"
        unknown = [name for name in req.names if name not in self._name_index]
        if unknown:
            return f"unknown joint names {unknown} (valid: the joint table {self.table.source})"
        if len(set(req.names)) != n:
            return f"repeated joint names {sorted({x for x in req.names if list(req.names).count(x) > 1})}"
        for key in ("kp", "kd"):
            negative = [req.names[i] for i in np.flatnonzero(np.asarray(getattr(req, key)) < 0)]
            if negative:
                return f"negative {key} for {negative}"
        return ""

    def _clip(self, what: str, x: np.ndarray, lo, hi) -> np.ndarray:
        out = np.minimum(np.maximum(x, lo), hi)  # = np.clip (lo <= hi), without its Python wrapper: 500 Hz
        self.clamp_counts[what] += int(np.count_nonzero(out != x))
        return out

    def _merge(self, req: JointCommandRequest, now: float) -> None:
        idx = np.array([self._name_index[name] for name in req.names])
        t = self.table
        self._interp_from = self._goal_q(now)
        self._interp_start = now
        n = len(idx)
        vel = np.zeros(n) if len(req.velocity) == 0 else np.asarray(req.velocity, dtype=np.float64)
        eff = np.zeros(n) if len(req.effort) == 0 else np.asarray(req.effort, dtype=np.float64)
        g = {k: v.copy() for k, v in self._goal.items()}
        g["q"][idx] = self._clip("position", np.asarray(req.position, dtype=np.float64), t.lower[idx], t.upper[idx])
        g["dq"][idx] = self._clip("velocity", vel, -t.velocity_limit[idx], t.velocity_limit[idx])
        g["tau"][idx] = self._clip("effort", eff, -self._tau_max[idx], self._tau_max[idx])
        g["kp"][idx] = self._clip("kp", np.asarray(req.kp, dtype=np.float64), 0.0, self._kp_max[idx])
        g["kd"][idx] = self._clip("kd", np.asarray(req.kd, dtype=np.float64), 0.0, self._kd_max[idx])
        self._goal = g
        self._last_cmd_time = now

    def _goal_q(self, now: float) -> np.ndarray:
        if not self.config.interpolate or self.state == Safety.RAMPING:
            return self._goal["q"]
        a = (now - self._interp_start) / self.config.command_period
        if a >= 1.0:
            return self._goal["q"]
        return self._interp_from + (self._goal["q"] - self._interp_from) * max(a, 0.0)

    def _pd_command(self, s: MeasuredState, q_goal: np.ndarray, dt: float) -> MotorCommand:
        t, g = self.table, self._goal
        ref = s.q if self._sent_q is None else self._sent_q
        step = self._step_max * dt
        q = self._clip("step", q_goal, ref - step, ref + step)
        q = np.minimum(np.maximum(q, t.lower), t.upper)
        kp = g["kp"]
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.where(kp > 0, s.q + (-self._tau_max - g["tau"]) / kp, -np.inf)
            hi = np.where(kp > 0, s.q + (self._tau_max - g["tau"]) / kp, np.inf)
        q = self._clip("pd_torque", q, lo, hi)
        self._sent_q = q
        # the goal's arrays are replaced, never written in place (_merge copies), so they can be shared
        return MotorCommand(q=q.copy(), dq=g["dq"], tau=g["tau"], kp=kp, kd=g["kd"])
