"""Robot-side latencies with the whole simulated graph running (sim_t1, interface, MoCap bridge).

- LowState -> RobotState: both received by this process; matched on their joint positions
  (the interface copies them), so the figure is what the interface adds: SDK receive,
  conversion, safety bookkeeping, publish, and one DDS hop.
- JointCommand -> LowCmd: this process sends JointCommand at 50 Hz with a marker in one joint
  target and times the first LowCmd that carries it.
- MoCap -> ObjectStateArray: from the bridge's receipt of the NatNet frame (header stamp,
  stamp_source receipt) to this process's receipt; the NatNet UDP hop itself is ~1 ms.
- sim_t1 real-time factor: from its own report.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from refine_dp.bench.machine import describe, machine_info, percentiles_ms
from refine_dp.graph import load_graph
from refine_dp.runner import GraphRunner, write_json_atomic

GRAPH_NODES = ("sim_t1", "t1_hardware_interface", "mocap_bridge")


def _key(values) -> tuple:
    return tuple(np.round(np.asarray(values[:6], dtype=np.float32), 7).tolist())


def run(duration: float, out: Path, quiet: bool = True) -> dict:
    import rclpy
    from booster_interface.msg import LowCmd, LowState
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from refine_dp_msgs.msg import JointCommand, ObjectStateArray, RobotState

    from t1_description.joint_table import load_joint_table

    nodes = [n for n in load_graph("sim") if n.name in GRAPH_NODES]
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    runner = GraphRunner(nodes, out, echo=not quiet)
    rclpy.init()
    node = rclpy.create_node("refine_dp_bench_robot")
    jt = load_joint_table()
    best_effort = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
    low_state_seen: dict = {}
    lat = {"low_state_to_robot_state": [], "joint_command_to_low_cmd": [], "mocap_to_objects": []}
    state = {"ready": False, "marker": None, "marker_sent": 0.0}

    def on_low_state(msg):
        low_state_seen[_key([m.q for m in msg.motor_state_serial])] = time.monotonic()
        if len(low_state_seen) > 5000:
            low_state_seen.pop(next(iter(low_state_seen)))

    def on_robot_state(msg):
        t = time.monotonic()
        state["ready"] = msg.safety_state in (RobotState.SAFETY_READY, RobotState.SAFETY_ACTIVE)
        t0 = low_state_seen.get(_key(msg.position))
        if t0 is not None:
            lat["low_state_to_robot_state"].append(t - t0)

    def on_low_cmd(msg):
        marker = state["marker"]
        if marker is not None and msg.motor_cmd and np.float32(msg.motor_cmd[0].q) == np.float32(marker):
            lat["joint_command_to_low_cmd"].append(time.monotonic() - state["marker_sent"])
            state["marker"] = None

    def on_objects(msg):
        now = node.get_clock().now().nanoseconds * 1e-9
        lat["mocap_to_objects"].append(now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    node.create_subscription(LowState, "low_state", on_low_state, best_effort)
    node.create_subscription(RobotState, "robot_state", on_robot_state, best_effort)
    node.create_subscription(LowCmd, "joint_ctrl", on_low_cmd, best_effort)
    node.create_subscription(ObjectStateArray, "objects", on_objects, best_effort)
    cmd_pub = node.create_publisher(JointCommand, "joint_command", 1)
    counter = [0]

    def send_command():
        if not state["ready"]:
            return
        counter[0] += 1
        q = jt.default_q.copy()
        q[0] += 1e-3 * (counter[0] % 2)  # head yaw marker: alternating 1 mrad steps
        msg = JointCommand(name=list(jt.names), position=q.tolist(), kp=jt.kp.tolist(), kd=jt.kd.tolist())
        state["marker"], state["marker_sent"] = float(q[0]), time.monotonic()
        cmd_pub.publish(msg)

    node.create_timer(0.02, send_command)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        result = runner.run(duration)
    finally:
        executor.shutdown()
        rclpy.try_shutdown()
    reports = runner.reports()
    sim = reports.get("sim_t1", {})
    hw = reports.get("t1_hardware_interface", {})
    figures = {
        "machine": info,
        "duration_s": duration,
        "graph": list(GRAPH_NODES),
        "low_state_to_robot_state": percentiles_ms(lat["low_state_to_robot_state"]),
        "joint_command_to_low_cmd": percentiles_ms(lat["joint_command_to_low_cmd"]),
        "mocap_receipt_to_objects": percentiles_ms(lat["mocap_to_objects"]),
        "sim_t1_real_time_factor": sim.get("real_time_factor"),
        "sim_t1_late_cycles": sim.get("late_cycles"),
        "low_state_rate_at_interface_hz": hw.get("low_state_rate_hz"),
        "low_cmd_rate_hz": hw.get("low_cmd_rate_hz"),
        "stop_reason": result.stop_reason,
    }
    write_json_atomic(out / "bench_robot.json", figures)
    return figures


def print_figures(f: dict) -> None:
    print(f"refine-dp bench robot — {describe(f['machine'])}; whole graph running ({', '.join(f['graph'])}), "
          f"{f['duration_s']:g} s")
    rows = [("LowState -> RobotState", f["low_state_to_robot_state"]),
            ("JointCommand -> LowCmd", f["joint_command_to_low_cmd"]),
            ("MoCap receipt -> ObjectStateArray", f["mocap_receipt_to_objects"])]
    print(f"  {'latency':36s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'n':>7s}")
    for name, r in rows:
        if r.get("n"):
            print(f"  {name:36s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} {r['n']:7d}")
        else:
            print(f"  {name:36s} {'no samples':>8s}")
    print(f"  sim_t1 real-time factor {f['sim_t1_real_time_factor']} (late cycles {f['sim_t1_late_cycles']}); "
          f"LowState at the interface {f['low_state_rate_at_interface_hz']} Hz; "
          f"LowCmd {f['low_cmd_rate_hz']} Hz")


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())
