"""The planner's I/O, its loop, and the planner node against simulated inputs."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from refine_dp_planner.planner_io import (ACTION_DIM, Clamps, ObservationHistory, PlannerAction, clamp_action, clamp_actions,
                                          observation_fields, rot6d, rot6d_to_matrix)


def _tiny_engine_dir(tmp_path, objects=("box",), scale=3.0, act_steps=4, rate_hz=10.0):
    """A small random DiT exported to ONNX; its normalizer makes raw actions large so clamps bite."""
    import torch

    from refine_dp_planner.config import DiffusionPolicyConfig
    from refine_dp_planner.export import export_policy
    from refine_dp_planner.models.dit import DiTConfig
    from refine_dp_planner.planner_io import ACTION_FIELDS
    from refine_dp_planner.policy import DiffusionPolicy

    fields = observation_fields(objects)
    cfg = DiffusionPolicyConfig(obs_dim=sum(n for _, n in fields), action_dim=ACTION_DIM, ddim_steps=4,
                                act_steps=act_steps, rate_hz=rate_hz,
                                dit=DiTConfig(width=32, depth=1, heads=2), obs_fields=fields,
                                action_fields=ACTION_FIELDS)
    torch.manual_seed(0)
    policy = DiffusionPolicy(cfg)
    rng = np.random.default_rng(0)
    policy.fit_normalizers(rng.normal(size=(64, cfg.obs_dim)), scale * rng.normal(size=(64, ACTION_DIM)))
    return export_policy(policy, tmp_path / "engine")


def test_engine_dir_takes_a_path_or_the_name_of_a_shipped_engine(tmp_path, monkeypatch):
    from refine_dp_planner import engines

    # the package's own folder, which setup.py's package_data installs
    assert engines.SHIPPED_DIR.name == "shipped" and engines.SHIPPED_DIR.parent.name == "refine_dp_planner"
    shipped = tmp_path / "shipped"
    (shipped / "pickup_dit").mkdir(parents=True)
    (shipped / "pickup_dit" / "metadata.json").write_text("{}")
    (shipped / "half_done").mkdir()  # no metadata.json: not an engine
    monkeypatch.setattr(engines, "SHIPPED_DIR", shipped)
    assert engines.shipped_engines() == ["pickup_dit"]
    assert engines.resolve_engine_dir("pickup_dit") == shipped / "pickup_dit"
    own = tmp_path / "mine"
    own.mkdir()
    (own / "metadata.json").write_text("{}")
    assert engines.resolve_engine_dir(str(own)) == own  # a path wins
    with pytest.raises(FileNotFoundError, match=r"'door_dit' not found.*ships \['pickup_dit'\]"):
        engines.resolve_engine_dir("door_dit")
    with pytest.raises(FileNotFoundError, match="has no metadata.json"):
        engines.resolve_engine_dir(str(shipped / "half_done"))


def test_rot6d_round_trip():
    r = Rotation.random(10, random_state=1).as_matrix()
    np.testing.assert_allclose(rot6d_to_matrix(rot6d(r)), r, atol=1e-12)


def test_history_pads_with_the_first_observation():
    h = ObservationHistory(3)
    h.push(np.array([1.0]))
    np.testing.assert_array_equal(h.array()[:, 0], [1, 1, 1])
    h.push(np.array([2.0]))
    np.testing.assert_array_equal(h.array()[:, 0], [1, 1, 2])


def test_clamps_limit_base_and_hand_speed():
    prev = PlannerAction(np.zeros(3), np.zeros((2, 3)), np.stack([np.eye(3)] * 2), np.zeros(2))
    far = PlannerAction(np.array([1.0, 1.0, 3.0]), np.ones((2, 3)), Rotation.from_euler("z", [[1.0], [-1.0]]).as_matrix(),
                        np.ones(2))
    out, clamped = clamp_action(far, prev, 0.1, Clamps(0.2, 0.5, 0.05, 0.5))
    assert clamped
    assert np.linalg.norm(out.base_velocity[:2]) == pytest.approx(0.2)
    assert out.base_velocity[2] == pytest.approx(0.5)
    np.testing.assert_allclose(np.linalg.norm(out.hand_pos, axis=1), 0.005)
    np.testing.assert_allclose(Rotation.from_matrix(out.hand_rot).magnitude(), 0.05, atol=1e-9)
    same, clamped = clamp_action(prev, prev, 0.1, Clamps())
    assert not clamped


def test_stand_deadband_zeroes_small_base_commands_only():
    """A base command with every component inside the deadband stands; one component outside walks as asked."""
    v = np.array([[0.05, -0.05, 0.14],    # all inside: stand
                  [0.07, 0.0, 0.0],       # vx outside
                  [0.0, 0.0, 0.16],       # wz outside
                  [0.02, 0.0, -0.5]])     # turning in place with a small vx: kept as asked
    hands, rots = np.zeros((4, 2, 3)), np.tile(np.eye(3), (4, 2, 1, 1))
    out, _, _, clamped = clamp_actions(v, hands, rots)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1:], v[1:])
    assert not clamped.any()   # the deadband is not a clamp event
    out, *_ = clamp_actions(v, hands, rots, limits=Clamps(stand_speed=0.0, stand_yaw_rate=0.0))
    np.testing.assert_allclose(out, v)   # 0: no deadband
    declared = {}
    c = Clamps.from_parameters(lambda name, default: declared.setdefault(name, 0.3 if name == "stand_speed" else default))
    assert c.stand_speed == 0.3 and c.max_base_speed == 0.2 and set(declared) == {
        "max_base_speed", "max_yaw_rate", "max_hand_speed", "max_hand_angular_speed", "stand_speed", "stand_yaw_rate"}


def test_core_replans_and_stops_when_observations_go_stale(tmp_path):
    from refine_dp_planner.engines import make_engine
    from refine_dp_planner.planner_core import PlannerCore

    core = PlannerCore(make_engine("onnxruntime", _tiny_engine_dir(tmp_path, act_steps=4)), ("box",))
    assert core.replan_every == 4 and core.dt == pytest.approx(0.1)  # from the engine, not retyped
    assert core.step(0.0) is None and core.status.stale  # nothing observed yet
    box = {"box": (np.array([0.5, 0.0, 0.1]), np.array([0, 0, 0, 1.0]), True)}
    chunk_ids = []
    for k in range(9):
        t = 0.1 * k
        core.observe_robot(np.zeros(14), [0, 0, -1], t)
        core.observe_objects(box, t)
        a = core.step(t)
        chunk_ids.append(core.status.chunk_id)
        assert np.linalg.norm(a.base_velocity[:2]) <= 0.2 + 1e-9
    assert chunk_ids == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    held = core.step(0.8 + 0.6)  # no observation for 0.6 s > 0.5 s
    assert core.status.stale and np.all(held.base_velocity == 0)
    np.testing.assert_allclose(held.hand_pos, a.hand_pos)


def test_the_published_chunk_is_the_decoded_chunk_and_its_integrated_base_path(tmp_path):
    from refine_dp_planner.engines import make_engine
    from refine_dp_planner.messages import CHUNK_TOPICS, chunk_pose_arrays
    from refine_dp_planner.planner_core import PlannerCore

    core = PlannerCore(make_engine("onnxruntime", _tiny_engine_dir(tmp_path)), ("box",))
    core.observe_robot(np.zeros(14), [0, 0, -1], 0.0)
    core.observe_objects({"box": (np.array([0.5, 0.0, 0.1]), np.array([0, 0, 0, 1.0]), True)}, 0.0)
    core.step(0.0)
    chunk = core.chunk
    ta = len(chunk)
    msgs = chunk_pose_arrays(chunk, core.dt, core.clamps, _stamp())
    assert set(msgs) == set(CHUNK_TOPICS) == {"planner_chunk/base", "planner_chunk/left_hand", "planner_chunk/right_hand"}
    assert all(m.header.frame_id == "base_link" for m in msgs.values())
    for h, topic in enumerate(CHUNK_TOPICS[1:]):
        poses = msgs[topic].poses
        assert len(poses) == ta  # the whole chunk
        for k, p in enumerate(poses):
            a = PlannerAction.from_vector(chunk[k])
            np.testing.assert_allclose([p.position.x, p.position.y, p.position.z], a.hand_pos[h], atol=1e-6)
            q = [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
            np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), a.hand_rot[h], atol=1e-6)
    # base: the clamped velocities held for one tick each, integrated from the identity
    x = y = yaw = 0.0
    expected = [(x, y, yaw)]
    for k in range(ta):
        v = clamp_action(PlannerAction.from_vector(chunk[k]), None, core.dt, core.clamps)[0].base_velocity
        x += (np.cos(yaw) * v[0] - np.sin(yaw) * v[1]) * core.dt
        y += (np.sin(yaw) * v[0] + np.cos(yaw) * v[1]) * core.dt
        yaw += v[2] * core.dt
        expected.append((x, y, yaw))
    base = msgs["planner_chunk/base"].poses
    assert len(base) == ta + 1
    got = [(p.position.x, p.position.y, Rotation.from_quat([p.orientation.x, p.orientation.y, p.orientation.z,
                                                             p.orientation.w]).as_euler("ZYX")[0]) for p in base]
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.abs(np.array(expected)[1:, :2]).max() > 1e-3  # the tiny engine walks: the path is not trivial


def _stamp():
    from builtin_interfaces.msg import Time
    return Time(sec=1, nanosec=2)


def test_core_takes_act_steps_and_rate_from_the_engine_and_refuses_a_contradicting_replan_every(tmp_path):
    from refine_dp_planner.engines import make_engine
    from refine_dp_planner.planner_core import PlannerCore

    engine = make_engine("onnxruntime", _tiny_engine_dir(tmp_path, act_steps=6, rate_hz=5.0))
    assert (engine.act_steps, engine.rate_hz) == (6, 5.0)
    core = PlannerCore(engine, ("box",))
    assert core.replan_every == 6 and core.dt == pytest.approx(0.2)
    assert PlannerCore(engine, ("box",), replan_every=6).replan_every == 6  # agreeing is fine
    with pytest.raises(ValueError, match=r"replan_every 8 contradicts the engine's act_steps 6"):
        PlannerCore(engine, ("box",), replan_every=8)
    assert PlannerCore(engine, ("box",), replan_every=3, override_act_steps=True).replan_every == 3
    with pytest.raises(ValueError, match=r"replan_every 13 must be in \[1, action chunk 12\]"):
        PlannerCore(engine, ("box",), replan_every=13, override_act_steps=True)


@pytest.mark.ros
def test_node_publishes_clamped_commands_at_10_hz_and_refuses_a_mismatched_engine(tmp_path):
    from procs import python_process, ros_args, spinning_node
    from t1_description.joint_table import load_joint_table

    engine_dir = _tiny_engine_dir(tmp_path)
    # a mismatched configuration is refused with a message naming the field
    bad = python_process(["-m", "refine_dp_planner.node", *ros_args(engine_dir=str(engine_dir), obs_horizon=4)])
    with bad as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "obs_horizon: caller expects 4, engine has 8" in out, out
    bad = python_process(["-m", "refine_dp_planner.node", *ros_args(engine_dir=str(engine_dir), replan_every=8)])
    with bad as proc:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "replan_every 8 contradicts the engine's act_steps 4" in out, out

    jt = load_joint_table()
    with spinning_node("planner_test") as node:
        _run_node_against_fake_inputs(node, jt, engine_dir)


def _run_node_against_fake_inputs(node, jt, engine_dir):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from procs import python_process, ros_args, wait_for
    from refine_dp_msgs.msg import HighLevelCommand, ObjectState, ObjectStateArray, PlannerStatus, RobotState

    from geometry_msgs.msg import PoseArray

    from refine_dp_planner.messages import CHUNK_TOPICS

    cmds, statuses = [], []
    chunks = {t: [] for t in CHUNK_TOPICS}
    node.create_subscription(HighLevelCommand, "high_level_command", lambda m: cmds.append((time.monotonic(), m)), 10)
    for topic in CHUNK_TOPICS:
        node.create_subscription(PoseArray, topic, chunks[topic].append, 10)
    node.create_subscription(PlannerStatus, "planner_status", statuses.append, 10)
    best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    rs_pub = node.create_publisher(RobotState, "robot_state", best_effort)
    obj_pub = node.create_publisher(ObjectStateArray, "objects", best_effort)
    robot = RobotState(name=list(jt.names), position=jt.default_q.tolist())
    robot.projected_gravity.z = -1.0
    box = ObjectState(name="box", tracked=True, root_valid=True)
    box.pose_in_root.position.x, box.pose_in_root.orientation.w = 0.5, 1.0
    feeding = threading.Event()
    feeding.set()

    def feed():
        while rclpy.ok():
            if feeding.is_set():
                rs_pub.publish(robot)
                obj_pub.publish(ObjectStateArray(objects=[box]))
            time.sleep(0.02)
    threading.Thread(target=feed, daemon=True).start()
    with python_process(["-m", "refine_dp_planner.node", *ros_args(engine_dir=str(engine_dir))]):
        assert wait_for(lambda: len(cmds) >= 30, timeout=30), f"{len(cmds)} commands"
        feeding.clear()  # observations stop: the planner must stop the robot and hold the hands
        assert wait_for(lambda: statuses and statuses[-1].stale, timeout=5)
        wait_for(lambda: False, timeout=0.5)
        held = cmds[-1][1]
    stamps = np.array([t for t, _ in cmds[5:30]])
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 7.0 < rate < 13.0, f"{rate:.1f} Hz"
    msgs = [m for _, m in cmds[:30]]
    assert max(np.hypot(m.vx, m.vy) for m in msgs) <= 0.2 + 1e-6
    assert any(m.vx != 0.0 for m in msgs)
    for a, b in zip(msgs, msgs[1:]):
        for pa, pb in ((a.left_hand_pose, b.left_hand_pose), (a.right_hand_pose, b.right_hand_pose)):
            step = np.linalg.norm([pb.position.x - pa.position.x, pb.position.y - pa.position.y,
                                   pb.position.z - pa.position.z])
            assert step <= 0.05 * 0.1 + 1e-6, step
    assert (held.vx, held.vy, held.wz) == (0.0, 0.0, 0.0)
    # one chunk every act_steps (4) commands: the whole chunk (12 actions), in base_link
    n_chunks = max(m.chunk_id for _, m in cmds)
    assert all(n_chunks - 2 <= len(chunks[t]) <= n_chunks for t in CHUNK_TOPICS), {t: len(c) for t, c in chunks.items()}
    assert {len(m.poses) for m in chunks["planner_chunk/left_hand"]} == {12}
    assert {len(m.poses) for m in chunks["planner_chunk/base"]} == {13}
    assert chunks["planner_chunk/base"][0].header.frame_id == "base_link"
