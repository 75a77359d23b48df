"""The simulated T1 as the robot's motor controllers see it: ROS-free, stepped by sim_t1.

The robot applies, per motor, tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff clipped to the
motor's effort limit, from the latest LowCmd, at its own control rate; with no command (or in
damping mode) it applies pure damping. SimCore does the same at every physics step (2 ms), and
reads the robot's sensors (IMU, joint encoders) from MJCF sensors as arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from t1_description.joint_table import JointTable, load_joint_table
from t1_description.model_paths import load_model
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
        make_pd_actuators(m, self.act_id, self.jt.effort_limit)  # the motor law runs inside mj_step
        self._sensor = {name: self._sensor_slice(name) for name in ("imu_quat", "imu_gyro", "imu_acc")}
        self.command: MotorCommand | None = None
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
        self.command, self.damping = None, True

    def set_command(self, command: MotorCommand) -> None:
        self.command, self.damping = command, False

    def set_damping(self) -> None:
        self.command, self.damping = None, True

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

    def step(self, n: int = 1) -> None:
        """n physics steps under the current command (the PD law is evaluated by MuJoCo each step)."""
        self._apply()
        for _ in range(n):
            self.data.xfrc_applied[self.trunk_id] = self.xfrc_trunk if self.data.time < self.push_until else 0.0
            mujoco.mj_step(self.model, self.data)

    # ---------------------------------------------------------------- sensing
    def low_state(self) -> LowStateArrays:
        d, s = self.data, self._sensor
        quat_wxyz = d.sensordata[s["imu_quat"]]
        rpy = Rotation.from_quat(quat_wxyz, scalar_first=True).as_euler("xyz")
        return LowStateArrays(q=d.qpos[self.qpos_adr].copy(), dq=d.qvel[self.dof_adr].copy(),
                              ddq=d.qacc[self.dof_adr].copy(), tau=d.actuator_force[self.act_id].copy(),
                              rpy=rpy, gyro=d.sensordata[s["imu_gyro"]].copy(),
                              acc=d.sensordata[s["imu_acc"]].copy())

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
