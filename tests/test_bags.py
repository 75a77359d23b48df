"""rosbag2 round trip: planner topics on DDS -> recorder process (MCAP segments) -> dataset.

The bags open with the rosbags reader and with the mcap library; the dataset's actions are the
published commands and its observations are what the planner node builds from the published
RobotState and ObjectStateArray (planner_io.build_observation through the node's converters).
"""
import os
import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def _publish_episode(node, seconds: float, rate_hz: float = 10.0) -> list:
    """RobotState at 50 Hz, ObjectStateArray at 50 Hz, HighLevelCommand at `rate_hz`; returns the commands."""
    from refine_dp_msgs.msg import HighLevelCommand, ObjectState, ObjectStateArray, RobotState

    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    pubs = {t: node.create_publisher(cls, t, 10) for t, cls in
            (("robot_state", RobotState), ("objects", ObjectStateArray), ("high_level_command", HighLevelCommand))}
    from procs import wait_for
    assert wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20.0), \
        "the recorder's subscriptions never matched"
    time.sleep(0.2)
    sent, t0, k = [], time.monotonic(), 0
    while k * 0.02 < seconds:
        state = RobotState(name=list(jt.names), position=list(jt.default_q + 0.01 * np.sin(0.1 * k)))
        state.projected_gravity.z = -1.0
        pubs["robot_state"].publish(state)
        box = ObjectState(name="box", tracked=True, root_valid=True)
        box.pose_in_root.position.x, box.pose_in_root.orientation.w = 0.5 + 0.001 * k, 1.0
        pubs["objects"].publish(ObjectStateArray(objects=[box]))
        if k % int(50 / rate_hz) == 0:
            cmd = HighLevelCommand(vx=0.1 + 0.001 * k, left_gripper=float(k > 50))
            cmd.header.stamp.sec, cmd.header.stamp.nanosec = 1000 + k // 50, (k % 50) * 20_000_000  # 10 Hz stamps
            cmd.left_hand_pose.position.x, cmd.left_hand_pose.orientation.w = 0.3, 1.0
            cmd.right_hand_pose.position.x, cmd.right_hand_pose.orientation.w = 0.3, 1.0
            pubs["high_level_command"].publish(cmd)
            sent.append(cmd)
        k += 1
        time.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
    time.sleep(0.3)
    return sent


def test_recorder_writes_segments_that_rosbags_and_mcap_read_and_from_bags_converts(tmp_path):
    from mcap.reader import make_reader
    from procs import python_process, ros_args, spinning_node
    from rosbags.highlevel import AnyReader

    from refine_dp_planner.bags import typestore
    from refine_dp_planner.messages import action_from_command
    from refine_dp_training.data.bags import from_bags
    from refine_dp_training.data.episodes import EpisodeDataset

    rec = tmp_path / "rec"
    with spinning_node("bag_test_publisher") as node, \
            python_process(["-m", "refine_dp.recorder", *ros_args(out=str(rec), segment_s=1.5)]) as proc:
        sent = _publish_episode(node, 4.0)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stdout.read()
    segments = sorted(rec.glob("seg_*"))
    assert len(segments) >= 2, "the recorder did not roll its segments"
    counts = {}
    with AnyReader(segments, default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            reader.deserialize(raw, conn.msgtype)
    assert counts.get("/high_level_command", 0) >= len(sent) - 1
    n_mcap = 0
    for seg in segments:
        (mcap_file,) = seg.glob("*.mcap")
        with open(mcap_file, "rb") as f:
            n_mcap += sum(1 for _ in make_reader(f).iter_messages())
    assert n_mcap == sum(counts.values())

    summary = from_bags([rec], tmp_path / "data", ("box",))
    data = EpisodeDataset(tmp_path / "data")
    assert summary["episodes"] == 1 and len(data) == 1
    ep = data[0]
    expected = np.stack([action_from_command(c).to_vector() for c in sent])
    n = len(ep["actions"])
    assert n >= len(sent) - 2
    # the recorded commands are the published ones, in order (the first may precede the first RobotState)
    offset = next(i for i in range(len(sent)) if np.allclose(expected[i], ep["actions"][0], atol=1e-6))
    np.testing.assert_allclose(ep["actions"], expected[offset:offset + n], atol=1e-6)
    assert abs(data.meta["control_rate_hz"] - 10.0) < 0.01  # from the commands' header stamps
    grip = data.field_slice("grippers")
    # observation grippers are the previous command's: 0 until the step after the first closing command
    first_closed = int(np.argmax(ep["actions"][:, 21] > 0.5))
    assert ep["obs"][first_closed, grip][0] == 0.0 and ep["obs"][first_closed + 1, grip][0] == 1.0
    box = data.field_slice("box")
    assert ep["obs"][:, box][:, -1].all()  # tracked flag
    assert 0.5 <= ep["obs"][0, box][0] < ep["obs"][-1, box][0]  # box x from the recorded ObjectStateArray


def test_a_killed_recorder_leaves_its_closed_segments_readable(tmp_path):
    from procs import python_process, ros_args, spinning_node
    from rosbags.highlevel import AnyReader

    from refine_dp_planner.bags import typestore

    rec = tmp_path / "rec"
    with spinning_node("bag_kill_publisher") as node, \
            python_process(["-m", "refine_dp.recorder", *ros_args(out=str(rec), segment_s=1.0)]) as proc:
        _publish_episode(node, 3.0)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    closed = [s for s in sorted(rec.glob("seg_*")) if (s / "metadata.yaml").is_file()]
    assert closed, "no complete segment survived the kill"
    with AnyReader(closed, default_typestore=typestore()) as reader:
        assert sum(1 for _ in reader.messages()) > 0
