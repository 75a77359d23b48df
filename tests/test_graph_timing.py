"""The graph under load: simulated time (/clock, use_sim_time, physics held for the controllers),
scheduling requests, the per-node CPU table, and the robot standing beside a busy process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from procs import free_udp_ports, python_process, ros_args, spinning_node, wait_for

REFINE_DP = Path(sys.executable).parent / "refine-dp"


# ---------------------------------------------------------------------- no ROS graph needed
def test_cpu_sampler_tells_a_busy_process_from_a_sleeping_one():
    from refine_dp.cpu import CpuSampler, format_table

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = CpuSampler(warmup_s=0.5, period_s=0.2)
        sampler.add("busy", busy.pid)
        sampler.add("idle", idle.pid)
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            sampler.sample()
            time.sleep(0.05)
        sampler.sample(force=True)
        table = sampler.table()
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    cores = table["cores"]
    # a whole core when the machine is free, a share of one when others run (2 cores, load ~9: ~0.2)
    assert cores["busy"] > 0.05 and cores["busy"] > 10 * cores["idle"], table
    assert cores["idle"] < 0.02, table
    assert any("busy" in line for line in format_table(table, {"both": ("busy", "idle")}))


def test_realtime_request_says_what_it_got():
    """In a child process (pytest itself must not become SCHED_FIFO): whatever the machine permits,
    the answer names the policy the process really has."""
    code = ("import json, os; from t1_description.ros_runtime import request_realtime, _current_policy\n"
            "r = request_realtime(5); r['check'] = _current_policy(); print(json.dumps(r))")
    got = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert got["requested"] == "SCHED_FIFO 5"
    assert got["got"] == got["check"]
    assert got["got"].startswith(("SCHED_FIFO 5", "SCHED_OTHER nice"))
    from t1_description.ros_runtime import request_realtime
    assert request_realtime(0)["requested"] == "none"  # 0: nothing asked, nothing changed


def test_projected_gravity_written_out_equals_transforms3d():
    from transforms3d.euler import euler2mat

    from t1_description.robot_types import projected_gravity
    rng = np.random.default_rng(0)
    for rpy in rng.uniform(-3, 3, (200, 3)):
        expected = euler2mat(rpy[2], rpy[1], rpy[0], "rzyx").T @ np.array([0.0, 0.0, -1.0])
        np.testing.assert_allclose(projected_gravity(rpy), expected, atol=1e-12)


def test_sim_target_runs_on_simulated_time_and_the_robot_on_wall_time():
    from refine_dp.graph import graph_uses_sim_time, load_graph

    sim = {n.name: n.parameters for n in load_graph("sim")}
    assert "use_sim_time" not in sim["sim_t1"] and sim["sim_t1"]["publish_clock"] is True
    assert all(p.get("use_sim_time") is True for name, p in sim.items() if name != "sim_t1")
    assert all("use_sim_time" not in n.parameters for n in load_graph("robot"))
    assert graph_uses_sim_time("sim") and not graph_uses_sim_time("robot")
    robot = {n.name: n.parameters for n in load_graph("robot")}
    assert robot["t1_hardware_interface"]["realtime_priority"] > robot["loco_manip_controller"]["realtime_priority"] > 0


# ---------------------------------------------------------------------- ROS graph
@pytest.mark.ros
def test_sim_t1_publishes_clock_and_holds_physics_for_the_controller(tmp_path):
    """Physics runs at most sync_joint_command_lead_s ahead of the newest JointCommand stamp."""
    from booster_interface.msg import LowCmd, MotorCmd
    from refine_dp_msgs.msg import JointCommand
    from rosgraph_msgs.msg import Clock

    from t1_description.joint_table import load_joint_table

    jt = load_joint_table()
    low_cmd = LowCmd(cmd_type=LowCmd.CMD_TYPE_SERIAL, motor_cmd=[
        MotorCmd(q=float(q), kp=float(kp), kd=float(kd), weight=1.0) for q, kp, kd in zip(jt.default_q, jt.kp, jt.kd)])
    clock: list[float] = []
    port, = free_udp_ports(1)
    (tmp_path / "reports").mkdir()
    with spinning_node("clock_test") as node, python_process(["-m", "t1_sim.sim_t1", *ros_args(
            scene="floor", snapshot=False, natnet_command_port=port, sync_joint_command_lead_s=0.04,
            sync_timeout_s=30.0)], env={"REFINE_DP_RUN_DIR": str(tmp_path)}) as sim:
        node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec + m.clock.nanosec * 1e-9),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
        cmd_pub = node.create_publisher(LowCmd, "joint_ctrl", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        jc_pub = node.create_publisher(JointCommand, "joint_command",
                                       QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

        def joint_command(stamp: float) -> None:
            msg = JointCommand(name=list(jt.names), position=jt.default_q.tolist(), kp=jt.kp.tolist(),
                               kd=jt.kd.tolist())
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
            jc_pub.publish(msg)

        def feed(seconds: float, stamp: float | None = None) -> None:  # LowCmd as an interface would
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                cmd_pub.publish(low_cmd)
                if stamp is not None:
                    joint_command(stamp)
                time.sleep(0.01)

        assert wait_for(lambda: clock, timeout=60), "no /clock"
        assert clock[-1] == 0.0  # physics waits for the first LowCmd (prepare mode): time stands
        feed(2.0, stamp=0.1)     # a controller that answered at t = 0.1 s and then went silent
        held = clock[-1]
        assert 0.1 <= held <= 0.1 + 0.04 + 0.021, held  # lead 0.04, /clock every 20 ms
        feed(2.0, stamp=0.5)
        assert 0.5 <= clock[-1] <= 0.5 + 0.04 + 0.021, clock[-1]
        os.killpg(sim.pid, signal.SIGINT)
        sim.wait(timeout=15)
    report = json.loads((tmp_path / "reports" / "sim_t1.json").read_text())
    assert report["sync_waits"] >= 2 and report["sync_wait_s"] > 1.0, report
    assert report["low_cmd_timing"]["n"] > 100


@pytest.mark.ros
def test_interface_runs_its_safety_on_simulated_time(tmp_path):
    """With use_sim_time the interface's loop follows sim_t1's LowStates and /clock: its ramp takes
    1 s of simulated time, and its report says which clock and scheduling it ran on."""
    from refine_dp_msgs.msg import RobotState

    port, = free_udp_ports(1)
    env = {"REFINE_DP_RUN_DIR": str(tmp_path)}
    (tmp_path / "reports").mkdir()
    states: list = []
    with spinning_node("hw_sim_time_test") as node, \
         python_process(["-m", "t1_sim.sim_t1", *ros_args(scene="floor", snapshot=False, natnet_command_port=port,
                                                           sync_low_cmd_lead_s=0.01)], env=env) as sim, \
         python_process(["-m", "t1_hardware_interface.hardware_node",
                         *ros_args(use_sim_time=True, state_timeout=0.2, no_state_recovery="ramp")], env=env) as hw:
        node.create_subscription(RobotState, "robot_state", states.append,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        assert wait_for(lambda: states and states[-1].safety_state == RobotState.SAFETY_READY, timeout=60), (
            f"never READY; last {states[-1].safety_state if states else None}")
        os.killpg(hw.pid, signal.SIGINT)
        hw.wait(timeout=15)
        os.killpg(sim.pid, signal.SIGINT)
        sim.wait(timeout=15)
    report = json.loads((tmp_path / "reports" / "t1_hardware_interface.json").read_text())
    assert report["clock"] == "sim"
    assert report["scheduling"]["requested"] == "none"
    ramp = [t for t in report["safety_transitions"] if t["to"] in ("ramping", "ready")]
    assert [t["to"] for t in ramp][-2:] == ["ramping", "ready"], ramp
    assert abs((ramp[-1]["t_clock"] - ramp[-2]["t_clock"]) - 1.0) < 0.05, ramp  # ramp_time in simulated s
    assert report["low_cmd_sent"] > 100  # one per LowState it saw (a loaded machine skips some)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_robot_stands_and_walks_beside_a_busy_process(tmp_path):
    """`refine-dp bench robot --stress 1`, short: the whole graph on simulated time beside one busy
    process, standing then walking straight at 0.1 m/s. Asserts the robot did not fall, the graph ran
    to its end and the controller never missed its deadline in simulated time; not timing figures
    (they depend on what else runs on the machine; the benchmark prints them). The demo's turns are
    left out: the shipped legs fall in ~4 % of evaluation episodes whatever the timing."""
    out = tmp_path / "bench"
    script = ["3", "0", "0", "0", "9", "0.1", "0", "0"]
    proc = subprocess.run([str(REFINE_DP), "bench", "robot", "--stress", "1", "--duration", "12", "--script", *script,
                           "--out", str(out)], capture_output=True, text=True, timeout=400)
    figures = json.loads((out / "bench_robot.json").read_text())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert figures["stress_processes"] == 1
    assert figures["stood"] is True and figures["min_trunk_height_m"] > 0.5, figures
    assert figures["stop_reason"].startswith("duration"), figures["stop_reason"]
    assert figures["controller"]["active_steps"] > 100, figures["controller"]
    assert figures["controller"]["deadline_misses"] == 0, figures["controller"]  # in simulated time
    assert not {"hold", "damping"} & set(figures["watchdog_events"]), figures["watchdog_events"]
    assert "t1_hardware_interface" in figures["cpu"]["cores"], figures["cpu"]
    assert "robot-side nodes" in proc.stdout
