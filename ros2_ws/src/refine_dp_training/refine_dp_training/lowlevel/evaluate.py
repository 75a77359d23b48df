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
from loco_manip_controller.gait import SWING_NONE, SWING_RIGHT  # noqa: E402
from loco_manip_controller.policy_runtime import MODELS_DIR  # noqa: E402
from loco_manip_controller.tracking import score_touchdowns  # noqa: E402
from t1_description.joint_table import load_joint_table  # noqa: E402
from t1_description.kinematics import (  # noqa: E402
    arm_kinematics,
    feet_planar,
    pose_errors,
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


def run_episodes(legs, arms, episodes: int, seconds: float = 20.0, physics_dt: float = 0.002, seed: int = 0,
                 record_env0: bool = False, payload_kg=(0.0, 0.5), arm_target_alpha: float | None = None) -> dict:
    from loco_manip_controller.policy_runtime import ARM_TARGET_ALPHA, LowLevelController
    n, jt = episodes, load_joint_table()
    alpha = ARM_TARGET_ALPHA if arm_target_alpha is None else arm_target_alpha
    controller = LowLevelController(legs, arms, jt, num_envs=n, arm_target_alpha=alpha)  # the node's code path
    dec = int(round(1.0 / (controller.control_hz * physics_dt)))
    if dec < 1 or abs(dec * physics_dt * controller.control_hz - 1.0) > 1e-6:
        raise ValueError(f"physics_dt {physics_dt} does not divide the policies' control period "
                         f"1 / {controller.control_hz:g} Hz")
    sim = BatchedT1(n, physics_dt, dec, nthread=2, table=jt)
    rng = np.random.default_rng(seed)
    fall_cfg = EnvConfig()
    leg_idx, arm_idx = pio.LEG_ACTION.indices(jt), pio.ARM_ACTION.indices(jt)
    hand_bodies = sim.base_model.site_bodyid[sim.idx.hand_sites]
    for i in range(n):  # hand payloads (the only model randomization in evaluation)
        sim.models[i].body_mass[hand_bodies] += rng.uniform(*payload_kg, 2)
    yaw0 = rng.uniform(-np.pi, np.pi, n)
    sim.reset_rows(np.ones(n, bool), root_xy_yaw=np.stack([np.zeros(n), np.zeros(n), yaw0], -1))
    cmd_cfg = CommandConfig(stand_probability=0.2)  # fixed here: training may weight walking more
    vel = VelocityCommands(n, cmd_cfg, rng)
    vel.resample(np.ones(n, bool))
    arm_paths = ArmJointPaths(n, cmd_cfg, jt.default_q[arm_idx], jt.lower[arm_idx], jt.upper[arm_idx], rng,
                              cmd_cfg.arm_joint_range_fraction)
    arm_paths.reset(np.ones(n, bool), random_start=False)
    planner = FootstepPlanner(n, controller.footstep_config or FootstepPlannerConfig())  # the legs' contract
    L = sim.layout

    def world_feet():
        q, root, quat = sim.state[:, L.joint_q], sim.state[:, L.root_pos], sim.state[:, L.root_quat]
        return feet_planar(q[:, leg_idx], quat_wxyz_to_matrix(quat), root)

    planner.reset(feet_pose=world_feet())
    cmds = planner.output()
    fallen = np.zeros(n, bool)
    steps = int(round(seconds / sim.control_dt))
    foot_err, hand_pos_stand, hand_pos_walk, hand_rot, vel_err = [], [], [], [], []
    step_adv_target, step_adv_landed, speed_cmd, speed_along = [], [], [], []
    turn_cmd, turn_along = [], []
    v_hist = np.zeros((n, 50, 2))
    wz_hist = np.zeros((n, 50))
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
        # measurements after the step
        q, quat, root = sim.state[:, L.joint_q], sim.state[:, L.root_quat], sim.state[:, L.root_pos]
        gravity = pio.projected_gravity(quat)
        state = SimpleNamespace(root_pos=root, gravity=gravity)
        for name in FALL_TERMS:
            fallen |= terms.TERMINATION_TERMS[name](state, fall_cfg)
        alive = ~fallen
        arm_paths.update(sim.control_dt)
        vel.update(sim.control_dt)
        prev = cmds
        fp = world_feet()
        stance = np.where((prev.footstep.swing_foot == SWING_RIGHT)[:, None], fp[:, 0], fp[:, 1])
        cmds = planner.update(sim.control_dt, vel.cmd, stance_foot_pose=stance)
        td = score_touchdowns(prev.footstep, cmds.footstep, fp)
        scored = td.ended & alive
        foot_err += td.error[scored].tolist()
        # step advance: landed foot vs its target, both in the stance foot's frame (forward component)
        step_adv_target += prev.footstep.target[scored, 0].tolist()
        step_adv_landed += td.landed[scored, 0].tolist()
        hp, hr = arm_kinematics().fk(q[:, arm_idx])
        tp, tr = arm_kinematics().fk(arm_paths.current())
        dp, drot = pose_errors(tp, tr, hp, hr)
        e_pos, e_rot = np.linalg.norm(dp, axis=-1).mean(-1), np.degrees(np.linalg.norm(drot, axis=-1).mean(-1))
        walking = cmds.footstep.swing_foot != SWING_NONE
        hand_pos_walk += e_pos[alive & walking].tolist()
        hand_pos_stand += e_pos[alive & ~walking].tolist()
        hand_rot += e_rot[alive].tolist()
        yaw = yaw_of_quat(quat)
        v = sim.state[:, L.root_linvel[:2]]
        c, s = np.cos(yaw), np.sin(yaw)
        v_head = np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], -1)
        v_hist[:, k % 50] = v_head
        wz_hist[:, k % 50] = (quat_wxyz_to_matrix(quat) @ sim.state[:, L.root_angvel][..., None])[:, 2, 0]
        if k >= 50:  # 1 s moving average (the gait's sway averages out) vs the command
            vel_err += np.linalg.norm(v_hist.mean(1) - vel.cmd[:, :2], axis=-1)[alive].tolist()
            moving = alive & (np.linalg.norm(vel.cmd[:, :2], axis=-1) > 0.05)
            unit = vel.cmd[:, :2] / np.maximum(np.linalg.norm(vel.cmd[:, :2], axis=-1, keepdims=True), 1e-9)
            speed_cmd += np.linalg.norm(vel.cmd[:, :2], axis=-1)[moving].tolist()
            speed_along += np.sum(v_hist.mean(1) * unit, axis=-1)[moving].tolist()
            wz_cmd = planner.cfg.achievable_velocity(vel.cmd)[:, 2]  # the planner turns at most this fast
            turning = alive & (np.abs(wz_cmd) > 0.05)
            turn_cmd += np.abs(wz_cmd)[turning].tolist()
            turn_along += (wz_hist.mean(1) * np.sign(wz_cmd))[turning].tolist()
        if record_env0:
            rec["t"].append(k * sim.control_dt)
            rec["cmd_vx"].append(vel.cmd[0].tolist())
            rec["vx"].append(v_hist.mean(1)[0].tolist() if k >= 50 else v_head[0].tolist())
            rec["hand_err"].append(float(e_pos[0]))
            rec["walking"].append(bool(walking[0]))
            rec["states"].append(sim.state[0].copy())
    wall = time.perf_counter() - t0
    sim.close()

    def med(x):
        return float(np.median(x)) if len(x) else None

    summary = {
        "fall_rate": float(fallen.mean()),
        "footstep_error_median_m": med(foot_err),
        "footstep_error_p90_m": float(np.percentile(foot_err, 90)) if foot_err else None,
        "hand_pos_error_median_m": {"standing": med(hand_pos_stand), "walking": med(hand_pos_walk)},
        "hand_rot_error_median_deg": med(hand_rot),
        "base_velocity_tracking_error": float(np.mean(vel_err)) if vel_err else None,
        "footsteps": len(foot_err),
        # what the errors are made of: how far forward each step lands vs its target (stance-foot
        # frame), the speed walked along the command vs the commanded speed and the same for the
        # yaw rate (1.0 = full tracking)
        "diagnostics": {
            "step_advance_target_mean_m": float(np.mean(step_adv_target)) if step_adv_target else None,
            "step_advance_landed_mean_m": float(np.mean(step_adv_landed)) if step_adv_landed else None,
            "speed_ratio": float(np.sum(speed_along) / np.sum(speed_cmd)) if speed_cmd else None,
            "turn_ratio": float(np.sum(turn_along) / np.sum(turn_cmd)) if turn_cmd else None,
        },
        "episodes": n,
        "seconds_simulated": float(n * steps * sim.control_dt),
        "physics_dt": physics_dt,
        "decimation": dec,
        "arm_target_alpha": alpha,
        "wall_s": wall,
    }
    return {"summary": summary, "record": rec if record_env0 else None, "model": sim.base_model}


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
        import imageio.v2 as imageio
        import mujoco

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
        imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
        return None
    except Exception as exc:  # rendering is optional: report, do not lose the metrics
        return f"{type(exc).__name__}: {exc}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp eval controller", description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--legs", type=Path, default=DEFAULT_LEGS, help="legs policy (default: the shipped one)")
    p.add_argument("--arms", type=Path, default=DEFAULT_ARMS, help="arms policy (default: the shipped one)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--physics-dt", type=float, default=0.002, help="0.002 = sim_t1's step; training uses 0.005")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pd-fallback", action="store_true",
                   help="hold a part whose policy file is missing by PD (baseline) instead of failing")
    p.add_argument("--no-video", action="store_true")
    p.add_argument("--arm-target-alpha", type=float, default=None,
                   help="the arm targets' low-pass weight, as the node's parameter (default: the node's default; 1 = off)")
    args = p.parse_args(argv)
    try:
        legs = _load(args.legs, "legs", args.pd_fallback)
        arms = _load(args.arms, "arms", args.pd_fallback)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_episodes(legs, arms, args.episodes, args.seconds, args.physics_dt, args.seed, record_env0=True,
                          arm_target_alpha=args.arm_target_alpha)
    summary = result["summary"]
    summary["policies"] = {"legs": str(args.legs) if legs else None, "arms": str(args.arms) if arms else None}
    _plot(result["record"], args.out / "episode0.png")
    if not args.no_video:
        problem = _video(result["model"], result["record"]["states"], args.out / "episode0.gif")
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
