"""The hardware interface drives sim_t1 through the vendor SDK, over DDS, as it drives the robot."""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from procs import free_udp_ports, python_process, ros_args, spinning_node, wait_for

pytestmark = pytest.mark.ros
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture
def graph(tmp_path):
    """sim_t1 + t1_hardware_interface as processes, and a spinning test node."""
    (tmp_path / "reports").mkdir()
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    cmd_port, = free_udp_ports(1)
    with spinning_node("robot_graph_test") as node, python_process(["-m", "t1_sim.sim_t1",
                         *ros_args(scene="floor", natnet_command_port=cmd_port, snapshot=False,
                                   command_timeout=0.5)], env=env) as sim, \
         python_process(["-m", "t1_hardware_interface.hardware_node",
                         *ros_args(state_timeout=0.2, no_state_recovery="ramp")], env=env) as hw:
        yield node, sim, hw, tmp_path


def _stop(proc) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=15)


def test_interface_ramps_sim_t1_to_standing_and_a_shove_leads_to_latched_damping(graph):
    from booster_interface.msg import LowCmd
    from geometry_msgs.msg import Wrench
    from refine_dp_msgs.msg import RobotState
    from t1_description.joint_table import load_joint_table

    node, sim, hw, run_dir = graph
    jt = load_joint_table()
    states: list = []
    cmds: list = []
    node.create_subscription(RobotState, "robot_state", states.append, BEST_EFFORT)
    node.create_subscription(LowCmd, "joint_ctrl", cmds.append, BEST_EFFORT)
    push = node.create_publisher(Wrench, "sim_t1/push", 10)

    assert wait_for(lambda: states and states[-1].safety_state == RobotState.SAFETY_READY, timeout=30), (
        f"never READY; last state {states[-1].safety_state if states else None}")
    time.sleep(1.0)  # stand a while on the interface's PD hold
    q = np.array(states[-1].position)
    assert np.abs(q - jt.default_q).max() < 0.1, np.abs(q - jt.default_q).max()
    assert abs(states[-1].projected_gravity.z + 1.0) < 0.05, states[-1].projected_gravity

    shove = Wrench()
    shove.force.x = 400.0  # N on the trunk for 0.2 s: far more than PD standing can take
    assert wait_for(lambda: push.get_subscription_count() > 0, timeout=10)
    push.publish(shove)
    assert wait_for(lambda: states[-1].safety_state == RobotState.SAFETY_FALLEN, timeout=10), (
        f"no FALLEN after the shove; state {states[-1].safety_state}: {states[-1].safety_reason}")
    time.sleep(0.3)
    assert wait_for(lambda: cmds, timeout=5), "no LowCmd on joint_ctrl"  # discovery can lag on a loaded machine
    latest = cmds[-1]
    assert all(m.kp == 0.0 for m in latest.motor_cmd), "FALLEN must send damping (kp 0)"
    assert any(m.kd > 0.0 for m in latest.motor_cmd)
    time.sleep(1.0)
    assert states[-1].safety_state == RobotState.SAFETY_FALLEN, "FALLEN must latch until reset"

    _stop(hw)
    _stop(sim)
    report = json.loads((run_dir / "reports" / "sim_t1.json").read_text())
    assert report["pushes"] == 1 and report["fell"]
    hw_report = json.loads((run_dir / "reports" / "t1_hardware_interface.json").read_text())
    assert [t["to"] for t in hw_report["safety_transitions"]][:3] == ["ramping", "ready", "fallen"]
