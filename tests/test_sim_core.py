"""sim_t1's motor law (run inside MuJoCo) is the robot's: pd.py's pd_torque, effort limits included."""
from __future__ import annotations

import mujoco
import numpy as np

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
