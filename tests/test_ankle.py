"""The T1 ankle's parallel linkage (t1_description/ankle.py): IK/FK round trip, Jacobian, maps."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from t1_description.ankle import AnkleLinkageError, load_parallel_ankles, parse_parallel_ankles
from t1_description.joint_table import load_joint_table

ANKLES = load_parallel_ankles()
PITCH = np.linspace(-0.87, 0.35, 25)   # the joint table's ankle limits
ROLL = np.linspace(-0.44, 0.44, 19)


@pytest.mark.parametrize("leg", [0, 1])
def test_fk_inverts_ik_over_the_joint_limits(leg):
    link = ANKLES.linkage(leg)
    q = np.stack(np.meshgrid(PITCH, ROLL, indexing="ij"), -1).reshape(-1, 2)
    th = link.ik(q)
    np.testing.assert_allclose(link.fk(th), q, atol=1e-9)            # from the linear first guess
    np.testing.assert_allclose(link.fk(th, q0=q + 0.05), q, atol=1e-9)  # warm started
    assert np.all(np.linalg.cond(link.jacobian(q)) < 5.0), "the linkage nears a singularity inside the limits"


def test_zero_pose_and_the_urdf_effort_limits():
    jt = load_joint_table()
    link = ANKLES.left
    np.testing.assert_allclose(link.ik([0.0, 0.0]), [0.0, 0.0], atol=1e-12)
    J = link.jacobian([0.0, 0.0])
    np.testing.assert_allclose(J[:, 0], [1.0, 1.0], atol=1e-9)   # pitch turns both cranks alike
    assert J[0, 1] > 0.6 and J[1, 1] < -0.6                       # roll turns them opposite
    # two motors at their effort limit give the URDF's ankle pitch and roll limits (tau_q = J^T tau_th)
    e = link.motor_effort
    pitch = jt.effort_limit[jt.index("Left_Ankle_Pitch")]
    roll = jt.effort_limit[jt.index("Left_Ankle_Roll")]
    assert abs((J.T @ e)[0] - pitch) < 0.5
    assert abs((J.T @ (e * [1, -1]))[1] - roll) < 0.5


def test_jacobian_matches_finite_differences_and_maps_conserve_power():
    rng = np.random.default_rng(0)
    for leg in (0, 1):
        link = ANKLES.linkage(leg)
        for _ in range(20):
            q = rng.uniform([-0.8, -0.4], [0.3, 0.4])
            h = 1e-6
            num = np.stack([(link.ik(q + h * e) - link.ik(q - h * e)) / (2 * h) for e in np.eye(2)], -1)
            np.testing.assert_allclose(link.jacobian(q), num, atol=1e-6)
            dq, tau = rng.normal(size=2), rng.normal(size=2) * 10
            th, dth, tau_th = link.joint_to_motor(q, dq, tau)
            np.testing.assert_allclose(th, link.ik(q), atol=1e-12)
            np.testing.assert_allclose(dth, link.jacobian(q) @ dq, atol=1e-12)
            assert np.dot(dth, tau_th) == pytest.approx(np.dot(dq, tau), rel=1e-9)  # virtual work


def test_right_ankle_mirrors_the_left():
    for p in PITCH[::4]:
        for r in ROLL[::3]:
            np.testing.assert_allclose(ANKLES.right.ik([p, -r]), ANKLES.left.ik([p, r]), atol=1e-12)


def test_outside_reach_and_missing_geometry_are_named():
    with pytest.raises(ValueError, match="outside the parallel linkage's reach"):
        ANKLES.left.ik([0.0, 1.4])
    jt = load_joint_table()
    doc = yaml.safe_load(jt.source.read_text())
    del doc["parallel_ankle"]
    with pytest.raises(AnkleLinkageError, match="parallel_ankle is missing"):
        parse_parallel_ankles(doc, jt.names, jt.source)
    doc = yaml.safe_load(jt.source.read_text())
    doc["parallel_ankle"]["joints"][0][0] = "Left_Ankle"
    with pytest.raises(AnkleLinkageError, match="not all joints"):
        parse_parallel_ankles(doc, jt.names, jt.source)
