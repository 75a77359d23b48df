"""sim_t1 behaves like the robot at the wire, and serves MoCap the mocap_bridge understands."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation

from procs import free_udp_ports, python_process, ros_args, spinning_node, wait_for

pytestmark = pytest.mark.ros
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


def _stop_and_report(proc, run_dir) -> dict:
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=15)
    return json.loads((run_dir / "reports" / "sim_t1.json").read_text())


@pytest.fixture
def ros_node():
    with spinning_node("sim_t1_test") as node:
        yield node


def test_low_state_rate_and_motor_law_from_the_wire(tmp_path, ros_node):
    """With a held LowCmd at the default pose the robot stands; LowState comes every 2 ms of sim time."""
    from booster_interface.msg import LowCmd, LowState, MotorCmd
    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    cmd = LowCmd(cmd_type=LowCmd.CMD_TYPE_SERIAL, motor_cmd=[
        MotorCmd(q=float(q), kp=float(kp), kd=float(kd), weight=1.0) for q, kp, kd in zip(jt.default_q, jt.kp, jt.kd)])
    states: list[float] = []
    import time
    cmd_pub = ros_node.create_publisher(LowCmd, "joint_ctrl", BEST_EFFORT)
    ros_node.create_subscription(LowState, "low_state", lambda m: states.append(time.monotonic()), BEST_EFFORT)
    timer = ros_node.create_timer(0.01, lambda: cmd_pub.publish(cmd))  # noqa: F841  (a 100 Hz controller)
    cmd_port, = free_udp_ports(1)
    with python_process(["-m", "t1_sim.sim_t1",
                         *ros_args(scene="floor", natnet_command_port=cmd_port, snapshot=False,
                                   command_timeout=0.5)],  # a loaded CI machine may stall this test's publisher
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        (tmp_path / "reports").mkdir()
        assert wait_for(lambda: len(states) > 0, timeout=20), "no LowState from sim_t1"
        start = len(states)
        wait_for(lambda: False, timeout=4.0)
        report = _stop_and_report(sim, tmp_path)
    # one LowState per 2 ms of simulated time (the wall-clock rate is a benchmark's business:
    # `refine-dp bench robot` and the demo summary report it)
    per_sim_second = report["low_state_published_while_running"] / report["sim_time_s"]
    assert 495 < per_sim_second < 505, per_sim_second
    assert len(states) - start > 100, "LowState did not keep arriving"
    assert report["commands"] > 100 and not report["fell"]
    assert abs(report["final_trunk_height_m"] - 0.667) < 0.03, report


def test_without_commands_the_robot_goes_limp(tmp_path):
    """No LowCmd: damping mode, as the robot does; an unsupported T1 collapses."""
    cmd_port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    with python_process(["-m", "t1_sim.sim_t1",
                         *ros_args(scene="floor", natnet_command_port=cmd_port, snapshot=False,
                                   wait_for_command=False)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        wait_for(lambda: False, timeout=4.0)
        report = _stop_and_report(sim, tmp_path)
    assert report["commands"] == 0 and report["fell"], report


def test_mocap_bridge_reports_a_moved_box_in_world_and_root_frames(tmp_path, ros_node):
    from geometry_msgs.msg import PoseStamped
    from refine_dp_msgs.msg import ObjectStateArray

    cmd_port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    target_pos = np.array([0.70, 0.12, 0.765])  # resting on the table top
    target_rot = Rotation.from_euler("z", 30, degrees=True)
    latest: dict = {}
    ros_node.create_subscription(ObjectStateArray, "objects",
                                 lambda m: latest.update({o.name: o for o in m.objects}), BEST_EFFORT)
    pose_pub = ros_node.create_publisher(PoseStamped, "sim_t1/set_object_pose", 10)
    spin = None
    with python_process(["-m", "t1_sim.sim_t1",
                         *ros_args(scene="table_box", natnet_command_port=cmd_port, snapshot=False)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim, \
         python_process(["-m", "mocap_bridge.node", *ros_args(command_port=cmd_port)]):
        assert wait_for(lambda: "box" in latest and "t1_trunk" in latest, timeout=20, spin=spin), latest.keys()
        wait_for(lambda: False, timeout=3.0, spin=spin)  # the limp robot settles on the floor
        msg = PoseStamped()
        msg.header.frame_id = "box"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = target_pos
        x, y, z, w = target_rot.as_quat()
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = x, y, z, w

        def box_at_target() -> bool:
            pose_pub.publish(msg)
            box = latest.get("box")
            return box is not None and np.linalg.norm(_pos(box.pose) - target_pos) < 1e-3
        assert wait_for(box_at_target, timeout=10, spin=spin), _pos(latest["box"].pose)
        wait_for(lambda: False, timeout=0.5, spin=spin)
        box = latest["box"]
        report = _stop_and_report(sim, tmp_path)

    assert box.tracked and box.root_valid
    natnet = report["natnet"]  # the report's NatNet section: frames, clients, drops
    assert natnet["frames_sent"] > 100 and natnet["clients_connected"] >= 1 and len(natnet["clients"]) >= 1
    assert natnet["transport"] == "unicast" and natnet["send_errors"] == 0 and natnet["bodies_dropped"] == 0
    np.testing.assert_allclose(_pos(box.pose), target_pos, atol=1e-3)
    assert _angle_deg(_rot(box.pose), target_rot) < 0.5
    # root frame: from the simulator's own (settled) trunk pose
    trunk_pos = np.array(report["final_trunk_position_m"])
    trunk_rot = Rotation.from_quat(report["final_trunk_quat_wxyz"], scalar_first=True)
    expected_pos = trunk_rot.inv().apply(target_pos - trunk_pos)
    expected_rot = trunk_rot.inv() * target_rot
    np.testing.assert_allclose(_pos(box.pose_in_root), expected_pos, atol=1e-3)
    assert _angle_deg(_rot(box.pose_in_root), expected_rot) < 0.5


def _pos(pose) -> np.ndarray:
    return np.array([pose.position.x, pose.position.y, pose.position.z])


def _rot(pose) -> Rotation:
    o = pose.orientation
    return Rotation.from_quat([o.x, o.y, o.z, o.w])


def _angle_deg(a: Rotation, b: Rotation) -> float:
    return float(np.degrees((a.inv() * b).magnitude()))


def test_sigint_and_sigterm_stop_sim_t1_cleanly_every_time(tmp_path, ros_node):
    """Repeated start/stop with commands flowing, as the bringup runner stops it (SIGINT, then
    SIGTERM): exit status 0 and no error on the way out. It used to let rclpy shut the context down
    under the running loop, whose next publish raised RCLError (exit 1)."""
    from booster_interface.msg import LowCmd, LowState, MotorCmd
    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    cmd = LowCmd(cmd_type=LowCmd.CMD_TYPE_SERIAL, motor_cmd=[
        MotorCmd(q=float(q), kp=float(kp), kd=float(kd), weight=1.0) for q, kp, kd in zip(jt.default_q, jt.kp, jt.kd)])
    cmd_pub = ros_node.create_publisher(LowCmd, "joint_ctrl", BEST_EFFORT)
    timer = ros_node.create_timer(0.002, lambda: cmd_pub.publish(cmd))  # noqa: F841  (as the interface: 500 Hz)
    states: list = []
    ros_node.create_subscription(LowState, "low_state", states.append, BEST_EFFORT)
    for run, sig in enumerate((signal.SIGINT, signal.SIGTERM) * 3):
        cmd_port, = free_udp_ports(1)
        states.clear()
        with python_process(["-m", "t1_sim.sim_t1", *ros_args(natnet_command_port=cmd_port, snapshot=False)],
                            env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
            assert wait_for(lambda: len(states) > 10, timeout=30), f"run {run}: no LowState"
            wait_for(lambda: False, timeout=0.5)  # physics running under the commands
            os.killpg(sim.pid, sig)
            rc = sim.wait(timeout=15)
            out = sim.stdout.read()
        assert rc == 0, f"run {run} ({sig.name}): exit status {rc}\n{out[-3000:]}"
        assert "Traceback" not in out and "RCLError" not in out, out[-3000:]


def test_low_state_before_the_first_command_is_a_settled_robot(tmp_path, ros_node):
    """Physics waits for the first LowCmd, but the robot it holds stands on the floor: the IMU reads
    gravity, and motor_state_parallel carries the ankles in motor space (the crank motors)."""
    from booster_interface.msg import LowState
    from t1_description.ankle import load_parallel_ankles

    latest: list = []
    ros_node.create_subscription(LowState, "low_state", latest.append, BEST_EFFORT)
    cmd_port, = free_udp_ports(1)
    with python_process(["-m", "t1_sim.sim_t1", *ros_args(natnet_command_port=cmd_port, snapshot=False)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}):
        assert wait_for(lambda: len(latest) > 0, timeout=30), "no LowState"
        msg = latest[-1]
    acc = np.array(msg.imu_state.acc)
    assert abs(np.linalg.norm(acc) - 9.81) < 0.15 and acc[2] > 9.5, acc
    serial = np.array([m.q for m in msg.motor_state_serial])
    parallel = np.array([m.q for m in msg.motor_state_parallel])
    ankles = load_parallel_ankles()
    for leg, (i, j) in enumerate(ankles.indices):
        np.testing.assert_allclose(parallel[[i, j]], ankles.linkage(leg).ik(serial[[i, j]]), atol=1e-5)
    others = np.setdiff1d(np.arange(29), ankles.indices.reshape(-1))
    np.testing.assert_array_equal(parallel[others], serial[others])


def test_a_23_motor_low_cmd_is_refused_at_start_up_by_name(tmp_path, ros_node):
    """The SDK's default joint count (23) is the 23-DoF T1: sim_t1 (29-DoF) says so and exits 1."""
    from booster_interface.msg import LowCmd, MotorCmd

    cmd = LowCmd(cmd_type=LowCmd.CMD_TYPE_PARALLEL, motor_cmd=[MotorCmd() for _ in range(23)])
    pub = ros_node.create_publisher(LowCmd, "joint_ctrl", BEST_EFFORT)
    timer = ros_node.create_timer(0.02, lambda: pub.publish(cmd))  # noqa: F841
    cmd_port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    with python_process(["-m", "t1_sim.sim_t1", *ros_args(natnet_command_port=cmd_port, snapshot=False)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        rc = sim.wait(timeout=40)
        out = sim.stdout.read()
    assert rc == 1, out[-3000:]
    assert "23 motors" in out and "23-DoF T1" in out and "29-DoF T1" in out, out[-3000:]
    report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    assert report["fatal"] and report["commands"] == 0 and report["sim_time_s"] == 0.0


def test_robot_start_object_track_and_video(tmp_path):
    """robot_start moves the settled robot; the report tracks the box; video:=true writes a GIF."""
    from PIL import Image

    cmd_port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    with python_process(["-m", "t1_sim.sim_t1",
                         *ros_args(scene="table_box", natnet_command_port=cmd_port, snapshot=False,
                                   wait_for_command=False, robot_start=[-0.3, 0.05, 0.2], video=True,
                                   video_period_s=0.1)],
                        env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        wait_for(lambda: False, timeout=4.0)
        report = _stop_and_report(sim, tmp_path)
    assert report["robot_start"] == [-0.3, 0.05, 0.2]
    x, y = report["walk"]["path"][0][1:3]  # the first trunk sample, before the limp robot sinks far
    assert abs(x + 0.3) < 0.05 and abs(y - 0.05) < 0.05, report["walk"]["path"][:2]
    box = report["objects"]["box"]
    np.testing.assert_allclose(box["start_pos_m"], [0.6, 0.0, 0.765], atol=0.002)  # resting on the table
    assert len(box["height"]) >= 5 and box["max_z_m"] < 0.77
    video = report["video"]
    assert video["frames"] >= 5 and "error" not in video, video
    gif = Image.open(video["path"])
    assert gif.size == (320, 240) and 2 <= gif.n_frames <= video["frames"]  # (pillow merges equal frames)
    gif.seek(1)
    assert gif.info["duration"] > 0 and gif.info["duration"] % 100 == 0  # ms: real time at video_period_s 0.1
