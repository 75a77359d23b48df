"""Velocity-to-footstep planner: base velocity (vx, vy, wz) -> discrete footstep commands.

The diffusion planner commands a base velocity at 10 Hz; the lower-body policy tracks
discrete footsteps (refine_dp_msgs/FootstepCommand). This module is the bridge, written
once and used by both the training environments (batched over N envs, numpy, no per-env
Python loops) and the robot (through `SingleFootstepPlanner`, wrapped by footstep_node).

Gait (one step = one foot's swing, `step_period` s, feet alternate):
  * Each new step plans the swing foot's touchdown pose *relative to the stance foot*
    from the command at lift-off; the relative target stays fixed during the step.
  * Placement: a virtual body centre sits half a nominal width beside the stance foot;
    it is moved by the commanded displacement over one step, and the swing foot lands
    half a nominal width beside it (Raibert-style: nominal offset + v * T). Forward
    motion is split evenly over both feet (the swing foot lands v_x * T ahead of the
    stance foot). Sideways motion and turning use a "step-together" pattern: the foot
    on the side of the motion leads with twice the displacement (2 v_y T, 2 w_z T) and
    the other foot closes back to the nominal width and parallel. The trailing foot
    thus never has to step or turn inwards, so feet cannot cross or toe-collide.
  * Limits, applied in the stance-foot frame: forward/backward step length, lateral
    width between `min_step_width` and `step_width + max_lateral`, yaw between
    `-max_inward_turn` (toes towards the other foot) and `max_turn` (outwards).
  * Start: from standing, a command above the threshold starts a step at once; the
    first swing foot is the one on the side of the lateral command, else of the turn,
    else `first_swing_foot`.
  * Stop: at a touchdown where the command has been below the threshold for
    `stand_delay` s, the planner stands (SWING_NONE) if the feet are side by side at
    the nominal width, else it takes one more step that puts them side by side. So it
    stands within two steps of the command going to zero.
  * Turning in place is the turning case with zero translation.

World footholds are dead-reckoned from the plan (each swing foot is assumed to land on
its target); pass the measured stance-foot pose to `update` (training, or a robot with
foot state estimation) to anchor the plan to reality: targets are re-expressed on the
measured stance foot, so tracking errors never accumulate into the relative commands.

The commanded path: beside the footholds the planner keeps `path_feet`, the footholds the command
alone asks for (each step's command target composed on the previous *path* foothold, never on a
measured one), restarted on the feet when walking starts from standing or when `reanchor_path` is
called (the evaluation and the training env call it when a new command is sampled). A step that
lands short leaves the path ahead of the feet, so the path measures what re-anchoring hides
(`FootstepCommands.path_target_world`, scored by `refine-dp eval controller`).
With `catch_up` > 0 (and/or `catch_up_yaw`) the targets are placed along that path with bounded
catch-up: each step's target moves from the command's relative target towards the path's foothold
by at most `catch_up` m (xy) and `catch_up_yaw` rad, then the placement limits apply. With both at
0 (the default, the shipped legs' contract) the targets are exactly the command's, as before.

Heights (steps up and down): `update(..., ground_height=f)` with f(env_ids [M], xy [M, 2]) -> world ground
height [M]
(the terrain, known to whoever calls: a scene, a height map) gives each new step's target the ground
height under its touchdown point relative to the stance foot (`Footstep.target_z`, FootstepCommand's
target_z), clipped to +-max_step_height; the planner tracks the feet heights (`feet_z`) as it lands them.
max_step_height 0 (the default, and the contract of legs trained on flat ground) means flat: target_z
stays 0 whatever the terrain says, so such legs never see a height they were not trained for.

Poses are (x, y, yaw) in the world frame (REP-103, z up), foot index 0 = left, 1 = right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t1_description.kinematics import LEFT, RIGHT, planar_compose, planar_relative, wrap_angle

from .gait import SWING_LEFT, SWING_NONE, SWING_RIGHT, stance_foot_index, swing_foot_index, swing_phase


# m/s or rad/s: with measured feet, a command change beyond this restarts the commanded path (reanchor_on_change;
# the footstep node's reanchor_change and TaskEnv's measured_feet). 0: any change, as `refine-dp eval controller`
# does (a tolerance of 0.05 let a closed-loop planner's small corrections build a path its robot never walked)
REANCHOR_CHANGE = 0.0


@dataclass
class FootstepPlannerConfig:
    """Gait timing, placement limits and start/stop rules (defaults sized for the Booster T1)."""

    step_period: float = 0.5  # s per step (one foot's swing); a full gait cycle is two steps
    step_width: float = 0.2  # m, nominal lateral distance between the two foot frames
    min_step_width: float = 0.16  # m, the swing foot never lands laterally closer than this
    max_lateral: float = 0.10  # m, widest step beyond the nominal width (so v_y <= 0.1 m/s at 0.5 s)
    max_step_length: float = 0.15  # m forward of the stance foot (v_x <= 0.3 m/s at 0.5 s)
    max_step_back: float = 0.10  # m behind the stance foot
    max_turn: float = 0.25  # rad, outward yaw of the swing foot relative to the stance foot
    max_inward_turn: float = 0.0  # rad, inward yaw (toes towards the other foot) allowed
    stand_threshold_lin: float = 0.02  # m/s, |vx| and |vy| below this count as "stop"
    stand_threshold_ang: float = 0.05  # rad/s, |wz| below this counts as "stop"
    stand_delay: float = 0.1  # s the command must have been "stop" before standing at a touchdown
    side_by_side_tol: float = 0.01  # m, feet count as side by side within this of the nominal pose
    side_by_side_tol_yaw: float = 0.02  # rad
    first_swing_foot: int = SWING_LEFT  # first foot for a pure forward/backward start
    # placement along the commanded path (module docstring); 0: anchored on the stance foot alone (as before)
    catch_up: float = 0.0  # m, the most a target moves from the command's towards the path's foothold (xy)
    catch_up_yaw: float = 0.0  # rad, the same for the yaw
    path_reset_distance: float = 0.3  # m (or 1 rad of yaw): a path farther than this from the feet restarts on them
    max_step_height: float = 0.0  # m, largest |target_z| (step up/down) issued; 0: flat ground, target_z always 0

    def achievable_velocity(self, cmd: np.ndarray) -> np.ndarray:
        """(vx, vy, wz) [..., 3] clipped to what the placement limits can realize: forward v_x T <=
        max_step_length, backward v_x T <= max_step_back, and the step-together pattern's 2 v_y T <=
        max_lateral, 2 w_z T <= max_turn. Commands beyond these are walked at the limit."""
        T = self.step_period
        lo = np.array([-self.max_step_back / T, -self.max_lateral / (2 * T), -self.max_turn / (2 * T)])
        hi = np.array([self.max_step_length / T, self.max_lateral / (2 * T), self.max_turn / (2 * T)])
        return np.clip(cmd, lo, hi)

    def validate(self) -> None:
        """Raise ValueError naming the field when the configuration cannot work."""
        positive = ("step_period", "step_width", "min_step_width", "max_step_length", "max_turn")
        for name in positive:
            if not getattr(self, name) > 0.0:
                raise ValueError(f"FootstepPlannerConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("max_lateral", "max_step_back", "max_inward_turn", "stand_delay",
                     "stand_threshold_lin", "stand_threshold_ang", "catch_up", "catch_up_yaw", "max_step_height"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"FootstepPlannerConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_step_width > self.step_width:
            raise ValueError(
                f"FootstepPlannerConfig.min_step_width ({self.min_step_width}) must not exceed "
                f"step_width ({self.step_width}): the closing step could never reach the nominal width"
            )
        if not self.path_reset_distance > 0.0:
            raise ValueError(f"FootstepPlannerConfig.path_reset_distance must be > 0, got {self.path_reset_distance}")
        if self.first_swing_foot not in (SWING_LEFT, SWING_RIGHT):
            raise ValueError("FootstepPlannerConfig.first_swing_foot must be SWING_LEFT (1) or SWING_RIGHT (2)")


@dataclass(frozen=True)
class Footstep:
    """The footstep command a leg policy runs on: refine_dp_msgs/FootstepCommand's fields, batched [N].

    One record from the planner (or the message) to the policy's observation, the reference motion
    and the tracking measurements. `target` is the swing foot's touchdown pose (x, y, yaw) in the
    stance foot's yaw frame, [N, 3] (zeros while standing).
    """

    swing_foot: np.ndarray  # [N] uint8, SWING_*
    countdown: np.ndarray  # [N] s to touchdown (0 when standing)
    step_duration: np.ndarray  # [N] s (0 when standing)
    target: np.ndarray  # [N, 3] (x, y, yaw), stance-foot frame
    step_index: np.ndarray  # [N] uint32, increments at every new step
    target_z: np.ndarray | None = None  # [N] m, touchdown height above the stance foot (None: flat, zeros)

    def __post_init__(self):
        n = np.shape(self.swing_foot)[0]
        if self.target_z is None:
            object.__setattr__(self, "target_z", np.zeros(n))
        elif np.shape(self.target_z) != (n,):
            raise ValueError(f"Footstep.target_z has shape {np.shape(self.target_z)}; expected ({n},)")
        for name in ("countdown", "step_duration", "step_index"):
            if np.shape(getattr(self, name)) != (n,):
                raise ValueError(f"Footstep.{name} has shape {np.shape(getattr(self, name))}; expected ({n},)")
        if np.shape(self.target) != (n, 3):
            raise ValueError(f"Footstep.target has shape {np.shape(self.target)}; expected ({n}, 3) as (x, y, yaw)")

    def __len__(self) -> int:
        return len(self.swing_foot)

    @property
    def phase(self) -> np.ndarray:
        """Swing phase in [0, 1] (0 while standing)."""
        return swing_phase(self.countdown, self.step_duration)

    def rows(self, sel) -> "Footstep":
        """The record of the envs `sel` (indices, a mask or a slice)."""
        return Footstep(self.swing_foot[sel], self.countdown[sel], self.step_duration[sel], self.target[sel],
                        self.step_index[sel], self.target_z[sel])

    @classmethod
    def standing(cls, n: int = 1) -> "Footstep":
        """Both feet on the ground, no step (what a missing or stale FootstepCommand means)."""
        return cls(np.full(n, SWING_NONE, np.uint8), np.zeros(n), np.zeros(n), np.zeros((n, 3)),
                   np.zeros(n, np.uint32))

    @classmethod
    def from_msg(cls, msg) -> "Footstep":
        """N = 1 from a refine_dp_msgs/FootstepCommand (or anything with its fields)."""
        return cls(np.array([msg.swing_foot], np.uint8), np.array([float(msg.countdown)]),
                   np.array([float(msg.step_duration)]),
                   np.array([[float(msg.target_x), float(msg.target_y), float(msg.target_yaw)]]),
                   np.array([msg.step_index], np.uint32), np.array([float(getattr(msg, "target_z", 0.0))]))


@dataclass
class FootstepCommands:
    """Batched planner output: the footstep command (`footstep`) and the planned world footholds."""

    footstep: Footstep
    feet_world: np.ndarray  # [N, 2, 3] planned (x, y, yaw) of left/right; the swing foot at its lift-off pose
    target_world: np.ndarray  # [N, 3] touchdown pose of the swing foot (where standing: the left foot)
    new_step: np.ndarray  # bool, a step started in this update
    feet_z: np.ndarray | None = None  # [N, 2] planned world heights of the feet (soles' ground), left/right
    path_target_world: np.ndarray | None = None  # [N, 3] the commanded path's foothold for this step
    path_feet: np.ndarray | None = None  # [N, 2, 3] the commanded path's footholds (swing foot: at lift-off)


class FootstepPlanner:
    """Batched velocity-to-footstep planner over N environments (see the module docstring)."""

    def __init__(self, num_envs: int, config: FootstepPlannerConfig | None = None, stop_on_plan: bool = False):
        """stop_on_plan: a step that lands ends the walk when its *planned* target was the side-by-side
        stance (within side_by_side_tol), not when the feet are: with measured feet (2-3 cm landing errors
        against a 1 cm tolerance) the feet are never side by side and the robot would step in place for ever
        (the door heuristic on measured feet: stepping in 100 % of its standing commands, 1/32). Without
        measured feet both are the same (the feet land on their targets)."""
        self.cfg = config or FootstepPlannerConfig()
        self.cfg.validate()
        self.stop_on_plan = bool(stop_on_plan)
        self.num_envs = int(num_envs)
        n = self.num_envs
        self.feet = np.zeros((n, 2, 3))  # planned world footholds (x, y, yaw), left/right
        self.swing_foot = np.zeros(n, dtype=np.uint8)
        self.countdown = np.zeros(n)
        self.step_duration = np.zeros(n)
        self.rel_target = np.zeros((n, 3))  # swing target in the stance-foot frame
        self.cmd_rel_target = np.zeros((n, 3))  # the same as the command alone asked for (before the catch-up)
        self.step_index = np.zeros(n, dtype=np.uint32)
        self.idle_time = np.zeros(n)  # s the command has been below the standing threshold
        self.path_feet = np.zeros((n, 2, 3))  # the commanded path's footholds (module docstring)
        self.path_target = np.zeros((n, 3))  # the path's foothold of the step in progress (world)
        self.feet_z = np.zeros((n, 2))  # world ground height under each foot (as planned; 0 on flat ground)
        self.target_z_world = np.zeros(n)  # world ground height at the swing target
        self.path_cmd = np.full((n, 3), np.nan)  # the command the path was last restarted for (reanchor_on_change)
        self.reset()

    # ------------------------------------------------------------------ state
    def _rows(self, mask, value: np.ndarray | None, tail: tuple[int, ...], name: str) -> np.ndarray | None:
        """Accept `value` shaped [N, ...] or [mask.sum(), ...]; return the masked rows."""
        if value is None:
            return None
        value = np.asarray(value, dtype=np.float64)
        count = int(mask.sum())
        if value.shape == (self.num_envs, *tail):
            value = value[mask]
        elif value.shape != (count, *tail):
            raise ValueError(
                f"{name} has shape {value.shape}; expected {(self.num_envs, *tail)} or "
                f"{(count, *tail)} (one row per env, or per masked env)"
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or inf")
        return value

    def _mask(self, mask) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask)
        if mask.dtype != bool:  # env ids
            ids, mask = mask, np.zeros(self.num_envs, dtype=bool)
            mask[ids] = True
        if mask.shape != (self.num_envs,):
            raise ValueError(f"mask has shape {mask.shape}; expected ({self.num_envs},) or a list of env ids")
        return mask

    def reset(self, mask=None, root_pose=None, feet_pose=None, feet_z=None) -> None:
        """Stand the masked envs (all when mask is None) with the feet side by side.

        root_pose: (x, y, yaw) of the base; the feet go half the nominal width beside it.
        feet_pose: [2, 3] per env (left, right) to start from measured feet instead.
        feet_z: [2] per env, the ground height under each foot (default 0).
        Arrays may have one row per env or one per masked env; the origin if neither is given.
        """
        mask = self._mask(mask)
        root = self._rows(mask, root_pose, (3,), "root_pose")
        feet = self._rows(mask, feet_pose, (2, 3), "feet_pose")
        heights = self._rows(mask, feet_z, (2,), "feet_z")
        if feet is None:
            if root is None:
                root = np.zeros((int(mask.sum()), 3))
            half = 0.5 * self.cfg.step_width
            feet = np.stack([planar_compose(root, np.array([0.0, half, 0.0])),
                             planar_compose(root, np.array([0.0, -half, 0.0]))], axis=1)
        self.feet[mask] = feet
        self.path_cmd[mask] = np.nan
        self.feet_z[mask] = 0.0 if heights is None else heights
        self.target_z_world[mask] = self.feet_z[mask, LEFT]
        self.path_feet[mask] = feet
        self.path_target[mask] = feet[:, LEFT]
        self.swing_foot[mask] = SWING_NONE
        self.countdown[mask] = 0.0
        self.step_duration[mask] = 0.0
        self.rel_target[mask] = 0.0
        self.cmd_rel_target[mask] = 0.0
        self.step_index[mask] = 0
        self.idle_time[mask] = 0.0

    # ------------------------------------------------------------------ planning
    def _relative_target(self, cmd: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Swing-foot target in the stance-foot frame for side sigma (+1 left, -1 right swings)."""
        cfg = self.cfg
        period, width = cfg.step_period, cfg.step_width
        vx, vy, wz = cmd[:, 0], cmd[:, 1], cmd[:, 2]
        dx = vx * period
        # step-together: the foot on the side of the motion takes it twice, the other closes up
        dy = np.where(np.sign(vy) == sigma, 2.0 * vy * period, 0.0)
        dyaw = np.where(np.sign(wz) == sigma, 2.0 * wz * period, 0.0)
        dyaw = sigma * np.clip(sigma * dyaw, -cfg.max_inward_turn, cfg.max_turn)
        # body centre beside the stance foot, moved along the chord of the turn, then the foot beside it
        ch, sh = np.cos(0.5 * dyaw), np.sin(0.5 * dyaw)
        cx = ch * dx - sh * dy
        cy = 0.5 * sigma * width + sh * dx + ch * dy
        tx = cx - np.sin(dyaw) * 0.5 * sigma * width
        ty = cy + np.cos(dyaw) * 0.5 * sigma * width
        tx = np.clip(tx, -cfg.max_step_back, cfg.max_step_length)
        ty = sigma * np.clip(sigma * ty, cfg.min_step_width, width + cfg.max_lateral)
        return np.stack([tx, ty, dyaw], axis=-1)

    def reanchor_path(self, mask=None) -> None:
        """Restart the commanded path of the masked envs (all when None) on the feet: the planned footholds,
        the step in progress on its current target (a new command is a new path from where the robot is)."""
        mask = self._mask(mask)
        self.path_feet[mask] = self.feet[mask]
        self.path_target[mask] = self._target_world()[mask]

    def reanchor_on_change(self, cmd_vel, threshold: float) -> np.ndarray:
        """reanchor_path where the command [N, 3] differs from the one the path last restarted for by more than
        `threshold` (m/s or rad/s, any axis; 0: any change; the first command always): a new command is a new
        path. The rule the footstep node and TaskEnv share with measured feet.
        Returns the mask of restarted envs."""
        cmd = np.asarray(cmd_vel, dtype=np.float64).reshape(self.num_envs, 3)
        changed = ~(np.abs(cmd - self.path_cmd) <= threshold).all(-1)
        if changed.any():
            self.reanchor_path(changed)
            self.path_cmd[changed] = cmd[changed]
        return changed

    def _place_on_path(self, cmd_rel: np.ndarray, sigma: np.ndarray, stance: np.ndarray) -> np.ndarray:
        """Targets (stance-foot frame) moved from the command's `cmd_rel` towards the path's foothold
        self.path_target by at most catch_up / catch_up_yaw, within the placement limits."""
        cfg = self.cfg
        env = np.arange(len(stance))
        desired = planar_relative(self.feet[env, stance], self.path_target)
        corr = desired - cmd_rel
        corr[:, 2] = wrap_angle(corr[:, 2])
        norm = np.linalg.norm(corr[:, :2], axis=-1, keepdims=True)
        corr[:, :2] *= np.minimum(1.0, cfg.catch_up / np.maximum(norm, 1e-12))
        corr[:, 2] = np.clip(corr[:, 2], -cfg.catch_up_yaw, cfg.catch_up_yaw)
        rel = cmd_rel + corr
        tx = np.clip(rel[:, 0], -cfg.max_step_back, cfg.max_step_length)
        ty = sigma * np.clip(sigma * rel[:, 1], cfg.min_step_width, cfg.step_width + cfg.max_lateral)
        tyaw = sigma * np.clip(sigma * rel[:, 2], -cfg.max_inward_turn, cfg.max_turn)
        return np.stack([tx, ty, tyaw], axis=-1)

    def _side_by_side(self) -> np.ndarray:
        """Right foot at (0, -width, 0) in the left foot's frame, within tolerance."""
        rel = planar_relative(self.feet[:, LEFT], self.feet[:, RIGHT])
        cfg = self.cfg
        return ((np.abs(rel[:, 0]) <= cfg.side_by_side_tol)
                & (np.abs(rel[:, 1] + cfg.step_width) <= cfg.side_by_side_tol)
                & (np.abs(rel[:, 2]) <= cfg.side_by_side_tol_yaw))

    def _planned_side_by_side(self) -> np.ndarray:
        """The step in progress was planned to the side-by-side stance: its command's target (stance-foot
        frame, before the path's catch-up) at (0, -+width, 0) for a right / left swing, within tolerance
        (stop_on_plan)."""
        cfg, rel = self.cfg, self.cmd_rel_target
        sigma = np.where(self.swing_foot == SWING_LEFT, 1.0, -1.0)
        return ((np.abs(rel[:, 0]) <= cfg.side_by_side_tol)
                & (np.abs(sigma * rel[:, 1] - cfg.step_width) <= cfg.side_by_side_tol)
                & (np.abs(rel[:, 2]) <= cfg.side_by_side_tol_yaw))

    def _target_world(self) -> np.ndarray:
        env = np.arange(self.num_envs)
        stance = stance_foot_index(self.swing_foot)
        target = planar_compose(self.feet[env, np.maximum(stance, 0)], self.rel_target)
        return np.where((stance >= 0)[:, None], target, self.feet[:, LEFT])

    def update(self, dt: float, cmd_vel, stance_foot_pose=None, feet_pose=None, ground_height=None) -> FootstepCommands:
        """Advance all envs by dt with base velocity commands cmd_vel [N, 3] (vx, vy, wz).

        cmd_vel is in the yaw-aligned base frame (m/s, m/s, rad/s). stance_foot_pose [N, 3]
        (world x, y, yaw), optional: the measured stance foot, used where a foot swings.
        feet_pose [N, 2, 3], optional instead: both feet measured (left, right); the stance foot as
        stance_foot_pose, and a swing foot that touches down is held where it landed, not at its
        target, so the next step's placement along the path (catch_up) sees that landing.
        ground_height, optional: f(env_ids [M], xy [M, 2] world) -> [M] ground height there (module docstring;
        flat without it).
        """
        cfg = self.cfg
        n = self.num_envs
        if not dt > 0.0:
            raise ValueError(f"dt must be > 0, got {dt}")
        cmd = np.asarray(cmd_vel, dtype=np.float64)
        if cmd.shape != (n, 3):
            raise ValueError(f"cmd_vel has shape {cmd.shape}; expected ({n}, 3) as (vx, vy, wz)")
        if not np.all(np.isfinite(cmd)):
            raise ValueError("cmd_vel contains NaN or inf; refusing to plan footsteps from it")
        env = np.arange(n)
        walking = self.swing_foot != SWING_NONE
        feet_measured = None
        if feet_pose is not None:
            if stance_foot_pose is not None:
                raise ValueError("pass stance_foot_pose or feet_pose, not both")
            feet_measured = self._rows(np.ones(n, dtype=bool), feet_pose, (2, 3), "feet_pose")
            stance_foot_pose = feet_measured[env, np.maximum(stance_foot_index(self.swing_foot), 0)]
        if stance_foot_pose is not None:
            measured = self._rows(np.ones(n, dtype=bool), stance_foot_pose, (3,), "stance_foot_pose")
            stance = stance_foot_index(self.swing_foot)
            self.feet[env[walking], stance[walking]] = measured[walking]

        moving = ((np.abs(cmd[:, 0]) > cfg.stand_threshold_lin) | (np.abs(cmd[:, 1]) > cfg.stand_threshold_lin)
                  | (np.abs(cmd[:, 2]) > cfg.stand_threshold_ang))
        cmd = np.where(moving[:, None], cmd, 0.0)  # below threshold means exactly "stop"
        self.idle_time = np.where(moving, 0.0, self.idle_time + dt)

        # advance the step clocks; land the feet whose countdown ran out on their targets
        self.countdown = np.where(walking, self.countdown - dt, 0.0)
        touchdown = walking & (self.countdown <= 1e-9)
        if touchdown.any():
            swing = swing_foot_index(self.swing_foot)
            landed = self._target_world() if feet_measured is None else feet_measured[env, np.maximum(swing, 0)]
            self.feet[env[touchdown], swing[touchdown]] = landed[touchdown]
            self.feet_z[env[touchdown], swing[touchdown]] = self.target_z_world[touchdown]
            self.path_feet[env[touchdown], swing[touchdown]] = self.path_target[touchdown]
        leftover = np.where(touchdown, self.countdown, 0.0)  # <= 0: keeps the clock exact

        wants_to_stand = ~moving & (self.idle_time >= cfg.stand_delay - 1e-9)
        stop = touchdown & wants_to_stand & (self._planned_side_by_side() if self.stop_on_plan else self._side_by_side())
        keep_walking = touchdown & ~stop
        start = ~walking & moving
        new_step = keep_walking | start

        # next swing foot: alternate while walking; when starting, by the command's side
        thr_lin, thr_ang = cfg.stand_threshold_lin, cfg.stand_threshold_ang
        first_sigma = np.where(np.abs(cmd[:, 1]) > thr_lin, np.sign(cmd[:, 1]),
                               np.where(np.abs(cmd[:, 2]) > thr_ang, np.sign(cmd[:, 2]),
                                        1.0 if cfg.first_swing_foot == SWING_LEFT else -1.0))
        first = np.where(first_sigma > 0, SWING_LEFT, SWING_RIGHT)
        alternate = np.where(self.swing_foot == SWING_LEFT, SWING_RIGHT, SWING_LEFT)
        next_swing = np.where(keep_walking, alternate, first).astype(np.uint8)

        self.swing_foot = np.where(new_step, next_swing, np.where(stop, SWING_NONE, self.swing_foot)).astype(np.uint8)
        self.countdown = np.where(new_step, cfg.step_period + leftover, np.where(stop, 0.0, self.countdown))
        self.step_duration = np.where(new_step, cfg.step_period, np.where(stop, 0.0, self.step_duration))
        self.step_index = (self.step_index + new_step).astype(np.uint32)
        sigma = np.where(self.swing_foot == SWING_LEFT, 1.0, -1.0)
        cmd_rel = self._relative_target(cmd, sigma)
        rel = cmd_rel
        if new_step.any():
            self.path_feet[start] = self.feet[start]  # walking starts: the path starts on the feet
            st = np.maximum(stance_foot_index(self.swing_foot), 0)
            gap = planar_relative(self.feet[env, st], self.path_feet[env, st])
            lost = new_step & ((np.hypot(gap[:, 0], gap[:, 1]) > cfg.path_reset_distance) | (np.abs(gap[:, 2]) > 1.0))
            self.path_feet[lost] = self.feet[lost]  # pushed far off (or a stop the path missed): start again
            self.path_target = np.where(new_step[:, None], planar_compose(self.path_feet[env, st], cmd_rel),
                                        self.path_target)
            if cfg.catch_up > 0.0 or cfg.catch_up_yaw > 0.0:
                rel = self._place_on_path(cmd_rel, sigma, st)
        self.rel_target = np.where(new_step[:, None], rel, np.where(stop[:, None], 0.0, self.rel_target))
        self.cmd_rel_target = np.where(new_step[:, None], cmd_rel, np.where(stop[:, None], 0.0, self.cmd_rel_target))
        if new_step.any():  # the ground under each new target, relative to the stance foot (flat: 0)
            st = np.maximum(stance_foot_index(self.swing_foot), 0)
            z_stance = self.feet_z[env, st]
            z_target = z_stance.copy()
            if ground_height is not None and cfg.max_step_height > 0.0:
                world = planar_compose(self.feet[env, st], rel)
                ground = np.asarray(ground_height(env[new_step], world[new_step, :2]), dtype=np.float64).reshape(-1)
                z_target[new_step] = z_stance[new_step] + np.clip(ground - z_stance[new_step], -cfg.max_step_height,
                                                                  cfg.max_step_height)
            self.target_z_world = np.where(new_step, z_target, self.target_z_world)
        if stop.any():  # standing: the path is the feet
            self.path_feet[stop] = self.feet[stop]
            self.path_target[stop] = self.feet[stop, LEFT]
        return self.output(new_step)

    def output(self, new_step: np.ndarray | None = None) -> FootstepCommands:
        """Current command arrays (copies)."""
        stance = stance_foot_index(self.swing_foot)
        z_stance = self.feet_z[np.arange(self.num_envs), np.maximum(stance, 0)]
        target_z = np.where(stance >= 0, self.target_z_world - z_stance, 0.0)
        return FootstepCommands(
            footstep=Footstep(self.swing_foot.copy(), self.countdown.copy(), self.step_duration.copy(),
                              self.rel_target.copy(), self.step_index.copy(), target_z),
            feet_world=self.feet.copy(),
            target_world=self._target_world(),
            new_step=np.zeros(self.num_envs, dtype=bool) if new_step is None else new_step.copy(),
            feet_z=self.feet_z.copy(),
            path_target_world=self.path_target.copy(),
            path_feet=self.path_feet.copy(),
        )


@dataclass(frozen=True)
class FootstepStep:
    """One robot's footstep command (FootstepCommand's fields) plus the planned world footholds."""

    swing_foot: int
    countdown: float
    step_duration: float
    target_x: float
    target_y: float
    target_yaw: float
    step_index: int
    target_z: float  # m, touchdown height above the stance foot (0 on flat ground)
    frame_id: str  # stance foot frame: "left_foot" / "right_foot" ("left_foot" while standing)
    feet_world: tuple  # ((x, y, yaw) left, (x, y, yaw) right)
    target_world: tuple  # (x, y, yaw)
    new_step: bool


class SingleFootstepPlanner:
    """The batched planner with N = 1 and scalar inputs/outputs, for the robot-side node."""

    def __init__(self, config: FootstepPlannerConfig | None = None, stop_on_plan: bool = False):
        self.planner = FootstepPlanner(1, config, stop_on_plan)

    @property
    def config(self) -> FootstepPlannerConfig:
        return self.planner.cfg

    def reset(self, root_pose=(0.0, 0.0, 0.0), feet_pose=None) -> None:
        """Standing at root_pose (x, y, yaw), or on measured feet_pose [2, 3] (left, right; x, y, yaw)."""
        if feet_pose is not None:
            self.planner.reset(feet_pose=np.asarray(feet_pose, dtype=np.float64).reshape(1, 2, 3))
        else:
            self.planner.reset(root_pose=np.asarray(root_pose, dtype=np.float64).reshape(1, 3))

    def reanchor_on_change(self, vx: float, vy: float, wz: float, threshold: float) -> bool:
        """FootstepPlanner.reanchor_on_change for the one robot: whether the path restarted."""
        return bool(self.planner.reanchor_on_change(np.array([[vx, vy, wz]]), threshold)[0])

    def update(self, dt: float, vx: float, vy: float, wz: float, stance_foot_pose=None,
               ground_height=None, feet_pose=None) -> FootstepStep:
        """feet_pose [2, 3] (left, right; x, y, yaw), optional: both feet measured (FootstepPlanner.update)."""
        stance = None if stance_foot_pose is None else np.asarray(stance_foot_pose, dtype=np.float64).reshape(1, 3)
        feet = None if feet_pose is None else np.asarray(feet_pose, dtype=np.float64).reshape(1, 2, 3)
        out = self.planner.update(dt, np.array([[vx, vy, wz]], dtype=np.float64), stance, feet_pose=feet,
                                  ground_height=ground_height)
        f = out.footstep
        swing = int(f.swing_foot[0])
        return FootstepStep(
            swing_foot=swing,
            countdown=float(f.countdown[0]),
            step_duration=float(f.step_duration[0]),
            target_x=float(f.target[0, 0]),
            target_y=float(f.target[0, 1]),
            target_yaw=float(f.target[0, 2]),
            step_index=int(f.step_index[0]),
            target_z=float(f.target_z[0]),
            frame_id="right_foot" if swing == SWING_LEFT else "left_foot",
            feet_world=tuple(tuple(float(v) for v in foot) for foot in out.feet_world[0]),
            target_world=tuple(float(v) for v in out.target_world[0]),
            new_step=bool(out.new_step[0]),
        )


__all__ = [
    "REANCHOR_CHANGE",
    "FootstepPlannerConfig",
    "Footstep",
    "FootstepCommands",
    "FootstepPlanner",
    "FootstepStep",
    "SingleFootstepPlanner",
    "SWING_NONE",
    "SWING_LEFT",
    "SWING_RIGHT",
]
