"""`T1LowLevelEnv`: the batched T1 training environment of the low-level policies (VecEnv).

Tasks (EnvConfig.task):
  legs - footstep tracking by motion imitation (paper): random velocity commands -> the
         project's FootstepPlanner -> ReferenceMotion (LIPM CoM, swing splines, leg IK) ->
         rewards for joint imitation, foot tracking, foot placement at touchdown, trunk pose,
         contact schedule; the arms follow random, slowly changing joint paths by PD, or an
         exported arm policy tracks their hand poses (EnvConfig.arm_policy_onnx), as in use.
  arms - hand-pose tracking in the root frame: targets are FK of random arm-joint paths
         (reachable, smooth); hand payloads and actuation randomization; the legs are held by
         PD at the default pose, or by an exported leg policy (EnvConfig.leg_policy_onnx).

Policy variants (EnvConfig.policy_variant, policy_io.specs): "absolute" actions are offsets from
the default pose; "residual" leg actions are offsets from the reference motion, computed by the
node's own reference_motion.StanceFrameReference from the measured legs and the footstep command.

Per control step: policy_io turns the action into joint targets, BatchedT1 runs `decimation`
physics steps of all envs in C (PD servos inside MuJoCo), and observations are built by the
same policy_io builders the controller node uses, from the state rows alone.

Command source (`commands=`, optional; default the random commands above): a replay.CommandReplay plays the
diffusion planner's recorded commands instead (REFINE-DP joint optimisation, finetune/joint.py): its base
velocity drives the footstep planner (never re-anchored on a change: the footstep node does not), its hand
poses are the hand targets (legs task: of the arm policy, which it then needs; arms task: the legs walk
along with the replayed velocity when a leg policy drives them), its grippers drive the grippers, and the
arms start at the default pose as in the task env.
"""
from __future__ import annotations

import numpy as np

from loco_manip_controller import policy_io as pio
from loco_manip_controller.footstep_planner import Footstep, FootstepPlanner
from loco_manip_controller.gait import SWING_NONE, swing_foot_index, swing_masks
from loco_manip_controller.reference_motion import ReferenceMotion, StanceFrameReference
from loco_manip_controller.tracking import score_touchdowns
from t1_description.kinematics import (
    arm_kinematics,
    feet_planar,
    planar_compose,
    planar_relative,
    pose_errors,
    quat_wxyz_to_matrix,
    wrap_angle,
    yaw_of_quat,
)
from t1_description.pd import set_pd_gains

from ..envs.vec_env import EpisodeTracker, VecEnv
from . import terms
from .commands import ArmJointPaths, VelocityCommands
from .config import EnvConfig
from .sim import BatchedT1

CONTACT_FORCE_N = 20.0


def _integrate_pose(pose: np.ndarray, cmd: np.ndarray, dt: float) -> np.ndarray:
    """World (x, y, yaw) [N, 3] advanced by body-frame (vx, vy, wz) [N, 3] over dt (midpoint heading)."""
    yaw = pose[:, 2] + 0.5 * cmd[:, 2] * dt
    c, s = np.cos(yaw), np.sin(yaw)
    return pose + dt * np.stack([c * cmd[:, 0] - s * cmd[:, 1], s * cmd[:, 0] + c * cmd[:, 1], cmd[:, 2]], -1)


class T1LowLevelEnv(VecEnv):
    supports_active_mask = False

    def __init__(self, cfg: EnvConfig | None = None, seed: int = 0, commands=None):
        self.cfg = cfg = cfg or EnvConfig()
        if commands is not None and cfg.task == "legs" and (not cfg.arm_policy_onnx or cfg.arm_policy_fraction < 1.0):
            raise ValueError("replayed planner commands on the legs task need an arm policy that tracks their hand "
                             "poses in every env: set EnvConfig.arm_policy_onnx and arm_policy_fraction 1.0")
        self.commands = commands  # replay.CommandReplay or None (random commands)
        terms.check_reward_names(cfg.rewards)
        unknown = sorted(set(cfg.terminations) - set(terms.TERMINATION_TERMS))
        if unknown:
            raise KeyError(f"unknown termination terms {unknown}; available: {sorted(terms.TERMINATION_TERMS)}")
        self.num_envs = cfg.num_envs
        self.platforms = cfg.task == "legs" and cfg.platform_probability > 0.0
        self.sim = BatchedT1(cfg.num_envs, cfg.physics_dt, cfg.decimation, cfg.nthread, platforms=self.platforms)
        self.table = jt = self.sim.table
        self.dt = self.sim.control_dt
        self.max_steps = int(round(cfg.episode_s / self.dt))
        self.obs_spec, self.act_spec = pio.specs(cfg.task, cfg.policy_variant)
        self.obs_dim, self.act_dim = self.obs_spec.dim, self.act_spec.dim
        self.action_low = np.full(self.act_dim, -self.act_spec.clip, np.float32)
        self.action_high = np.full(self.act_dim, self.act_spec.clip, np.float32)
        self.driven = self.act_spec.indices(jt)
        self.leg_idx, self.arm_idx = pio.LEG_ACTION.indices(jt), pio.ARM_ACTION.indices(jt)
        margin = 0.05 * (jt.upper - jt.lower)
        self.soft_lower, self.soft_upper = jt.lower + margin, jt.upper - margin
        self.kp, self.kd, self.effort = jt.kp.copy(), jt.kd.copy(), jt.effort_limit.copy()
        if cfg.ankle_kp > 0:
            ankles = jt.indices("Left_Ankle_Pitch", "Right_Ankle_Pitch")
            self.kp[ankles] = cfg.ankle_kp
        self.rate_limit = (cfg.target_rate_limit_scale * jt.velocity_limit) if cfg.target_rate_limit_scale > 0 else None
        self.episode_stats = EpisodeTracker(self.num_envs)
        self.rng = np.random.default_rng(seed)
        self._init_model_randomization()
        n = self.num_envs
        self.planner = FootstepPlanner(n, cfg.footstep_planner)
        self.reference = ReferenceMotion(cfg.reference_motion)
        self.residual = self.act_spec.base == "reference"
        self.heights = cfg.policy_variant == "residual_step"  # steps up/down: target_z observed, followed
        self.leg_reference = StanceFrameReference(n, self.reference, heights=self.heights) if self.residual else None
        self.ref_q = np.zeros((n, 12))  # residual: the reference the next action is added to
        self.vel_cmd = VelocityCommands(n, cfg.commands, self.rng)
        arm_frac = cfg.arm_random_pose_fraction if cfg.task == "legs" else cfg.commands.arm_joint_range_fraction
        self.arm_paths = ArmJointPaths(n, cfg.commands, jt.default_q[self.arm_idx], jt.lower[self.arm_idx],
                                       jt.upper[self.arm_idx], self.rng, arm_frac)
        self.leg_policy = self.arm_policy = None
        if cfg.task == "arms" and cfg.leg_policy_onnx:
            from loco_manip_controller.policy_runtime import LowLevelController
            self.leg_policy = LowLevelController(cfg.leg_policy_onnx, None, jt, num_envs=n,  # the node's code path
                                                 control_hz=cfg.control_hz)
        if cfg.task == "legs" and cfg.arm_policy_onnx:
            from loco_manip_controller.policy_runtime import LowLevelController
            self.arm_policy = LowLevelController(None, cfg.arm_policy_onnx, jt, num_envs=n, control_hz=cfg.control_hz)
        self.arm_policy_envs = np.arange(n) < round(cfg.arm_policy_fraction * n)  # the rest: PD along the paths
        self.action = np.zeros((n, self.act_dim))
        self.prev_action = np.zeros((n, self.act_dim))
        self.leg_action = np.zeros((n, 12))  # arms task with a leg policy: its last action
        self.arm_action = np.zeros((n, 14))  # legs task with an arm policy: its last action
        self.q_des = np.tile(jt.default_q, (n, 1))
        self.delay = np.zeros(n, np.int64)
        self.push_timer = np.zeros(n)
        self.steps = np.zeros(n, np.int64)
        self.prev_foot_xy = np.zeros((n, 2, 2))
        self.prev_foot_yaw = np.zeros((n, 2))
        self.cmd_pose = np.zeros((n, 3))  # the command integrated from the trunk pose, leaking back to it (terms)
        self._ref_fresh = False  # ref_q holds the reference of the current state (set in step, used by _observe)
        self.last_terms: dict = {}
        self.term_sums: dict = {}
        self.term_count = 0
        self._obs = None
        self.reset(seed)

    # ------------------------------------------------------------------ randomization
    def _init_model_randomization(self) -> None:
        import mujoco
        m = self.sim.base_model
        self.floor_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self.hand_bodies = m.site_bodyid[self.sim.idx.hand_sites]
        self.base_mass = m.body_mass.copy()
        self.base_inertia = m.body_inertia.copy()
        self.base_friction = m.geom_friction.copy()

    def _randomize_models(self, ids: np.ndarray) -> None:
        """Per-env model parameters (one MjModel per env; a loop over the reset envs' models only)."""
        r, rng, sim = self.cfg.randomization, self.rng, self.sim
        for i in ids:
            m = sim.models[i]
            if not r.enabled:
                m.body_mass[:] = self.base_mass
                m.body_inertia[:] = self.base_inertia
                m.geom_friction[:] = self.base_friction
                set_pd_gains(m, sim.idx.ctrl, self.kp, self.kd, self.effort)
                continue
            scale = rng.uniform(*r.link_mass_scale, m.nbody)
            scale[sim.idx.root_body] = rng.uniform(*r.trunk_mass_scale)
            scale[0] = 1.0
            m.body_mass[:] = self.base_mass * scale
            m.body_inertia[:] = self.base_inertia * scale[:, None]
            payload = rng.uniform(*r.hand_payload_kg, 2)
            m.body_mass[self.hand_bodies] += payload
            m.geom_friction[self.floor_geom, 0] = rng.uniform(*r.floor_friction)
            kp = self.kp * rng.uniform(*r.kp_scale, len(self.kp))
            kd = self.kd * rng.uniform(*r.kd_scale, len(self.kd))
            eff = self.effort * rng.uniform(*r.motor_strength_scale, len(self.effort))
            set_pd_gains(m, sim.idx.ctrl, kp, kd, eff)
        if r.enabled:
            lo, hi = r.delay_physics_steps
            self.delay[ids] = rng.integers(lo, min(hi, self.cfg.decimation - 1) + 1, len(ids))
        else:
            self.delay[ids] = 0

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.vel_cmd.rng = self.arm_paths.rng = self.rng
            if self.commands is not None:
                self.commands.rng = self.rng
        self.episode_stats.reset_all()
        self._reset_envs(np.ones(self.num_envs, bool))
        self._obs = self._observe()
        return self._obs

    def _reset_envs(self, mask: np.ndarray) -> None:
        ids = np.flatnonzero(mask)
        if len(ids) == 0:
            return
        cfg, r, jt, n = self.cfg, self.cfg.randomization, self.table, len(ids)
        self._randomize_models(ids)
        self.arm_paths.reset(mask, random_start=(cfg.task == "legs" and self.commands is None))
        if self.commands is not None:
            self.commands.reset(mask)
        q = np.tile(jt.default_q, (n, 1))
        q[:, self.arm_idx] = self.arm_paths.current()[mask]
        noise = r.reset_joint_noise if r.enabled else 0.0
        q[:, self.driven] += self.rng.uniform(-noise, noise, (n, len(self.driven)))
        q = np.clip(q, jt.lower, jt.upper)
        yaw = self.rng.uniform(-r.reset_yaw_range, r.reset_yaw_range, n) if r.enabled else np.zeros(n)
        self.sim.reset_rows(mask, joint_q=q, root_xy_yaw=np.stack([np.zeros(n), np.zeros(n), yaw], -1))
        self.q_des[mask] = q
        self.action[mask] = 0.0
        self.prev_action[mask] = 0.0
        self.leg_action[mask] = 0.0
        if self.leg_reference is not None:
            self.leg_reference.reset(mask)
        if self.leg_policy is not None:
            self.leg_policy.reset(mask)
        self.arm_action[mask] = 0.0
        if self.arm_policy is not None:
            self.arm_policy.reset(mask)
        self.steps[mask] = 0
        self.push_timer[mask] = self.rng.uniform(*r.push_interval_s, n)
        if self.platforms:  # a platform ahead (within +-0.3 m and +-0.3 rad of the start heading) or parked
            on = self.rng.random(n) < cfg.platform_probability
            ahead = self.rng.uniform(*cfg.platform_distance, n) + 0.3
            side = self.rng.uniform(-0.3, 0.3, n)
            c, s_ = np.cos(yaw), np.sin(yaw)
            centre = np.stack([c * ahead - s_ * side, s_ * ahead + c * side], -1)
            height = np.where(on, self.rng.uniform(*cfg.platform_height, n), 0.0)
            self.sim.place_platform(ids, centre, yaw + self.rng.uniform(-0.3, 0.3, n), height)
        feet = self._feet_planar_fk()[mask]
        self.planner.reset(mask, feet_pose=feet)
        self.prev_foot_xy[mask] = feet[:, :, :2]
        self.prev_foot_yaw[mask] = feet[:, :, 2]
        self.cmd_pose[mask] = self._trunk_pose()[mask]
        self.vel_cmd.resample(mask)
        if cfg.task == "arms":
            self.vel_cmd.cmd[mask] = 0.0
        self._cmds = self.planner.output()

    # ------------------------------------------------------------------ state features
    def _feet_planar_fk(self) -> np.ndarray:
        """Foot-link (x, y, yaw) [N, 2, 3] by leg FK from the state rows (exact right after a reset,
        when the sensor rows are still those of the previous episode)."""
        q, _, root_pos, quat, _ = self._state_arrays()
        return feet_planar(q[:, self.leg_idx], quat_wxyz_to_matrix(quat), root_pos)

    def _foot_links(self):
        """Foot-link positions [N, 2, 3] and yaws [N, 2]; site = link + R (0.01, 0, -0.03)."""
        s = self.sim
        quat = np.stack([s.sensor("left_foot_quat"), s.sensor("right_foot_quat")], 1)
        pos = np.stack([s.sensor("left_foot_pos"), s.sensor("right_foot_pos")], 1)
        rot = quat_wxyz_to_matrix(quat)
        offset = s.base_model.site_pos[s.idx.foot_sites[0]]
        return pos - rot @ offset, yaw_of_quat(quat)

    def _trunk_pose(self) -> np.ndarray:
        """(x, y, yaw) [N, 3] of the trunk, world frame."""
        L = self.sim.layout
        st = self.sim.state
        return np.concatenate([st[:, L.root_pos[:2]], yaw_of_quat(st[:, L.root_quat])[:, None]], -1)

    def _state_arrays(self):
        s, L = self.sim, self.sim.layout
        st = s.state
        return (st[:, L.joint_q], st[:, L.joint_dq], st[:, L.root_pos], st[:, L.root_quat], st[:, L.root_angvel])

    def _observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Observations [N, obs_dim], or of the env indices `rows` only ([M, obs_dim]: after a reset,
        the other envs' observations are already made and their reference segments untouched)."""
        sel = slice(None) if rows is None else rows
        q, dq, _, quat, gyro = (a[sel] for a in self._state_arrays())
        gravity = pio.projected_gravity(quat)
        noise_rng = self.rng if self.cfg.obs_noise_scale > 0 else None
        if self.cfg.task == "legs":
            footstep = self._cmds.footstep.rows(sel)
            ref = None
            if self.residual and rows is None and self._ref_fresh:
                ref = self.ref_q  # step() computed it at this state for the rewards (one reference per step)
            elif self.residual:
                ref = self.leg_reference.update(q[:, self.leg_idx], gravity, footstep, rows=rows)
                self.ref_q[sel] = ref
            return pio.build_leg_obs(gravity, gyro, q, dq, self.action[sel], footstep, table=self.table,
                                     spec=self.obs_spec, ref_joint_pos=ref, rng=noise_rng,
                                     noise_scale=self.cfg.obs_noise_scale)
        tp, tr = (a[sel] for a in self.hand_targets())
        return pio.build_arm_obs(gravity, q, dq, self.action[sel], tp, tr, table=self.table,
                                 rng=noise_rng, noise_scale=self.cfg.obs_noise_scale)

    def hand_targets(self):
        if self.commands is not None:
            return self.commands.hand_targets()
        return arm_kinematics().fk(self.arm_paths.current())

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        self._check_active(active)
        cfg, jt = self.cfg, self.table
        a = np.clip(self._check_actions(actions), -self.act_spec.clip, self.act_spec.clip)
        self.prev_action, self.action = self.action, a
        q_prev_des = self.q_des.copy()
        q_des = np.tile(jt.default_q, (self.num_envs, 1))
        q_des[:, self.driven] = pio.action_to_targets(self.act_spec, a, jt, self.ref_q if self.residual else None)
        if cfg.task == "legs":
            arms = self.arm_paths.current()
            if self.arm_policy is not None:
                arms = np.where(self.arm_policy_envs[:, None], self._arm_policy_targets(), arms)
            q_des[:, self.arm_idx] = arms
        elif self.leg_policy is not None:
            q_des[:, self.leg_idx] = self._leg_policy_targets()
        self.q_des = q_des
        grippers = self.commands.grippers() if self.commands is not None else None
        self.sim.step(q_des, q_prev_des, self.delay, gripper=grippers, rate_limit=self.rate_limit)
        self.steps += 1

        # commands advance to the time of the new state
        self.arm_paths.update(self.dt)
        cmd_before = self.vel_cmd.cmd.copy()
        if self.commands is not None:  # the footsteps follow the velocity this step ran under; the next action
            self.vel_cmd.cmd[:] = self.commands.base_velocity()  # sees the next hand targets
            self.commands.advance()
        else:
            self.vel_cmd.update(self.dt)
            if cfg.task == "arms":
                self.vel_cmd.cmd[:] = 0.0
        prev_cmds = self._cmds
        foot_pos, foot_yaw = self._foot_links()
        feet_planar = np.concatenate([foot_pos[..., :2], foot_yaw[..., None]], -1)
        self._cmds = cmds = self.planner.update(self.dt, self.vel_cmd.cmd, feet_pose=feet_planar,
                                                ground_height=self.sim.ground_height if self.platforms else None)
        changed = np.any(self.vel_cmd.cmd != cmd_before, axis=-1)
        if changed.any() and self.commands is None:
            self.planner.reanchor_path(changed)  # a new command: a new commanded path from where the robot is
            self._cmds = cmds = self.planner.output(cmds.new_step)
        self._ref_fresh = False

        q, dq, root_pos, quat, _ = self._state_arrays()
        gravity = pio.projected_gravity(quat)
        state = self.sim.state
        tau = np.clip(self.kp * (self.sim.sent - q) - self.kd * dq, -self.effort, self.effort)  # nominal gains
        ctx = terms.StepContext(q=q, dq=dq, q_des=q_des, tau=tau, driven=self.driven, action=self.action,
                                prev_action=self.prev_action, lower=self.soft_lower, upper=self.soft_upper,
                                root_pos=root_pos, gravity=gravity, terminated=np.zeros(self.num_envs, bool),
                                arm_idx=self.arm_idx, state=state)
        if cfg.task == "legs":
            self._leg_context(ctx, prev_cmds, cmds, foot_pos, feet_planar)
        else:
            tp, tr = self.hand_targets()
            hp, hr = arm_kinematics().fk(q[:, self.arm_idx])
            dp, drot = pose_errors(tp, tr, hp, hr)
            ctx.hand_pos_error = np.linalg.norm(dp, axis=-1)
            ctx.hand_rot_error = np.linalg.norm(drot, axis=-1)
        for name in cfg.terminations:
            ctx.terminated |= terms.TERMINATION_TERMS[name](ctx, cfg)
        terminated = ctx.terminated
        self.last_context = ctx
        reward, parts = terms.compute_rewards(cfg.rewards, ctx)
        reward = cfg.reward_scale * np.where(np.isfinite(reward), reward, 0.0)
        self.last_terms = parts
        for k, v in parts.items():
            self.term_sums[k] = self.term_sums.get(k, 0.0) + float(np.mean(v))
        self.term_count += 1

        truncated = (self.steps >= self.max_steps) & ~terminated
        done = terminated | truncated
        self._apply_pushes(~done)
        obs = self._observe() if np.isfinite(state).all() else self._safe_observe()
        info = {"final_obs": obs}
        episode = self.episode_stats.record(reward, done, None)
        if episode is not None:
            info["episode"] = episode
        if done.any():
            self._reset_envs(done)
            ids = np.flatnonzero(done)
            obs = obs.copy()  # info["final_obs"] keeps the pre-reset rows
            obs[ids] = self._observe(ids)
        self._obs = obs
        return obs, reward.astype(np.float32), terminated, truncated, info

    def _safe_observe(self) -> np.ndarray:
        """Observation when some rows blew up (NaN state): zero those rows instead of raising."""
        bad = ~np.isfinite(self.sim.state).all(axis=-1)
        self.sim.state[bad] = self.sim.keyframe_state
        self._ref_fresh = False
        obs = self._observe()
        obs[bad] = 0.0
        return obs

    def _leg_context(self, ctx, prev_cmds, cmds, foot_pos, feet_planar) -> None:
        if self.residual and self.cfg.reward_reference == "action":
            # the reference the next action is added to (base-foot frame), placed on the measured base foot
            q, _, _, quat, _ = self._state_arrays()
            local = self.leg_reference.update_frame(q[:, self.leg_idx], ctx.gravity, cmds.footstep)
            self.ref_q, self._ref_fresh = local.joint_pos, True
            base = StanceFrameReference.base_foot(cmds.footstep.swing_foot)
            base_pose = feet_planar[np.arange(self.num_envs), base]
            base_z = self.sim.ground_height(np.arange(self.num_envs), base_pose[:, :2]) if self.platforms else None
            ref = StanceFrameReference.to_world(local, base_pose, base_z)
        else:  # "planner": a second reference from the planner's world footholds (the env before one was shared)
            ref = self.reference.from_commands(cmds)
        ctx.ref_joint_pos = ref.joint_pos
        ctx.ref_trunk_pos = ref.trunk_pos
        ctx.ref_gravity = pio.projected_gravity(ref.trunk_quat)
        ctx.foot_pos = foot_pos
        ctx.ref_foot_pos = ref.foot_pos
        s = self.sim
        force = np.stack([s.sensor("left_foot_force")[:, 0], s.sensor("right_foot_force")[:, 0]], 1)
        ctx.contact = force > CONTACT_FORCE_N
        ctx.expected_contact = ~swing_masks(cmds.footstep.swing_foot)
        ctx.foot_vel_xy = (feet_planar[..., :2] - self.prev_foot_xy) / self.dt
        ctx.foot_yaw_rate = wrap_angle(feet_planar[..., 2] - self.prev_foot_yaw) / self.dt
        self.prev_foot_xy = feet_planar[..., :2].copy()
        self.prev_foot_yaw = feet_planar[..., 2].copy()
        # touchdown: the step that was running ended (a new one started or the robot stopped); scored as the
        # node and the evaluation score it (tracking.score_touchdowns)
        td = score_touchdowns(prev_cmds.footstep, cmds.footstep, feet_planar)
        ctx.touchdown, ctx.touchdown_error, ctx.touchdown_yaw_error = td.ended, td.error, td.yaw_error
        env = np.arange(self.num_envs)
        swinging = swing_foot_index(cmds.footstep.swing_foot)
        ctx.swing_phase = np.where(swinging >= 0, cmds.footstep.phase, 0.0)
        ctx.swing_target_dist = np.where(
            swinging >= 0,
            np.linalg.norm(feet_planar[env, np.maximum(swinging, 0), :2] - cmds.target_world[:, :2], axis=-1), 0.0)
        L = s.layout
        quat = s.state[:, L.root_quat]
        yaw = yaw_of_quat(quat)
        v = s.state[:, L.root_linvel]
        c, sn = np.cos(yaw), np.sin(yaw)
        wz = (quat_wxyz_to_matrix(quat) @ s.state[:, L.root_angvel][..., None])[:, 2, 0]
        ctx.base_vel = np.stack([c * v[:, 0] + sn * v[:, 1], -sn * v[:, 0] + c * v[:, 1], wz], -1)
        standing = cmds.footstep.swing_foot == SWING_NONE  # the planner stands (below threshold, or stopping)
        ctx.cmd_vel = np.where(standing[:, None], 0.0, self.planner.cfg.achievable_velocity(self.vel_cmd.cmd))
        # where the robot should be: the walkable command integrated from the trunk pose, leaking back to the
        # measured pose with time constant command_path_tau_s (an error-weighted window of the last seconds)
        pose = self._trunk_pose()
        cmd_pose = _integrate_pose(self.cmd_pose, ctx.cmd_vel, self.dt)
        gap = planar_relative(cmd_pose, pose)
        leak = min(1.0, self.dt / self.cfg.command_path_tau_s)
        self.cmd_pose = planar_compose(cmd_pose, leak * gap)
        err = planar_relative(self.cmd_pose, pose)  # the trunk in the commanded pose's frame
        ctx.command_position_error = np.hypot(err[:, 0], err[:, 1])
        ctx.command_heading_error = err[:, 2]
        self.last_reference = ref

    def _leg_policy_targets(self) -> np.ndarray:
        """Arms task: the exported leg policy stands (a standing footstep command), or walks the footsteps of
        replayed planner commands, via the node's code path."""
        q, dq, _, quat, gyro = self._state_arrays()
        footstep = self._cmds.footstep if self.commands is not None else Footstep.standing(self.num_envs)
        q_des = self.leg_policy.step(q, dq, pio.projected_gravity(quat), gyro, footstep, None, None)
        self.leg_action = self.leg_policy.leg_action
        return q_des[:, self.leg_idx]

    def _arm_policy_targets(self) -> np.ndarray:
        """Legs task: the exported arm policy tracks the FK of the random arm paths (the node's code path),
        so the legs learn to balance the arms as they move in use, tracking errors included."""
        q, dq, _, quat, gyro = self._state_arrays()
        tp, tr = self.hand_targets()
        q_des = self.arm_policy.step(q, dq, pio.projected_gravity(quat), gyro, None, tp, tr)
        self.arm_action = self.arm_policy.arm_action
        return q_des[:, self.arm_idx]

    def _apply_pushes(self, alive: np.ndarray) -> None:
        r = self.cfg.randomization
        if not r.enabled:
            return
        self.push_timer -= self.dt
        kick = (self.push_timer <= 0.0) & alive
        k = int(kick.sum())
        if k == 0:
            return
        L = self.sim.layout
        rows = self.sim.state[kick]
        rows[:, L.root_linvel[:2]] += self.rng.normal(0.0, r.push_linvel_std, (k, 2))
        rows[:, L.root_angvel] += self.rng.normal(0.0, r.push_angvel_std, (k, 3))
        self.sim.state[kick] = rows
        self.push_timer[kick] = self.rng.uniform(*r.push_interval_s, k)

    # ------------------------------------------------------------------ exact resume
    _ARRAYS = ("action", "prev_action", "leg_action", "arm_action", "q_des", "delay", "push_timer", "steps",
               "prev_foot_xy", "ref_q", "prev_foot_yaw", "cmd_pose")
    _LEG_REFERENCE = ("valid", "last_swing", "last_countdown", "feet_local", "feet_z_local")
    _PLANNER = ("feet", "swing_foot", "countdown", "step_duration", "rel_target", "step_index", "idle_time",
                "path_feet", "path_target")
    _ARM_PATHS = ("start", "goal", "t", "move_T", "hold_T")

    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit: physics rows, commands, per-env model
        parameters (domain randomization), RNG, episode statistics."""
        s, a = self.sim, self.sim.idx.ctrl
        return {
            "sim_state": s.state.copy(), "sensordata": s.sensordata.copy(), "sent": s.sent.copy(),
            "arrays": {k: getattr(self, k).copy() for k in self._ARRAYS},
            "planner": {k: getattr(self.planner, k).copy() for k in self._PLANNER},
            "arm_paths": {k: getattr(self.arm_paths, k).copy() for k in self._ARM_PATHS},
            "vel_cmd": {"cmd": self.vel_cmd.cmd.copy(), "timer": self.vel_cmd.timer.copy()},
            "leg_reference": self._leg_reference_state(self.leg_reference),
            "leg_policy_reference": self._leg_reference_state(getattr(self.leg_policy, "leg_reference", None)),
            "arm_policy_filter": None if self.arm_policy is None else {
                k: getattr(self.arm_policy, k).copy() for k in ("arm_target", "arm_fresh")},
            "platform": s.platform.copy(),
            "models": {"body_mass": np.stack([m.body_mass for m in s.models]),
                       "body_inertia": np.stack([m.body_inertia for m in s.models]),
                       "floor_friction": np.stack([m.geom_friction[self.floor_geom] for m in s.models]),
                       "gainprm": np.stack([m.actuator_gainprm[a] for m in s.models]),
                       "biasprm": np.stack([m.actuator_biasprm[a] for m in s.models]),
                       "forcerange": np.stack([m.actuator_forcerange[a] for m in s.models])},
            "rng": self.rng.bit_generator.state,
            "episode_stats": self.episode_stats.state_dict(),
            "num_envs": self.num_envs, "task": self.cfg.task,
        }

    def _leg_reference_state(self, ref) -> dict | None:
        return None if ref is None else {k: getattr(ref, k).copy() for k in self._LEG_REFERENCE}

    def load_state_dict(self, state: dict) -> None:
        if state["num_envs"] != self.num_envs or state["task"] != self.cfg.task:
            raise ValueError(f"env state is for {state['num_envs']} {state['task']!r} envs, this env has "
                             f"{self.num_envs} {self.cfg.task!r}: resume with the run's saved config")
        s, a = self.sim, self.sim.idx.ctrl
        s.state[:] = state["sim_state"]
        s.sensordata[:] = state["sensordata"]
        s.sent[:] = state["sent"]
        for k, v in state["arrays"].items():
            setattr(self, k, v.copy())
        for k, v in state["planner"].items():
            setattr(self.planner, k, v.copy())
        for k, v in state["arm_paths"].items():
            setattr(self.arm_paths, k, v.copy())
        self.vel_cmd.cmd[:], self.vel_cmd.timer[:] = state["vel_cmd"]["cmd"], state["vel_cmd"]["timer"]
        for k, v in (state.get("leg_reference") or {}).items():
            setattr(self.leg_reference, k, v.copy())
        if self.arm_policy is not None:  # legs task: the arm policy's memory (its last action)
            self.arm_policy.arm_action = self.arm_action.copy()
            for k, v in (state.get("arm_policy_filter") or {}).items():  # and its target low-pass
                setattr(self.arm_policy, k, v.copy())
        if self.leg_policy is not None:  # arms task: the leg policy's memory (last action, reference segment)
            self.leg_policy.leg_action = self.leg_action.copy()
            for k, v in (state.get("leg_policy_reference") or {}).items():
                setattr(self.leg_policy.leg_reference, k, v.copy())
        if self.platforms and state.get("platform") is not None:
            p = state["platform"]
            s.place_platform(np.arange(self.num_envs), p[:, :2], p[:, 2], p[:, 3])
        mp = state["models"]
        for i, m in enumerate(s.models):
            m.body_mass[:], m.body_inertia[:] = mp["body_mass"][i], mp["body_inertia"][i]
            m.geom_friction[self.floor_geom] = mp["floor_friction"][i]
            m.actuator_gainprm[a], m.actuator_biasprm[a] = mp["gainprm"][i], mp["biasprm"][i]
            m.actuator_forcerange[a] = mp["forcerange"][i]
        self.rng.bit_generator.state = state["rng"]
        self.episode_stats.load_state_dict(state["episode_stats"])
        self._cmds = self.planner.output()
        self._obs = None
        self._ref_fresh = False

    def drain_term_means(self) -> dict:
        out = {k: v / max(self.term_count, 1) for k, v in self.term_sums.items()}
        self.term_sums, self.term_count = {}, 0
        return out

    def close(self) -> None:
        self.sim.close()
