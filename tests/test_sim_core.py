"""sim_t1's motor law (run inside MuJoCo) is the robot's: pd.py's pd_torque, effort limits included."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from t1_description.pd import pd_torque
from t1_description.robot_types import MotorCommand
from t1_sim.sim_core import SimCore


def test_mujoco_pd_equals_pd_torque_with_saturation():
    sim = SimCore("floor")
    jt, rng = sim.jt, np.random.default_rng(3)
    n = len(jt.names)
    for _ in range(5):
        sim.data.qpos[sim.qpos_adr] = rng.uniform(jt.lower, jt.upper)
        sim.data.qvel[sim.dof_adr] = rng.normal(0, 2, n)
        cmd = MotorCommand(q=rng.uniform(jt.lower, jt.upper), dq=rng.normal(0, 1, n), tau=rng.normal(0, 3, n),
                           kp=rng.uniform(0, 300, n), kd=rng.uniform(0, 5, n))
        sim.set_command(cmd)
        sim._apply()
        mujoco.mj_forward(sim.model, sim.data)
        q, dq = sim.data.qpos[sim.qpos_adr], sim.data.qvel[sim.dof_adr]
        expected = pd_torque(q, dq, cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau, jt.effort_limit)
        assert np.any(np.abs(expected) >= jt.effort_limit - 1e-9), "the sample should saturate some motors"
        np.testing.assert_allclose(sim.data.actuator_force[sim.act_id], expected, atol=1e-9)


def test_damping_is_pure_damping():
    sim = SimCore("floor")
    sim.data.qvel[sim.dof_adr] = 1.0
    sim.set_damping()
    sim._apply()
    mujoco.mj_forward(sim.model, sim.data)
    np.testing.assert_allclose(sim.data.actuator_force[sim.act_id], -sim.damping_kd * 1.0, atol=1e-9)


def test_push_moves_the_trunk():
    sim = SimCore("floor")
    sim.set_command(MotorCommand(sim.jt.default_q, np.zeros(29), np.zeros(29), sim.jt.kp, sim.jt.kd))
    x0 = sim.trunk_pose()[0][0]
    sim.push([200.0, 0, 0], [0, 0, 0], 0.1)
    sim.step(100)
    assert sim.trunk_pose()[0][0] - x0 > 0.02


def _parallel_default_command(sim: SimCore) -> MotorCommand:
    """The default pose as a PARALLEL command: ankle slots carry crank motor targets, IK(default)."""
    jt = sim.jt
    q, kp, kd = jt.default_q.copy(), jt.kp.copy(), jt.kd.copy()
    for leg, (i, j) in enumerate(sim.ankles.indices):
        q[[i, j]] = sim.ankles.linkage(leg).ik(q[[i, j]])
        kp[[i, j]], kd[[i, j]] = 150.0, 2.5  # ~ joint pitch stiffness 300 (J^T K J), as the serial table
    return MotorCommand(q, np.zeros(29), np.zeros(29), kp, kd)


def test_parallel_command_runs_each_crank_motors_law_in_motor_space():
    sim = SimCore("floor")
    rng = np.random.default_rng(5)
    sim.data.qpos[sim.qpos_adr] = rng.uniform(sim.jt.lower, sim.jt.upper)
    sim.data.qvel[sim.dof_adr] = rng.normal(0, 2, 29)
    cmd = MotorCommand(q=rng.uniform(-0.3, 0.3, 29), dq=rng.normal(0, 1, 29), tau=rng.normal(0, 3, 29),
                       kp=rng.uniform(0, 100, 29), kd=rng.uniform(0, 3, 29))
    sim.set_command(cmd, parallel=True)
    sim._apply()
    sim._ankle_torques()
    mujoco.mj_forward(sim.model, sim.data)
    q, dq = sim.data.qpos[sim.qpos_adr], sim.data.qvel[sim.dof_adr]
    force = sim.data.actuator_force[sim.act_id]
    for leg, (i, j) in enumerate(sim.ankles.indices):
        link = sim.ankles.linkage(leg)
        th, J = link.ik(q[[i, j]]), link.jacobian(q[[i, j]])
        tau_th = cmd.kp[[i, j]] * (cmd.q[[i, j]] - th) + cmd.kd[[i, j]] * (cmd.dq[[i, j]] - J @ dq[[i, j]]) + cmd.tau[[i, j]]
        tau_th = np.clip(tau_th, -link.motor_effort, link.motor_effort)
        np.testing.assert_allclose(force[[i, j]], np.clip(J.T @ tau_th, -sim.jt.effort_limit[[i, j]],
                                                          sim.jt.effort_limit[[i, j]]), atol=1e-9)
    others = np.setdiff1d(np.arange(29), sim.ankles.indices.reshape(-1))
    expected = pd_torque(q, dq, cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau, sim.jt.effort_limit)
    np.testing.assert_allclose(force[others], expected[others], atol=1e-9)


def test_parallel_hold_of_the_default_pose_stands():
    sim = SimCore("floor")
    sim.settle()
    sim.set_command(_parallel_default_command(sim), parallel=True)
    sim.step(750)  # 1.5 s
    assert not sim.has_fallen() and abs(sim.trunk_height() - 0.667) < 0.02
    ankles = sim.ankles.indices.reshape(-1)
    np.testing.assert_allclose(sim.low_state().q[ankles], sim.jt.default_q[ankles], atol=0.06)


def test_settled_robot_reads_gravity_and_reports_ankles_in_motor_space():
    sim = SimCore("floor")
    assert np.linalg.norm(sim.low_state().acc) < 1.0  # the keyframe alone: free fall
    sim.settle()
    s = sim.low_state()
    assert abs(np.linalg.norm(s.acc) - 9.81) < 0.1 and s.acc[2] > 9.5, s.acc
    assert sim.data.time == 0.0 and sim.damping
    pq, pdq, _, ptau = s.parallel
    ankles = sim.ankles.indices
    others = np.setdiff1d(np.arange(29), ankles.reshape(-1))
    np.testing.assert_array_equal(pq[others], s.q[others])
    for leg, (i, j) in enumerate(ankles):
        th, dth, tau_th = sim.ankles.linkage(leg).joint_to_motor(s.q[[i, j]], s.dq[[i, j]], s.tau[[i, j]])
        np.testing.assert_allclose(pq[[i, j]], th, atol=1e-12)
        np.testing.assert_allclose(pdq[[i, j]], dth, atol=1e-12)
        np.testing.assert_allclose(ptau[[i, j]], tau_th, atol=1e-9)
    # not a copy of the serial state: the roll slot carries the second crank, near the pitch angle
    assert np.all(np.abs(pq[ankles[:, 1]] - s.q[ankles[:, 1]]) > 0.1)


def test_place_trunk_moves_the_settled_robot_and_it_keeps_standing():
    """sim_t1's robot_start: after the settle the whole robot moves to (x, y, yaw), the box stays."""
    from scipy.spatial.transform import Rotation

    sim = SimCore("table_box")
    sim.settle()
    box = sim.body_poses(["box"])[0][1]
    height = sim.trunk_height()
    sim.place_trunk(-0.3, 0.1, 0.25)
    pos, quat = sim.trunk_pose()
    np.testing.assert_allclose(pos, [-0.3, 0.1, height], atol=1e-9)
    assert Rotation.from_quat(quat, scalar_first=True).as_euler("ZYX")[0] == pytest.approx(0.25, abs=1e-3)
    np.testing.assert_allclose(sim.body_poses(["box"])[0][1], box)
    s = sim.low_state()
    assert abs(np.linalg.norm(s.acc) - 9.81) < 0.1 and s.acc[2] > 9.5, s.acc  # still standing on its feet
    jt = sim.jt
    zeros = np.zeros(len(jt.names))
    sim.set_command(MotorCommand(jt.default_q.copy(), zeros, zeros, jt.kp.copy(), jt.kd.copy()))
    sim.step(500)  # 1 s of the default-pose hold
    pos, _ = sim.trunk_pose()
    assert not sim.has_fallen() and np.linalg.norm(pos[:2] - [-0.3, 0.1]) < 0.05, pos
