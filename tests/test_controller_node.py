"""The 50 Hz controller node: RobotState + commands -> JointCommand through the exported policies."""
from __future__ import annotations

import time

import numpy as np
import pytest

from procs import python_process, ros_args, spinning_node, wait_for
from test_policy_io import _random_actor

pytestmark = pytest.mark.ros


def test_controller_commands_only_while_the_interface_accepts_and_runs_the_leg_policy(tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from loco_manip_controller import policy_io as pio
    from loco_manip_controller import policy_runtime as pr
    from refine_dp_msgs.msg import ControllerStatus, JointCommand, RobotState
    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    legs = _random_actor(pio.LEG_OBS.dim, pio.LEG_ACTION.dim)
    legs_path = pr.export_onnx(legs.actor, legs.normalizer, pio.LEG_OBS.dim, tmp_path / "legs.onnx",
                               pr.build_metadata("legs"))
    cmds, statuses = [], []
    with spinning_node("controller_test") as node:
        node.create_subscription(JointCommand, "joint_command", lambda m: cmds.append((time.monotonic(), m)), 10)
        node.create_subscription(ControllerStatus, "controller_status", statuses.append, 10)
        pub = node.create_publisher(RobotState, "robot_state",
                                    QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        state = RobotState(name=list(jt.names), position=jt.default_q.tolist(), velocity=[0.0] * len(jt.names),
                           safety_state=RobotState.SAFETY_RAMPING)
        state.projected_gravity.z = -1.0
        with python_process(["-m", "loco_manip_controller.controller_node",
                             *ros_args(legs_policy=str(legs_path))]):
            def feed(seconds):
                t_end = time.monotonic() + seconds
                while time.monotonic() < t_end:
                    pub.publish(state)
                    time.sleep(0.01)
            t_start = time.monotonic()
            while not statuses and time.monotonic() - t_start < 30:  # node start-up
                feed(0.1)
            assert statuses, "no ControllerStatus"
            feed(1.0)  # ramping: the controller must stay silent
            assert not cmds and not statuses[-1].active, statuses[-1].message
            state.safety_state = RobotState.SAFETY_READY
            feed(2.0)
            assert len(cmds) > 20, len(cmds)
            n_active = len(cmds)
            wait_for(lambda: False, timeout=0.5)  # RobotState stops: so must the commands
            assert len(cmds) - n_active <= 10
    msg = cmds[-1][1]
    assert list(msg.name) == list(jt.names)
    q = np.asarray(msg.position)
    leg_idx = pio.LEG_ACTION.indices(jt)
    others = np.setdiff1d(np.arange(len(jt.names)), leg_idx)
    np.testing.assert_allclose(q[others], jt.default_q[others])       # no arm policy: default pose
    assert np.abs(q[leg_idx] - jt.default_q[leg_idx]).max() > 1e-3     # the (random) leg policy acts
    np.testing.assert_allclose(msg.kp, jt.kp)
    stamps = np.array([t for t, _ in cmds[5:n_active]])
    assert 30 < (len(stamps) - 1) / (stamps[-1] - stamps[0]) < 70     # about 50 Hz


def test_shipped_models_load_and_the_bringup_graph_names_them():
    """The demo graph's controller parameters resolve to shipped files whose metadata matches the
    joint table, each with its training config and the evaluation report beside it."""
    import json

    from loco_manip_controller.policy_runtime import MODELS_DIR, OnnxPolicy, resolve_model
    from refine_dp.graph import load_graph

    node = next(n for n in load_graph("sim") if n.name == "loco_manip_controller")
    for part in ("legs", "arms"):
        path = resolve_model(node.parameters[f"{part}_policy"])
        policy = OnnxPolicy(path, expect_part=part)  # raises on a joint-table mismatch
        assert policy.meta["part"] == part
        assert (MODELS_DIR / f"{part}_train_config.json").is_file()
    summary = json.loads((MODELS_DIR / "eval" / "summary.json").read_text())
    assert summary["episodes"] >= 8 and summary["policies"]["legs"].endswith("legs.onnx")


def test_controller_node_runs_at_the_policies_rate_and_refuses_a_contradicting_one(tmp_path):
    """rate_hz unset (0) takes the policies' control_hz; a contradicting rate_hz stops the node, naming both."""
    import subprocess
    import sys

    from loco_manip_controller import policy_io as pio
    from loco_manip_controller import policy_runtime as pr

    legs = _random_actor(pio.LEG_OBS.dim, pio.LEG_ACTION.dim)
    legs_path = pr.export_onnx(legs.actor, legs.normalizer, pio.LEG_OBS.dim, tmp_path / "legs.onnx",
                               pr.build_metadata("legs"))
    proc = subprocess.run([sys.executable, "-m", "loco_manip_controller.controller_node",
                           *ros_args(legs_policy=str(legs_path), rate_hz=100.0)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "control_hz: caller expects 100.0, policy has 50.0" in proc.stderr, proc.stderr[-2000:]
