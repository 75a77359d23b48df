"""ObjectTracker: root-frame transform (also end to end over NatNet), velocities, lost bodies."""

import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_bridge import natnet_protocol as nn
from mocap_bridge.client import NatNetClient, NatNetClientConfig
from mocap_bridge.tracker import ObjectTracker, TrackerConfig, load_tracker_config
from t1_sim.natnet_server import NatNetServer

NAMES = {1: "t1_trunk", 2: "box"}
TRUNK_P = np.array([1.0, -0.5, 0.7])
TRUNK_R = Rotation.from_euler("ZYX", [35.0, 8.0, -4.0], degrees=True)  # yaw, pitch, roll
BOX_IN_ROOT_P = np.array([0.45, 0.1, -0.2])
BOX_IN_ROOT_R = Rotation.from_euler("ZYX", [-20.0, 0.0, 90.0], degrees=True)


def wxyz(rot):
    x, y, z, w = rot.as_quat()
    return (w, x, y, z)


def angle_deg(q1_xyzw, rot):
    return np.rad2deg((Rotation.from_quat(q1_xyzw) * rot.inv()).magnitude())


def rb(bid, pos, rot, tracked=True):
    return nn.RigidBody(bid, tuple(pos), tuple(rot.as_quat()), 0.0, 1 if tracked else 0)


def by_name(estimates):
    return {e.name: e for e in estimates}


@pytest.mark.timeout(30)
def test_box_pose_in_rotated_translated_trunk_frame_end_to_end():
    box_p = TRUNK_P + TRUNK_R.apply(BOX_IN_ROOT_P)
    box_r = TRUNK_R * BOX_IN_ROOT_R
    bodies = [("t1_trunk", 1, TRUNK_P, wxyz(TRUNK_R)), ("box", 2, box_p, wxyz(box_r))]
    tracker = ObjectTracker(TrackerConfig())
    out = []
    server = NatNetServer(lambda: bodies, command_port=0, data_port=0).start()
    client = NatNetClient(
        NatNetClientConfig(command_port=server.command_port),
        on_frame=lambda f, names, t: out.append(tracker.update(f, names)),
    ).start()
    try:
        assert client.wait_connected(3.0)
        time.sleep(0.4)
    finally:
        client.stop()
        server.stop()
    est = by_name(out[-1])
    box = est["box"]
    assert box.tracked and box.root_valid
    assert np.linalg.norm(box.position_in_root - BOX_IN_ROOT_P) < 1e-3
    assert angle_deg(box.quat_in_root_xyzw, BOX_IN_ROOT_R) < 0.5
    assert np.linalg.norm(box.position - box_p) < 1e-3
    trunk = est["t1_trunk"]
    assert np.linalg.norm(trunk.position_in_root) < 1e-6 and angle_deg(trunk.quat_in_root_xyzw, Rotation.identity()) < 1e-3
    assert np.linalg.norm(box.linear_velocity) < 1e-3  # static scene


def test_velocity_from_source_timestamps_with_low_pass():
    tracker = ObjectTracker(TrackerConfig(velocity_time_constant_s=0.03))
    v = np.array([0.5, -0.2, 0.1])
    w = np.array([0.0, 0.3, 1.0])  # rad/s, world
    r0 = Rotation.from_euler("z", 10, degrees=True)
    dt = 1 / 90
    for k in range(60):
        t = 100.0 + k * dt
        pos = np.array([0.2, 0.0, 0.5]) + v * (t - 100.0)
        rot = Rotation.from_rotvec(w * (t - 100.0)) * r0
        frame = nn.FrameOfData(k + 1, rigid_bodies=[rb(2, pos, rot)], timestamp=t)
        box = by_name(tracker.update(frame, NAMES))["box"]
    assert np.allclose(box.linear_velocity, v, atol=1e-3)  # float32 positions: ~1e-4 noise
    assert np.allclose(box.angular_velocity, w, atol=5e-3)
    assert box.source_time == pytest.approx(100.0 + 59 * dt)
    # the low-pass lags a step: after one sample of a new velocity it has moved a = dt/(tau+dt)
    pos2 = pos + 2 * v * dt
    frame = nn.FrameOfData(61, rigid_bodies=[rb(2, pos2, rot)], timestamp=t + dt)
    box = by_name(tracker.update(frame, NAMES))["box"]
    a = dt / (0.03 + dt)
    assert np.allclose(box.linear_velocity, v + a * v, atol=2e-3)


def test_lost_body_holds_pose_and_zeroes_velocity_and_trunk_loss_invalidates_root():
    tracker = ObjectTracker(TrackerConfig())
    p = np.array([2.0, 1.0, 0.5])
    r = Rotation.from_euler("z", 30, degrees=True)
    ident = Rotation.identity()
    for k in range(5):
        f = nn.FrameOfData(k, rigid_bodies=[rb(1, [0, 0, 0.7], ident), rb(2, p + [0.01 * k, 0, 0], r)], timestamp=k / 90)
        tracker.update(f, NAMES)
    held = p + [0.04, 0, 0]
    lost = nn.FrameOfData(5, rigid_bodies=[rb(1, [0, 0, 0.7], ident, False), rb(2, [0, 0, 0], ident, False)], timestamp=5 / 90)
    est = by_name(tracker.update(lost, NAMES))
    box = est["box"]
    assert not box.tracked and not box.root_valid
    assert np.allclose(box.position, held) and angle_deg(box.quat_xyzw, r) < 1e-6
    assert np.allclose(box.position_in_root, held - [0, 0, 0.7])  # held trunk pose still used
    assert not np.any(box.linear_velocity)
    # reacquired 1 s later, far away: no velocity spike from differencing across the gap
    back = nn.FrameOfData(6, rigid_bodies=[rb(1, [0, 0, 0.7], ident), rb(2, p + [1.0, 0, 0], r)], timestamp=1.0)
    box = by_name(tracker.update(back, NAMES))["box"]
    assert box.tracked and box.root_valid and not np.any(box.linear_velocity)


def test_nonfinite_and_unmapped_bodies():
    tracker = ObjectTracker(TrackerConfig())
    f = nn.FrameOfData(1, rigid_bodies=[rb(2, [0, 0, 0], Rotation.identity()), nn.RigidBody(3, (0, 0, 0), (0, 0, 0, 1))])
    tracker.update(f, {2: "box", 3: "chair"})
    nan = nn.FrameOfData(2, rigid_bodies=[nn.RigidBody(2, (float("nan"), 0, 0), (0, 0, 0, 1))], timestamp=0.01)
    box = by_name(tracker.update(nan, {2: "box"}))["box"]
    assert not box.tracked and np.all(np.isfinite(box.position))
    assert tracker.nonfinite_poses == 1
    assert tracker.unmapped_bodies == {"chair"}
    assert ObjectTracker(TrackerConfig(publish_unmapped=True)).object_name("chair") == "chair"


def test_body_map_yaml(tmp_path):
    cfg = load_tracker_config()  # the packaged example
    assert cfg.trunk_body == "t1_trunk" and cfg.body_to_object["box"] == "box"
    path = tmp_path / "bodies.yaml"
    path.write_text("bodies:\n  RobotBase: robot\n  Box01: box\ntrunk_body: RobotBase\nvelocity_time_constant_s: 0.05\n")
    cfg = load_tracker_config(path, velocity_time_constant_s=None)
    assert cfg.body_to_object == {"RobotBase": "robot", "Box01": "box"}
    assert cfg.trunk_body == "RobotBase" and cfg.velocity_time_constant_s == 0.05
    assert load_tracker_config(path, trunk_body="Other").trunk_body == "Other"
    with pytest.raises(FileNotFoundError, match="body_map_file"):
        load_tracker_config(tmp_path / "missing.yaml")
    path.write_text("bodies: [a, b]\n")
    with pytest.raises(ValueError, match="must map"):
        load_tracker_config(path)


def test_y_up_mocap_world_is_converted_to_z_up_in_one_place():
    """A Y-up server (Motive's default) + up_axis y in the body map give the Z-up world poses."""
    box_p = TRUNK_P + TRUNK_R.apply(BOX_IN_ROOT_P)
    box_r = TRUNK_R * BOX_IN_ROOT_R
    bodies = [("t1_trunk", 1, TRUNK_P, wxyz(TRUNK_R)), ("box", 2, box_p, wxyz(box_r))]
    frame = NatNetServer(lambda: bodies, up_axis="y_up").make_frame()
    trunk_wire = frame.rigid_bodies[0]
    assert abs(trunk_wire.position[1] - TRUNK_P[2]) < 1e-9  # on the wire the height is y
    est = by_name(ObjectTracker(TrackerConfig(up_axis="y_up")).update(frame, NAMES))
    np.testing.assert_allclose(est["t1_trunk"].position, TRUNK_P, atol=1e-9)
    assert angle_deg(est["t1_trunk"].quat_xyzw, TRUNK_R) < 1e-6
    np.testing.assert_allclose(est["box"].position_in_root, BOX_IN_ROOT_P, atol=1e-9)
    assert angle_deg(est["box"].quat_in_root_xyzw, BOX_IN_ROOT_R) < 1e-6
    # the same frame read as Z-up is visibly wrong: the conversion is not a no-op
    wrong = by_name(ObjectTracker(TrackerConfig(up_axis="z_up")).update(frame, NAMES))
    assert np.linalg.norm(wrong["t1_trunk"].position - TRUNK_P) > 0.5


def test_body_offset_moves_the_rigid_body_pose_to_the_object_frame(tmp_path):
    """Markers on the trunk's back: the rigid body sits 12 cm behind and 20 cm above the link origin,
    turned 90 deg in yaw; the offset in bodies.yaml brings the published pose to the link."""
    path = tmp_path / "bodies.yaml"
    path.write_text(
        "mocap_bridge:\n  up_axis: y_up\n  trunk_body: t1_trunk\n  bodies:\n"
        "    t1_trunk: {object: t1_trunk, offset: {xyz: [0.0, 0.12, -0.2], rpy_deg: [0, 0, -90]}}\n"
        "    box: box\n")
    cfg = load_tracker_config(path)
    assert cfg.up_axis == "y_up" and cfg.body_to_object == {"t1_trunk": "t1_trunk", "box": "box"}
    # the rigid body frame, from the link frame: link = rb * offset  =>  rb = link * offset^-1
    off_p, off_r = np.array([0.0, 0.12, -0.2]), Rotation.from_euler("z", -90, degrees=True)
    rb_r = TRUNK_R * off_r.inv()
    rb_p = TRUNK_P - rb_r.apply(off_p)
    frame = NatNetServer(lambda: [("t1_trunk", 1, rb_p, wxyz(rb_r))], up_axis="y_up").make_frame()
    est = by_name(ObjectTracker(cfg).update(frame, NAMES))["t1_trunk"]
    np.testing.assert_allclose(est.position, TRUNK_P, atol=1e-6)
    assert angle_deg(est.quat_xyzw, TRUNK_R) < 1e-4


@pytest.mark.parametrize("text, match", [
    ("mocap_bridge:\n  up_axis: x\n", "up_axis must be one of"),
    ("mocap_bridge:\n  bodies:\n    t1_trunk: {offset: {xyz: [0, 0, 0]}}\n", "bodies.t1_trunk must be"),
    ("mocap_bridge:\n  bodies:\n    t1_trunk: {object: t, offset: {xyz: [0, 0]}}\n", "bodies.t1_trunk.offset"),
    ("mocap_bridge:\n  bodies:\n    t1_trunk: {object: t, offset: {quat: [0, 0, 0, 1]}}\n", "bodies.t1_trunk.offset"),
])
def test_bad_up_axis_or_offset_is_named(tmp_path, text, match):
    path = tmp_path / "bodies.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_tracker_config(path)


def test_packaged_body_map_loads():
    cfg = load_tracker_config()
    assert cfg.up_axis == "z_up" and "t1_trunk" in cfg.body_offsets
