"""The TF of refine_dp.robot_tf (our robot_state_publisher) against MuJoCo's own link poses."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from refine_dp.robot_tf import RobotTF, level_base_pose, matrix, pose_matrix
from t1_description.joint_table import load_joint_table
from t1_description.model_paths import load_model, robot_indices, urdf_path
from t1_description.urdf_kinematics import parse_urdf


@pytest.fixture(scope="module")
def tree():
    return RobotTF(parse_urdf(urdf_path()))


def _mujoco_frames(model, data) -> dict[str, np.ndarray]:
    """World 4x4 pose of every body and site, by name."""
    frames = {}
    for i in range(model.nbody):
        frames[model.body(i).name] = pose_matrix(data.xpos[i], np.roll(data.xquat[i], -1))  # w,x,y,z -> x,y,z,w
    for i in range(model.nsite):
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = data.site_xmat[i].reshape(3, 3), data.site_xpos[i]
        frames[model.site(i).name] = m
    return frames


def test_link_poses_equal_mujoco_for_random_configurations(tree):
    model = load_model("robot")
    data = mujoco.MjData(model)
    idx, jt = robot_indices(model), load_joint_table()
    fingers = [f"{s}_gripper_finger_{i}" for s in ("left", "right") for i in (1, 2)]
    finger_range = np.array([model.joint(f).range for f in fingers])
    rng = np.random.default_rng(7)
    checked = set()
    for _ in range(25):
        q = rng.uniform(jt.lower, jt.upper)
        qf = rng.uniform(finger_range[:, 0], finger_range[:, 1])
        root_xyz, root_quat = rng.normal(size=3), Rotation.random(random_state=rng).as_quat()  # x, y, z, w
        data.qpos[:] = 0.0
        data.qpos[idx.root_qpos] = [*root_xyz, *np.roll(root_quat, 1)]
        data.qpos[idx.qpos] = q
        data.qpos[idx.gripper_qpos] = qf
        mujoco.mj_kinematics(model, data)
        frames = _mujoco_frames(model, data)
        # the JointState path: names and positions as the hardware interface publishes them (+ fingers)
        positions = tree.positions([*jt.names, *fingers], [*q, *qf])
        poses = tree.link_poses(positions, pose_matrix(root_xyz, root_quat))
        for link, pose in poses.items():
            # URDF links are MuJoCo bodies of the same name, the fixed links (hands, feet, imu) its sites
            if link not in frames:
                continue
            checked.add(link)
            np.testing.assert_allclose(pose[:3, 3], frames[link][:3, 3], atol=1e-5, err_msg=f"{link} position")
            np.testing.assert_allclose(pose[:3, :3], frames[link][:3, :3], atol=1e-5, err_msg=f"{link} rotation")
    # every link of the URDF was compared (a renamed body would otherwise drop out silently)
    assert checked == set(poses), sorted(set(poses) - checked)
    # and the TF edges the node publishes compose to those same poses
    edges = {t.child: t for t in [*tree.fixed, *tree.movable(positions)]}
    composed = {tree.root: pose_matrix(root_xyz, root_quat)}
    while len(composed) < len(poses):
        for child, t in edges.items():
            if t.parent in composed and child not in composed:
                composed[child] = composed[t.parent] @ matrix(t)
    for link, pose in poses.items():
        np.testing.assert_allclose(composed[link], pose, atol=1e-9, err_msg=link)


def test_wrong_axis_sign_is_caught(tree):
    """The comparison above would fail on a flipped joint axis (guards against a vacuous test)."""
    jt = load_joint_table()
    q = tree.positions(jt.names, jt.default_q + 0.3)
    good = tree.link_poses(q)
    tree._axis[0] *= -1
    try:
        bad = tree.link_poses(q)
    finally:
        tree._axis[0] *= -1
    assert max(np.abs(good[link] - bad[link]).max() for link in good) > 1e-3


def test_fixed_joints_are_static_and_unknown_joints_named(tree):
    assert {t.child for t in tree.fixed} >= {"left_hand", "right_hand", "left_foot", "right_foot", "imu"}
    assert len(tree.joint_names) == 33  # 29 motors + 4 gripper fingers
    with pytest.raises(KeyError, match="Left_Knee"):
        tree.positions(["Left_Knee"], [0.0])


def test_level_base_pose_puts_the_lower_sole_on_the_floor(tree):
    jt = load_joint_table()
    q = tree.positions(jt.names, jt.default_q)
    poses = tree.link_poses(q, level_base_pose(q, tree, ("left_foot", "right_foot")))
    assert min(poses["left_foot"][2, 3], poses["right_foot"][2, 3]) == pytest.approx(0.0, abs=1e-12)
    assert poses["Trunk"][2, 3] > 0.5


@pytest.mark.ros
def test_node_publishes_description_and_tf_from_joint_states():
    """rviz_publisher as a process: a JointState in, TF with every link frame out, the URDF on
    /robot_description for a subscriber that joins late (transient local), a MoCap trunk as world->base_link."""
    from geometry_msgs.msg import Pose
    from procs import python_process, spinning_node, wait_for
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from refine_dp_msgs.msg import ObjectState, ObjectStateArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    jt = load_joint_table()
    q = jt.default_q + 0.2
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    tf, tf_static, markers, description = [], [], [], []
    with spinning_node("rviz_publisher_test") as node:
        js_pub = node.create_publisher(JointState, "joint_states", 1)
        obj_pub = node.create_publisher(ObjectStateArray, "objects", 1)
        node.create_subscription(TFMessage, "/tf", tf.append, 10)
        node.create_subscription(MarkerArray, "/refine_dp/markers", markers.append, 10)
        trunk = ObjectState(name="t1_trunk", tracked=True, pose=Pose())
        trunk.pose.position.x, trunk.pose.position.z, trunk.pose.orientation.w = 1.5, 0.7, 1.0
        with python_process(["-m", "refine_dp.rviz_publisher"]):
            def publish() -> bool:
                obj_pub.publish(ObjectStateArray(objects=[trunk]))
                js_pub.publish(JointState(name=list(jt.names), position=[float(v) for v in q]))
                return len(tf) > 0 and len(markers) > 0
            assert wait_for(publish, timeout=40, period=0.05), "no /tf and markers from rviz_publisher"
            # late joiners: the description and the static transforms were published long before
            node.create_subscription(String, "/robot_description", description.append, latched)
            node.create_subscription(TFMessage, "/tf_static", tf_static.append, latched)
            assert wait_for(lambda: description and tf_static, timeout=20), "no transient-local description/static TF"
    assert description[0].data == urdf_path().read_text()
    tree = RobotTF(parse_urdf(urdf_path()))
    moving = {t.child_frame_id: t for t in tf[-1].transforms}
    static = {t.child_frame_id: t for t in tf_static[0].transforms}
    assert set(moving) == {"base_link", *tree.children}
    assert set(static) == {"Trunk", *(t.child for t in tree.fixed)}
    assert moving["base_link"].header.frame_id == "world"
    assert moving["base_link"].transform.translation.x == pytest.approx(1.5)  # from the MoCap trunk
    # the published knee transform is the URDF's at the published angle
    knee = jt.names.index("Left_Knee_Pitch")
    expected = {t.child: t for t in tree.movable(tree.positions(jt.names, q))}
    child = tree.children[tree.joint_names.index(jt.names[knee])]
    r = moving[child].transform.rotation
    np.testing.assert_allclose([r.x, r.y, r.z, r.w], expected[child].quat_xyzw, atol=1e-9)
    namespaces = {m.ns for m in markers[-1].markers}
    assert {"hand_measured", "status"} <= namespaces


def test_vendored_tf_message_is_the_upstream_type():
    """ros2_ws/vendor/tf2_msgs must be byte-for-byte the ROS type, or rviz on a ROS install would not
    match our /tf: its RIHS01 type hash is the one `ros2 topic info -v /tf` shows on Jazzy/Kilted."""
    import json
    import sys
    from pathlib import Path
    description = Path(sys.prefix) / "share" / "tf2_msgs" / "msg" / "TFMessage.json"
    hashes = json.loads(description.read_text())["type_hashes"]
    assert next(h["hash_string"] for h in hashes if h["type_name"] == "tf2_msgs/msg/TFMessage") == \
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def test_rviz_config_shows_the_published_topics():
    import py_compile
    from pathlib import Path

    import yaml
    pkg = Path(__file__).resolve().parent.parent / "ros2_ws" / "src" / "refine_dp"
    config = yaml.safe_load((pkg / "rviz" / "refine_dp.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "world"
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert displays["rviz_default_plugins/RobotModel"]["Description Topic"]["Value"] == "/robot_description"
    assert displays["rviz_default_plugins/RobotModel"]["Description Topic"]["Durability Policy"] == "Transient Local"
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "/refine_dp/markers"
    assert "rviz_default_plugins/TF" in displays
    assert '"rviz/refine_dp.rviz"' in (pkg / "setup.py").read_text()  # installed into share/ like config/
    launch = pkg / "launch" / "bringup.launch.py"
    py_compile.compile(str(launch), doraise=True)
    assert 'DeclareLaunchArgument("rviz"' in launch.read_text() and '"refine_dp.rviz"' in launch.read_text()
