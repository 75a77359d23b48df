"""A heuristic demonstration recorded on the ROS graph: the robot-side path of demonstrations, end to end.

Each node its own process, parameterized as the demo graph runs them (load_graph("sim")): sim_t1 with
the table_box scene (publishes /clock) <-> t1_hardware_interface <- loco_manip_controller <-
footstep_planner <- the pickup heuristic as a ROS node (refine_dp_training.tasks.heuristic_node, in the
planner's place), which sees robot_state and objects (mocap_bridge, from sim_t1's NatNet server); the
recorder (refine_dp.recorder, as `refine-dp bringup --record` adds it) writes MCAP rosbag2 segments.

After ~20 s of simulated time the test reads the bag with the rosbags reader and with the mcap
library, converts it with `refine-dp dataset from-bags` (its function) and checks that the dataset's
actions are the recorded HighLevelCommands, its observations have the planner's size and see the box,
and that the heuristic drove the robot (a hand raised towards the box, a walk to the table). It fails if the heuristic published nothing
(no commands in the bag, no dataset) or the recorder recorded nothing.

A real-time closed loop like tests/test_walk_chain.py: on a loaded machine simulated time runs slower
(sim_t1 waits for its controllers), so the test waits on /clock with a generous wall-clock limit.
"""
from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack

import numpy as np
import pytest

from procs import free_udp_ports, python_process, ros_args, spinning_node, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(300)]

CHAIN = ("sim_t1", "t1_hardware_interface", "mocap_bridge", "footstep_planner", "loco_manip_controller")
SIM_S = 25.0           # simulated seconds recorded after the first /clock
WALL_LIMIT_S = 200.0   # for those on a loaded machine (40-60 s with two training jobs beside it)
MIN_VX = 0.1           # m/s: the heuristic's walk command is 0.18-0.2 m/s (HeuristicParams.walk_speed)
MIN_HAND_M = 0.05      # m: the grasping hand goes from the default pose to the ready pose above the table


def _graph_specs(bag_dir):
    """The demo graph's chain with its sim parameters (table_box, free NatNet ports), the recorder."""
    from refine_dp.graph import load_graph, recorder_node

    command_port, data_port = free_udp_ports(2)
    overrides = {"sim_t1": {"scene": "table_box", "snapshot": False, "video": False,
                            "natnet_command_port": command_port, "natnet_data_port": data_port},
                 "mocap_bridge": {"command_port": command_port, "data_port": data_port}}
    specs = {n.name: n for n in load_graph("sim", overrides=overrides)}
    missing = [name for name in CHAIN if name not in specs]
    assert not missing, f"bringup.yaml no longer has {missing}"
    return [specs[name] for name in CHAIN] + [recorder_node(bag_dir)]


def _stop(proc, timeout: float = 20.0) -> int | None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=timeout)
    return proc.returncode


def _read_bag(segments):
    """(topic -> count, [(HighLevelCommand, stamp s)] in log order, commands after the first RobotState)."""
    from rosbags.highlevel import AnyReader

    from refine_dp_planner.bags import typestore

    counts, commands, seen_robot, after_robot = {}, [], False, 0
    with AnyReader(segments, default_typestore=typestore()) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            msg = reader.deserialize(raw, conn.msgtype)
            seen_robot |= conn.topic == "/robot_state"
            if conn.topic == "/high_level_command":
                commands.append((msg, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))
                after_robot += seen_robot
    return counts, commands, after_robot


def test_heuristic_node_demo_recorded_with_rosbag2_converts_to_a_dataset(tmp_path):
    from rosgraph_msgs.msg import Clock

    t_start = time.monotonic()
    (tmp_path / "reports").mkdir()
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    rec = tmp_path / "bag"
    clock: list = []
    with spinning_node("heuristic_bag_test") as node, ExitStack() as stack:
        node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec + m.clock.nanosec * 1e-9), 10)
        procs = {spec.name: stack.enter_context(python_process(
                     ["-m", spec.module, *ros_args(**spec.parameters)], env=env))
                 for spec in _graph_specs(rec)}
        procs["refine_dp_heuristic"] = stack.enter_context(python_process(
            ["-m", "refine_dp_training.tasks.heuristic_node",
             *ros_args(task="pickup", seed=1, objects=["box"], use_sim_time=True)], env=env))

        def recorded_enough() -> bool:
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            assert not dead, f"node(s) exited early (exit status): {dead}"
            return len(clock) > 1 and clock[-1] - clock[0] >= SIM_S

        done = wait_for(recorded_enough, timeout=WALL_LIMIT_S, period=0.2)
        sim_s = clock[-1] - clock[0] if clock else 0.0
        assert done, f"only {sim_s:.1f} s of simulated time in {WALL_LIMIT_S:.0f} s of wall time"
        assert _stop(procs["refine_dp_recorder"]) == 0, "the recorder did not close its bag cleanly"
        recorder_out = procs["refine_dp_recorder"].stdout.read()
        for name in ("refine_dp_heuristic", "sim_t1", "loco_manip_controller", "footstep_planner",
                     "mocap_bridge", "t1_hardware_interface"):
            _stop(procs[name])
        heuristic_out = procs["refine_dp_heuristic"].stdout.read()
    wall_s = time.monotonic() - t_start

    sim = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    stages = [line.split("]: ", 1)[-1] for line in heuristic_out.splitlines() if "stage " in line]
    print(f"\nheuristic bag: {sim_s:.1f} s simulated in {wall_s:.1f} s wall (sim real-time factor "
          f"{sim.get('real_time_factor')}), robot fell {sim['fell']}, walked {sim['walk']['distance_walked_m']} m; "
          f"heuristic {stages}; {recorder_out.strip().splitlines()[-1] if recorder_out.strip() else 'no recorder output'}")

    # the bag: complete MCAP rosbag2 segments that both readers open, with the planner's inputs and outputs
    from mcap.reader import make_reader

    segments = sorted(p for p in rec.glob("seg_*") if (p / "metadata.yaml").is_file())
    assert segments, f"no closed rosbag2 segment under {rec}: {sorted(p.name for p in rec.glob('*'))}"
    counts, commands, commands_after_robot = _read_bag(segments)
    print(f"bag: {len(segments)} segment(s), {counts}")
    assert counts.get("/robot_state", 0) > 10 * SIM_S, f"too few RobotStates recorded: {counts}"
    assert counts.get("/objects", 0) > 10 * SIM_S, f"too few ObjectStateArrays recorded: {counts}"
    # the heuristic commands at 10 Hz of simulated time (from the first RobotState on, after start-up)
    assert counts.get("/high_level_command", 0) > 5 * SIM_S, f"too few HighLevelCommands recorded: {counts}"
    stamps = np.array([t for _, t in commands])
    rate = 1.0 / np.median(np.diff(stamps))
    assert abs(rate - 10.0) < 0.5, f"commands at {rate:.2f} Hz of their header stamps, not the planner's 10 Hz"
    n_mcap = 0
    for seg in segments:
        (mcap_file,) = seg.glob("*.mcap")
        with open(mcap_file, "rb") as f:
            n_mcap += sum(1 for _ in make_reader(f).iter_messages())
    assert n_mcap == sum(counts.values()), f"mcap reads {n_mcap} messages, rosbags {sum(counts.values())}"

    # the dataset: one step per recorded command (from the first RobotState on), actions = the commands
    from refine_dp_planner.messages import action_from_command
    from refine_dp_planner.planner_io import observation_fields
    from refine_dp_training.data.bags import from_bags
    from refine_dp_training.data.episodes import EpisodeDataset

    summary = from_bags([rec], tmp_path / "data", ("box",))
    data = EpisodeDataset(tmp_path / "data")
    assert summary["episodes"] == len(data) >= 1 and summary["skipped_short"] == 0, summary
    assert summary["steps"] == commands_after_robot, summary
    actions = np.concatenate([data[i]["actions"] for i in range(len(data))])
    obs = np.concatenate([data[i]["obs"] for i in range(len(data))])
    expected = np.stack([action_from_command(msg).to_vector() for msg, _ in commands[-len(actions):]])
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    obs_dim = sum(n for _, n in observation_fields(("box",)))
    assert obs.shape == (len(actions), obs_dim) and data.meta["obs_dim"] == obs_dim
    assert abs(data.meta["control_rate_hz"] - 10.0) < 0.5
    box = data.field_slice("box")
    tracked = obs[:, box][:, -1]
    assert tracked.mean() > 0.8, f"the box was tracked in {tracked.mean():.2f} of the observations"

    # the heuristic drove the robot: raised a hand towards the box and walked to the table. From the scene's
    # own start (the box 0.6 m ahead, nearer than the heuristic's hold-back distance) it first raises the hand
    # standing (~7 s), turns to aim, then walks in: the walk came ~11 s after the first command; from further
    # back (the task's starts) it walks first.
    t = stamps[-len(actions):] - stamps[-len(actions)]
    hands = actions[:, 3:21].reshape(-1, 2, 9)[..., :3]
    hand_moved = float(np.linalg.norm(hands - hands[0], axis=-1).max())
    walking = actions[:, 0] > MIN_VX
    print(f"hand targets moved up to {hand_moved:.3f} m; first walk command "
          f"{t[walking][0] if walking.any() else float('nan'):.1f} s after the first command")
    assert hand_moved > MIN_HAND_M, f"the hand targets moved only {hand_moved:.3f} m; heuristic said {stages}"
    assert walking.any(), (f"no forward walk command (vx max {actions[:, 0].max():.3f} m/s) in {t[-1]:.1f} s; "
                           f"heuristic said {stages}")
