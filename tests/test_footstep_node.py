

def test_measured_feet_place_leg_fk_by_the_trunks_mocap_pose():
    """The footstep node's measured feet (measured_feet): leg FK of RobotState's angles placed by the
    trunk's MoCap pose; None when either is missing, stale or the trunk untracked."""
    import math
    from types import SimpleNamespace as NS

    import numpy as np

    from loco_manip_controller.footstep_node import MeasuredFeet
    from t1_description.kinematics import LEG_JOINT_NAMES, feet_planar

    feet = MeasuredFeet("t1_trunk", timeout_s=0.1)
    assert feet.pose(0.0) is None  # nothing yet
    names = ["Waist", *reversed(LEG_JOINT_NAMES)]  # any order, extra joints ignored
    q = {n: 0.1 * (i + 1) for i, n in enumerate(LEG_JOINT_NAMES)}
    feet.on_robot_state(NS(name=names, position=[q.get(n, 9.0) for n in names]), 1.0)
    yaw = 0.7
    pose = NS(position=NS(x=2.0, y=-1.0, z=0.66), orientation=NS(w=math.cos(yaw / 2), x=0.0, y=0.0, z=math.sin(yaw / 2)))
    box = NS(name="box", tracked=True, pose=NS(position=NS(x=9, y=9, z=9), orientation=NS(w=1, x=0, y=0, z=0)))
    feet.on_objects(NS(objects=[box, NS(name="t1_trunk", tracked=True, pose=pose)]), 1.0)
    got = feet.pose(1.05)
    rot = np.array([[[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]])
    want = feet_planar(np.array([[q[n] for n in LEG_JOINT_NAMES]]), rot, np.array([[2.0, -1.0, 0.66]]))[0]
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert got.shape == (2, 3) and got[0, 2] != got[1, 2]  # each foot's own yaw
    assert feet.pose(1.2) is None  # stale (> 0.1 s): dead reckoning instead
    feet.on_objects(NS(objects=[NS(name="t1_trunk", tracked=False, pose=pose)]), 1.3)
    feet.on_robot_state(NS(name=names, position=[0.0] * len(names)), 1.3)
    assert feet.pose(1.3) is None  # the untracked trunk was not taken: its last pose is stale
