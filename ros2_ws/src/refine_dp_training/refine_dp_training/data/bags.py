"""rosbag2 recordings of the ROS graph -> demonstrations in the dataset format (FORMAT.md).

    refine-dp dataset from-bags runs/bags/demo1 runs/bags/demo2 --out data/pickup_robot --objects box

One recording (a folder of `refine-dp record` segments, or one rosbag2) is one episode. Each
HighLevelCommand in it is one planner step: the action is the command (planner_io's action vector),
the observation is what the planner node would have built at that moment from the latest RobotState
and ObjectStateArray received before it, with the grippers of the previous command, through the
node's own converters (refine_dp_planner.messages) and planner_io.build_observation. An episode is
also cut where commands pause for longer than `max_gap_s`. Rewards are sparse: 1 at the last step
of a successful episode.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from refine_dp_planner.bags import find_bags, typestore
from refine_dp_planner.messages import action_from_command, objects_from_msg, robot_observation
from refine_dp_planner.planner_io import ACTION_FIELDS, build_observation, observation_fields
from t1_description.joint_table import ARM_GROUPS, load_joint_table

from .episodes import EpisodeWriter

INPUT_TOPICS = ("/robot_state", "/objects", "/high_level_command")


def recordings(paths) -> list[list[Path]]:
    """Group rosbag2 directories by recording: the segments of one `refine-dp record` folder together."""
    groups: dict[Path, list[Path]] = {}
    for bag in find_bags(paths):
        key = bag.parent if bag.name.startswith("seg_") else bag
        groups.setdefault(key, []).append(bag)
    return [sorted(g) for _, g in sorted(groups.items())]


def planner_steps(bags: list[Path], object_names: tuple[str, ...], max_gap_s: float = 1.0) -> list[dict]:
    """The planner steps of one recording, as episodes [{"obs", "actions", "t"}]; t (s) is the command's
    header stamp (when the planner computed it), or its receive time when the stamp is unset."""
    from rosbags.highlevel import AnyReader

    table = load_joint_table()
    arm_idx, n_joints = table.indices(*ARM_GROUPS), len(table.names)
    robot, objects, grippers = None, {}, np.zeros(2)
    episodes, obs, actions, stamps = [], [], [], []
    with AnyReader(bags, default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if c.topic in INPUT_TOPICS]
        missing = set(INPUT_TOPICS) - {c.topic for c in conns}
        if "/high_level_command" in missing or "/robot_state" in missing:
            raise ValueError(f"{bags[0].parent}: the recording lacks {sorted(missing)}; record the planner's inputs "
                             f"and outputs (refine-dp record's default topics)")
        for conn, t_ns, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/robot_state":
                robot = robot_observation(msg, arm_idx, n_joints) or robot
            elif conn.topic == "/objects":
                objects = objects_from_msg(msg)
            elif robot is not None:
                stamp = msg.header.stamp
                t = stamp.sec + stamp.nanosec * 1e-9 if stamp.sec or stamp.nanosec else t_ns * 1e-9
                if stamps and t - stamps[-1] > max_gap_s:
                    episodes.append((obs, actions, stamps))
                    obs, actions, stamps = [], [], []
                action = action_from_command(msg)
                obs.append(build_observation(robot[0], grippers, robot[1], objects, object_names))
                actions.append(action.to_vector())
                stamps.append(t)
                grippers = action.grippers.copy()
    episodes.append((obs, actions, stamps))
    return [{"obs": np.stack(o), "actions": np.stack(a), "t": np.array(s)} for o, a, s in episodes if o]


def from_bags(paths, out: str | Path, object_names: tuple[str, ...], success: bool = True,
              min_steps: int = 10, max_gap_s: float = 1.0) -> dict:
    """Convert recordings into a dataset at `out`; returns a summary."""
    eps = [ep for rec in recordings(paths) for ep in planner_steps(rec, object_names, max_gap_s)]
    kept = [ep for ep in eps if len(ep["obs"]) >= min_steps]
    if not kept:
        raise ValueError(f"no episode of at least {min_steps} planner steps in {[str(p) for p in paths]}")
    intervals = np.concatenate([np.diff(ep["t"]) for ep in kept if len(ep["t"]) > 1])
    rate = float(1.0 / np.median(intervals))
    obs_fields = observation_fields(object_names)
    with EpisodeWriter(out, sum(n for _, n in obs_fields), sum(n for _, n in ACTION_FIELDS), obs_fields=obs_fields,
                       action_fields=ACTION_FIELDS, control_rate_hz=round(rate, 2), source="rosbag2",
                       info={"bags": [str(p) for p in paths], "objects": list(object_names),
                             "interval_p90_s": float(np.percentile(intervals, 90))}) as writer:
        for ep in kept:
            rewards = np.zeros(len(ep["obs"]), np.float32)
            rewards[-1] = float(success)
            writer.add_episode(ep["obs"], ep["actions"], rewards, success)
    return {"episodes": len(kept), "skipped_short": len(eps) - len(kept),
            "steps": int(sum(len(ep["obs"]) for ep in kept)), "rate_hz": rate, "out": str(out)}


def main(argv=None) -> int:
    """`refine-dp dataset from-bags BAGS... --out DIR`: planner demonstrations from rosbag2 recordings."""
    parser = argparse.ArgumentParser(prog="refine-dp dataset from-bags", description=main.__doc__)
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders or folders of recordings")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    parser.add_argument("--objects", nargs="+", default=["box"], help="object names of the planner observation")
    parser.add_argument("--failure", action="store_true", help="label the episodes as failures (default: successes)")
    parser.add_argument("--min-steps", type=int, default=10, help="drop episodes shorter than this")
    parser.add_argument("--max-gap-s", type=float, default=1.0, help="cut an episode where commands pause longer")
    args = parser.parse_args(argv)
    summary = from_bags(args.bags, args.out, tuple(args.objects), success=not args.failure,
                        min_steps=args.min_steps, max_gap_s=args.max_gap_s)
    print(f"{summary['episodes']} episode(s), {summary['steps']} planner steps at {summary['rate_hz']:.2f} Hz "
          f"-> {summary['out']} ({summary['skipped_short']} too short)")
    return 0
