"""NatNet as Motive speaks it, checked with a client the project did not write: OptiTrack's own
Python NatNet client (PyPI natnetsdk, the SDK's NatNetClient.py), in unicast and in multicast.

Why this client: it is the vendor's reference implementation; it takes the server address, the
command/data ports and the multicast group as settings, so it runs on ephemeral test ports.
(PyPI `motioncapture` cannot set the data port or group; `natnet` 0.3.0 has no Bitstream or
multicast-group setting: mocap_bridge/natnet_protocol.py says more.)
Two quirks of that client are worked around here, not in the server: its shutdown() joins threads
blocked in recvfrom, so the sockets are woken first; and in multicast it binds its data socket to
its local address, which on Linux receives multicast only when that address is 0.0.0.0.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket

import numpy as np
import pytest

from mocap_bridge.client import NatNetClient as BridgeClient
from mocap_bridge.client import NatNetClientConfig
from procs import free_udp_ports, python_process, ros_args, wait_for
from t1_sim.natnet_server import NatNetServer

import natnetsdk.NatNetClient as natnetsdk  # noqa: E402  (requirements.txt: natnetsdk==4.1.1)

TRUNK = ("t1_trunk", 1, (0.25, -0.5, 0.667), (0.9659258, 0.0, 0.0, 0.2588190))  # w, x, y, z


def _vendor_client(command_port: int, data_port: int, local: str, group: str | None):
    c = natnetsdk.NatNetClient()
    c.set_server_address("127.0.0.1")
    c.set_client_address(local)
    c.set_use_multicast(group is not None)
    if group:
        c.multicast_address = group
    c.command_port, c.data_port = command_port, data_port
    c.set_print_level(0)
    bodies: list = []
    c.rigid_body_listener = lambda i, pos, rot: bodies.append((i, tuple(pos), tuple(rot)))
    assert c.run(), "natnetsdk could not open its sockets"
    return c, bodies


def _stop_vendor_client(c) -> None:
    c.stop_threads = True
    for s in (c.data_socket, c.command_socket):  # wake the threads blocked in recvfrom
        port = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as w:
            w.sendto(b"\0\0\0\0", ("127.0.0.1", port))
    c.shutdown()


def _float32(v):
    return tuple(float(np.float32(x)) for x in v)


@pytest.mark.timeout(60)
def test_vendor_client_unicast_and_bitstream_change_to_3_1():
    """Unicast as Motive: the vendor client connects, decodes the trunk; asks for NatNet 3.1
    ('Bitstream,3.1', answered, its frames switch to 3.1) and keeps decoding the same pose."""
    server = NatNetServer(lambda: [TRUNK], command_port=0, data_port=0).start()
    client, bodies = _vendor_client(server.command_port, 0, "127.0.0.1", None)
    try:
        assert wait_for(lambda: len(bodies) > 20, timeout=10), "no rigid body from the server"
        assert client.get_nat_net_version_server()[:2] == [4, 1]
        assert client.set_nat_net_version(3, 1) >= 0  # sends Bitstream,3.1 (+ timeline commands), sleeps 2 s
        assert wait_for(lambda: server.stats()["clients"][0]["natnet_version"] == "3.1", timeout=5)
        n = len(bodies)
        assert wait_for(lambda: len(bodies) > n + 20, timeout=10), "frames stopped after the Bitstream change"
        client.refresh_configuration()  # 'Bitstream' query -> "Bitstream,3.1.0.0"
        version = client.get_nat_net_version_server()
    finally:
        _stop_vendor_client(client)
        server.stop()
    assert version[:2] == [3, 1]
    _, x, y, z, w = (None, *TRUNK[3][1:], TRUNK[3][0])
    for bid, pos, rot in bodies[n:]:  # decoded as 3.1 by the vendor client: still the true pose
        assert bid == 1 and pos == _float32(TRUNK[2]), pos
        np.testing.assert_allclose(rot, (x, y, z, w), atol=1e-6)
    stats = server.stats()
    assert stats["bitstream_changes"] == 1 and stats["unrecognized_requests"] == 0, stats


def _multicast_works(group: str, port: int) -> bool:
    """Can this host loop multicast back to itself on the default interface?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.bind(("0.0.0.0", port))
        try:
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("0.0.0.0"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            tx.sendto(b"probe", (group, port))
        except OSError:
            return False
        rx.settimeout(1.0)
        try:
            return rx.recv(16) == b"probe"
        except OSError:
            return False


@pytest.mark.ros
@pytest.mark.timeout(90)
def test_sim_t1_serves_multicast_y_up_to_the_vendor_client_and_the_bridge(tmp_path):
    """Motive's defaults (multicast, Y-up) from sim_t1's parameters: the vendor client and our own
    client both receive the settled trunk; Y-up on the wire, Z-up again after mocap_bridge.frames."""
    from mocap_bridge.frames import to_z_up

    group = f"239.255.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"  # no crosstalk
    cmd_port, data_port = free_udp_ports(2)
    if not _multicast_works(group, data_port):
        pytest.skip("this host cannot loop multicast back to itself (no multicast-capable interface)")
    (tmp_path / "reports").mkdir()
    ours: list = []
    with python_process(["-m", "t1_sim.sim_t1", *ros_args(
            natnet_command_port=cmd_port, natnet_data_port=data_port, natnet_transport="multicast",
            natnet_multicast_group=group, natnet_bind_address="0.0.0.0", natnet_up_axis="y_up", snapshot=False)],
            env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        bridge = BridgeClient(NatNetClientConfig(command_port=cmd_port, data_port=data_port, multicast_group=group,
                                                 local_address="0.0.0.0"),
                              on_frame=lambda f, names, t: ours.append((f, dict(names)))).start()
        # the vendor client sends CONNECT once: start it when sim_t1 answers (ours retries)
        assert bridge.wait_connected(40), "sim_t1's NatNet server did not answer"
        vendor, bodies = _vendor_client(cmd_port, data_port, "0.0.0.0", group)
        try:
            assert wait_for(lambda: len(bodies) > 30 and len(ours) > 30, timeout=40), (len(bodies), len(ours))
        finally:
            _stop_vendor_client(vendor)
            bridge.stop()
        os.killpg(sim.pid, signal.SIGINT)
        assert sim.wait(timeout=15) == 0
    report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    natnet = report["natnet"]
    assert natnet["transport"] == f"multicast {group}:{data_port}" and natnet["up_axis"] == "y_up", natnet
    assert natnet["bind_address"] == "0.0.0.0" and natnet["frames_sent"] > 30
    trunk = [(pos, rot) for bid, pos, rot in bodies if bid == 1]
    pos, rot = trunk[-1]
    assert abs(pos[1] - 0.667) < 0.03, pos  # Y-up: the trunk height is y on the wire
    z_up, _ = to_z_up(pos, rot, "y_up")
    assert abs(z_up[2] - 0.667) < 0.03 and abs(z_up[0]) < 0.05 and abs(z_up[1]) < 0.05, z_up
    frame, names = ours[-1]
    assert names.get(1) == "t1_trunk" and abs(frame.rigid_bodies[0].position[1] - pos[1]) < 0.01
