"""Multi-process: `python -m mocap_bridge.node` reads a NatNetServer in this process and
publishes ObjectStateArray, received here by an rclpy subscriber."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from t1_sim.natnet_server import NatNetServer

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]


def test_node_publishes_object_states_from_natnet():
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from refine_dp_msgs.msg import ObjectStateArray

    env = dict(os.environ, PYTHONUNBUFFERED="1")  # ROS_DOMAIN_ID: the session's, set by conftest.py
    yaw = Rotation.from_euler("z", 90, degrees=True)
    x, y, z, w = yaw.as_quat()
    bodies = [
        ("t1_trunk", 1, (1.0, 0.0, 0.7), (w, x, y, z)),  # quaternions w, x, y, z (MuJoCo)
        ("box", 2, (1.0, 0.5, 0.7), (1.0, 0.0, 0.0, 0.0)),
    ]
    server = NatNetServer(lambda: bodies, command_port=0, data_port=0).start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mocap_bridge.node", "--ros-args",
         "-p", f"command_port:={server.command_port}", "-p", "diagnostics_period_s:=1.0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    got = []
    try:
        node = rclpy.create_node("test_mocap_listener", context=ctx)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(ObjectStateArray, "objects", got.append, qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(got) < 30 and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        t0 = time.monotonic()
        n0 = len(got)
        while time.monotonic() - t0 < 1.0:
            executor.spin_once(timeout_sec=0.05)
        rate = (len(got) - n0) / (time.monotonic() - t0)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        server.stop()
    assert len(got) >= 30, f"received {len(got)} messages; node output:\n{out}"
    assert rate > 50, rate  # ~90 Hz expected; loaded CI machines drop some best-effort samples
    msg = got[-1]
    assert msg.header.frame_id == "world"
    objs = {o.name: o for o in msg.objects}
    assert set(objs) == {"t1_trunk", "box"}
    box = objs["box"]
    assert box.tracked and box.root_valid and box.frame_number > 0
    p = box.pose_in_root.position
    assert np.allclose([p.x, p.y, p.z], [0.5, 0.0, 0.0], atol=1e-3)  # box is 0.5 m ahead (yaw 90)
    q = objs["t1_trunk"].pose.orientation
    assert np.allclose([q.x, q.y, q.z, q.w], yaw.as_quat(), atol=1e-6)  # geometry_msgs x, y, z, w
    assert "connected to sim_t1" in out
    assert "Traceback" not in out and "ERROR" not in out, out
