"""The real walking chain, each node its own process, parameterized as the demo graph runs it:
sim_t1 (floor) <-> t1_hardware_interface (vendor SDK on loopback) <- loco_manip_controller (the
shipped legs.onnx / arms.onnx) <- footstep_planner <- HighLevelCommand from this test.

The test commands a forward walk and reads where the trunk went from sim_t1's ground truth (its
report), so it fails if any link of the chain does not carry the command: a controller holding the
default pose stands still, a dropped topic or a wrong joint order does not walk, or falls.

It is a real-time closed loop: the nodes need about 1.5 of the 2 cores of the reference VM. When
other work takes them, the controller runs late and the robot can fall; the failure message then
shows the simulator's real-time factor and the controller's loop period and inference time.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import ExitStack

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from procs import free_udp_ports, python_process, ros_args, spinning_node, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(180)]

CHAIN = ("sim_t1", "t1_hardware_interface", "footstep_planner", "loco_manip_controller")
WALK_VX = 0.2       # m/s, as in the demo script
WALK_S = 8.0        # s of commanded walking: 1.6 m
# The shipped legs walk 0.3-0.7 of the commanded speed (models/eval: 0.30 over random commands;
# 0.5-0.7 straight ahead at 0.2 m/s): 0.5-1.1 m here. Holding the default pose moves the trunk by
# a few centimetres (the ramp and the stand), so a third of the slowest walk still tells them apart.
MIN_FORWARD_M = 0.15
MIN_TRUNK_HEIGHT_M = 0.5      # standing 0.667 m; sim_t1 calls < 0.45 m a fall


def _chain_specs():
    """The demo graph's nodes of the chain with their sim parameters; the floor scene, free ports."""
    from refine_dp.graph import load_graph

    command_port, data_port = free_udp_ports(2)
    overrides = {"sim_t1": {"scene": "floor", "snapshot": False, "video": False,
                            "natnet_command_port": command_port, "natnet_data_port": data_port}}
    specs = {n.name: n for n in load_graph("sim", overrides=overrides)}
    missing = [name for name in CHAIN if name not in specs]
    assert not missing, f"bringup.yaml no longer has {missing}"
    return [specs[name] for name in CHAIN]


def _high_level_command(vx: float, hand_pos: np.ndarray, hand_rot: np.ndarray):
    from refine_dp_msgs.msg import HighLevelCommand
    from scipy.spatial.transform import Rotation

    cmd = HighLevelCommand()
    cmd.header.frame_id = "base_link"
    cmd.vx = vx
    for pose, pos, rot in zip((cmd.left_hand_pose, cmd.right_hand_pose), hand_pos, hand_rot):
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
        x, y, z, w = Rotation.from_matrix(rot).as_quat()  # geometry_msgs order: x, y, z, w
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w
    return cmd


class Commander:
    """HighLevelCommand at 10 Hz (the planner's rate) from a thread: forward speed `vx`, the hands at
    the nominal pose (where the default arm joints put them), grippers open."""

    def __init__(self, node):
        from loco_manip_controller import policy_io as pio
        from refine_dp_msgs.msg import HighLevelCommand
        from t1_description.joint_table import load_joint_table

        jt = load_joint_table()
        pos, rot = pio.arm_kinematics().fk(jt.default_q[pio.ARM_ACTION.indices(jt)])
        self.hand_pos, self.hand_rot, self.vx = pos[0], rot[0], 0.0
        self.pub = node.create_publisher(HighLevelCommand, "high_level_command",
                                         QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.pub.publish(_high_level_command(self.vx, self.hand_pos, self.hand_rot))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)


def test_commanded_forward_walk_moves_the_simulated_robot_through_the_whole_chain(tmp_path):
    from refine_dp_msgs.msg import ControllerStatus

    t_start = time.monotonic()
    (tmp_path / "reports").mkdir()
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    statuses: list = []   # (monotonic time, active)
    with spinning_node("walk_chain_test") as node, ExitStack() as stack:
        node.create_subscription(ControllerStatus, "controller_status",
                                 lambda m: statuses.append((time.monotonic(), m.active)), 10)
        procs = {spec.name: stack.enter_context(python_process(
                     ["-m", spec.module, *ros_args(**spec.parameters)], env=env))
                 for spec in _chain_specs()}
        commander = stack.enter_context(Commander(node))

        def chain_up() -> bool:
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            assert not dead, f"node(s) exited early (exit status): {dead}"
            return bool(statuses) and statuses[-1][1]

        # start-up: the interface ramps the robot up, then the controller drives it (on the policies)
        assert wait_for(chain_up, timeout=60, period=0.1), "the controller never became active"
        t_active = time.monotonic()
        time.sleep(1.0)                 # stand on the policies a moment
        commander.vx = WALK_VX
        t_walk = time.monotonic()
        time.sleep(WALK_S)
        commander.vx = 0.0
        t_walk_end = time.monotonic()
        time.sleep(1.0)                 # the footstep planner stops at the end of its step
        chain_up()
        _stop(procs["sim_t1"])          # first: its report is the ground truth of the walk
        for name in ("loco_manip_controller", "footstep_planner", "t1_hardware_interface"):
            _stop(procs[name])
    wall_s = time.monotonic() - t_start

    reports = {name: json.loads((tmp_path / "reports" / f"{name}.json").read_text())
               for name in ("sim_t1", "t1_hardware_interface", "loco_manip_controller")}
    sim, hw, ctrl = reports["sim_t1"], reports["t1_hardware_interface"], reports["loco_manip_controller"]
    path = np.array(sim["walk"]["path"])          # rows (sim time, x, y, yaw), every 0.5 s
    start, yaw0 = path[0, 1:3], path[0, 3]
    moved = np.array(sim["final_trunk_position_m"][:2]) - start
    forward = float(moved @ (np.cos(yaw0), np.sin(yaw0)))
    lateral = float(moved @ (-np.sin(yaw0), np.cos(yaw0)))
    commanded = WALK_VX * (t_walk_end - t_walk)
    active = [a for t, a in statuses if t_walk <= t <= t_walk_end]
    transitions = [(tr["to"], tr["t"], tr["reason"]) for tr in hw["safety_transitions"]]
    load = (f"sim real-time factor {sim['real_time_factor']}, controller loop period "
            f"{ctrl.get('loop_period_ms')} ms, inference {ctrl.get('inference_ms')} ms")
    print(f"\nwalk chain: forward {forward:.3f} m of {commanded:.2f} m commanded (lateral {lateral:+.3f} m), "
          f"trunk height min {sim['min_trunk_height_m']:.3f} / final {sim['final_trunk_height_m']:.3f} m, "
          f"controller active {np.mean(active):.2f} of the walk, start-up {t_active - t_start:.1f} s, "
          f"wall {wall_s:.1f} s; safety {[to for to, _, _ in transitions]}; {load}")

    falls = [tr for tr in transitions if tr[0] in ("damping", "fallen")]
    assert not falls, f"the hardware interface went to {falls}; {load}"
    assert not sim["fell"] and sim["min_trunk_height_m"] > MIN_TRUNK_HEIGHT_M, (
        f"the robot fell: trunk height min {sim['min_trunk_height_m']:.3f} m; {load}")
    assert len(active) > 0.5 * WALK_S * 50 and np.mean(active) > 0.9, (
        f"controller active in {np.mean(active):.2f} of {len(active)} steps of the walk; {load}")
    assert forward > MIN_FORWARD_M, (
        f"trunk moved {forward:.3f} m forward (lateral {lateral:+.3f} m) for {commanded:.2f} m commanded; "
        f"path {path.tolist()}")
