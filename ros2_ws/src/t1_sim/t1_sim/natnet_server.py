"""A NatNet server that streams simulator rigid bodies the way OptiTrack Motive does.

Why: sim_t1 must serve MoCap over the real protocol so the very same mocap_bridge node runs
against the simulator and against a lab's Motive. The wire format is shared with the client
(mocap_bridge.natnet_protocol), so the two cannot drift apart.

Behaviour (as Motive in its NatNet 4.1 streaming mode):
- command port: CONNECT -> SERVERINFO (and the sender becomes a client), REQUEST_MODELDEF ->
  MODELDEF, REQUEST_FRAMEOFDATA -> the latest frame, KEEPALIVE refreshes the client; other
  requests get UNRECOGNIZED_REQUEST. Clients silent for `client_timeout_s` are dropped.
- frames at `rate_hz` from a thread: unicast to each client's address (the one it sent CONNECT
  from, as Motive does), or to `multicast`:data_port when a group is given.
- noise: Gaussian position noise (m) and a random rotation of Gaussian angle per axis (deg);
  dropouts: a dropped body is sent with params bit 0 clear (tracked=0) and a zero pose, so a
  client that ignores the flag is visibly wrong.
Tests pass port 0 for ephemeral ports and read the bound ones from `command_port`/`data_port`.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_bridge import natnet_protocol as nn

log = logging.getLogger(__name__)


class ServedBody(NamedTuple):
    """One rigid body as the simulator reports it. Quaternion in MuJoCo order (w, x, y, z)."""

    name: str
    id: int
    position: Sequence[float]  # x, y, z in the MoCap world frame, m
    quat_wxyz: Sequence[float]


BodiesProvider = Callable[[], Sequence[ServedBody]]


@dataclass
class _Client:
    address: tuple
    last_seen: float


class NatNetServer:
    """Serve `bodies_provider()` over NatNet. `bodies_provider` returns (name, id, xyz, wxyz)."""

    def __init__(
        self,
        bodies_provider: BodiesProvider,
        rate_hz: float = 90.0,
        host: str = "127.0.0.1",
        command_port: int = 1510,
        data_port: int = 1511,
        multicast: str | None = None,
        noise_pos_std: float = 0.0,
        noise_rot_std_deg: float = 0.0,
        dropout_prob: float = 0.0,
        seed: int | None = None,
        time_provider: Callable[[], float] | None = None,
        app_name: str = "sim_t1",
        natnet_version: Sequence[int] = (4, 1, 0, 0),
        client_timeout_s: float = 10.0,
    ):
        if rate_hz <= 0:
            raise ValueError(f"NatNetServer rate_hz must be > 0, got {rate_hz}")
        if not 0.0 <= dropout_prob <= 1.0:
            raise ValueError(f"NatNetServer dropout_prob must be in [0, 1], got {dropout_prob}")
        if noise_pos_std < 0 or noise_rot_std_deg < 0:
            raise ValueError("NatNetServer noise standard deviations must be >= 0")
        nn.check_version(natnet_version)
        self.bodies_provider = bodies_provider
        self.rate_hz = float(rate_hz)
        self.host = host
        self.command_port = int(command_port)
        self.data_port = int(data_port)
        self.multicast = multicast or None
        self.noise_pos_std = float(noise_pos_std)
        self.noise_rot_std_deg = float(noise_rot_std_deg)
        self.dropout_prob = float(dropout_prob)
        self.time_provider = time_provider
        self.app_name = app_name
        self.natnet_version = tuple(natnet_version)
        self.client_timeout_s = float(client_timeout_s)
        self.clock_frequency_hz = 1_000_000_000  # frame stamps are time.monotonic_ns() ticks
        self._rng = np.random.default_rng(seed)
        self._clients: dict = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cmd_sock: socket.socket | None = None
        self._data_sock: socket.socket | None = None
        self._frame_number = 0
        self._last_frame_packet: bytes | None = None
        self._last_model_key: tuple | None = None
        self._t0 = time.monotonic()
        self.frames_sent = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "NatNetServer":
        if self._thread is not None:
            return self
        cmd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            cmd.bind((self.host, self.command_port))
        except OSError as e:
            cmd.close()
            raise OSError(
                f"NatNetServer cannot bind command port {self.host}:{self.command_port} ({e}); "
                "is Motive or another server running? pass command_port=0 for a free port"
            ) from e
        self.command_port = cmd.getsockname()[1]
        self._cmd_sock = cmd
        if self.multicast:
            data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            data.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            data.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if self.host not in ("", "0.0.0.0"):
                data.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.host)
                )
            if self.data_port == 0:
                self.data_port = _free_udp_port(self.host)
            self._data_sock = data
        self._stop.clear()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="natnet_server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for s in (self._cmd_sock, self._data_sock):
            if s is not None:
                s.close()
        self._cmd_sock = self._data_sock = None

    def __enter__(self) -> "NatNetServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def clients(self) -> list:
        with self._lock:
            return [c.address for c in self._clients.values()]

    # -- loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = max(0.0, next_t - now)
            try:
                ready, _, _ = select.select([self._cmd_sock], [], [], timeout)
                if ready:
                    self._handle_commands()
                if time.monotonic() >= next_t:
                    self._send_frame()
                    next_t += period
                    if time.monotonic() - next_t > 5 * period:  # fell behind: do not burst
                        next_t = time.monotonic() + period
            except Exception:  # keep serving; a simulator glitch must not kill the stream
                if self._stop.is_set():
                    break
                log.exception("NatNetServer loop error")
                time.sleep(period)

    def _handle_commands(self) -> None:
        while True:
            try:
                data, addr = self._cmd_sock.recvfrom(nn.MAX_PACKET_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._handle_command(data, addr)
            if not select.select([self._cmd_sock], [], [], 0)[0]:
                return

    def _handle_command(self, data: bytes, addr: tuple) -> None:
        try:
            # Requests are parsed loosely: the 4.x SDK's CONNECT announces one byte more than
            # it sends, so only the message id is trusted.
            if len(data) < nn.HEADER_BYTES:
                return
            msg_id = int.from_bytes(data[:2], "little")
        except Exception:
            return
        now = time.monotonic()
        if msg_id == nn.NAT_CONNECT:
            with self._lock:
                self._clients[addr] = _Client(addr, now)
            self._send(self._server_info_packet(), addr)
        elif msg_id == nn.NAT_REQUEST_MODELDEF:
            self._touch(addr, now)
            self._send(nn.pack_modeldef(self._modeldef(), self.natnet_version), addr)
        elif msg_id == nn.NAT_KEEPALIVE:
            self._touch(addr, now)
        elif msg_id == nn.NAT_REQUEST_FRAMEOFDATA:
            self._touch(addr, now)
            if self._last_frame_packet is not None:
                self._send(self._last_frame_packet, addr)
        elif msg_id == nn.NAT_DISCONNECT:
            with self._lock:
                self._clients.pop(addr, None)
        else:
            self._send(nn.pack_message(nn.NAT_UNRECOGNIZED_REQUEST), addr)

    def _touch(self, addr: tuple, now: float) -> None:
        with self._lock:
            if addr in self._clients:
                self._clients[addr].last_seen = now

    def _send(self, packet: bytes, addr: tuple) -> None:
        try:
            self._cmd_sock.sendto(packet, addr)
        except OSError as e:  # client gone (ICMP unreachable) or buffer full: drop like UDP
            log.debug("NatNetServer send to %s failed: %s", addr, e)

    def _server_info_packet(self) -> bytes:
        return nn.pack_server_info(
            nn.ServerInfo(
                app_name=self.app_name,
                app_version=(1, 0, 0, 0),
                natnet_version=self.natnet_version,
                clock_frequency_hz=self.clock_frequency_hz,
                data_port=self.data_port,
                is_multicast=self.multicast is not None,
                multicast_group=self.multicast or "0.0.0.0",
            )
        )

    def _bodies(self) -> list:
        return [ServedBody(*b) for b in self.bodies_provider()]

    def _modeldef(self) -> nn.ModelDef:
        return nn.ModelDef(
            rigid_bodies=[nn.RigidBodyDescription(b.name, int(b.id)) for b in self._bodies()]
        )

    # -- frames ----------------------------------------------------------------------------

    def make_frame(self, bodies: Sequence[ServedBody] | None = None) -> nn.FrameOfData:
        """The next frame (noise and dropouts applied); public for tests and bag tools."""
        bodies = self._bodies() if bodies is None else [ServedBody(*b) for b in bodies]
        stamp_ns = time.monotonic_ns()
        t = self.time_provider() if self.time_provider else time.monotonic() - self._t0
        params = 0
        key = tuple((b.name, int(b.id)) for b in bodies)
        if self._last_model_key is not None and key != self._last_model_key:
            params |= nn.FRAME_TRACKED_MODELS_CHANGED
        self._last_model_key = key
        self._frame_number += 1
        frame = nn.FrameOfData(
            frame_number=self._frame_number,
            timestamp=float(t),
            stamp_camera_mid_exposure=stamp_ns,
            stamp_data_received=stamp_ns,
            stamp_transmit=stamp_ns,
            params=params,
        )
        for b in bodies:
            frame.rigid_bodies.append(self._observe(b))
        return frame

    def _observe(self, b: ServedBody) -> nn.RigidBody:
        if self.dropout_prob > 0 and self._rng.random() < self.dropout_prob:
            return nn.RigidBody(int(b.id), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), 0.0, 0)
        pos = np.asarray(b.position, dtype=float)
        w, x, y, z = (float(c) for c in b.quat_wxyz)
        rot = Rotation.from_quat([x, y, z, w])  # scipy order x, y, z, w
        if self.noise_pos_std > 0:
            pos = pos + self._rng.normal(0.0, self.noise_pos_std, 3)
        if self.noise_rot_std_deg > 0:
            rotvec = np.deg2rad(self._rng.normal(0.0, self.noise_rot_std_deg, 3))
            rot = Rotation.from_rotvec(rotvec) * rot
        q = rot.as_quat()  # x, y, z, w
        err = 0.0002 + self.noise_pos_std
        return nn.RigidBody(int(b.id), tuple(pos), tuple(q), err, nn.RIGID_BODY_TRACKED)

    def _send_frame(self) -> None:
        packet = nn.pack_frame(self.make_frame(), self.natnet_version)
        self._last_frame_packet = packet
        if self.multicast:
            try:
                self._data_sock.sendto(packet, (self.multicast, self.data_port))
            except OSError as e:
                log.debug("NatNetServer multicast send failed: %s", e)
        else:
            now = time.monotonic()
            with self._lock:
                for addr, c in list(self._clients.items()):
                    if now - c.last_seen > self.client_timeout_s:
                        del self._clients[addr]
                targets = list(self._clients)
            for addr in targets:
                self._send(packet, addr)
        self.frames_sent += 1


def _free_udp_port(host: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host if host else "127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()
