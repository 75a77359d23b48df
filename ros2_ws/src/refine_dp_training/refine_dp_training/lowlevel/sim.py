"""N Booster T1s stepped in C across threads: PD servos inside MuJoCo + `mujoco.rollout`.

Why this shape: at 50 Hz control with 4-10 physics steps per control step, a Python loop
calling mj_step per env per physics step would spend most of its time in Python. Instead the
29 motor actuators of the training model are turned into PD servos,

    force = clip(kp * ctrl - kp * q - kd * qdot, -effort, +effort)     (gain fixed, bias affine)

which is t1_description.pd.pd_torque with q_des = ctrl, dq_des = 0, tau_ff = 0 - exactly
what the controller node sends (tests/test_t1_env.py checks it against pd.py). Then one
`Rollout.rollout` call runs a whole decimation for all N envs in C, on a thread pool, with
the GIL released. (implicitfast integrates the servo's -kd*qdot implicitly; sim_t1 applies the
same torque explicitly. Both are the same law; the implicit one is the more stable.)

State vectors are MuJoCo's mjSTATE_FULLPHYSICS rows ([time, qpos, qvel, ...]); everything the
env needs is read from them (and from the sensor rows the rollout returns) with array slicing,
so there are no per-env Python loops on the step path. Domain randomization that lives in the
model (friction, masses, payloads, gains, motor strength) uses one MjModel per env (rollout
accepts a list of models with the same sizes).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from t1_description.joint_table import JointTable, load_joint_table
from t1_description.model_paths import STAND_KEYFRAME, load_model, robot_indices
from t1_description.pd import make_pd_actuators

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


def make_servo_model(scene: str = "floor", timestep: float = 0.005, table: JointTable | None = None,
                     model: mujoco.MjModel | None = None) -> mujoco.MjModel:
    """The T1 scene with its 29 motors turned into fixed-gain PD servos at the joint table's gains
    (t1_description.pd.make_pd_actuators: ctrl is the position target; targets are clipped to the
    joint limits in policy_io)."""
    table = table or load_joint_table()
    m = model if model is not None else load_model(scene)
    m.opt.timestep = timestep
    make_pd_actuators(m, robot_indices(m).ctrl, table.effort_limit, kp=table.kp, kd=table.kd)
    return m


# A movable platform for steps up and down (training and evaluation): one static box per env model, parked far
# away until `BatchedT1.place_platform` puts it somewhere; its top at the height asked (the rest of the box sinks
# into the floor: two static geoms never collide). Contact like the floor's (scene_floor.xml, scene_stairs.xml).
PLATFORM_HALF = (0.3, 0.8, 0.1)  # m: 0.6 m deep, 1.6 m wide, up to 0.2 m high
PLATFORM_PARKED = (50.0, 0.0)


def platform_model(scene: str = "floor") -> mujoco.MjModel:
    """The scene with a `platform` box geom added (parked)."""
    from t1_description.model_paths import mjcf_path
    spec = mujoco.MjSpec.from_file(str(mjcf_path(scene)))
    body = spec.worldbody.add_body(name="platform", pos=[0.0, 0.0, 0.0])
    body.add_geom(name="platform", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(PLATFORM_HALF),
                  pos=[PLATFORM_PARKED[0], PLATFORM_PARKED[1], -PLATFORM_HALF[2]], contype=1, conaffinity=0, condim=3,
                  friction=[0.8, 0.005, 0.0001], priority=1, rgba=[0.45, 0.42, 0.38, 1.0])
    return spec.compile()


@dataclass(frozen=True)
class StateLayout:
    """Column addresses inside a FULLPHYSICS state row and a sensordata row."""

    nstate: int
    qpos: slice
    qvel: slice
    joint_q: np.ndarray   # 29 columns (table order)
    joint_dq: np.ndarray
    root_pos: np.ndarray  # 3
    root_quat: np.ndarray  # 4 (w, x, y, z)
    root_linvel: np.ndarray  # 3, world frame
    root_angvel: np.ndarray  # 3, trunk frame (= gyro at the IMU site)
    sensors: dict  # name -> slice into sensordata


def state_layout(m: mujoco.MjModel) -> StateLayout:
    nstate = mujoco.mj_stateSize(m, STATE_SPEC)
    idx = robot_indices(m)
    qpos0, qvel0 = 1, 1 + m.nq  # FULLPHYSICS starts with time
    sensors = {}
    for i in range(m.nsensor):
        adr, dim = m.sensor_adr[i], m.sensor_dim[i]
        sensors[m.sensor(i).name] = slice(int(adr), int(adr + dim))
    return StateLayout(nstate=nstate, qpos=slice(qpos0, qpos0 + m.nq), qvel=slice(qvel0, qvel0 + m.nv),
                       joint_q=qpos0 + idx.qpos, joint_dq=qvel0 + idx.qvel,
                       root_pos=qpos0 + idx.root_qpos[:3], root_quat=qpos0 + idx.root_qpos[3:7],
                       root_linvel=qvel0 + idx.root_qvel[:3], root_angvel=qvel0 + idx.root_qvel[3:6],
                       sensors=sensors)


class BatchedT1:
    """N T1 simulations as a [N, nstate] array, advanced `decimation` physics steps per call."""

    def __init__(self, num_envs: int, timestep: float = 0.005, decimation: int = 4, nthread: int = 2,
                 scene: str = "floor", table: JointTable | None = None, platforms: bool = False):
        """platforms: each env gets a movable step platform (`place_platform`, `ground_height`)."""
        self.table = table or load_joint_table()
        self.num_envs, self.decimation = int(num_envs), int(decimation)
        self.base_model = make_servo_model(scene, timestep, self.table,
                                           model=platform_model(scene) if platforms else None)
        self.platform_geom = mujoco.mj_name2id(self.base_model, mujoco.mjtObj.mjOBJ_GEOM, "platform") \
            if platforms else -1
        # per env: platform centre (x, y), yaw, top height (height 0: parked)
        self.platform = np.zeros((self.num_envs, 4))
        self.idx = robot_indices(self.base_model)
        self.layout = state_layout(self.base_model)
        # per-env models (domain randomization writes into them); copies share nothing
        self.models = [copy.deepcopy(self.base_model) for _ in range(self.num_envs)]
        self.nthread = max(1, int(nthread))
        self.datas = [mujoco.MjData(self.base_model) for _ in range(self.nthread)]
        self.pool = mj_rollout.Rollout(nthread=self.nthread if self.nthread > 1 else 0)
        d = mujoco.MjData(self.base_model)
        mujoco.mj_resetDataKeyframe(self.base_model, d, self.base_model.key(STAND_KEYFRAME).id)
        self.keyframe_state = np.zeros(self.layout.nstate)
        mujoco.mj_getState(self.base_model, d, self.keyframe_state, STATE_SPEC)
        self.state = np.tile(self.keyframe_state, (self.num_envs, 1))
        self.sent = np.tile(self.table.default_q, (self.num_envs, 1))  # last PD targets sent
        nsens = self.base_model.nsensordata
        self._state_out = np.zeros((self.num_envs, self.decimation, self.layout.nstate))
        self._sens_out = np.zeros((self.num_envs, self.decimation, nsens))
        self.sensordata = np.zeros((self.num_envs, nsens))
        self._ctrl = np.zeros((self.num_envs, self.decimation, self.base_model.nu))

    @property
    def physics_dt(self) -> float:
        return float(self.base_model.opt.timestep)

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.decimation

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def step(self, q_des: np.ndarray, q_des_prev: np.ndarray | None = None,
             delay_steps: np.ndarray | None = None, gripper: np.ndarray | None = None,
             rate_limit: np.ndarray | None = None) -> None:
        """Advance all envs by one control step with joint targets q_des [N, 29] (table order).

        Action latency: env i applies q_des_prev for its first delay_steps[i] physics steps.
        rate_limit [29] rad/s: the sent target moves at most rate_limit * physics_dt per physics
        step towards the commanded one (the hardware interface's safety "step" clamp, which sim_t1
        and the robot apply at 500 Hz); `self.sent` [N, 29] carries the last sent target.
        """
        ctrl = self._ctrl
        target = np.broadcast_to(q_des[:, None, :], (self.num_envs, self.decimation, q_des.shape[-1]))
        if delay_steps is not None and q_des_prev is not None:
            late = np.arange(self.decimation)[None, :] < np.asarray(delay_steps)[:, None]  # [N, dec]
            target = np.where(late[..., None], q_des_prev[:, None, :], q_des[:, None, :])
        if rate_limit is not None:
            step = np.asarray(rate_limit) * self.physics_dt
            sent = self.sent
            limited = np.empty_like(target)
            for k in range(self.decimation):  # a few vectorized substeps, not a loop over envs
                sent = sent + np.clip(target[:, k] - sent, -step, step)
                limited[:, k] = sent
            self.sent = sent
            target = limited
        else:
            self.sent = target[:, -1].copy()
        ctrl[:, :, self.idx.ctrl] = target
        if gripper is not None:
            ctrl[:, :, self.idx.gripper_ctrl] = gripper[:, None, :]
        # skip_checks: every array is allocated here with the shapes and dtype rollout wants; its Python-side
        # checks cost ~1 ms per call at N = 16 (a fifth of the physics there)
        self.pool.rollout(self.models, self.datas, np.ascontiguousarray(self.state), ctrl, nstep=self.decimation,
                          state=self._state_out, sensordata=self._sens_out, skip_checks=True)
        self.state = self._state_out[:, -1].copy()
        # sensors of the last rollout step are computed at the start of that physics step
        # (one physics step before `state`); fine for rewards, observations use `state` only.
        self.sensordata = self._sens_out[:, -1].copy()

    # -------------------------------------------------------------- platforms
    def place_platform(self, ids, centre_xy=None, yaw=None, height=None) -> None:
        """Put env ids' platform at centre_xy [M, 2] with yaw [M] and top height [M] (m); height 0 parks it."""
        if self.platform_geom < 0:
            raise ValueError("this BatchedT1 has no platforms: construct it with platforms=True")
        ids = np.atleast_1d(np.asarray(ids))
        m = len(ids)
        centre = np.zeros((m, 2)) if centre_xy is None else np.asarray(centre_xy, dtype=np.float64).reshape(m, 2)
        yaw = np.zeros(m) if yaw is None else np.asarray(yaw, dtype=np.float64).reshape(m)
        height = np.zeros(m) if height is None else np.asarray(height, dtype=np.float64).reshape(m)
        g = self.platform_geom
        for k, i in enumerate(ids):  # a loop over the placed envs' models only (at resets)
            parked = height[k] <= 0.0
            x, y = PLATFORM_PARKED if parked else centre[k]
            self.models[i].geom_pos[g] = (x, y, height[k] - PLATFORM_HALF[2] if not parked else -PLATFORM_HALF[2])
            self.models[i].geom_quat[g] = (np.cos(0.5 * yaw[k]), 0.0, 0.0, np.sin(0.5 * yaw[k]))
            self.platform[i] = (x, y, yaw[k], 0.0 if parked else height[k])

    def ground_height(self, ids, xy) -> np.ndarray:
        """Ground height [M] at world points xy [M, 2] of envs ids [M]: the platform's top on it, else 0."""
        ids = np.asarray(ids)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        p = self.platform[ids]
        c, s = np.cos(p[:, 2]), np.sin(p[:, 2])
        dx, dy = xy[:, 0] - p[:, 0], xy[:, 1] - p[:, 1]
        lx, ly = c * dx + s * dy, -s * dx + c * dy
        inside = (np.abs(lx) <= PLATFORM_HALF[0]) & (np.abs(ly) <= PLATFORM_HALF[1])
        return np.where(inside, p[:, 3], 0.0)

    # -------------------------------------------------------------- state views (copies)
    def col(self, cols) -> np.ndarray:
        return self.state[:, cols]

    def sensor(self, name: str) -> np.ndarray:
        return self.sensordata[:, self.layout.sensors[name]]

    def reset_rows(self, mask: np.ndarray, joint_q: np.ndarray | None = None, root_xy_yaw=None,
                   joint_dq: np.ndarray | None = None, root_vel: np.ndarray | None = None) -> None:
        """Put the masked rows back at the stand keyframe (optionally with noisy joints/velocities).

        joint_q [M, 29], root_xy_yaw [M, 3], joint_dq [M, 29], root_vel [M, 6]: one row per
        masked env. Writes only the masked rows (batched, no loop over envs).
        """
        mask = np.asarray(mask, bool)
        rows = np.tile(self.keyframe_state, (int(mask.sum()), 1))
        L = self.layout
        self.sent[mask] = self.table.default_q if joint_q is None else joint_q
        if joint_q is not None:
            rows[:, L.joint_q] = joint_q
        if root_xy_yaw is not None:
            r = np.asarray(root_xy_yaw, dtype=np.float64)
            rows[:, L.root_pos[:2]] = r[:, :2]
            # keyframe quat (pitch only) pre-multiplied by a yaw rotation
            half = 0.5 * r[:, 2]
            qz = np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], -1)
            rows[:, L.root_quat] = _quat_mul(qz, np.broadcast_to(self.keyframe_state[L.root_quat], qz.shape))
        if joint_dq is not None:
            rows[:, L.joint_dq] = joint_dq
        if root_vel is not None:
            rows[:, L.root_linvel[0]:L.root_angvel[-1] + 1] = root_vel
        self.state[mask] = rows


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of [N, 4] (w, x, y, z) quaternions."""
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)
