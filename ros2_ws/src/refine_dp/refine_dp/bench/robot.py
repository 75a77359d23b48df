"""`refine-dp bench robot`: the whole simulated graph (as `refine-dp bringup --sim` runs it: sim_t1,
hardware interface, MoCap bridge, footstep planner, controller, scripted walk), optionally beside N
busy processes, and what it costs and how it keeps time.

Measured here, in wall time (time.monotonic, one clock for every process of the machine):
- LowState -> RobotState: both received by this process (LowState raw, parsed with numpy); matched
  on their joint positions (the interface copies them): SDK receive, conversion, safety, publish,
  one DDS hop.
- MoCap -> ObjectStateArray: this process is a second NatNet client of sim_t1; a frame's receipt
  here -> receipt of the ObjectStateArray that carries its frame number (the bridge's parse,
  tracking, conversion, publish and one DDS hop).
From the nodes' reports: LowCmd gaps as sim_t1 receives them (wall), JointCommand -> LowCmd inside
the interface, the controller's cycle and inference times, jitter and deadline misses (on its own
clock), the interface's watchdog events, whether the robot stood (sim_t1's ground truth), the
real-time factor and the time physics waited for the controllers; per-node CPU (/proc).

`--clock sim` (default): sim_t1's /clock, use_sim_time everywhere, physics synchronised with the
interface and controller, as the demo runs. `--clock wall`: no /clock, every node on wall time (the
robot's timing; what the robot-side nodes cost on the robot: no /clock subscription).
`--duration` counts simulated seconds with --clock sim (wall-limited), wall seconds otherwise.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from refine_dp.bench.machine import describe, machine_info, percentiles_ms
from refine_dp.cpu import ROBOT_SIDE, format_table
from refine_dp.graph import load_graph
from refine_dp.runner import GraphRunner, write_json_atomic

BENCH_PRIORITY = 50  # SCHED_FIFO of this process (where permitted), below every node that asks for it
# figures the issue set for the quiet graph (README, "Benchmarks")
TARGETS = {"robot_side_cores": 0.5, "controller_cycle_p99_ms": 3.0, "low_cmd_rate_hz": 500.0,
           "low_cmd_gap_p99_ms": 3.0, "mocap_to_objects_p99_ms": 5.0, "deadline_misses": 0}


def _free_udp_ports(n: int) -> list[int]:
    import socket
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def graph_nodes(clock: str, scene: str = "table_box", script: list[float] | None = None):
    """The demo graph with free NatNet ports (benchmarks may run beside a demo), the chosen clock and,
    if given, another velocity script for the scripted commander ([duration, vx, vy, wz] groups)."""
    command_port, data_port = _free_udp_ports(2)
    sim = {"natnet_command_port": command_port, "natnet_data_port": data_port, "snapshot": False, "scene": scene}
    bridge = {"command_port": command_port, "data_port": data_port}
    overrides = {"sim_t1": sim, "mocap_bridge": bridge}
    if script is not None:
        overrides["scripted_commander"] = {"script": [float(v) for v in script]}
    if clock == "wall":  # the robot's timing: no /clock, no synchronised physics
        sim.update(publish_clock=False, sync_low_cmd_lead_s=0.0, sync_joint_command_lead_s=0.0)
        for n in load_graph("sim"):
            if n.name != "sim_t1":
                overrides.setdefault(n.name, {})["use_sim_time"] = False
    nodes = load_graph("sim", overrides=overrides)
    return nodes, command_port


def start_busy(n: int) -> list[subprocess.Popen]:
    """N processes that each keep one core busy (pure Python loop), at default priority."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def _low_state_q(data: bytes, n: int) -> np.ndarray:
    """Serial joint positions (SDK order) of a serialized LowState (t1_sim/wire.py layout)."""
    from t1_sim.wire import MOTOR_STATE
    return np.frombuffer(data, MOTOR_STATE, n, 48 + 36 * n)["q"]


def _key(values) -> tuple:
    return tuple(np.round(np.asarray(values[:6], dtype=np.float32), 6).tolist())


def run(duration: float, out: Path, quiet: bool = True, stress: int = 0, clock: str = "sim",
        script: list[float] | None = None) -> dict:
    import rclpy
    from booster_interface.msg import LowState
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from refine_dp_msgs.msg import ObjectStateArray, RobotState

    from mocap_bridge.client import NatNetClient, NatNetClientConfig
    from t1_description.joint_table import load_joint_table
    from t1_description.ros_runtime import make_events_spinner, request_realtime

    if clock not in ("sim", "wall"):
        raise ValueError(f"clock must be 'sim' or 'wall', got {clock!r}")
    nodes, natnet_port = graph_nodes(clock, script=script)
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    jt = load_joint_table()
    n_motors = len(jt.names)
    runner = GraphRunner(nodes, out, echo=not quiet, runner_name="bench")
    rclpy.init()
    node = rclpy.create_node("refine_dp_bench_robot",
                             parameter_overrides=[Parameter("use_sim_time", value=clock == "sim")])
    best_effort = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
    low_state_seen: dict = {}
    natnet_seen: dict = {}
    lat = {"low_state_to_robot_state": [], "mocap_to_objects": []}
    lock = threading.Lock()

    def on_low_state(data: bytes):
        q_model = jt.sdk_to_model(_low_state_q(data, n_motors).astype(np.float64))
        low_state_seen[_key(q_model)] = time.monotonic()
        if len(low_state_seen) > 5000:
            low_state_seen.pop(next(iter(low_state_seen)))

    def on_robot_state(msg):
        t0 = low_state_seen.get(_key(np.asarray(msg.position)))
        if t0 is not None:
            lat["low_state_to_robot_state"].append(time.monotonic() - t0)

    def on_natnet(frame, _names, _t):
        with lock:
            natnet_seen[frame.frame_number] = time.monotonic()
            if len(natnet_seen) > 2000:
                natnet_seen.pop(next(iter(natnet_seen)))

    def on_objects(msg):
        now = time.monotonic()
        if msg.objects:
            with lock:
                t0 = natnet_seen.get(msg.objects[0].frame_number)
            if t0 is not None:
                lat["mocap_to_objects"].append(now - t0)

    node.create_subscription(LowState, "low_state", on_low_state, best_effort, raw=True)
    node.create_subscription(RobotState, "robot_state", on_robot_state, best_effort)
    node.create_subscription(ObjectStateArray, "objects", on_objects, best_effort)
    natnet = NatNetClient(NatNetClientConfig(command_port=natnet_port), on_frame=on_natnet)
    busy = start_busy(stress)
    # the instrument must not lag behind what it measures: its receipt times are the latencies
    scheduling = request_realtime(BENCH_PRIORITY)
    sim_clock = (lambda: node.get_clock().now().nanoseconds * 1e-9) if clock == "sim" else None
    started = threading.Timer(3.0, natnet.start)  # after sim_t1 has bound its port
    started.start()
    try:
        result = runner.run(duration, tick=make_events_spinner(node), clock=sim_clock,
                            wall_limit=4 * duration + 120 if sim_clock else None)
    finally:
        started.cancel()
        natnet.stop()
        stop_busy(busy)
        rclpy.try_shutdown()
    figures = summarize(runner.reports(), result, lat, info, duration, stress, clock)
    figures["bench_scheduling"] = scheduling
    write_json_atomic(out / "bench_robot.json", figures)
    return figures


def summarize(reports: dict, result, lat: dict, info: dict, duration: float, stress: int, clock: str) -> dict:
    sim = reports.get("sim_t1", {})
    hw = reports.get("t1_hardware_interface", {})
    ctrl = reports.get("loco_manip_controller", {})
    cpu = result.cpu
    robot_side = sum(cpu.get("cores", {}).get(n, 0.0) for n in ROBOT_SIDE)
    low_cmd = sim.get("low_cmd_timing", {})
    sim_time = sim.get("sim_time_s") or 0.0
    holds = hw.get("watchdog_events", {})
    return {
        "machine": info, "duration_s": duration, "clock": clock, "stress_processes": stress,
        "graph": [n["name"] for n in result.nodes], "stop_reason": result.stop_reason, "exit_code": result.exit_code,
        "stood": sim.get("fell") is False, "fell": sim.get("fell"),
        "min_trunk_height_m": sim.get("min_trunk_height_m"),
        "real_time_factor": sim.get("real_time_factor"), "sim_time_s": sim_time,
        "physics_waited_s": sim.get("sync_wait_s"), "physics_waits": sim.get("sync_waits"),
        "low_state_to_robot_state": percentiles_ms(lat["low_state_to_robot_state"]),
        "mocap_to_objects": percentiles_ms(lat["mocap_to_objects"]),
        "low_cmd_at_sim": low_cmd,  # wall-clock gaps between LowCmds as sim_t1 receives them
        "low_cmd_per_simulated_s": round(sim.get("commands", 0) / sim_time, 1) if sim_time else None,
        "joint_command_to_low_cmd_ms": hw.get("joint_command_to_low_cmd_ms"),
        "watchdog_events": holds, "safety_transitions": hw.get("safety_transitions", []),
        "interface_scheduling": hw.get("scheduling"), "controller_scheduling": ctrl.get("scheduling"),
        "controller": {k: ctrl.get(k) for k in ("cycle_ms", "inference_ms", "loop_jitter_ms", "deadline_misses",
                                                "steps", "active_steps", "ort_threads", "clock")},
        "cpu": cpu, "robot_side_cores": round(robot_side, 3), "targets": TARGETS,
    }


def print_figures(f: dict) -> None:
    print(f"refine-dp bench robot — {describe(f['machine'])}; graph {', '.join(f['graph'])}; "
          f"{f['duration_s']:g} s ({'simulated' if f['clock'] == 'sim' else 'wall'}), clock {f['clock']}, "
          f"{f['stress_processes']} busy process(es) beside it")
    print(f"  stood: {f['stood']} (min trunk height {f['min_trunk_height_m']}); real-time factor "
          f"{f['real_time_factor']}; physics waited {f['physics_waited_s']} s for the controllers "
          f"({f['physics_waits']} waits); stop: {f['stop_reason']}")
    rows = [("LowState -> RobotState", f["low_state_to_robot_state"]),
            ("MoCap frame -> ObjectStateArray", f["mocap_to_objects"])]
    print(f"  {'latency (wall)':36s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'n':>7s}")
    for name, r in rows:
        if r.get("n"):
            print(f"  {name:36s} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['max_ms']:8.3f} {r['n']:7d}")
        else:
            print(f"  {name:36s} {'no samples':>8s}")
    jc = f.get("joint_command_to_low_cmd_ms") or {}
    if jc.get("n"):
        print(f"  {'JointCommand -> LowCmd (interface)':36s} {jc['p50']:8.3f} {jc['p99']:8.3f} {jc['max']:8.3f} "
              f"{jc['n']:7d}")
    lc = f["low_cmd_at_sim"] or {}
    if lc.get("n"):
        print(f"  LowCmd at sim_t1: {lc['rate_hz']} Hz wall ({f['low_cmd_per_simulated_s']} per simulated s), gap "
              f"p50 {lc['gap_p50_ms']} p99 {lc['gap_p99_ms']} max {lc['gap_max_ms']} ms")
    c = f["controller"]
    cyc, inf, jit = c.get("cycle_ms") or {}, c.get("inference_ms") or {}, c.get("loop_jitter_ms") or {}
    print(f"  controller ({c.get('clock')} clock, ONNX Runtime {c.get('ort_threads')} thread(s)): cycle median "
          f"{cyc.get('median')} p99 {cyc.get('p99')} ms, inference median {inf.get('median')} p99 {inf.get('p99')} ms, "
          f"jitter p99 {jit.get('p99')} ms, deadline misses {c.get('deadline_misses')} in {c.get('steps')} cycles")
    print(f"  interface watchdog events {f['watchdog_events'] or 'none'}; scheduling: interface "
          f"{(f['interface_scheduling'] or {}).get('got')}, controller {(f['controller_scheduling'] or {}).get('got')}, "
          f"bench {(f.get('bench_scheduling') or {}).get('got')}")
    for line in format_table(f["cpu"], {"robot-side nodes": ROBOT_SIDE}):
        print(line)
    t = f["targets"]
    print(f"  targets (quiet machine): robot-side <= {t['robot_side_cores']} core, controller cycle p99 <= "
          f"{t['controller_cycle_p99_ms']} ms, LowCmd {t['low_cmd_rate_hz']:g} Hz with gap p99 <= "
          f"{t['low_cmd_gap_p99_ms']} ms, MoCap -> ObjectStateArray p99 <= {t['mocap_to_objects_p99_ms']} ms, "
          f"{t['deadline_misses']} deadline misses")


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())
