"""The T1's grippers hold the task box by friction alone (no weld, no attach), as the tasks need.

The trunk is welded to the world so only the arm, the gripper and the box move: the box is set
between the open fingers at the hand site, the gripper closes, the hand holds it for 1 s, raises
it forward and shakes it. With the gripper left open the same box falls: the grasp is physical.
"""
import numpy as np
import pytest

from welded_t1 import WeldedT1


@pytest.fixture
def t1():
    sim = WeldedT1("table_box")  # trunk welded, arms on the joint table's PD (tests/support)
    sim.move_body("table", [5.0, 0.0, 0.0])
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
