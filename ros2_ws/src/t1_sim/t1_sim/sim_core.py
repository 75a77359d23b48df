"""The simulated T1 as the robot's motor controllers see it: ROS-free, stepped by sim_t1.

The robot applies, per motor, tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff clipped to the
motor's effort limit, from the latest LowCmd, at its own control rate; with no command (or in
damping mode) it applies pure damping. SimCore does the same at every physics step (2 ms), and
reads the robot's sensors (IMU, joint encoders) from MJCF sensors as arrays.

Command types (LowCmd.cmd_type): SERIAL gives every motor in joint space, and MuJoCo evaluates
the law inside mj_step. PARALLEL gives the ankles in motor space (the two crank motors of each
ankle, t1_description/ankle.py): before each physics step SimCore runs each crank motor's own law
  th = IK(q), dth = J dq, tau_th = clip(kp (th_des - th) + kd (dth_des - dth) + tau_ff, +-effort)
and applies tau_q = J^T tau_th to the ankle joints (to first order: joint stiffness J^T kp J,
damping J^T kd J about FK(th_des)). Every other motor is the same in both types.
The model's ankles are serial (pitch, then roll), as in every public T1 model; the linkage lives
only in these maps, and low_state() also reports the ankles in motor space (motor_state_parallel).
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from t1_description.ankle import load_parallel_ankles
from t1_description.joint_table import JointTable, load_joint_table
from t1_description.model_paths import load_model, robot_indices
from t1_description.pd import apply_pd_command, make_pd_actuators
from t1_description.robot_types import MotorCommand

FALL_TRUNK_HEIGHT_M = 0.45    # a trunk below this has fallen (as in booster_gym's termination)
DAMPING_KD = 3.0              # N m s / rad in damping mode (the robot's damping mode is soft, not limp)


@dataclass
class LowStateArrays:
    q: np.ndarray
    dq: np.ndarray
    ddq: np.ndarray
    tau: np.ndarray
    rpy: np.ndarray          # roll, pitch, yaw (rad) of the trunk IMU, extrinsic xyz == ZYX intrinsic
    gyro: np.ndarray         # rad/s in the IMU frame
    acc: np.ndarray          # m/s^2 in the IMU frame
    parallel: tuple | None = None  # (q, dq, ddq, tau) with the ankles in motor space (crank up, down)


class SimCore:
    def __init__(self, scene: str = "floor", joint_table: JointTable | None = None) -> None:
        self.jt = joint_table or load_joint_table()
        self.model = load_model(scene)
        self.data = mujoco.MjData(self.model)
        m = self.model
        n = len(self.jt.names)
        self.qpos_adr = np.array([m.jnt_qposadr[m.joint(name).id] for name in self.jt.names])
        self.dof_adr = np.array([m.jnt_dofadr[m.joint(name).id] for name in self.jt.names])
        self.act_id = np.array([m.actuator(name).id for name in self.jt.names])
        self.trunk_id = m.body("Trunk").id
        idx = robot_indices(m)  # the grippers: not motors of the joint table (the robot's Loco API commands them)
        self.gripper_ctrl = idx.gripper_ctrl          # left, right actuator: ctrl 0 open .. 1 closed
        self.gripper_qpos = idx.gripper_qpos.reshape(2, 2)  # per hand, its two finger slides
        fingers = [m.joint(f"{s}_gripper_finger_{i}").id for s in ("left", "right") for i in (1, 2)]
        self.gripper_stroke = m.jnt_range[fingers, 1].reshape(2, 2)  # finger travel, open (0) to closed
        make_pd_actuators(m, self.act_id, self.jt.effort_limit)  # the motor law runs inside mj_step
        self._sensor = {name: self._sensor_slice(name) for name in ("imu_quat", "imu_gyro", "imu_acc")}
        self.ankles = load_parallel_ankles(self.jt)
        self._ankle_idx = [tuple(int(i) for i in leg) for leg in self.ankles.indices]
        self._ankle_flat = self.ankles.indices.reshape(-1)
        self._ankle_act = self.act_id[self._ankle_flat]
        self._ankle_qadr = [tuple(int(self.qpos_adr[i]) for i in leg) for leg in self.ankles.indices]
        self._ankle_vadr = [tuple(int(self.dof_adr[i]) for i in leg) for leg in self.ankles.indices]
        self._ankle_cmd: list | None = None  # PARALLEL: per leg (th, dth, kp, kd, tau) of the two motors
        self.command: MotorCommand | None = None
        self.parallel = False
        self.damping = True
        self.damping_kd = np.full(n, DAMPING_KD)
        self.xfrc_trunk = np.zeros(6)
        self.push_until = -1.0
        self.reset()

    def _sensor_slice(self, name: str) -> slice:
        sid = self.model.sensor(name).id
        adr, dim = self.model.sensor_adr[sid], self.model.sensor_dim[sid]
        return slice(adr, adr + dim)

    # ---------------------------------------------------------------- control
    def reset(self, keyframe: str = "stand") -> None:
        mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key(keyframe).id)
        mujoco.mj_forward(self.model, self.data)
        self.command, self.damping, self.parallel, self._ankle_cmd = None, True, False, None

    def settle(self, contact_time_s: float = 0.3) -> float:
        """Put the standing robot's weight on the floor before anything is served: the keyframe's
        soles touch the floor with no contact force yet, so right after reset() the IMU reads free
        fall (zero acceleration), while a robot standing there reads about 9.8 m/s^2 up.

        The robot stands `contact_time_s` under the default-pose hold (the vendor's prepare pose),
        long enough for the contacts to carry it; then the joints, the trunk orientation and its
        horizontal position go back to the keyframe's, the trunk keeps the height it settled to,
        velocities are zeroed, and the clock restarts at 0 in damping mode. A longer hold would let
        the robot lean on the ankles' PD (the default pose's centre of mass is slightly forward), and
        the interface's start-up ramp, which starts from the measured pose, would then drop that
        holding torque. Returns the simulated seconds of the hold."""
        key = self.model.key("stand").id
        jt = self.jt
        zeros = np.zeros(len(jt.names))
        self.set_command(MotorCommand(jt.default_q.copy(), zeros, zeros, jt.kp.copy(), jt.kd.copy()))
        steps = int(round(contact_time_s / self.model.opt.timestep))
        for k in range(steps):
            self.step(1)
            if k >= steps // 2:  # second half: the keyframe's posture, only the trunk height free
                height, vz = float(self.data.qpos[2]), float(self.data.qvel[2])
                self.data.qpos[:] = self.model.key_qpos[key]
                self.data.qvel[:] = 0.0
                self.data.qpos[2], self.data.qvel[2] = height, vz
        self.data.qvel[:] = 0.0
        t = float(self.data.time)
        self.data.time = 0.0
        mujoco.mj_forward(self.model, self.data)  # sensors of the loaded, still robot
        self.set_damping()
        return t

    def place_trunk(self, x: float, y: float, yaw: float) -> None:
        """Move the standing robot, as a whole, so that its trunk is at (x, y) with heading `yaw`
        (world, rad; the stand keyframe has (0, 0, 0)): the root's height, tilt, the joints and the
        contacts' state are kept, velocities zeroed. Meant for after settle(): the feet are then on the
        floor where they land, at the same height."""
        j = self.model.body_jntadr[self.trunk_id]
        if j < 0 or self.model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError("the trunk has no free joint")
        adr = self.model.jnt_qposadr[j]
        qpos = self.data.qpos
        turn = Rotation.from_euler("z", yaw)
        old = Rotation.from_quat(qpos[adr + 3:adr + 7], scalar_first=True)
        qpos[adr:adr + 2] = x, y
        qpos[adr + 3:adr + 7] = (turn * old).as_quat(scalar_first=True)
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def set_command(self, command: MotorCommand, parallel: bool = False) -> None:
        """Hold `command` (model order). parallel: its ankle pitch/roll entries are the crank
        motors (up, down) of a PARALLEL LowCmd, in motor space."""
        if parallel:
            i = self._ankle_flat
            self._ankle_cmd = [tuple(np.array([float(a[j]) for j in leg]) for a in
                                     (command.q, command.dq, command.kp, command.kd, command.tau))
                               for leg in self._ankle_idx]
            q, dq, tau, kp, kd = (np.array(a, dtype=float) for a in
                                  (command.q, command.dq, command.tau, command.kp, command.kd))
            q[i] = dq[i] = tau[i] = kp[i] = kd[i] = 0.0  # the ankle torques come from _ankle_torques()
            command = MotorCommand(q, dq, tau, kp, kd)
        else:
            self._ankle_cmd = None
        self.command, self.damping, self.parallel = command, False, parallel

    def set_damping(self) -> None:
        self.command, self.damping, self.parallel, self._ankle_cmd = None, True, False, None

    def set_gripper(self, hand: int, fraction: float) -> None:
        """Command a gripper (0 left, 1 right) to a fraction of its stroke: 0 open .. 1 closed (held)."""
        self.data.ctrl[self.gripper_ctrl[hand]] = min(1.0, max(0.0, float(fraction)))

    def gripper_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(ctrl, closure) per hand (left, right): the commanded fraction, and the fingers' mean
        position as a fraction of their stroke (0 open .. 1 closed; less than ctrl when an object
        is between the fingers)."""
        closure = (self.data.qpos[self.gripper_qpos] / self.gripper_stroke).mean(axis=1)
        return self.data.ctrl[self.gripper_ctrl].copy(), closure

    def push(self, force_xyz, torque_xyz, duration: float) -> None:
        """Apply an external wrench to the trunk (world frame) for `duration` seconds."""
        self.xfrc_trunk = np.concatenate([np.asarray(force_xyz, float), np.asarray(torque_xyz, float)])
        self.push_until = self.data.time + duration

    def _apply(self) -> None:
        zeros = np.zeros(len(self.act_id))
        if self.damping or self.command is None:  # damping: kp 0, kd > 0, no target
            apply_pd_command(self.model, self.data, self.act_id, zeros, zeros, zeros, self.damping_kd, zeros)
        else:
            c = self.command
            apply_pd_command(self.model, self.data, self.act_id, c.q, c.dq, c.kp, c.kd, c.tau)

    def _ankle_torques(self) -> None:
        """PARALLEL: each crank motor's law in motor space, applied to the ankle joints as J^T tau."""
        qpos, qvel, ctrl = self.data.qpos, self.data.qvel, self.data.ctrl
        for leg, (th_d, dth_d, kp, kd, tff) in enumerate(self._ankle_cmd):
            link = self.ankles.linkage(leg)
            (ap, ar), (vp, vr) = self._ankle_qadr[leg], self._ankle_vadr[leg]
            p, r, dp, dr = qpos[ap], qpos[ar], qvel[vp], qvel[vr]
            th = link._ik1(p, r)
            (a, b), (c, d) = link._jac1(p, r, *th)
            dth = (a * dp + b * dr, c * dp + d * dr)
            t0 = kp[0] * (th_d[0] - th[0]) + kd[0] * (dth_d[0] - dth[0]) + tff[0]
            t1 = kp[1] * (th_d[1] - th[1]) + kd[1] * (dth_d[1] - dth[1]) + tff[1]
            e0, e1 = link.motor_effort
            t0, t1 = min(max(t0, -e0), e0), min(max(t1, -e1), e1)
            acts = self._ankle_act[2 * leg:2 * leg + 2]
            ctrl[acts[0]] = a * t0 + c * t1   # tau_q = J^T tau_th
            ctrl[acts[1]] = b * t0 + d * t1

    def step(self, n: int = 1) -> None:
        """n physics steps under the current command (the PD law is evaluated by MuJoCo each step;
        a PARALLEL command's ankle motors by _ankle_torques before each step)."""
        self._apply()
        parallel = self._ankle_cmd is not None and not self.damping
        for _ in range(n):
            if parallel:
                self._ankle_torques()
            self.data.xfrc_applied[self.trunk_id] = self.xfrc_trunk if self.data.time < self.push_until else 0.0
            mujoco.mj_step(self.model, self.data)

    # ---------------------------------------------------------------- sensing
    def low_state(self) -> LowStateArrays:
        d, s = self.data, self._sensor
        quat_wxyz = d.sensordata[s["imu_quat"]]
        rpy = Rotation.from_quat(quat_wxyz, scalar_first=True).as_euler("xyz")
        q, dq = d.qpos[self.qpos_adr], d.qvel[self.dof_adr]
        ddq, tau = d.qacc[self.dof_adr], d.actuator_force[self.act_id]
        return LowStateArrays(q=q, dq=dq, ddq=ddq, tau=tau, rpy=rpy, gyro=d.sensordata[s["imu_gyro"]].copy(),
                              acc=d.sensordata[s["imu_acc"]].copy(), parallel=self._motor_space(q, dq, ddq, tau))

    def _motor_space(self, q, dq, ddq, tau) -> tuple:
        """(q, dq, ddq, tau) with the ankle pitch/roll entries replaced by the crank motors' angle,
        velocity (J dq), acceleration (J ddq; the dJ/dt dq term is left out) and torque (J^-T tau)."""
        pq, pdq, pddq, ptau = q.copy(), dq.copy(), ddq.copy(), tau.copy()
        for leg, (i, j) in enumerate(self._ankle_idx):
            link = self.ankles.linkage(leg)
            th = link._ik1(q[i], q[j])
            (a, b), (c, d) = link._jac1(q[i], q[j], *th)
            det = a * d - b * c
            pq[i], pq[j] = th
            pdq[i], pdq[j] = a * dq[i] + b * dq[j], c * dq[i] + d * dq[j]
            pddq[i], pddq[j] = a * ddq[i] + b * ddq[j], c * ddq[i] + d * ddq[j]
            ptau[i], ptau[j] = (d * tau[i] - c * tau[j]) / det, (-b * tau[i] + a * tau[j]) / det
        return pq, pdq, pddq, ptau

    def trunk_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Trunk position (m) and orientation quaternion (w, x, y, z) in the world."""
        return self.data.xpos[self.trunk_id].copy(), self.data.xquat[self.trunk_id].copy()

    def trunk_height(self) -> float:
        return float(self.data.xpos[self.trunk_id, 2])

    def has_fallen(self) -> bool:
        return self.trunk_height() < FALL_TRUNK_HEIGHT_M

    def body_poses(self, names) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, world position, quaternion w,x,y,z) of the named bodies that exist in this scene."""
        out = []
        for name in names:
            b = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if b >= 0:
                out.append((name, self.data.xpos[b].copy(), self.data.xquat[b].copy()))
        return out

    def set_body_pose(self, body: str, pos, quat_wxyz) -> None:
        """Teleport a free body (sim-only tool, e.g. to move an object in a test)."""
        b = self.model.body(body).id
        j = self.model.body_jntadr[b]
        if j < 0 or self.model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"body {body!r} has no free joint; only free bodies can be moved")
        adr, vadr = self.model.jnt_qposadr[j], self.model.jnt_dofadr[j]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = quat_wxyz
        self.data.qvel[vadr:vadr + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
