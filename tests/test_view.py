"""`refine-dp view`: the web view of the robot, tested as a person would use it.

- The bag replay path: a tiny recording (synthetic messages, written by the recorder's writer)
  replays into frames that hold the sent robot configuration, trunk pose, object pose and
  commanded hand targets (refine_dp.view_state, no browser).
- The live page: the walking chain of the simulated T1 (as tests/test_walk_chain.py starts it),
  the view node beside it, and a headless Chromium (Debian's `chromium`, WebGL through
  SwiftShader) that loads the page: a screenshot before any robot_state is the empty scene; two
  screenshots a few seconds apart while the robot walks must show the robot (pixels differ from
  the empty scene in the middle of the view) and its motion (they differ from each other there).
"""
from __future__ import annotations

import array
import math
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent


def _pose(pose, pos, quat_xyzw) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat_xyzw)


def _yaw_quat(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))    # x, y, z, w


def _cdr(msg) -> bytes:
    """An rclpy message as CDR, through the rosbags typestore that the replay reads with (rclpy's
    serialize_message leaves 8 trailing bytes after a RobotState that rosbags rejects as a size mismatch)."""
    from refine_dp_planner.bags import typestore

    store = typestore()

    def convert(m):
        typename = f"{type(m).__module__.split('.')[0]}/msg/{type(m).__name__}"
        values = {}
        for name in m.get_fields_and_field_types():
            v = getattr(m, name)
            if hasattr(v, "get_fields_and_field_types"):
                v = convert(v)
            elif isinstance(v, list) and v and hasattr(v[0], "get_fields_and_field_types"):
                v = [convert(x) for x in v]
            elif isinstance(v, (array.array, np.ndarray)):
                v = np.asarray(v)
            values[name] = v
        return store.types[typename](**values)

    converted = convert(msg)
    return bytes(store.serialize_cdr(converted, converted.__msgtype__))


def _write_bag(out: Path, seconds: float = 1.0):
    """100 Hz robot_state (knee and shoulder swinging), objects (trunk walking along x, turned 30 deg;
    the box), 10 Hz high_level_command; returns what was sent per 10 ms step."""
    from refine_dp_msgs.msg import FootstepCommand, HighLevelCommand, ObjectState, ObjectStateArray, RobotState

    from refine_dp.recorder import SegmentedBagWriter
    from refine_dp_planner.bags import PLANNER_TOPICS
    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    bag = SegmentedBagWriter(out, dict(PLANNER_TOPICS))
    bag.roll()
    sent = []
    for k in range(int(seconds * 100)):
        t_ns = 1_000_000_000 + k * 10_000_000
        q = jt.default_q + 0.3 * math.sin(0.05 * k)
        state = RobotState(name=list(jt.names), position=[float(v) for v in q])
        state.imu_orientation.w = 1.0
        bag.write("robot_state", t_ns, _cdr(state))
        trunk_pos, yaw = (0.5 + 0.002 * k, 0.2, 0.66), math.radians(30)
        trunk = ObjectState(name="t1_trunk", tracked=True)
        _pose(trunk.pose, trunk_pos, _yaw_quat(yaw))
        trunk.twist.linear.x = 0.2
        box = ObjectState(name="box", tracked=True)
        _pose(box.pose, (0.8, -0.1, 0.9), _yaw_quat(0.5))
        bag.write("objects", t_ns, _cdr(ObjectStateArray(objects=[trunk, box])))
        if k % 10 == 0:
            cmd = HighLevelCommand(vx=0.2, chunk_id=k // 40, chunk_index=(k // 10) % 4)
            _pose(cmd.left_hand_pose, (0.3, 0.2, 0.1), (0, 0, 0, 1))
            _pose(cmd.right_hand_pose, (0.3, -0.2, 0.1), (0, 0, 0, 1))
            bag.write("high_level_command", t_ns, _cdr(cmd))
            if k % 40 == 0:   # the planner's chunk: hands forward along x, base straight ahead
                from geometry_msgs.msg import Pose, PoseArray
                for topic, y in (("planner_chunk/left_hand", 0.2), ("planner_chunk/right_hand", -0.2),
                                 ("planner_chunk/base", None)):
                    poses = []
                    for j in range(12 if y is not None else 13):
                        p = Pose()
                        _pose(p, (0.3 + 0.01 * j, y, 0.1) if y is not None else (0.02 * j, 0.0, 0.0), (0, 0, 0, 1))
                        poses.append(p)
                    msg = PoseArray(poses=poses)
                    msg.header.frame_id = "base_link"
                    bag.write(topic, t_ns, _cdr(msg))
            step = FootstepCommand(swing_foot=FootstepCommand.SWING_LEFT, target_x=0.1, target_y=0.2,
                                   step_index=k // 20)
            bag.write("footstep_command", t_ns, _cdr(step))
        sent.append({"t": k * 0.01, "q": q, "trunk_pos": np.array(trunk_pos), "yaw": yaw})
    bag.close()
    return sent


def test_bag_replay_yields_frames_with_the_recorded_robot_configuration(tmp_path):
    from scipy.spatial.transform import Rotation

    from refine_dp.view_state import load_bag

    sent = _write_bag(tmp_path / "bag")
    replay = load_bag(tmp_path / "bag", scene="table_box", rate_hz=20.0)
    frames, state = replay.frames, replay.state
    assert len(frames) == 21, [f.t for f in frames]   # 0 .. 0.95 s, and one after the last message
    assert frames[0].t == 0.0 and not frames[0].robot_seen, "the first frame precedes every message"
    names = state.body_names
    trunk_b, box_b = names.index("Trunk"), names.index("box")
    for f in frames[1:]:
        # the frame at t shows the last messages received before t
        last = max((s for s in sent if s["t"] < f.t - 1e-9), key=lambda s: s["t"])
        assert f.robot_seen
        np.testing.assert_allclose(f.q, last["q"], atol=1e-12)
        np.testing.assert_allclose(f.trunk_pos, last["trunk_pos"], atol=1e-12)
        np.testing.assert_allclose(f.body_pos[trunk_b], last["trunk_pos"], atol=1e-9)   # the model is placed
        np.testing.assert_allclose(f.body_pos[box_b], (0.8, -0.1, 0.9), atol=1e-9)
        yaw = Rotation.from_quat(np.roll(f.body_wxyz[trunk_b], -1)).as_euler("ZYX")[0]
        assert yaw == pytest.approx(last["yaw"], abs=1e-9)
        # hand targets: base_link poses of the command, placed in the world by the trunk pose
        rot = Rotation.from_euler("z", last["yaw"])
        np.testing.assert_allclose(f.hand_target_pos, last["trunk_pos"] + rot.apply([[0.3, 0.2, 0.1],
                                                                                     [0.3, -0.2, 0.1]]), atol=1e-9)
        assert f.sample.vx_cmd == 0.2 and f.footstep["swing"] == "left"
        assert f.chunk is not None and f.chunk_trail.shape[1:] == (2, 3)
        # the planner's chunk: its hand paths and base path, placed at the trunk pose they arrived at
        chunk_t = max(s["t"] for s in sent if s["t"] < f.t - 1e-9 and round(s["t"] * 100) % 40 == 0)
        at = next(s for s in sent if s["t"] == chunk_t)
        assert f.chunk_hands.shape == (12, 2, 3) and f.chunk_base.shape == (13, 3)
        np.testing.assert_allclose(f.chunk_hands[3], at["trunk_pos"] + rot.apply([[0.33, 0.2, 0.1],
                                                                                   [0.33, -0.2, 0.1]]), atol=1e-9)
        np.testing.assert_allclose(f.chunk_base[-1], [at["trunk_pos"][0], at["trunk_pos"][1], 0.0]
                                   + rot.apply([0.24, 0.0, 0.0]), atol=1e-9)
    # the kinematics used the joints: the measured hands move with the swinging shoulders
    hand_paths = np.array([f.hand_pos[0] - f.trunk_pos for f in frames[1:]])
    assert np.ptp(hand_paths, axis=0).max() > 0.02
    # the walked velocity (MoCap trunk twist, heading frame) converges to the recorded 0.2 m/s forward
    # (x in the world is 30 deg left of the heading)
    assert frames[-1].sample.vx_walked == pytest.approx(0.2 * math.cos(math.radians(30)), abs=0.05)
    assert len(replay.window(len(frames) - 1)) == len(frames)


# ---------------------------------------------------------------------- the live page in a browser
def _free_tcp_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graph_specs():
    """The walking chain of tests/test_walk_chain.py plus the MoCap bridge (the trunk's world pose), on
    the floor scene, free NatNet ports."""
    from procs import free_udp_ports

    from refine_dp.graph import load_graph
    from test_walk_chain import CHAIN

    command_port, data_port = free_udp_ports(2)
    overrides = {"sim_t1": {"scene": "floor", "snapshot": False, "video": False,
                            "natnet_command_port": command_port, "natnet_data_port": data_port},
                 "mocap_bridge": {"command_port": command_port, "data_port": data_port}}
    specs = {n.name: n for n in load_graph("sim", overrides=overrides)}
    return [specs[name] for name in (*CHAIN, "mocap_bridge")]


def _changed(a: np.ndarray, b: np.ndarray, threshold: int = 40) -> np.ndarray:
    """Pixels whose colour differs by more than `threshold` (sum over RGB)."""
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=-1) > threshold


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_page_shows_the_walking_robot_in_a_headless_browser(tmp_path):
    from contextlib import ExitStack

    from headless_browser import INSTALL_HINT, HeadlessChromium, chromium_path
    from procs import python_process, ros_args, spinning_node, wait_for
    from refine_dp_msgs.msg import ControllerStatus
    from test_walk_chain import Commander

    if chromium_path() is None:
        pytest.skip(f"no headless chromium to look at the page: {INSTALL_HINT}")
    port = _free_tcp_port()
    (tmp_path / "reports").mkdir()
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    statuses: list = []
    with spinning_node("view_test") as node, ExitStack() as stack:
        view = stack.enter_context(python_process(
            ["-m", "refine_dp.view", *ros_args(port=port, scene="floor", use_sim_time=True)], env=env))
        url = f"http://127.0.0.1:{port}"

        def page_served() -> bool:
            import urllib.request
            assert view.poll() is None, "the view exited early"
            try:
                return urllib.request.urlopen(url, timeout=2).status == 200
            except OSError:
                return False

        assert wait_for(page_served, timeout=60, period=0.5), f"the view never served {url}"
        browser = stack.enter_context(HeadlessChromium(width=960, height=600))
        browser.open(url)
        assert wait_for(lambda: browser.evaluate("document.querySelectorAll('canvas').length") or 0,
                        timeout=60, period=0.5), "the page never made its 3D canvas"
        time.sleep(8.0)                       # the scene arrives over the websocket and renders (SwiftShader)
        browser.dismiss_notifications()
        time.sleep(1.0)
        empty = browser.screenshot(tmp_path / "view_empty.png")     # no robot_state yet: no robot drawn

        node.create_subscription(ControllerStatus, "controller_status", lambda m: statuses.append(m.active), 10)
        procs = {spec.name: stack.enter_context(python_process(
                     ["-m", spec.module, *ros_args(**spec.parameters)], env=env))
                 for spec in _graph_specs()}
        commander = stack.enter_context(Commander(node))

        def chain_up() -> bool:
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            assert not dead, f"node(s) exited early (exit status): {dead}"
            return bool(statuses) and statuses[-1]

        assert wait_for(chain_up, timeout=90, period=0.1), "the controller never became active"
        commander.vx = 0.2
        time.sleep(4.0)
        first = browser.screenshot(tmp_path / "view_walking_1.png")
        time.sleep(4.0)
        second = browser.screenshot(tmp_path / "view_walking_2.png")
        commander.vx = 0.0
        assert view.poll() is None, "the view exited while the robot walked"

    h, w = empty.shape[:2]
    # the middle of the 3D view, where the initial camera looks at the robot's start (the GUI panel
    # sits at the right edge, the WebGL notice at the top left)
    region = (slice(int(0.15 * h), int(0.95 * h)), slice(int(0.2 * w), int(0.65 * w)))
    drawn = _changed(first, empty)[region]
    moved = _changed(second, first)[region]
    shots = f"screenshots in {tmp_path}"
    assert drawn.sum() > 0.01 * drawn.size, f"the robot is not drawn: {drawn.sum()} pixels changed ({shots})"
    assert moved.sum() > 0.001 * moved.size, f"the robot does not move: {moved.sum()} pixels changed ({shots})"
    print(f"view test: robot pixels {drawn.sum()}, moved pixels {moved.sum()}; {shots}")


def test_bringup_view_draws_the_sim_scene_on_the_graph_clock():
    from refine_dp.bringup import graph_view
    from refine_dp.cli import build_parser
    from refine_dp.graph import DEFAULT_GRAPH, load_graph

    args = build_parser().parse_args(["bringup", "--sim", "--view", "--view-port", "9123"])
    assert args.view and args.view_port == 9123
    args = build_parser().parse_args(["demo", "--view"])
    assert args.view and args.view_port == 8080
    sim = graph_view(load_graph("sim"), "sim", DEFAULT_GRAPH, 9123)
    assert (sim.module, sim.required) == ("refine_dp.view", False)
    assert sim.parameters == {"port": 9123, "scene": "table_box", "use_sim_time": True}
    robot = graph_view(load_graph("robot"), "robot", DEFAULT_GRAPH, 8080)
    assert robot.parameters == {"port": 8080, "scene": "floor", "use_sim_time": False}
