"""NatNetServer -> NatNetClient over loopback UDP on ephemeral ports."""

import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocap_bridge import natnet_protocol as nn
from mocap_bridge.client import NatNetClient, NatNetClientConfig
from t1_sim.natnet_server import NatNetServer

TRUNK = ("t1_trunk", 1, (0.1234567, -2.5, 0.7), (0.9659258, 0.0, 0.0, 0.2588190))  # w, x, y, z
BOX = ("box", 2, (1.5, 0.25, 0.8765432), (0.5, 0.5, 0.5, 0.5))


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.frames = []

    def __call__(self, frame, names, t):
        with self.lock:
            self.frames.append((frame, dict(names), t))


def start_pair(server_kwargs=None, client_kwargs=None, bodies=(TRUNK, BOX)):
    bodies = list(bodies)
    server = NatNetServer(lambda: bodies, command_port=0, data_port=0, **(server_kwargs or {})).start()
    rec = Recorder()
    cfg = NatNetClientConfig(command_port=server.command_port, **(client_kwargs or {}))
    client = NatNetClient(cfg, on_frame=rec).start()
    return server, client, rec, bodies


@pytest.mark.timeout(30)
def test_frames_arrive_at_90hz_with_poses_intact():
    server, client, rec, _ = start_pair()
    try:
        assert client.wait_connected(3.0)
        time.sleep(1.2)
    finally:
        client.stop()
        server.stop()
    frames = [f for f in rec.frames if f[1]]  # after MODELDEF arrived
    assert len(frames) > 80
    recv_t = np.array([t for _, _, t in frames])
    rate = (len(recv_t) - 1) / (recv_t[-1] - recv_t[0])
    assert 80.0 < rate < 100.0, rate
    src_t = np.array([f.timestamp for f, _, _ in frames])
    assert np.allclose(np.diff(src_t).mean(), 1 / 90, rtol=0.1)
    numbers = [f.frame_number for f, _, _ in frames]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    frame, names, _ = frames[-1]
    assert names == {1: "t1_trunk", 2: "box"}
    for (name, bid, pos, wxyz), rb in zip((TRUNK, BOX), frame.rigid_bodies):
        assert rb.id == bid and rb.tracked
        assert rb.position == tuple(float(np.float32(p)) for p in pos)  # float32 on the wire
        w, x, y, z = wxyz
        expected = Rotation.from_quat([x, y, z, w]).as_quat()
        assert np.allclose(rb.quaternion_xyzw, expected, atol=1e-7)  # x, y, z, w order
    c = client.counters
    assert c.malformed == c.truncated == c.out_of_order == c.repeated == 0
    assert c.connects == 1 and c.modeldefs >= 1


def test_noise_and_seed():
    bodies = [BOX]
    s1 = NatNetServer(lambda: bodies, noise_pos_std=0.01, noise_rot_std_deg=2.0, seed=3)
    s2 = NatNetServer(lambda: bodies, noise_pos_std=0.01, noise_rot_std_deg=2.0, seed=3)
    pos_err, rot_err = [], []
    true_rot = Rotation.from_quat([0.5, 0.5, 0.5, 0.5])
    for _ in range(400):
        rb = s1.make_frame().rigid_bodies[0]
        assert rb.position == s2.make_frame().rigid_bodies[0].position  # same seed, same noise
        pos_err.append(np.subtract(rb.position, BOX[2]))
        rot_err.append((Rotation.from_quat(rb.quaternion_xyzw) * true_rot.inv()).as_rotvec())
    pos_std = np.std(pos_err, axis=0)
    rot_std_deg = np.rad2deg(np.std(rot_err, axis=0))
    assert np.all(np.abs(pos_std - 0.01) < 0.0025), pos_std
    assert np.all(np.abs(rot_std_deg - 2.0) < 0.5), rot_std_deg
    clean = NatNetServer(lambda: bodies).make_frame().rigid_bodies[0]
    assert np.allclose(clean.position, BOX[2])


def test_dropout_marks_bodies_untracked():
    server = NatNetServer(lambda: [TRUNK, BOX], dropout_prob=0.3, seed=1)
    bodies = [rb for _ in range(500) for rb in server.make_frame().rigid_bodies]
    lost = [rb for rb in bodies if not rb.tracked]
    assert 0.25 < len(lost) / len(bodies) < 0.35
    assert all(rb.params & nn.RIGID_BODY_TRACKED == 0 and rb.position == (0.0, 0.0, 0.0) for rb in lost)
    assert {rb.id for rb in lost} == {1, 2}


@pytest.mark.timeout(30)
def test_multicast_frames_reach_a_client_bound_to_the_data_port():
    from t1_sim import natnet_server

    group = "239.255.42.99"
    port = natnet_server._free_udp_port("127.0.0.1")
    bodies = [TRUNK]
    server = NatNetServer(lambda: bodies, command_port=0, data_port=port, multicast=group)
    rec = Recorder()
    try:
        server.start()
        client = NatNetClient(
            NatNetClientConfig(
                command_port=server.command_port, data_port=port, multicast_group=group,
                local_address="127.0.0.1",
            ),
            on_frame=rec,
        ).start()
    except OSError as e:
        server.stop()
        pytest.skip(f"no multicast on loopback here: {e}")
    try:
        assert client.wait_connected(3.0)
        time.sleep(0.6)
    finally:
        client.stop()
        server.stop()
    assert len(rec.frames) > 30
    assert client.server_info.is_multicast and client.server_info.multicast_group == group
    assert client.server_info.data_port == port
    assert rec.frames[-1][1] == {1: "t1_trunk"}


@pytest.mark.timeout(30)
def test_reconnects_after_server_restart_and_follows_model_changes():
    server, client, rec, bodies = start_pair(client_kwargs={"frame_timeout_s": 0.3, "connect_retry_s": 0.1})
    port = server.command_port
    try:
        assert client.wait_connected(3.0)
        time.sleep(0.3)
        server.stop()
        time.sleep(0.6)
        assert client.counters.reconnects >= 1 and not client.connected
        n_before = len(rec.frames)
        server = NatNetServer(lambda: bodies, command_port=port, data_port=0).start()
        assert client.wait_connected(3.0)
        time.sleep(0.3)
        assert len(rec.frames) - n_before > 10  # frame numbers restarted at 1 and were accepted
        assert client.counters.connects == 2
        bodies.append(("cup", 3, (0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 0.0)))
        time.sleep(0.4)
        assert rec.frames[-1][1] == {1: "t1_trunk", 2: "box", 3: "cup"}
    finally:
        client.stop()
        server.stop()


def test_repeated_and_out_of_order_frames_are_counted_and_dropped():
    got = []
    client = NatNetClient(NatNetClientConfig(), on_frame=lambda f, n, t: got.append(f.frame_number))
    client.handle_datagram(nn.pack_server_info(nn.ServerInfo("x", (1, 0, 0, 0), (4, 1, 0, 0))))
    for n in (10, 11, 11, 9, 12, 5000, 100):  # 100 after 5000: server reset
        client.handle_datagram(nn.pack_frame(nn.FrameOfData(n)))
    assert got == [10, 11, 12, 5000, 100]
    c = client.counters
    assert (c.repeated, c.out_of_order, c.frame_resets) == (1, 1, 1)
    client.handle_datagram(nn.pack_frame(nn.FrameOfData(101, rigid_bodies=[nn.RigidBody(42, (0, 0, 0), (0, 0, 0, 1))])))
    assert c.unknown_bodies == 1
