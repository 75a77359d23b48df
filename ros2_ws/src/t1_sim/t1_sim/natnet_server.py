"""A NatNet server that streams simulator rigid bodies the way OptiTrack Motive does.

Why: sim_t1 must serve MoCap over the real protocol so the very same mocap_bridge node runs
against the simulator and against a lab's Motive. The wire format is shared with the client
(mocap_bridge.natnet_protocol), so the two cannot drift apart.

Behaviour (as Motive in its NatNet 4.1 streaming mode):
- command port (bound on `host`: 127.0.0.1, a LAN address, or 0.0.0.0): CONNECT -> SERVERINFO
  (and the sender becomes a client), REQUEST_MODELDEF -> MODELDEF, REQUEST_FRAMEOFDATA -> the
  latest frame, KEEPALIVE refreshes the client. NAT_REQUEST strings: "Bitstream" -> response
  string "Bitstream,M.m.0.0"; "Bitstream,M.m" -> switches the stream to NatNet M.m (one of
  SUPPORTED_VERSIONS, the versions mocap_bridge parses), response int32 0, or int32 1 and a
  MESSAGESTRING for another version; TimelinePlay/TimelineStop/SetPlaybackCurrentFrame (which
  the NatNet SDK's Python client sends after a Bitstream change) -> int32 0, nothing to do in a
  live stream. Anything else gets UNRECOGNIZED_REQUEST. Clients silent for `client_timeout_s`
  are dropped. A CONNECT resets that client to the server's version (the one SERVERINFO states).
- frames at `rate_hz` from a thread: unicast to each client's address (the one it sent CONNECT
  from, as Motive does) in that client's bitstream version, or to `multicast`:data_port when a
  group is given (then a Bitstream change applies to the one multicast stream, as in Motive).
- up_axis "y_up" serves Y-up poses (Motive's default), converted by mocap_bridge.frames.
- noise: Gaussian position noise (m) and a random rotation of Gaussian angle per axis (deg);
  dropouts: a dropped body is sent with params bit 0 clear (tracked=0) and a zero pose, so a
  client that ignores the flag is visibly wrong.
Tests pass port 0 for ephemeral ports and read the bound ones from `command_port`/`data_port`.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from mocap_bridge import natnet_protocol as nn
from mocap_bridge.frames import check_up_axis, from_z_up

log = logging.getLogger(__name__)


class ServedBody(NamedTuple):
    """One rigid body as the simulator reports it. Quaternion in MuJoCo order (w, x, y, z)."""

    name: str
    id: int
    position: Sequence[float]  # x, y, z in the MoCap world frame, m
    quat_wxyz: Sequence[float]


BodiesProvider = Callable[[], Sequence[ServedBody]]
SUPPORTED_VERSIONS = ((3, 0), (3, 1), (4, 0), (4, 1))  # what mocap_bridge.natnet_protocol parses
_NO_OP_REQUESTS = ("TimelinePlay", "TimelineStop", "SetPlaybackCurrentFrame")


@dataclass
class _Client:
    address: tuple
    last_seen: float
    version: tuple = nn.DEFAULT_VERSION


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
        up_axis: str = "z_up",
        paced_externally: bool = False,
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
        self.up_axis = check_up_axis(up_axis)
        # paced_externally: frames are sent when the owner calls send_frame() (sim_t1 on simulated
        # time, so a slowed simulation sends 90 frames per simulated second); the thread only answers
        self.paced_externally = bool(paced_externally)
        self._send_lock = threading.Lock()
        self._stream_version = nn.version_tuple(natnet_version)  # multicast stream's version
        self.clock_frequency_hz = 1_000_000_000  # frame stamps are time.monotonic_ns() ticks
        self._rng = np.random.default_rng(seed)
        self._clients: dict = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cmd_sock: socket.socket | None = None
        self._data_sock: socket.socket | None = None
        self._frame_number = 0
        self._last_frame: nn.FrameOfData | None = None
        self._last_model_key: tuple | None = None
        self._t0 = time.monotonic()
        self.frames_sent = 0
        self._stats = {"packets_sent": 0, "send_errors": 0, "bodies_dropped": 0, "clients_connected": 0,
                       "clients_timed_out": 0, "bitstream_changes": 0, "unrecognized_requests": 0}

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

    def stats(self) -> dict:
        """For sim_t1's report: frames sent, clients (now and ever), drops and failed sends."""
        with self._lock:
            clients = [{"address": f"{c.address[0]}:{c.address[1]}", "natnet_version": ".".join(map(str, c.version))}
                       for c in self._clients.values()]
        return dict(self._stats, frames_sent=self.frames_sent, clients=clients,
                    transport=f"multicast {self.multicast}:{self.data_port}" if self.multicast else "unicast",
                    bind_address=self.host, command_port=self.command_port, up_axis=self.up_axis,
                    natnet_version=".".join(map(str, self._stream_version)))

    # -- loop ------------------------------------------------------------------------------

    def send_frame(self) -> None:
        """Send one frame now (to be called at rate_hz by the owner of a paced_externally server)."""
        if self._thread is None or self._stop.is_set():
            return
        try:
            with self._send_lock:
                self._send_frame()
        except Exception:  # a simulator glitch must not kill the caller's loop
            log.exception("NatNetServer send error")

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set() and self.paced_externally:  # only requests to answer
            try:
                if select.select([self._cmd_sock], [], [], 0.1)[0]:
                    self._handle_commands()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("NatNetServer loop error")
                time.sleep(period)
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = max(0.0, next_t - now)
            try:
                ready, _, _ = select.select([self._cmd_sock], [], [], timeout)
                if ready:
                    self._handle_commands()
                if time.monotonic() >= next_t:
                    with self._send_lock:
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
                self._clients[addr] = _Client(addr, now, nn.version_tuple(self.natnet_version))
                self._stats["clients_connected"] += 1
            self._send(self._server_info_packet(), addr)
        elif msg_id == nn.NAT_REQUEST_MODELDEF:
            self._touch(addr, now)
            self._send(nn.pack_modeldef(self._modeldef(), self._version_of(addr)), addr)
        elif msg_id == nn.NAT_REQUEST:
            self._touch(addr, now)
            self._handle_request(data[nn.HEADER_BYTES:], addr)
        elif msg_id == nn.NAT_KEEPALIVE:
            self._touch(addr, now)
        elif msg_id == nn.NAT_REQUEST_FRAMEOFDATA:
            self._touch(addr, now)
            if self._last_frame is not None:
                self._send(nn.pack_frame(self._last_frame, self._version_of(addr)), addr)
        elif msg_id == nn.NAT_DISCONNECT:
            with self._lock:
                self._clients.pop(addr, None)
        else:
            self._stats["unrecognized_requests"] += 1
            self._send(nn.pack_message(nn.NAT_UNRECOGNIZED_REQUEST), addr)

    def _version_of(self, addr: tuple) -> tuple:
        if self.multicast:
            return self._stream_version
        with self._lock:
            c = self._clients.get(addr)
            return c.version if c is not None else nn.version_tuple(self.natnet_version)

    def _handle_request(self, payload: bytes, addr: tuple) -> None:
        """A NAT_REQUEST command string, answered as Motive answers it (see the module docstring)."""
        text = payload.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
        name, _, arg = text.partition(",")
        if name == "Bitstream" and not arg:
            v = self._version_of(addr)
            # no NUL: the SDK's client parses the whole payload as "Bitstream,M.m.r.b"
            self._send(nn.pack_message(nn.NAT_RESPONSE, f"Bitstream,{v[0]}.{v[1]}.0.0".encode()), addr)
        elif name == "Bitstream":
            try:
                wanted = nn.version_tuple(int(x) for x in arg.strip().split(".") if x != "")
            except ValueError:
                wanted = None
            if wanted not in SUPPORTED_VERSIONS:
                ok = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_VERSIONS)
                self._send(nn.pack_message(nn.NAT_RESPONSE, struct.pack("<i", 1)), addr)
                self._send(nn.pack_message(nn.NAT_MESSAGESTRING, f"Bitstream {arg} is not supported by "
                                           f"{self.app_name}; supported: {ok}".encode() + b"\0"), addr)
                return
            with self._lock:
                if self.multicast:
                    self._stream_version = wanted
                elif addr in self._clients:
                    self._clients[addr].version = wanted
                self._stats["bitstream_changes"] += 1
            self._send(nn.pack_message(nn.NAT_RESPONSE, struct.pack("<i", 0)), addr)
        elif name in _NO_OP_REQUESTS:
            self._send(nn.pack_message(nn.NAT_RESPONSE, struct.pack("<i", 0)), addr)
        else:
            self._stats["unrecognized_requests"] += 1
            self._send(nn.pack_message(nn.NAT_UNRECOGNIZED_REQUEST), addr)

    def _touch(self, addr: tuple, now: float) -> None:
        with self._lock:
            if addr in self._clients:
                self._clients[addr].last_seen = now

    def _send(self, packet: bytes, addr: tuple) -> None:
        try:
            self._cmd_sock.sendto(packet, addr)
            self._stats["packets_sent"] += 1
        except OSError as e:  # client gone (ICMP unreachable) or buffer full: drop like UDP
            self._stats["send_errors"] += 1
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
            self._stats["bodies_dropped"] += 1
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
        if self.up_axis != "z_up":
            pos, q = from_z_up(pos, q, self.up_axis)
        err = 0.0002 + self.noise_pos_std
        return nn.RigidBody(int(b.id), tuple(pos), tuple(q), err, nn.RIGID_BODY_TRACKED)

    def _send_frame(self) -> None:
        frame = self.make_frame()
        if self.multicast:
            packet = nn.pack_frame(frame, self._stream_version)
            try:
                self._data_sock.sendto(packet, (self.multicast, self.data_port))
                self._stats["packets_sent"] += 1
            except OSError as e:
                self._stats["send_errors"] += 1
                log.debug("NatNetServer multicast send failed: %s", e)
        else:
            now = time.monotonic()
            with self._lock:
                for addr, c in list(self._clients.items()):
                    if now - c.last_seen > self.client_timeout_s:
                        del self._clients[addr]
                        self._stats["clients_timed_out"] += 1
                targets = [(addr, c.version) for addr, c in self._clients.items()]
            packets = {}  # one packing per bitstream version in use
            for addr, version in targets:
                if version not in packets:
                    packets[version] = nn.pack_frame(frame, version)
                self._send(packets[version], addr)
        self._last_frame = frame
        self.frames_sent += 1


def _free_udp_port(host: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host if host else "127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()
