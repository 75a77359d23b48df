"""Fuzz: random bytes, truncations, bit flips and length mutations never escape as anything but
NatNetParseError, and never stop the client loop (its counters go up, frames keep coming)."""

import random
import socket
import struct
import time

import pytest

from mocap_bridge import natnet_protocol as nn
from mocap_bridge.client import NatNetClient, NatNetClientConfig
from t1_sim.natnet_server import NatNetServer

from test_natnet_protocol import full_frame

VERSIONS = [(3, 0), (4, 0), (4, 1), (4, 2)]


def seed_packets():
    model = nn.ModelDef(
        [nn.RigidBodyDescription("t1_trunk", 1, -1, (0, 0, 0), None, [(0, 0, 0)], [0], ["m"])],
        [nn.MarkerSetDescription("box", ["a"])],
    )
    out = []
    for v in VERSIONS:
        out.append((nn.pack_frame(full_frame(), v), v))
        out.append((nn.pack_modeldef(model, v), v))
    out.append((nn.pack_server_info(nn.ServerInfo("Motive", (3, 1, 0, 0), (4, 1, 0, 0), 10**7, 1511)), (4, 1)))
    out.append((nn.pack_connect(), (4, 1)))
    out.append((nn.pack_keepalive(), (4, 1)))
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(6)
    b = bytearray(data)
    if kind == 0:  # random bytes, sometimes behind a plausible header
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        if rng.random() < 0.5:
            junk = struct.pack("<HH", rng.choice([1, 5, 7, 3, 8]), len(junk)) + junk
        return junk
    if kind == 1:  # truncation (header kept consistent half of the time)
        cut = rng.randrange(0, len(b) + 1)
        b = b[:cut]
        if rng.random() < 0.5 and cut >= 4:
            struct.pack_into("<H", b, 2, cut - 4)
        return bytes(b)
    if kind == 2:  # bit flips
        for _ in range(rng.randrange(1, 9)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 3:  # an int32 field (count or size) set to a boundary value
        if len(b) >= 8:
            i = rng.randrange(4, len(b) - 3)
            struct.pack_into("<i", b, i, rng.choice([0, 1, -1, 2**31 - 1, -(2**31), len(b), rng.randrange(-1000, 1000)]))
        return bytes(b)
    if kind == 4:  # header length field
        if len(b) >= 4:
            struct.pack_into("<H", b, 2, max(0, rng.choice([0, 1, len(b) - 5, len(b) - 3, 0xFFFF, rng.randrange(0x10000)])))
        return bytes(b)
    return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))  # trailing junk


def test_parser_raises_only_natnet_parse_error():
    rng = random.Random(1234)
    seeds = seed_packets()
    outcomes = {"ok": 0, "error": 0}
    kinds = set()
    t0 = time.perf_counter()
    for _ in range(4000):
        data, v = rng.choice(seeds)
        fuzzed = mutate(rng, data)
        version = v if rng.random() < 0.8 else rng.choice(VERSIONS)
        try:
            nn.parse_packet(fuzzed, version)
            outcomes["ok"] += 1
        except nn.NatNetParseError as e:
            outcomes["error"] += 1
            kinds.add(e.kind)
            # raised by an explicit bounds check, not by the catch-all around struct/Index errors
            assert e.__cause__ is None, repr(e)
    assert time.perf_counter() - t0 < 10.0
    assert outcomes["error"] > 1000 and outcomes["ok"] > 100, outcomes  # both paths exercised
    assert {"truncated", "malformed"} <= kinds


def test_client_handle_datagram_never_raises_and_counts():
    rng = random.Random(99)
    client = NatNetClient(NatNetClientConfig())
    info = nn.ServerInfo("sim", (1, 0, 0, 0), (4, 1, 0, 0))
    client.handle_datagram(nn.pack_server_info(info))
    assert client.version == (4, 1)
    seeds = [(d, v) for d, v in seed_packets() if v == (4, 1)]
    for _ in range(2000):
        client.handle_datagram(mutate(rng, rng.choice(seeds)[0]))
    c = client.counters
    assert c.packets == 2001
    assert c.malformed + c.truncated + c.oversized > 500
    assert client.version == (4, 1)  # stray SERVERINFO packets did not change the version
    # still decodes good frames afterwards
    before = c.frames
    frame = full_frame()
    frame.frame_number = 10**8
    client.handle_datagram(nn.pack_frame(frame))
    assert c.frames == before + 1 and client.last_frame.frame_number == 10**8


@pytest.mark.timeout(30)
def test_live_client_survives_garbage_over_udp():
    bodies = [("t1_trunk", 1, (0.0, 0.0, 0.7), (1.0, 0.0, 0.0, 0.0))]
    frames = []
    with NatNetServer(lambda: bodies, command_port=0, data_port=0) as server:
        client = NatNetClient(
            NatNetClientConfig(command_port=server.command_port),
            on_frame=lambda f, names, t: frames.append(f.frame_number),
        )
        with client:
            assert client.wait_connected(3.0)
            target = client.local_command_address
            rng = random.Random(5)
            seeds = [d for d, v in seed_packets() if v == (4, 1)]
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(300):
                sender.sendto(mutate(rng, rng.choice(seeds)), ("127.0.0.1", target[1]))
                if i % 50 == 0:
                    time.sleep(0.01)
            sender.sendto(b"\x07\x00" + b"\xff" * 65000, ("127.0.0.1", target[1]))  # big junk
            sender.close()
            n_before = len(frames)
            time.sleep(0.5)
            c = client.counters
            assert c.malformed + c.truncated + c.oversized > 50
            assert len(frames) - n_before > 20  # ~45 expected at 90 Hz
            assert client.connected and client._thread.is_alive()
