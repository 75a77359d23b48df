"""`refine-dp eval controller`: the exported leg + arm policies together, as the controller node runs them.

    python -m refine_dp_training.lowlevel.evaluate --episodes 16 --out runs/eval/controller
        [--legs runs/lowlevel/legs/policy/legs.onnx] [--arms runs/lowlevel/arms/policy/arms.onnx]
        [--physics-dt 0.002] [--pd-fallback] [--no-video] [--arm-target-alpha A]

Without --legs/--arms it evaluates the models loco_manip_controller ships (its models/ directory).

Randomized 20 s episodes: random base-velocity commands go through the FootstepPlanner into
footstep commands for the leg policy while the arm policy tracks random reachable hand poses
(FK of smooth random arm-joint paths) with random hand payloads. Policies run through
policy_runtime.LowLevelController (OnnxPolicy + policy_io builders) - the node's code path - at the
policies' control rate, with the footstep planner config of the legs' contract; footsteps are scored by
tracking.score_touchdowns (as in training and on the robot), falls by the training env's termination
terms. The physics defaults to sim_t1's 2 ms (training uses 5 ms), so this is also the transfer check.

Writes DIR/summary.json (fall_rate, footstep_error_median_m, footstep_error_p90_m,
hand_pos_error_median_m {standing, walking}, hand_rot_error_median_deg,
base_velocity_tracking_error, episodes, seconds_simulated), DIR/episode0.png and DIR/episode0.gif.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# offscreen rendering needs the GL backend chosen before mujoco is first imported
os.environ.setdefault("MUJOCO_GL", "egl")

from types import SimpleNamespace  # noqa: E402

from loco_manip_controller import policy_io as pio  # noqa: E402
from loco_manip_controller.footstep_planner import FootstepPlanner, FootstepPlannerConfig  # noqa: E402
from loco_manip_controller.gait import SWING_NONE, swing_foot_index  # noqa: E402
from loco_manip_controller.policy_runtime import MODELS_DIR  # noqa: E402
from loco_manip_controller.tracking import score_touchdowns  # noqa: E402
from t1_description.joint_table import load_joint_table  # noqa: E402
from t1_description.kinematics import (  # noqa: E402
    arm_kinematics,
    feet_planar,
    planar_relative,
    pose_errors,
    wrap_angle,
    quat_wxyz_to_matrix,
    yaw_of_quat,
)

from . import terms  # noqa: E402
from .commands import ArmJointPaths, VelocityCommands  # noqa: E402
from .config import CommandConfig, EnvConfig  # noqa: E402
from .sim import BatchedT1  # noqa: E402

DEFAULT_LEGS = MODELS_DIR / "legs.onnx"  # what the controller node runs by default (bringup.yaml)
DEFAULT_ARMS = MODELS_DIR / "arms.onnx"
FALL_TERMS = ("fall_height", "fall_tilt")  # the training env's terminations, at EnvConfig's thresholds


def _load(path: Path | None, part: str, fallback: bool):
    from loco_manip_controller.policy_runtime import OnnxPolicy
    if path is not None and Path(path).is_file():
        return OnnxPolicy(path, expect_part=part)
    if fallback:
        return None
    raise FileNotFoundError(f"no {part} policy at {path}: train it (refine-dp train-lowlevel --part {part}) or "
                            "pass --pd-fallback to hold that part at the default pose by PD")


# The command box (|vx| <= 0.3 m/s, |vy| <= 0.15 m/s, |wz| <= 0.5 rad/s), 20 % standing; the arm paths
# keep CommandConfig's defaults. (Until this session the box was CommandConfig's: 0.2 / 0.2 / 0.5.)
EVAL_COMMANDS = CommandConfig(max_vx=0.3, max_vy=0.15, max_wz=0.5, stand_probability=0.2)

# Drift scenarios: (name, (vx, vy, wz)) held for DRIFT_COMMAND_S, then zero; the trunk pose once standing again
# (DRIFT_SETTLE_S later) against the command integrated over those seconds.
DRIFT_SCENARIOS = (("straight", (0.25, 0.0, 0.0)), ("arc", (0.2, 0.0, 0.2)), ("turn_in_place", (0.0, 0.0, 0.25)))
DRIFT_COMMAND_S, DRIFT_SETTLE_S = 10.0, 2.0
PUSH_SPEED = 0.3  # m/s, trunk velocity kick (horizontal, random direction)
# Steps up and down: a platform STEP_HEIGHT high (sim.PLATFORM_HALF: 0.6 m deep) with its near edge
# STEP_DISTANCE ahead, STEP_COMMAND forward for STEP_COMMAND_S s (up, across, down), then standing; a trial
# succeeds when the robot has not fallen and its trunk is past the far edge.
STEP_HEIGHT, STEP_DISTANCE, STEP_COMMAND, STEP_COMMAND_S, STEP_SECONDS = 0.10, (0.35, 0.5), (0.2, 0.0, 0.0), 8.0, 10.0
PUSH_WINDOW_S = 3.0  # a push is survived when the robot has not fallen this long after it


class ScriptedCommands:
    """The same command for every env: `segments` [(seconds, (vx, vy, wz)), ...], then zero (drift tests)."""

    def __init__(self, n: int, segments):
        self.segments, self.t, self.cmd = list(segments), 0.0, np.zeros((n, 3))
        self._set()

    def _set(self):
        t = self.t
        for seconds, cmd in self.segments:
            if t < seconds - 1e-9:
                self.cmd[:] = cmd
                return
            t -= seconds
        self.cmd[:] = 0.0

    def resample(self, mask):
        pass

    def update(self, dt: float):
        self.t += dt
        self._set()


def _integrate(pose: np.ndarray, cmd: np.ndarray, dt: float) -> np.ndarray:
    """(x, y, yaw) [N, 3] advanced by body-frame (vx, vy, wz) [N, 3] over dt (midpoint heading)."""
    yaw = pose[:, 2] + 0.5 * cmd[:, 2] * dt
    c, s = np.cos(yaw), np.sin(yaw)
    return pose + dt * np.stack([c * cmd[:, 0] - s * cmd[:, 1], s * cmd[:, 0] + c * cmd[:, 1], cmd[:, 2]], -1)


def _trunk_pose(sim) -> np.ndarray:
    L = sim.layout
    return np.concatenate([sim.state[:, L.root_pos[:2]], yaw_of_quat(sim.state[:, L.root_quat])[:, None]], -1)


def run_episodes(legs, arms, episodes: int, seconds: float = 20.0, physics_dt: float = 0.002, seed: int = 0,
                 record_env0: bool = False, payload_kg=(0.0, 0.5), arm_target_alpha: float | None = None,
                 commands=None, push_speed: float = 0.0, planner_overrides: dict | None = None,
                 platform_height: float = 0.0) -> dict:
    """`episodes` parallel episodes of `seconds`; returns {"summary", "raw", "record", "model"}.

    commands: a callable (n, rng) -> object with `cmd` [n, 3] and `update(dt)` (e.g. ScriptedCommands);
    default: random commands of EVAL_COMMANDS. push_speed > 0: trunk velocity kicks of that speed in a
    random horizontal direction every 3-3.5 s (the first after 1.5-3 s). planner_overrides: FootstepPlannerConfig
    fields changed from the legs' contract (diagnostic experiments only; the summary names them).
    platform_height > 0: a platform that high ahead of each robot (STEP_DISTANCE to its near edge); the planner
    gets the ground height (it issues target_z only if the legs' contract has max_step_height > 0).
    """
    import dataclasses

    from loco_manip_controller.policy_runtime import ARM_TARGET_ALPHA, LowLevelController
    n, jt = episodes, load_joint_table()
    alpha = ARM_TARGET_ALPHA if arm_target_alpha is None else arm_target_alpha
    controller = LowLevelController(legs, arms, jt, num_envs=n, arm_target_alpha=alpha)  # the node's code path
    dec = int(round(1.0 / (controller.control_hz * physics_dt)))
    if dec < 1 or abs(dec * physics_dt * controller.control_hz - 1.0) > 1e-6:
        raise ValueError(f"physics_dt {physics_dt} does not divide the policies' control period "
                         f"1 / {controller.control_hz:g} Hz")
    sim = BatchedT1(n, physics_dt, dec, nthread=2, table=jt, platforms=platform_height > 0)
    rng = np.random.default_rng(seed)
    fall_cfg = EnvConfig()
    leg_idx, arm_idx = pio.LEG_ACTION.indices(jt), pio.ARM_ACTION.indices(jt)
    hand_bodies = sim.base_model.site_bodyid[sim.idx.hand_sites]
    for i in range(n):  # hand payloads (the only model randomization in evaluation)
        sim.models[i].body_mass[hand_bodies] += rng.uniform(*payload_kg, 2)
    yaw0 = rng.uniform(-np.pi, np.pi, n)
    sim.reset_rows(np.ones(n, bool), root_xy_yaw=np.stack([np.zeros(n), np.zeros(n), yaw0], -1))
    ground = None
    if platform_height > 0:
        from .sim import PLATFORM_HALF
        ahead = rng.uniform(*STEP_DISTANCE, n) + PLATFORM_HALF[0]
        sim.place_platform(np.arange(n), np.stack([ahead * np.cos(yaw0), ahead * np.sin(yaw0)], -1), yaw0,
                           np.full(n, platform_height))
        far_edge = ahead + PLATFORM_HALF[0]
        ground = sim.ground_height
    cmd_cfg = EVAL_COMMANDS
    vel = VelocityCommands(n, cmd_cfg, rng) if commands is None else commands(n, rng)
    if commands is None:
        vel.resample(np.ones(n, bool))
    arm_paths = ArmJointPaths(n, cmd_cfg, jt.default_q[arm_idx], jt.lower[arm_idx], jt.upper[arm_idx], rng,
                              cmd_cfg.arm_joint_range_fraction)
    arm_paths.reset(np.ones(n, bool), random_start=False)
    planner_cfg = controller.footstep_config or FootstepPlannerConfig()  # the legs' contract
    if planner_overrides:
        planner_cfg = dataclasses.replace(planner_cfg, **planner_overrides)
    planner = FootstepPlanner(n, planner_cfg)
    L = sim.layout

    def world_feet():
        q, root, quat = sim.state[:, L.joint_q], sim.state[:, L.root_pos], sim.state[:, L.root_quat]
        return feet_planar(q[:, leg_idx], quat_wxyz_to_matrix(quat), root)

    planner.reset(feet_pose=world_feet())
    cmds = planner.output()
    fallen = np.zeros(n, bool)
    steps = int(round(seconds / sim.control_dt))
    raw = {k: [] for k in ("foot_err", "foot_yaw_err", "path_err", "path_yaw_err", "target_yaw", "landed_yaw",
                           "hand_pos_stand", "hand_pos_walk", "hand_rot", "vel_err", "step_adv_target",
                           "step_adv_landed", "speed_cmd", "speed_along", "speed_cmd_raw", "turn_cmd", "turn_along",
                           "turn_cmd_raw", "push_survived", "closing_yaw", "stance_slip_turning",
                           "stance_slip_abs", "falls")}
    stance_yaw0 = np.zeros(n)
    v_hist = np.zeros((n, 50, 2))
    wz_hist = np.zeros((n, 50))
    pose0 = _trunk_pose(sim)
    cmd_pose, cmd_pose_raw = pose0.copy(), pose0.copy()
    push_at = rng.uniform(1.5, 3.0, n) if push_speed > 0 else np.full(n, np.inf)
    pushes = []  # (env, time)
    fell_at = np.full(n, np.inf)
    rec = {"t": [], "cmd_vx": [], "vx": [], "hand_err": [], "walking": [], "states": []}
    t0 = time.perf_counter()
    for k in range(steps):
        q, dq = sim.state[:, L.joint_q], sim.state[:, L.joint_dq]
        quat, gyro = sim.state[:, L.root_quat], sim.state[:, L.root_angvel]
        gravity = pio.projected_gravity(quat)
        tp, tr = arm_kinematics().fk(arm_paths.current())
        q_des = controller.step(q, dq, gravity, gyro, cmds.footstep, tp, tr)
        if arms is None:
            q_des[:, arm_idx] = arm_paths.current()  # PD straight to the joint path (fallback)
        sim.step(q_des, rate_limit=jt.velocity_limit)  # the safety layer's step clamp, as in sim_t1
        if not np.isfinite(sim.state).all():
            bad = ~np.isfinite(sim.state).all(-1)
            fallen |= bad
            sim.state[bad] = sim.keyframe_state
        t_now = (k + 1) * sim.control_dt
        # measurements after the step
        q, quat, root = sim.state[:, L.joint_q], sim.state[:, L.root_quat], sim.state[:, L.root_pos]
        gravity = pio.projected_gravity(quat)
        state = SimpleNamespace(root_pos=root, gravity=gravity)
        for name in FALL_TERMS:
            fallen |= terms.TERMINATION_TERMS[name](state, fall_cfg)
        new_fall = fallen & np.isinf(fell_at)
        if new_fall.any():  # what the robot was doing: the command and the step it was on
            raw["falls"] += [{"t": round(t_now, 2), "cmd": np.round(vel.cmd[i], 3).tolist(),
                              "swing_foot": int(cmds.footstep.swing_foot[i]),
                              "target": np.round(cmds.footstep.target[i], 3).tolist()} for i in np.flatnonzero(new_fall)]
        fell_at = np.where(new_fall, t_now, fell_at)
        alive = ~fallen
        kick = alive & (t_now >= push_at)
        if kick.any():  # trunk velocity kicks
            angle = rng.uniform(-np.pi, np.pi, int(kick.sum()))
            sim.state[kick, L.root_linvel[0]] += push_speed * np.cos(angle)
            sim.state[kick, L.root_linvel[1]] += push_speed * np.sin(angle)
            pushes += [(int(i), t_now) for i in np.flatnonzero(kick)]
            push_at[kick] = t_now + rng.uniform(3.0, 3.5, int(kick.sum()))
            push_at[push_at > seconds - PUSH_WINDOW_S] = np.inf  # too late to see it survived
        arm_paths.update(sim.control_dt)
        cmd_before = vel.cmd.copy()
        vel.update(sim.control_dt)
        prev = cmds
        fp = world_feet()
        changed = np.any(vel.cmd != cmd_before, axis=-1)
        cmds = planner.update(sim.control_dt, vel.cmd, feet_pose=fp, ground_height=ground)
        if changed.any():
            planner.reanchor_path(changed)  # a new command: a new commanded path from where the robot is
        cmd_pose = _integrate(cmd_pose, np.where(alive[:, None], planner.cfg.achievable_velocity(vel.cmd), 0.0),
                              sim.control_dt)
        cmd_pose_raw = _integrate(cmd_pose_raw, vel.cmd, sim.control_dt)
        td = score_touchdowns(prev.footstep, cmds.footstep, fp)
        scored = td.ended & alive
        raw["foot_err"] += td.error[scored].tolist()
        raw["foot_yaw_err"] += np.abs(td.yaw_error[scored]).tolist()
        # against the commanded path: the landed swing foot (world) vs the path's foothold of that step
        env = np.arange(n)
        swing = np.maximum(swing_foot_index(prev.footstep.swing_foot), 0)
        landed_world = fp[env, swing]
        path_diff = planar_relative(prev.path_target_world, landed_world)
        raw["path_err"] += np.hypot(path_diff[:, 0], path_diff[:, 1])[scored].tolist()
        raw["path_yaw_err"] += np.abs(path_diff[scored, 2]).tolist()
        turn_step = scored & (np.abs(prev.footstep.target[:, 2]) > 0.05)
        raw["target_yaw"] += np.abs(prev.footstep.target[turn_step, 2]).tolist()
        raw["landed_yaw"] += (td.landed[turn_step, 2] * np.sign(prev.footstep.target[turn_step, 2])).tolist()
        # where the heading goes while turning: the closing steps' landed yaw (target 0) and the stance foot's
        # yaw slip over the step, both signed along the turn; abs slip of every step
        turn_sign = np.sign(vel.cmd[:, 2]) * (np.abs(vel.cmd[:, 2]) > 0.05)
        closing = scored & ~turn_step & (turn_sign != 0)
        raw["closing_yaw"] += (td.landed[closing, 2] * turn_sign[closing]).tolist()
        stance_idx = 1 - swing
        slip = wrap_angle(fp[env, stance_idx, 2] - stance_yaw0)
        raw["stance_slip_turning"] += (slip * turn_sign)[scored & (turn_sign != 0)].tolist()
        raw["stance_slip_abs"] += np.abs(slip[scored]).tolist()
        started = cmds.new_step
        stance_now = 1 - np.maximum(swing_foot_index(cmds.footstep.swing_foot), 0)
        stance_yaw0 = np.where(started, fp[env, stance_now, 2], stance_yaw0)
        # step advance: landed foot vs its target, both in the stance foot's frame (forward component)
        raw["step_adv_target"] += prev.footstep.target[scored, 0].tolist()
        raw["step_adv_landed"] += td.landed[scored, 0].tolist()
        hp, hr = arm_kinematics().fk(q[:, arm_idx])
        tp, tr = arm_kinematics().fk(arm_paths.current())
        dp, drot = pose_errors(tp, tr, hp, hr)
        e_pos, e_rot = np.linalg.norm(dp, axis=-1).mean(-1), np.degrees(np.linalg.norm(drot, axis=-1).mean(-1))
        walking = cmds.footstep.swing_foot != SWING_NONE
        raw["hand_pos_walk"] += e_pos[alive & walking].tolist()
        raw["hand_pos_stand"] += e_pos[alive & ~walking].tolist()
        raw["hand_rot"] += e_rot[alive].tolist()
        yaw = yaw_of_quat(quat)
        v = sim.state[:, L.root_linvel[:2]]
        c, s = np.cos(yaw), np.sin(yaw)
        v_head = np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], -1)
        v_hist[:, k % 50] = v_head
        wz_hist[:, k % 50] = (quat_wxyz_to_matrix(quat) @ sim.state[:, L.root_angvel][..., None])[:, 2, 0]
        if k >= 50:  # 1 s moving average (the gait's sway averages out) vs the command
            raw["vel_err"] += np.linalg.norm(v_hist.mean(1) - vel.cmd[:, :2], axis=-1)[alive].tolist()
            moving = alive & (np.linalg.norm(vel.cmd[:, :2], axis=-1) > 0.05)
            achievable = planner.cfg.achievable_velocity(vel.cmd)
            unit = vel.cmd[:, :2] / np.maximum(np.linalg.norm(vel.cmd[:, :2], axis=-1, keepdims=True), 1e-9)
            raw["speed_cmd"] += np.sum(achievable[:, :2] * unit, axis=-1)[moving].tolist()
            raw["speed_cmd_raw"] += np.linalg.norm(vel.cmd[:, :2], axis=-1)[moving].tolist()
            raw["speed_along"] += np.sum(v_hist.mean(1) * unit, axis=-1)[moving].tolist()
            wz_cmd = achievable[:, 2]  # the planner turns at most this fast
            turning = alive & (np.abs(vel.cmd[:, 2]) > 0.05)
            raw["turn_cmd"] += np.abs(wz_cmd)[turning].tolist()
            raw["turn_cmd_raw"] += np.abs(vel.cmd[turning, 2]).tolist()
            raw["turn_along"] += (wz_hist.mean(1) * np.sign(vel.cmd[:, 2]))[turning].tolist()
        if record_env0:
            rec["t"].append(k * sim.control_dt)
            rec["cmd_vx"].append(vel.cmd[0].tolist())
            rec["vx"].append(v_hist.mean(1)[0].tolist() if k >= 50 else v_head[0].tolist())
            rec["hand_err"].append(float(e_pos[0]))
            rec["walking"].append(bool(walking[0]))
            rec["states"].append(sim.state[0].copy())
    wall = time.perf_counter() - t0
    raw["push_survived"] = [bool(fell_at[i] > t + PUSH_WINDOW_S) for i, t in pushes]
    final = _trunk_pose(sim)
    drift = planar_relative(cmd_pose, final)  # walked pose in the integrated command's frame
    drift_raw = planar_relative(cmd_pose_raw, final)
    raw["drift_pos"] = np.hypot(drift[:, 0], drift[:, 1])[~fallen].tolist()
    raw["drift_yaw_deg"] = np.degrees(np.abs(drift[:, 2]))[~fallen].tolist()
    raw["drift_yaw_signed_deg"] = np.degrees(drift[:, 2])[~fallen].tolist()  # + : turned left of the command
    raw["drift_pos_raw"] = np.hypot(drift_raw[:, 0], drift_raw[:, 1])[~fallen].tolist()
    raw["drift_yaw_deg_raw"] = np.degrees(np.abs(drift_raw[:, 2]))[~fallen].tolist()
    raw["commanded_travel"] = np.hypot(*(cmd_pose[:, :2] - pose0[:, :2]).T).tolist()
    raw["commanded_turn_deg"] = np.degrees(np.abs(cmd_pose[:, 2] - pose0[:, 2])).tolist()
    raw["fallen"] = fallen.tolist()
    if platform_height > 0:  # past the far edge along the start heading, not fallen
        along = (final[:, 0] - pose0[:, 0]) * np.cos(yaw0) + (final[:, 1] - pose0[:, 1]) * np.sin(yaw0)
        raw["crossed"] = ((along > far_edge) & ~fallen).tolist()
    sim.close()
    summary = summarize(raw) | {
        "episodes": n,
        "seconds_simulated": float(n * steps * sim.control_dt),
        "physics_dt": physics_dt,
        "decimation": dec,
        "arm_target_alpha": alpha,
        "wall_s": wall,
    }
    if planner_overrides:
        summary["planner_overrides"] = dict(planner_overrides)
    return {"summary": summary, "raw": raw, "record": rec if record_env0 else None, "model": sim.base_model}


def _med(x):
    return float(np.median(x)) if len(x) else None


def _ratio(num, den):
    return float(np.sum(num) / np.sum(den)) if len(den) and np.sum(den) > 0 else None


def summarize(raw: dict) -> dict:
    """The evaluation's figures from run_episodes' raw lists (several runs' lists may be concatenated)."""
    return {
        "fall_rate": float(np.mean(raw["fallen"])),
        "footstep_error_median_m": _med(raw["foot_err"]),
        "footstep_error_p90_m": float(np.percentile(raw["foot_err"], 90)) if raw["foot_err"] else None,
        # the landed foot (world) against the commanded path's foothold (footstep_planner: path_feet), so that
        # stepping short cannot pass; the path restarts on the feet at each new command and start from standing
        "footstep_error_path_median_m": _med(raw["path_err"]),
        "footstep_error_path_p90_m": float(np.percentile(raw["path_err"], 90)) if raw["path_err"] else None,
        "footstep_yaw_error_median_deg": None if not raw["foot_yaw_err"] else float(np.degrees(_med(raw["foot_yaw_err"]))),
        "footstep_yaw_error_path_median_deg": None if not raw["path_yaw_err"] else float(
            np.degrees(_med(raw["path_yaw_err"]))),
        "hand_pos_error_median_m": {"standing": _med(raw["hand_pos_stand"]), "walking": _med(raw["hand_pos_walk"])},
        "hand_rot_error_median_deg": _med(raw["hand_rot"]),
        "base_velocity_tracking_error": float(np.mean(raw["vel_err"])) if raw["vel_err"] else None,
        "footsteps": len(raw["foot_err"]),
        "falls": raw.get("falls", [])[:20],  # when and under which command the first falls happened
        # what the errors are made of: how far forward each step lands vs its target (stance-foot frame), the
        # speed walked along the command (1 s average) vs the command as given (speed_ratio) and vs what the
        # planner can walk of it (_walkable); the yaw rate vs what the planner can walk (turn_ratio) and vs the
        # command as given (_commanded); the yaw the turning steps land with vs their target yaw (1.0 = full)
        "diagnostics": {
            "step_advance_target_mean_m": float(np.mean(raw["step_adv_target"])) if raw["step_adv_target"] else None,
            "step_advance_landed_mean_m": float(np.mean(raw["step_adv_landed"])) if raw["step_adv_landed"] else None,
            "speed_ratio": _ratio(raw["speed_along"], raw["speed_cmd_raw"]),
            "speed_ratio_walkable": _ratio(raw["speed_along"], raw["speed_cmd"]),
            "turn_ratio": _ratio(raw["turn_along"], raw["turn_cmd"]),
            "turn_ratio_commanded": _ratio(raw["turn_along"], raw["turn_cmd_raw"]),
            "step_yaw_ratio": _ratio(raw["landed_yaw"], raw["target_yaw"]),
            "closing_step_yaw_mean_deg": float(np.degrees(np.mean(raw["closing_yaw"]))) if raw["closing_yaw"] else None,
            "stance_yaw_slip_along_turn_mean_deg": float(np.degrees(np.mean(raw["stance_slip_turning"])))
            if raw["stance_slip_turning"] else None,
            "stance_yaw_slip_abs_mean_deg": float(np.degrees(np.mean(raw["stance_slip_abs"])))
            if raw["stance_slip_abs"] else None,
        },
    }


def drift_tests(legs, arms, episodes: int = 8, physics_dt: float = 0.002, seed: int = 0, **kw) -> dict:
    """Per DRIFT_SCENARIOS entry: the trunk pose once standing again after DRIFT_COMMAND_S s of the command,
    against the command integrated over those seconds (as the planner can walk it, and as given)."""
    out = {}
    for name, cmd in DRIFT_SCENARIOS:
        r = run_episodes(legs, arms, episodes, DRIFT_COMMAND_S + DRIFT_SETTLE_S, physics_dt, seed,
                         commands=lambda n, rng, c=cmd: ScriptedCommands(n, [(DRIFT_COMMAND_S, c)]), **kw)
        raw = r["raw"]
        out[name] = {"command": list(cmd), "seconds": DRIFT_COMMAND_S,
                     "commanded_travel_m": float(np.mean(raw["commanded_travel"])),
                     "commanded_turn_deg": float(np.mean(raw["commanded_turn_deg"])),
                     "position_error_m": _med(raw["drift_pos"]), "position_error_max_m": max(raw["drift_pos"], default=None),
                     "heading_error_deg": _med(raw["drift_yaw_deg"]),
                     "heading_error_max_deg": max(raw["drift_yaw_deg"], default=None),
                     "heading_error_signed_mean_deg": float(np.mean(raw["drift_yaw_signed_deg"]))
                     if raw["drift_yaw_signed_deg"] else None,
                     "position_error_vs_raw_command_m": _med(raw["drift_pos_raw"]),
                     "heading_error_vs_raw_command_deg": _med(raw["drift_yaw_deg_raw"]),
                     "fall_rate": float(np.mean(raw["fallen"])), "episodes": episodes}
    worst = [v for v in out.values()]
    out["position_error_max_m"] = max((v["position_error_max_m"] or 0.0) for v in worst)
    out["heading_error_max_deg"] = max((v["heading_error_max_deg"] or 0.0) for v in worst)
    return out


def push_tests(legs, arms, episodes: int = 16, physics_dt: float = 0.002, seed: int = 0, **kw) -> dict:
    """Share of PUSH_SPEED trunk velocity kicks survived (no fall within PUSH_WINDOW_S), standing and walking."""
    out = {}
    for name, commands in (("standing", lambda n, rng: ScriptedCommands(n, [])),
                           ("walking", lambda n, rng: _walking_commands(n, rng))):
        r = run_episodes(legs, arms, episodes, 20.0, physics_dt, seed, commands=commands, push_speed=PUSH_SPEED, **kw)
        survived = r["raw"]["push_survived"]
        out[name] = float(np.mean(survived)) if survived else None
        out[f"{name}_pushes"] = len(survived)
    out["speed_m_s"] = PUSH_SPEED
    return out


def step_tests(legs, arms, episodes: int = 100, physics_dt: float = 0.002, seed: int = 0, **kw) -> dict:
    """Steps up and down a STEP_HEIGHT platform (module constants): success = crossed without a fall."""
    r = run_episodes(legs, arms, episodes, STEP_SECONDS, physics_dt, seed, platform_height=STEP_HEIGHT,
                     commands=lambda n, rng: ScriptedCommands(n, [(STEP_COMMAND_S, STEP_COMMAND)]), **kw)
    raw = r["raw"]
    return {"success_rate": float(np.mean(raw["crossed"])), "fall_rate": float(np.mean(raw["fallen"])),
            "height_m": STEP_HEIGHT, "trials": episodes, "command": list(STEP_COMMAND), "seconds": STEP_COMMAND_S,
            "hand_pos_error_median_m": {"standing": _med(raw["hand_pos_stand"]), "walking": _med(raw["hand_pos_walk"])},
            "footstep_error_median_m": _med(raw["foot_err"])}


def _walking_commands(n, rng):
    v = VelocityCommands(n, CommandConfig(max_vx=0.3, max_vy=0.15, max_wz=0.5, stand_probability=0.0,
                                          resample_s=(4.0, 6.0)), rng)
    v.resample(np.ones(n, bool))
    v.cmd[np.linalg.norm(v.cmd, axis=-1) < 0.05] = (0.2, 0.0, 0.0)  # always walking
    return v


def _plot(rec: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = np.array(rec["t"])
    cmd, v = np.array(rec["cmd_vx"]), np.array(rec["vx"])
    fig, ax = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    ax[0].plot(t, cmd[:, 0], "k--", label="cmd vx")
    ax[0].plot(t, v[:, 0], label="vx (1 s avg)")
    ax[0].plot(t, cmd[:, 1], "g--", label="cmd vy")
    ax[0].plot(t, v[:, 1], "g", label="vy")
    ax[0].set_ylabel("m/s")
    ax[0].legend(fontsize=7)
    ax[1].plot(t, np.array(rec["hand_err"]) * 100)
    ax[1].set_ylabel("hand pos err (cm)")
    ax[2].fill_between(t, 0, np.array(rec["walking"], float), step="post", alpha=0.4)
    ax[2].set_ylabel("walking")
    ax[2].set_xlabel("t (s)")
    fig.suptitle("episode 0")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _video(model, states, path: Path, seconds: float = 8.0, fps: int = 5) -> str | None:
    """GIF of the first seconds of episode 0 (offscreen: MUJOCO_GL=egl); None with the reason on failure."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco

        from t1_description.video import write_gif

        from .sim import STATE_SPEC
        renderer = mujoco.Renderer(model, 240, 320)
        d = mujoco.MjData(model)
        cam = mujoco.MjvCamera()
        cam.distance, cam.elevation, cam.azimuth = 2.2, -15.0, 150.0
        frames = []
        step = max(1, int(round(50 / fps)))
        for s in states[: int(seconds * 50): step]:
            mujoco.mj_setState(model, d, s, STATE_SPEC)
            mujoco.mj_forward(model, d)
            cam.lookat[:] = d.qpos[:3] * [1, 1, 0] + [0, 0, 0.6]
            renderer.update_scene(d, cam)
            frames.append(renderer.render())
        renderer.close()
        write_gif(path, frames, fps)
        return None
    except Exception as exc:  # rendering is optional: report, do not lose the metrics
        return f"{type(exc).__name__}: {exc}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp eval controller", description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=16, help="random-command episodes per seed")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--legs", type=Path, default=DEFAULT_LEGS, help="legs policy (default: the shipped one)")
    p.add_argument("--arms", type=Path, default=DEFAULT_ARMS, help="arms policy (default: the shipped one)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--physics-dt", type=float, default=0.002, help="0.002 = sim_t1's step; training uses 0.005")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="random-command episodes on each of these seeds, pooled (e.g. 100 101 102 103 104 105 for "
                        "the fall figure on seeds not used to choose anything); default: --seed")
    p.add_argument("--drift-episodes", type=int, default=8, help="episodes per drift scenario (0: skip)")
    p.add_argument("--push-episodes", type=int, default=16, help="episodes of pushes standing and walking (0: skip)")
    p.add_argument("--step-trials", type=int, default=100, help="trials up and down a 10 cm platform (0: skip)")
    p.add_argument("--pd-fallback", action="store_true",
                   help="hold a part whose policy file is missing by PD (baseline) instead of failing")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--arm-target-alpha", type=float, default=None,
                   help="the arm targets' low-pass weight, as the node's parameter (default: the node's default; 1 = off)")
    p.add_argument("--planner-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="diagnostics only: change a FootstepPlannerConfig field from the legs' contract (e.g. catch_up=0.03)")
    args = p.parse_args(argv)
    try:
        legs = _load(args.legs, "legs", args.pd_fallback)
        arms = _load(args.arms, "arms", args.pd_fallback)
        overrides = {}
        for item in args.planner_set:
            key, _, value = item.partition("=")
            if key not in FootstepPlannerConfig.__dataclass_fields__:
                raise ValueError(f"--planner-set {item!r}: no FootstepPlannerConfig field {key!r}")
            overrides[key] = type(getattr(FootstepPlannerConfig(), key))(json.loads(value))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    kw = {"arm_target_alpha": args.arm_target_alpha, "planner_overrides": overrides or None}
    seeds = args.seeds or [args.seed]
    raws, first, per_seed, wall = [], None, {}, 0.0
    for i, seed in enumerate(seeds):
        result = run_episodes(legs, arms, args.episodes, args.seconds, args.physics_dt, seed, record_env0=(i == 0), **kw)
        first = first or result
        raws.append(result["raw"])
        per_seed[str(seed)] = result["summary"]["fall_rate"]
        wall += result["summary"]["wall_s"]
    raw = {k: sum((r[k] for r in raws), []) for k in raws[0]}
    summary = summarize(raw) | {k: first["summary"][k] for k in ("physics_dt", "decimation", "arm_target_alpha")}
    summary |= {"episodes": args.episodes * len(seeds), "seeds": seeds, "fall_rate_per_seed": per_seed,
                "seconds_simulated": float(args.episodes * len(seeds) * args.seconds), "commands": {
                    "max_vx": EVAL_COMMANDS.max_vx, "max_vy": EVAL_COMMANDS.max_vy, "max_wz": EVAL_COMMANDS.max_wz,
                    "stand_probability": EVAL_COMMANDS.stand_probability}}
    if overrides:
        summary["planner_overrides"] = overrides
    t0 = time.perf_counter()
    if args.drift_episodes > 0:
        summary["drift"] = drift_tests(legs, arms, args.drift_episodes, args.physics_dt, args.seed, **kw)
    if args.push_episodes > 0:
        summary["push_survival"] = push_tests(legs, arms, args.push_episodes, args.physics_dt, args.seed, **kw)
    if args.step_trials > 0:
        summary["step_up_down"] = step_tests(legs, arms, args.step_trials, args.physics_dt, args.seed, **kw)
    summary["wall_s"] = wall + time.perf_counter() - t0
    summary["policies"] = {"legs": str(args.legs) if legs else None, "arms": str(args.arms) if arms else None}
    _plot(first["record"], args.out / "episode0.png")
    if not args.no_video:
        problem = _video(first["model"], first["record"]["states"], args.out / "episode0.gif")
        summary["video"] = None if problem else "episode0.gif"
        if problem:
            summary["video_error"] = problem
    tmp = args.out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(args.out / "summary.json")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
