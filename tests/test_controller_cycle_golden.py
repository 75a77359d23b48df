"""The controller's per-cycle outputs are those recorded before its Python was made faster (issue #18).

tests/data/controller_cycle_golden.npz holds a recorded input sequence (a walk with standing phases,
turning hand targets, a restart of control half-way) and what the shipped policies made of it:
LowLevelController.step at N = 1 and N = 3 (with a masked reset), the node's JointCommand
positions and its tracking summary. Any change to the per-cycle code must reproduce them to
float32 rounding (the policies' outputs are float32; everything else is float64). The recording
was made with the code before the speed-up; re-record (`python tests/test_controller_cycle_golden.py
--record`) only when the numbers are meant to change (new shipped models, a changed observation),
and say so in the commit.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "data" / "controller_cycle_golden.npz"
STEPS, BATCH, BATCH_STEPS, RESET_AT = 240, 3, 40, 120
ATOL = 1e-6  # rad: float32 rounding of the actions (x 0.25 scale) with margin; the code aims at bit-identical


def _model_hashes() -> str:
    from loco_manip_controller.policy_runtime import resolve_model
    return " ".join(hashlib.sha256(resolve_model(n).read_bytes()).hexdigest()[:16] for n in ("legs.onnx", "arms.onnx"))


def make_inputs(n: int, steps: int, seed: int) -> dict:
    """A walk: footsteps of the planner at velocity commands that change every 60 steps (standing first), joints
    jittered around the default pose, hand targets moving and turning."""
    from scipy.spatial.transform import Rotation

    from loco_manip_controller.footstep_planner import FootstepPlanner
    from loco_manip_controller.policy_runtime import LowLevelController
    from t1_description.joint_table import load_joint_table

    table, rng = load_joint_table(), np.random.default_rng(seed)
    planner = FootstepPlanner(n, LowLevelController(_shipped("legs")).footstep_config)
    vel = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.2, 0.1, 0.3], [0.1, -0.1, -0.25]])
    out = {k: [] for k in ("q", "dq", "gravity", "gyro", "swing_foot", "countdown", "step_duration", "target",
                           "step_index", "target_z", "hand_pos", "hand_rot")}
    for t in range(steps):
        f = planner.update(0.02, np.tile(vel[(t // 60) % len(vel)], (n, 1))).footstep
        g = np.array([0.0, 0.0, -1.0]) + 0.03 * rng.standard_normal((n, 3))
        a = 0.05 * t
        out["q"].append(table.default_q + 0.03 * rng.standard_normal((n, 29)))
        out["dq"].append(0.2 * rng.standard_normal((n, 29)))
        out["gravity"].append(g / np.linalg.norm(g, axis=-1, keepdims=True))
        out["gyro"].append(0.1 * rng.standard_normal((n, 3)))
        for k in ("swing_foot", "countdown", "step_duration", "target", "step_index"):
            out[k].append(np.asarray(getattr(f, k)))
        out["target_z"].append(rng.uniform(-0.03, 0.03, n) * (np.asarray(f.swing_foot) != 0))
        out["hand_pos"].append(np.tile([[0.25, 0.2, 0.0], [0.25, -0.2, 0.0]], (n, 1, 1))
                               + 0.05 * np.array([np.cos(a), 0.3 * np.sin(2 * a), np.sin(a)]))
        out["hand_rot"].append(Rotation.from_rotvec(np.tile([[0.3 * np.sin(a), 0.2, 0.4 * np.cos(a)],
                                                             [-0.2, 0.3 * np.cos(a), 0.1]], (n, 1))
                                                    ).as_matrix().reshape(n, 2, 3, 3))
    return {k: np.stack(v) for k, v in out.items()}


def _shipped(part: str):
    from loco_manip_controller.policy_runtime import OnnxPolicy, resolve_model
    return OnnxPolicy(resolve_model(f"{part}.onnx"), part)


def _footstep(inp: dict, t: int):
    from loco_manip_controller.footstep_planner import Footstep
    return Footstep(inp["swing_foot"][t], inp["countdown"][t], inp["step_duration"][t], inp["target"][t],
                    inp["step_index"][t], inp["target_z"][t])


def run_controller(inp: dict, reset_rows=None) -> np.ndarray:
    """q_des [T, N, 29] of LowLevelController.step over the sequence; control restarts at RESET_AT (all rows,
    or the masked `reset_rows` of a batch)."""
    from loco_manip_controller.policy_runtime import LowLevelController

    steps, n = inp["q"].shape[:2]
    ctrl = LowLevelController(_shipped("legs"), _shipped("arms"), num_envs=n)
    out = np.empty((steps, n, 29))
    for t in range(steps):
        if t == RESET_AT % steps:
            ctrl.reset(None if reset_rows is None else reset_rows)
        out[t] = ctrl.step(inp["q"][t], inp["dq"][t], inp["gravity"][t], inp["gyro"][t], _footstep(inp, t),
                           inp["hand_pos"][t], inp["hand_rot"][t])
    return out


def run_node(inp: dict) -> tuple[np.ndarray, np.ndarray]:
    """The node's JointCommand positions [T, 29] (N = 1 rows of `inp`) and its tracking summary's numbers, with
    the node's own message conversions; the RobotState goes stale for one cycle at RESET_AT (control restarts)."""
    import rclpy

    from loco_manip_controller.controller_node import ControllerNode
    from refine_dp_msgs.msg import FootstepCommand, RobotState
    from t1_description.joint_table import load_joint_table

    table = load_joint_table()
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "-p", "legs_policy:=legs.onnx", "-p", "arms_policy:=arms.onnx"],
               context=context)
    try:
        node = ControllerNode(context=context)  # its own context: pytest's process may hold the default one
        positions = np.full((len(inp["q"]), 29), np.nan)
        now = 100.0
        for t in range(len(inp["q"])):
            s = RobotState(name=list(table.names), position=inp["q"][t, 0].tolist(),
                           velocity=inp["dq"][t, 0].tolist(), safety_state=RobotState.SAFETY_ACTIVE)
            s.projected_gravity.x, s.projected_gravity.y, s.projected_gravity.z = inp["gravity"][t, 0].tolist()
            s.imu_angular_velocity.x, s.imu_angular_velocity.y, s.imu_angular_velocity.z = inp["gyro"][t, 0].tolist()
            f = FootstepCommand(swing_foot=int(inp["swing_foot"][t, 0]), countdown=float(inp["countdown"][t, 0]),
                                step_duration=float(inp["step_duration"][t, 0]),
                                target_x=float(inp["target"][t, 0, 0]), target_y=float(inp["target"][t, 0, 1]),
                                target_yaw=float(inp["target"][t, 0, 2]), step_index=int(inp["step_index"][t, 0]),
                                target_z=float(inp["target_z"][t, 0]))
            now += 0.02
            with node._lock:
                node._state, node._state_t = s, (now - 1.0 if t == RESET_AT else now)  # stale once: restart
                node._footstep, node._footstep_t = f, now
                node.hand_pos, node.hand_rot = inp["hand_pos"][t, :1], inp["hand_rot"][t, :1]
            active, _, _ = node.step(now)
            if active:
                positions[t] = np.asarray(node._cmd.position)
        summary = node.tracking.summary()
        tracked = np.array([summary["footstep_error_m"][k] for k in ("median", "p90", "max", "n")]
                           + [summary["hand_pos_error_m"][w][k] for w in ("standing", "walking")
                              for k in ("median", "p90", "max", "n")]
                           + [summary["hand_rot_error_deg"][k] for k in ("median", "p90", "max", "n")], float)
        node.destroy_node()
        return positions, tracked
    finally:
        rclpy.try_shutdown(context=context)


def record() -> None:
    one, many = make_inputs(1, STEPS, seed=0), make_inputs(BATCH, BATCH_STEPS, seed=1)
    node_pos, tracked = run_node(one)
    arrays = {f"one_{k}": v for k, v in one.items()} | {f"many_{k}": v for k, v in many.items()}
    arrays |= {"q_des_one": run_controller(one), "q_des_many": run_controller(many, reset_rows=np.array([0, 2])),
               "node_position": node_pos, "node_tracking": tracked, "models": np.array(_model_hashes())}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN}")


@pytest.fixture(scope="module")
def golden():
    data = dict(np.load(GOLDEN))
    assert str(data["models"]) == _model_hashes(), (
        "the shipped models changed since the golden sequence was recorded: re-record it "
        "(python tests/test_controller_cycle_golden.py --record) on the code before your change")
    inputs = lambda prefix: {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}  # noqa: E731
    return data, inputs("one_"), inputs("many_")


def test_controller_step_at_n1_reproduces_the_recorded_targets(golden):
    data, one, _ = golden
    got = run_controller(one)
    np.testing.assert_allclose(got, data["q_des_one"], rtol=0, atol=ATOL)


def test_controller_step_batched_with_a_masked_reset_reproduces_the_recorded_targets(golden):
    data, _, many = golden
    got = run_controller(many, reset_rows=np.array([0, 2]))
    np.testing.assert_allclose(got, data["q_des_many"], rtol=0, atol=ATOL)


@pytest.mark.ros
def test_controller_node_cycle_reproduces_the_recorded_commands_and_tracking(golden):
    data, one, _ = golden
    positions, tracked = run_node(one)
    assert np.isnan(positions[RESET_AT]).all() and np.isfinite(np.delete(positions, RESET_AT, axis=0)).all()
    np.testing.assert_allclose(positions, data["node_position"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(tracked, data["node_tracking"], rtol=0, atol=1e-4)  # summaries round to 1e-4


if __name__ == "__main__" and "--record" in sys.argv:
    record()
