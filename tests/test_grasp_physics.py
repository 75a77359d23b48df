"""The T1's grippers hold the task box by friction alone (no weld, no attach), as the tasks need.

The trunk is welded to the world so only the arm, the gripper and the box move: the box is set
between the open fingers at the hand site, the gripper closes, the hand holds it for 1 s, raises
it forward and shakes it. With the gripper left open the same box falls: the grasp is physical.
"""
import mujoco
import numpy as np
import pytest

from t1_description.joint_table import load_joint_table
from t1_description.model_paths import STAND_KEYFRAME, mjcf_path, robot_indices
from t1_description.pd import apply_pd_command, make_pd_actuators


class WeldedT1:
    """table_box scene, trunk welded to the world, table moved away, arms on the joint table's PD."""

    def __init__(self):
        spec = mujoco.MjSpec.from_file(str(mjcf_path("table_box")))
        weld = spec.add_equality()
        weld.type, weld.objtype, weld.name1 = mujoco.mjtEq.mjEQ_WELD, mujoco.mjtObj.mjOBJ_BODY, "Trunk"
        self.m = m = spec.compile()
        self.d = mujoco.MjData(m)
        self.jt = load_joint_table()
        self.idx = robot_indices(m)
        make_pd_actuators(m, self.idx.ctrl, self.jt.effort_limit)
        mujoco.mj_resetDataKeyframe(m, self.d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, STAND_KEYFRAME))
        m.body_pos[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "table")] = [5.0, 0.0, 0.0]
        self.box = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "box")
        joint = m.body_jntadr[self.box]
        self.box_q, self.box_v = m.jnt_qposadr[joint], m.jnt_dofadr[joint]
        self.q_des = self.jt.default_q.copy()
        self.site = self.idx.hand_sites[0]  # left hand

    def step(self, n: int, grip: float) -> None:
        zeros = np.zeros(len(self.jt.names))
        for _ in range(n):
            apply_pd_command(self.m, self.d, self.idx.ctrl, self.q_des, zeros, self.jt.kp, self.jt.kd, zeros)
            self.d.ctrl[self.idx.gripper_ctrl] = [grip, 0.0]
            mujoco.mj_step(self.m, self.d)

    def place_box_in_hand(self, grip: float, steps: int = 150) -> None:
        """Hold the box at the hand site, aligned with the hand, while the gripper moves to `grip`."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.d.site_xmat[self.site])
        pos = self.d.site_xpos[self.site].copy()
        for _ in range(steps):
            self.d.qpos[self.box_q:self.box_q + 3], self.d.qpos[self.box_q + 3:self.box_q + 7] = pos, quat
            self.d.qvel[self.box_v:self.box_v + 6] = 0.0
            self.step(1, grip)

    def box_to_hand(self) -> float:
        return float(np.linalg.norm(self.d.xpos[self.box] - self.d.site_xpos[self.site]))


@pytest.fixture
def t1():
    sim = WeldedT1()
    sim.step(200, 0.0)  # arms settle at the default pose
    return sim


def test_closed_gripper_holds_lifts_and_shakes_the_box(t1):
    t1.place_box_in_hand(grip=1.0)
    z0 = t1.d.xpos[t1.box][2]
    t1.step(500, 1.0)
    assert z0 - t1.d.xpos[t1.box][2] < 0.005, "the box slid out of the closed gripper within 1 s"
    sp = t1.jt.names.index("Left_Shoulder_Pitch")
    raised = t1.jt.default_q[sp] - 1.0
    for k in range(500):  # raise the arm forward over 1 s
        t1.q_des[sp] = t1.jt.default_q[sp] + (raised - t1.jt.default_q[sp]) * (k + 1) / 500
        t1.step(1, 1.0)
    z_raised = t1.d.xpos[t1.box][2]
    assert z_raised > z0 + 0.1, "the box did not rise with the hand"
    for k in range(1500):  # 3 s of +-0.2 rad at 1 Hz
        t1.q_des[sp] = raised + 0.2 * np.sin(2 * np.pi * k * t1.m.opt.timestep)
        t1.step(1, 1.0)
    assert t1.box_to_hand() < 0.03, "the box was shaken out of the grip"


def test_open_gripper_drops_the_box(t1):
    t1.place_box_in_hand(grip=0.0)
    z0 = t1.d.xpos[t1.box][2]
    t1.step(500, 0.0)
    assert z0 - t1.d.xpos[t1.box][2] > 0.2, "an open gripper held the box: friction is not what holds it"
