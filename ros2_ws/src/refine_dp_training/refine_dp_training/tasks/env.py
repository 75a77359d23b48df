"""`TaskEnv`: N T1 task episodes with the whole controller in the loop, as a `VecEnv` of planner steps.

One env step is one planner step (10 Hz: `control_steps` = 5 control steps at the controller's 50 Hz,
each `decimation` physics steps in C through BatchedT1 / mujoco.rollout):

    action [N, 23] (planner_io.ACTION_FIELDS: base velocity, both hand poses in base_link, grippers)
      -> planner_io.clamp_actions (the node's PlannerCore clamps: 0.2 m/s base, 0.05 m/s hands)
      -> 5 x [ policy_runtime.LowLevelController (the shipped ONNX legs + arms, the controller node's code)
               -> BatchedT1.step (PD inside MuJoCo, grippers, latency, the safety layer's rate limit)
               -> FootstepPlanner.update (the footstep node's planner, its own dead-reckoned footholds) ]
      -> task terms (success, failures, stage) on the ground truth
      -> observation: planner_io.build_observation of the measured arm joints, the last commanded
         grippers, the trunk's gravity and the objects as mocap_bridge would publish them
         (tasks/mocap.py: sim_t1's NatNet noise and dropouts, the tracker's hold), i.e. exactly what
         the planner node computes from RobotState + ObjectStateArray (tests/test_task_env.py).

Reward: 1 on the step the task succeeds (sparse), else 0. `terminated` on success or a failure term;
`truncated` at the time limit ("timeout"). info: success [N], stage [N] (highest stage label reached),
failure [N] (code into `failure_names`; "physics": the simulation blew up), executed_action [N, 23] (the
clamped action: what demos record), clamped [N], final_obs, episode (VecEnv contract). Auto-reset as the VecEnv
contract says. `active` masks are supported (inactive rows are stepped and then restored: their physics, controller,
footstep planner, MoCap tracker and timers are put back), so the action-chunk wrapper can stop a
chunk early.

Hot path: no per-env Python loops (resets and per-env models of the domain randomisation loop over the
envs being reset only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loco_manip_controller import policy_io as pio
from loco_manip_controller.footstep_planner import REANCHOR_CHANGE, FootstepPlanner, FootstepPlannerConfig
from refine_dp_planner.planner_io import (ACTION_DIM, ACTION_FIELDS, Clamps, actions_from_vectors,
                                          actions_to_vectors, build_observation, clamp_actions,
                                          observation_fields)
from t1_description.joint_table import ARM_GROUPS
from t1_description.kinematics import arm_kinematics, feet_planar, quat_wxyz_to_matrix

from ..envs.vec_env import EpisodeTracker, VecEnv
from ..lowlevel.sim import BatchedT1
from .mocap import MocapModel
from .spec import PHYSICS, StartRange, TaskSpec
from .terms import ObjectTruth, TaskState

PLANNER_RATE_HZ = 10.0  # the paper's DP rate (0.1 s between steps)
MAX_SPEED = 100.0  # m/s or rad/s: a joint or body faster than this means the solver blew up (e.g. a box wedged
                   # between a finger and the table): the row is reset and its episode ends as "physics" (spec.PHYSICS),
                   # never a success nor a fall
MAX_OBJECT_SPEED = 3.0  # m/s of a free task object horizontally or upwards (a fall is not bounded): a box pinched
                        # between a finger and the table can be shot away at 4-90 m/s, under MAX_SPEED, and stay
                        # 10 cm up for the 1 s that pickup's success test holds (13 of 400 "successful" pickup demos;
                        # tasks/check_demos.py); handled boxes move < 1.3 m/s, a door < 1.7 m/s. Ends as "physics" too


@dataclass
class ObjectAddress:
    name: str
    body: int
    pos_cols: np.ndarray   # 3 columns of a FULLPHYSICS state row
    quat_cols: np.ndarray  # 4 (w, x, y, z)
    vel_cols: np.ndarray   # 6
    geoms: np.ndarray      # geom ids of the body
    hinge: tuple | None = None  # a hinged body (a door): (qpos column, world anchor, world axis, rest pos, rest quat)
    fixed: tuple | None = None  # a static body (a marker on a table): (world pos, quat w, x, y, z)


def _object_address(model, layout, name: str) -> ObjectAddress:
    import mujoco

    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if body < 0:
        raise KeyError(f"the task scene has no body named {name!r} (a task object must be a free body)")
    joint = model.body_jntadr[body]
    empty = np.zeros(0, np.int64)
    if joint < 0 and model.body_weldid[body] == 0:
        # a body welded to the world (a MoCap marker on a table, e.g. pick_place's place_target): a fixed pose
        d = mujoco.MjData(model)
        mujoco.mj_forward(model, d)
        return ObjectAddress(name, body, empty, empty, empty, np.flatnonzero(model.geom_bodyid == body),
                             fixed=(d.xpos[body].copy(), d.xquat[body].copy()))
    if (joint >= 0 and model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_HINGE and model.body_jntnum[body] == 1
            and model.body_weldid[model.body_parentid[body]] == 0):
        # a body on one hinge to the static world (a door leaf): its pose is its rest pose turned about the axis
        d = mujoco.MjData(model)
        mujoco.mj_forward(model, d)
        return ObjectAddress(name, body, empty, empty, empty, np.flatnonzero(model.geom_bodyid == body),
                             (layout.qpos.start + model.jnt_qposadr[joint], d.xanchor[joint].copy(),
                              d.xaxis[joint].copy(), d.xpos[body].copy(), d.xquat[body].copy()))
    if joint < 0 or model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
        raise ValueError(f"task object {name!r} must have a free joint (it is tracked and moved as a whole), "
                         "or be a body on one hinge to the static world (a door), or a static body (a marker)")
    qa, va = layout.qpos.start + model.jnt_qposadr[joint], layout.qvel.start + model.jnt_dofadr[joint]
    return ObjectAddress(name, body, qa + np.arange(3), qa + 3 + np.arange(4), va + np.arange(6),
                         np.flatnonzero(model.geom_bodyid == body))


def _object_pose(obj: ObjectAddress, st: np.ndarray):
    """World position [N, 3] and quaternion [N, 4] of a task object from state rows st [N, nstate]."""
    if obj.fixed is not None:
        return np.tile(obj.fixed[0], (len(st), 1)), np.tile(obj.fixed[1], (len(st), 1))
    if obj.hinge is None:
        return st[:, obj.pos_cols], st[:, obj.quat_cols]
    col, anchor, axis, rest_pos, rest_quat = obj.hinge
    angle = st[:, col]
    half = 0.5 * angle
    q = np.c_[np.cos(half), np.sin(half)[:, None] * axis]
    r = rest_pos - anchor
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    pos = anchor + r * c + np.cross(axis, r) * s + np.outer(1 - c[:, 0], axis * (axis @ r))  # Rodrigues
    return pos, _quat_mul(q, np.broadcast_to(rest_quat, q.shape))


def _row_arrays(obj, n: int) -> list[str]:
    return [k for k, v in vars(obj).items() if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n]


class TaskEnv(VecEnv):
    supports_active_mask = True

    def __init__(self, task: TaskSpec | str, num_envs: int = 16, *, start: str | float | StartRange = "pretrain",
                 randomize: bool = True, physics_dt: float | None = None, nthread: int = 2, legs=None, arms=None,
                 planner_rate_hz: float = PLANNER_RATE_HZ, clamps: Clamps | None = None, seed: int = 0,
                 record_envs: tuple[int, ...] = (), measured_feet: bool = False):
        """task: a TaskSpec or a registered name (tasks.TASKS). start: "pretrain" | "ood" | a curriculum level
        in [0, 1] (pretrain -> ood) | a StartRange. randomize=False: nominal masses/friction, perfect MoCap, no
        latency (object poses and the start are still sampled). physics_dt: the MuJoCo step (default: the
        spec's, TaskSpec.physics_dt). legs/arms: policy files (default: the shipped
        models/legs.onnx, arms.onnx). record_envs: env indices whose state rows are kept after every control
        step in `self.state_log` (videos). measured_feet: the footstep planner gets both feet by leg FK placed by
        the trunk's pose, and restarts its commanded path on a command change beyond REANCHOR_CHANGE, as the
        footstep node does with its `measured_feet` parameter (from the MoCap trunk there; the true trunk
        here); False: the planner's own dead-reckoned footholds."""
        from loco_manip_controller.policy_runtime import LowLevelController, resolve_model

        from . import get_task

        self.spec = get_task(task) if isinstance(task, str) else task
        self.num_envs = n = int(num_envs)
        self.randomize = bool(randomize)
        self.start_range = self._start_range(start)
        self.clamps = clamps or Clamps()
        self.policy_files = {"legs": resolve_model(legs or "legs.onnx"), "arms": resolve_model(arms or "arms.onnx")}
        self.controller = LowLevelController(self.policy_files["legs"], self.policy_files["arms"], num_envs=n)
        control_hz = self.controller.control_hz
        physics_dt = self.spec.physics_dt if physics_dt is None else float(physics_dt)
        dec = int(round(1.0 / (control_hz * physics_dt)))
        steps = int(round(control_hz / planner_rate_hz))
        if dec < 1 or abs(dec * physics_dt * control_hz - 1) > 1e-6 or abs(steps * planner_rate_hz - control_hz) > 1e-6:
            raise ValueError(f"physics_dt {physics_dt} and planner rate {planner_rate_hz} Hz must divide the "
                             f"controller's period 1 / {control_hz:g} Hz")
        self.control_steps, self.planner_dt = steps, 1.0 / planner_rate_hz
        self.sim = BatchedT1(n, physics_dt, dec, nthread=nthread, scene=self.spec.scene)
        self.table = self.sim.table
        self.control_dt = self.sim.control_dt
        self.measured_feet = bool(measured_feet)
        self.footsteps = FootstepPlanner(n, self.controller.footstep_config or FootstepPlannerConfig(),
                                         stop_on_plan=self.measured_feet)
        self._leg_idx = pio.LEG_ACTION.indices(self.table)
        self.arm_idx = self.table.indices(*ARM_GROUPS)
        m, L = self.sim.base_model, self.sim.layout
        names = tuple(dict.fromkeys(self.spec.objects + tuple(self.spec.initial_state.objects)))
        self.objects = [_object_address(m, L, k) for k in names]
        self._obj_index = {o.name: i for i, o in enumerate(self.objects)}
        for o in self.objects:
            if not len(o.pos_cols) and o.name in self.spec.initial_state.objects:
                raise ValueError(f"task object {o.name!r} is hinged or static: it has no ObjectPose randomisation")
        import mujoco
        self.joint_cols = {}
        for j in self.spec.joints:
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j)
            if jid < 0:
                raise KeyError(f"task {self.spec.name}: the scene has no joint {j!r} (TaskSpec.joints)")
            self.joint_cols[j] = L.qpos.start + m.jnt_qposadr[jid]
        if self.spec.initial_state.anchor not in self._obj_index:
            raise KeyError(f"task {self.spec.name}: anchor {self.spec.initial_state.anchor!r} is not a task object")
        # linear velocity columns of the free objects [n_free, 3], for the MAX_OBJECT_SPEED check
        self._obj_lin_vel = np.array([o.vel_cols[:3] for o in self.objects if len(o.vel_cols)], np.int64).reshape(-1, 3)
        self.base_mass = np.array([m.body_mass[o.body] for o in self.objects])
        self.base_friction = [m.geom_friction[o.geoms, 0].copy() for o in self.objects]
        r = self.spec.randomization if self.randomize else None
        self.mocap = MocapModel(n, self.spec.objects, r.natnet_noise_pos_std if r else 0.0,
                                r.natnet_noise_rot_std_deg if r else 0.0, r.natnet_dropout_prob if r else 0.0)
        self.obs_fields = observation_fields(self.spec.objects)
        self.action_fields = list(ACTION_FIELDS)
        self.obs_dim, self.act_dim = sum(k for _, k in self.obs_fields), ACTION_DIM
        hand_hi = [1.0] * 3 + [1.0] * 6
        self.action_high = np.array([self.clamps.max_base_speed] * 2 + [self.clamps.max_yaw_rate] + hand_hi * 2
                                    + [1.0, 1.0], np.float32)
        self.action_low = -self.action_high
        self.action_low[-2:] = 0.0
        self.episode_stats = EpisodeTracker(n)
        self.record_envs = tuple(record_envs)
        self.state_log: list[np.ndarray] = []
        # per-env episode state (every [N, ...] array here is saved/restored for inactive rows)
        self.t = np.zeros(n)
        self.success_time = np.zeros(n)
        self.stage = np.zeros(n, np.int64)
        self.prev_pos, self.prev_rot = np.zeros((n, 2, 3)), np.tile(np.eye(3), (n, 2, 1, 1))
        self.has_prev = np.zeros(n, bool)
        self.hand_pos_cmd, self.hand_rot_cmd = arm_kinematics().fk(np.tile(self.table.default_q[self.arm_idx], (n, 1)))
        self.grippers = np.zeros((n, 2))
        self.base_vel = np.zeros((n, 3))
        self.q_des_prev = np.tile(self.table.default_q, (n, 1))
        self.delay = np.zeros(n, np.int64)
        self.obj_start = np.zeros((n, len(self.objects), 3))
        self.obj_peak_z = np.zeros((n, len(self.objects)))
        self.last_obs = np.zeros((n, self.obs_dim), np.float32)
        self.footstep = self.footsteps.output().footstep
        self.last_inputs: dict | None = None  # what the last observation was built from (parity tests, bags)
        # evaluation measurements (None: off): envs whose control steps are measured, and the samples
        self.measure: np.ndarray | None = None
        self.metrics = {"hand_pos_error": [], "hand_rot_error_deg": [], "hand_speed": [], "footstep_error": []}
        self._hand_prev = None
        self.rng = np.random.default_rng(seed)
        self.env_rngs = [np.random.default_rng(seed + i) for i in range(n)]
        self._needs_reset = True

    # ---------------------------------------------------------------- configuration
    def controller_identity(self) -> dict:
        """The controller in the loop: each policy file and the first 16 hex digits of its SHA-256 (a dataset
        collected with one pair of legs is not the data of another)."""
        import hashlib
        return {part: {"file": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]}
                for part, path in self.policy_files.items()}

    def _start_range(self, start) -> StartRange:
        init = self.spec.initial_state
        if isinstance(start, StartRange):
            return start
        if start == "pretrain":
            return init.pretrain
        if start == "ood":
            return init.ood
        return init.pretrain.scaled(float(start), init.ood)

    def set_start_range(self, start) -> None:
        """Change the start distribution of the next resets (a curriculum)."""
        self.start_range = self._start_range(start)

    @property
    def failure_names(self) -> tuple[str, ...]:
        return self.spec.failure_names

    @property
    def stage_names(self) -> tuple[str, ...]:
        return self.spec.stage_names

    def close(self) -> None:
        self.sim.close()

    # ---------------------------------------------------------------- reset
    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.env_rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        self.episode_stats.reset_all()
        mask = np.ones(self.num_envs, bool)
        self._reset_rows(mask)
        self.last_obs = self._observe()
        self._needs_reset = False
        return self.last_obs.copy()

    def _sample_rows(self, idx: np.ndarray) -> dict:
        """Per-env draws of the envs `idx` from their own generators (env i's episodes do not depend on N)."""
        init, rnd = self.spec.initial_state, self.spec.randomization
        s = self.start_range
        k = len(self.objects)
        out = {"obj_off": np.zeros((len(idx), k, 3)), "mass": np.ones((len(idx), k)),
               "friction": np.ones((len(idx), k)), "start": np.zeros((len(idx), 3)), "delay": np.zeros(len(idx))}
        for j, i in enumerate(idx):
            g = self.env_rngs[i]
            for o, obj in enumerate(self.objects):
                pose = init.objects.get(obj.name)
                if pose is not None:
                    out["obj_off"][j, o] = [g.uniform(*pose.x), g.uniform(*pose.y), g.uniform(*pose.yaw)]
                out["mass"][j, o] = g.uniform(*rnd.object_mass_scale)
                out["friction"][j, o] = g.uniform(*rnd.object_friction_scale)
            out["start"][j] = [g.uniform(*s.radial), g.uniform(*s.polar), g.uniform(*s.heading)]
            out["delay"][j] = g.uniform(*rnd.latency_s)
        return out

    def _reset_rows(self, mask: np.ndarray) -> None:
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return
        draw = self._sample_rows(idx)
        m, L, sim = self.sim.base_model, self.sim.layout, self.sim
        if self.randomize:
            for j, i in enumerate(idx):
                for o, obj in enumerate(self.objects):
                    sim.models[i].body_mass[obj.body] = self.base_mass[o] * draw["mass"][j, o]
                    sim.models[i].geom_friction[obj.geoms, 0] = self.base_friction[o] * draw["friction"][j, o]
            self.delay[idx] = np.floor(draw["delay"] / sim.physics_dt + 0.5).astype(np.int64)
        else:
            self.delay[idx] = 0
        # objects: the scene's pose moved by the drawn offsets (yaw about world z)
        key = sim.keyframe_state
        obj_pos, obj_quat = np.zeros((len(idx), len(self.objects), 3)), np.zeros((len(idx), len(self.objects), 4))
        for o, obj in enumerate(self.objects):
            if not len(obj.pos_cols):  # hinged or static: the scene's pose (the keyframe's hinge angle)
                p, q = _object_pose(obj, np.tile(key, (len(idx), 1)))
                obj_pos[:, o], obj_quat[:, o] = p, q
                continue
            off = draw["obj_off"][:, o]
            obj_pos[:, o] = key[obj.pos_cols] + np.c_[off[:, :2], np.zeros(len(idx))]
            half = 0.5 * off[:, 2]
            qz = np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], -1)
            obj_quat[:, o] = _quat_mul(qz, np.broadcast_to(key[obj.quat_cols], qz.shape))
        # the robot: (radial, polar, heading) relative to the anchor object
        a = self._obj_index[self.spec.initial_state.anchor]
        r, polar, heading = draw["start"].T
        direction = self.spec.initial_state.approach_yaw + polar
        xy = obj_pos[:, a, :2] + np.asarray(self.spec.initial_state.anchor_offset) \
            - r[:, None] * np.stack([np.cos(direction), np.sin(direction)], -1)
        yaw = direction + heading
        sim.reset_rows(mask, root_xy_yaw=np.c_[xy, yaw])
        rows = sim.state[idx]
        for o, obj in enumerate(self.objects):
            if len(obj.pos_cols):
                rows[:, obj.pos_cols], rows[:, obj.quat_cols], rows[:, obj.vel_cols] = obj_pos[:, o], obj_quat[:, o], 0.0
        sim.state[idx] = rows
        self.obj_start[idx] = obj_pos
        self.obj_peak_z[idx] = obj_pos[..., 2]
        self.controller.reset(mask)
        if self.measured_feet:
            self.footsteps.reset(mask, feet_pose=self._feet_world()[idx])
        else:
            self.footsteps.reset(mask, root_pose=np.c_[xy, yaw])
        self.footstep = self.footsteps.output().footstep
        self.mocap.reset(mask)
        self.t[idx] = 0.0
        self.success_time[idx] = 0.0
        self.stage[idx] = 0
        self.has_prev[idx] = False
        default_pos, default_rot = arm_kinematics().fk(self.table.default_q[self.arm_idx])
        self.hand_pos_cmd[idx], self.hand_rot_cmd[idx] = default_pos[0], default_rot[0]
        self.prev_pos[idx], self.prev_rot[idx] = default_pos[0], default_rot[0]
        self.grippers[idx] = 0.0
        self.base_vel[idx] = 0.0
        self.q_des_prev[idx] = self.table.default_q

    # ---------------------------------------------------------------- stepping
    def _control_step(self) -> None:
        sim, L = self.sim, self.sim.layout
        st = sim.state
        q, dq, quat, gyro = st[:, L.joint_q], st[:, L.joint_dq], st[:, L.root_quat], st[:, L.root_angvel]
        gravity = pio.projected_gravity(quat)
        q_des = self.controller.step(q, dq, gravity, gyro, self.footstep, self.hand_pos_cmd, self.hand_rot_cmd)
        t_before = sim.state[:, 0].copy()  # FULLPHYSICS rows start with the time
        sim.step(q_des, self.q_des_prev, self.delay, gripper=self.grippers, rate_limit=self.table.velocity_limit)
        self.q_des_prev = q_des
        previous = self.footstep
        # the feet by FK once per control step, for the measured-feet planner and the touchdown scores alike
        feet = self._feet_world() if self.measured_feet or self.measure is not None else None
        if self.measured_feet:
            self.footstep = self.footsteps.update(self.control_dt, self.base_vel, feet_pose=feet).footstep
            self.footsteps.reanchor_on_change(self.base_vel, REANCHOR_CHANGE)
        else:
            self.footstep = self.footsteps.update(self.control_dt, self.base_vel).footstep
        if self.measure is not None:
            self._measure(previous, feet)
        bad = ~np.isfinite(sim.state).all(-1) | (np.abs(sim.state[:, L.qvel]) > MAX_SPEED).any(-1)
        if len(self._obj_lin_vel):  # an object shot away (not falling): horizontal and upward speed
            v = sim.state[:, self._obj_lin_vel]  # [N, n_free, 3]
            speed2 = v[..., 0] ** 2 + v[..., 1] ** 2 + np.maximum(v[..., 2], 0.0) ** 2
            bad |= (speed2 > MAX_OBJECT_SPEED ** 2).any(-1)
        # MuJoCo's own instability check (a NaN or huge acceleration: "Nan, Inf or huge value in QACC") resets the data
        # to qpos0 mid-rollout (the robot teleported to the origin, time restarting at 0): caught by the time column
        bad |= np.abs(sim.state[:, 0] - t_before - self.control_dt) > 0.5 * sim.physics_dt
        if bad.any():  # a blown-up row: put it back standing; the episode ends as "physics" (see _evaluate_terms)
            self._blown_up |= bad
            sim.state[bad] = sim.keyframe_state
        if self.record_envs:
            self.state_log.append(sim.state[list(self.record_envs)].copy())

    def _measure(self, previous_footstep, feet: np.ndarray) -> None:
        """Tracking samples of the measured envs after a control step: commanded vs measured (FK) hand poses,
        the hands' speed relative to the trunk, and each landed footstep (feet: _feet_world) against its target
        (loco_manip_controller.tracking.score_touchdowns, as `refine-dp eval controller` and the node)."""
        from loco_manip_controller.tracking import score_touchdowns
        from t1_description.kinematics import pose_errors

        L, m = self.sim.layout, self.measure
        st = self.sim.state
        q = st[:, L.joint_q]
        hp, hr = arm_kinematics().fk(q[:, self.arm_idx])
        dp, drot = pose_errors(self.hand_pos_cmd, self.hand_rot_cmd, hp, hr)
        self.metrics["hand_pos_error"].extend(np.linalg.norm(dp, axis=-1)[m].ravel().tolist())
        self.metrics["hand_rot_error_deg"].extend(np.degrees(np.linalg.norm(drot, axis=-1))[m].ravel().tolist())
        if self._hand_prev is not None:
            speed = np.linalg.norm(hp - self._hand_prev, axis=-1) / self.control_dt
            self.metrics["hand_speed"].extend(speed[m].ravel().tolist())
        self._hand_prev = hp
        td = score_touchdowns(previous_footstep, self.footstep, feet)
        self.metrics["footstep_error"].extend(td.error[td.ended & m].tolist())

    def _feet_world(self) -> np.ndarray:
        """Both feet's planar world poses [N, 2, 3] by leg FK placed by the trunk's pose."""
        st, L = self.sim.state, self.sim.layout
        return feet_planar(st[:, L.joint_q][:, self._leg_idx], quat_wxyz_to_matrix(st[:, L.root_quat]),
                           st[:, L.root_pos])

    def _snapshot(self, rows: np.ndarray) -> list:
        n = self.num_envs
        objs = [self, self.sim, self.controller, self.footsteps, self.mocap]
        if self.controller.leg_reference is not None:
            objs.append(self.controller.leg_reference)
        return [(o, k, getattr(o, k)[rows].copy()) for o in objs for k in _row_arrays(o, n)]

    @staticmethod
    def _restore(snapshot: list, rows: np.ndarray) -> None:
        for o, k, saved in snapshot:
            getattr(o, k)[rows] = saved

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        if self._needs_reset:
            raise RuntimeError("TaskEnv.step before reset(): call reset(seed) first")
        actions = self._check_actions(actions)
        active = self._check_active(active)
        frozen = None if active is None else ~active
        snapshot = None if frozen is None else self._snapshot(frozen)
        v, pos, rot, grip = actions_from_vectors(actions)
        v, pos, rot, clamped = clamp_actions(v, pos, rot, self.prev_pos, self.prev_rot, self.planner_dt, self.clamps,
                                             self.has_prev)
        self.base_vel, self.hand_pos_cmd, self.hand_rot_cmd, self.grippers = v, pos, rot, grip
        self.prev_pos, self.prev_rot, self.has_prev = pos.copy(), rot.copy(), np.ones(self.num_envs, bool)
        executed = actions_to_vectors(v, pos, rot, grip)
        self._blown_up = np.zeros(self.num_envs, bool)
        for _ in range(self.control_steps):
            self._control_step()
        self.t += self.planner_dt
        obs = self._observe()
        if frozen is not None:  # inactive rows: nothing happened (VecEnv contract)
            self._restore(snapshot, frozen)
            self.footstep = self.footsteps.output().footstep
            obs[frozen] = self.last_obs[frozen]
        state = self.task_state()
        live = np.ones(self.num_envs, bool) if frozen is None else active
        success, failure, stage = self._evaluate_terms(state, live)
        terminated = (success | (failure > 0)) & live
        truncated = (self.t >= self.spec.time_limit_s - 1e-9) & ~terminated & live
        failure = np.where(truncated, len(self.failure_names) - 1, failure)
        reward = (success & live).astype(np.float64)
        info = {"success": success & live, "stage": stage, "failure": failure, "executed_action": executed,
                "clamped": clamped, "t": self.t.copy()}
        episode = self.episode_stats.record(reward, terminated | truncated, info["success"], live)
        done = terminated | truncated
        info["final_obs"] = obs.copy()
        if episode is not None:
            info["episode"] = episode | {"failure": failure.copy(), "stage": stage.copy(), "time": self.t.copy()}
        if done.any():
            self._reset_rows(done)
            obs[done] = self._observe(np.flatnonzero(done))
        self.last_obs = obs.copy()
        return obs, reward, terminated, truncated, info

    def _evaluate_terms(self, state: TaskState, live: np.ndarray):
        spec = self.spec
        now = spec.success.fn(state)
        self.success_time = np.where(live, np.where(now, self.success_time + self.planner_dt, 0.0), self.success_time)
        success = now & (self.success_time >= spec.success_hold_s - 1e-9)
        failure = np.zeros(self.num_envs, np.int64)
        for code, term in enumerate(spec.failures, start=1):
            failure = np.where((failure == 0) & term.fn(state), code, failure)
        # a blow-up overrides the terms: they read the keyframe the row was put back to, not the episode
        failure = np.where(self._blown_up, self.failure_names.index(PHYSICS), failure)
        success &= ~self._blown_up
        failure = np.where(success, 0, failure)
        current = np.zeros(self.num_envs, np.int64)
        for k, term in enumerate(spec.stages):
            current = np.where(term.fn(state), k, current)
        self.stage = np.where(live, np.maximum(self.stage, current), self.stage)
        return success & live, np.where(live, failure, 0), self.stage.copy()

    # ---------------------------------------------------------------- views
    def object_truth(self, rows=None) -> dict:
        st = self.sim.state if rows is None else self.sim.state[rows]
        sel = slice(None) if rows is None else rows
        return {o.name: ObjectTruth(*_object_pose(o, st), self.obj_start[sel, k], self.obj_peak_z[sel, k],
                                    st[:, o.vel_cols[:3]] if len(o.vel_cols) else None)
                for k, o in enumerate(self.objects)}

    def task_state(self) -> TaskState:
        """Ground truth of every env now (also updates the objects' peak heights)."""
        L = self.sim.layout
        st = self.sim.state
        for k, o in enumerate(self.objects):
            self.obj_peak_z[:, k] = np.maximum(self.obj_peak_z[:, k], _object_pose(o, st)[0][:, 2])
        root_pos, quat = st[:, L.root_pos], st[:, L.root_quat]
        rot = quat_wxyz_to_matrix(quat)
        hp, _ = arm_kinematics().fk(st[:, L.joint_q][:, self.arm_idx])
        hand_world = root_pos[:, None] + np.einsum("nij,nhj->nhi", rot, hp)
        return TaskState(t=self.t.copy(), root_pos=root_pos, root_quat=quat, gravity=pio.projected_gravity(quat),
                         hand_pos=hand_world, gripper_cmd=self.grippers.copy(), objects=self.object_truth(),
                         joints={j: st[:, c].copy() for j, c in self.joint_cols.items()})

    def _observe(self, rows=None) -> np.ndarray:
        """The planner observation of every env (or of `rows`), built as the node builds it."""
        L = self.sim.layout
        st = self.sim.state if rows is None else self.sim.state[rows]
        sel = slice(None) if rows is None else rows
        truth = {o.name: _object_pose(o, st) for o in self.objects}
        names = self.spec.objects
        objects = self.mocap.observe(st[:, L.root_pos], st[:, L.root_quat], {k: truth[k][0] for k in names},
                                     {k: truth[k][1] for k in names}, self.rng, rows=rows)
        arm_q, gravity, grippers = st[:, L.joint_q][:, self.arm_idx], pio.projected_gravity(st[:, L.root_quat]), \
            self.grippers[sel].copy()
        self.last_inputs = {"rows": rows, "arm_q": arm_q, "gravity": gravity, "grippers": grippers, "objects": objects}
        return build_observation(arm_q, grippers, gravity, objects, names)


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of [N, 4] (w, x, y, z) quaternions."""
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)
