"""Physics cost of the task scenes: single-thread mj_step rate with the T1 standing.

    python -m t1_description.scene_bench                 # every scene, 3000 steps, best of 3
    python -m t1_description.scene_bench door floor --steps 5000

The robot holds the stand keyframe's pose on the joint table's PD (computed inside mj_step, as the
training env does) with the grippers open; 500 steps settle it before the timed loop. The rate is
printed beside scene_floor's, so the ratio is the scene's extra cost (contacts, joints, equality
rows of its objects). Figures depend on the machine; model/README.md keeps a dated table.
"""
from __future__ import annotations

import argparse
import platform
import time

import mujoco

from t1_description.joint_table import load_joint_table
from t1_description.model_paths import STAND_KEYFRAME, available_scenes, load_model, robot_indices
from t1_description.pd import make_pd_actuators


def physics_rate(scene: str, steps: int = 3000, repeats: int = 3, settle: int = 500) -> dict:
    """Best-of-`repeats` mj_step rate (steps per CPU second of the stepping thread) of `scene`, and
    the mean contact count."""
    jt = load_joint_table()
    m = load_model(scene)
    idx = robot_indices(m)
    make_pd_actuators(m, idx.ctrl, jt.effort_limit, kp=jt.kp, kd=jt.kd)
    d = mujoco.MjData(m)
    best, contacts = 0.0, 0
    for _ in range(repeats):
        mujoco.mj_resetDataKeyframe(m, d, m.key(STAND_KEYFRAME).id)
        d.ctrl[idx.ctrl] = jt.default_q
        for _ in range(settle):
            mujoco.mj_step(m, d)
        contacts = 0
        t0 = time.thread_time()  # CPU time of this thread: other processes on a shared machine do not count
        for _ in range(steps):
            mujoco.mj_step(m, d)
            contacts += d.ncon
        best = max(best, steps / (time.thread_time() - t0))
    return {"scene": scene, "steps_per_s": best, "contacts": contacts / steps, "nv": m.nv,
            "neq": m.neq, "ngeom": m.ngeom, "trunk_z": float(d.qpos[idx.root_qpos[2]])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenes", nargs="*", help="scene names (default: all)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    scenes = args.scenes or list(available_scenes())
    if "floor" not in scenes:
        scenes = ["floor"] + scenes
    print(f"mujoco {mujoco.__version__}, {platform.processor() or platform.machine()}, single thread, "
          f"{args.steps} steps, best of {args.repeats}")
    rows = {}
    for _ in range(args.repeats):  # rounds over all scenes, so a busy spell hits them alike; best per scene
        for s in scenes:
            r = physics_rate(s, args.steps, repeats=1)
            if s not in rows or r["steps_per_s"] > rows[s]["steps_per_s"]:
                rows[s] = r
    rows = list(rows.values())
    floor = next(r for r in rows if r["scene"] == "floor")["steps_per_s"]
    print(f"{'scene':<12}{'steps/s':>10}{'vs floor':>10}{'contacts':>10}{'nv':>5}{'neq':>5}{'trunk z':>9}")
    for r in rows:
        print(f"{r['scene']:<12}{r['steps_per_s']:>10.0f}{r['steps_per_s'] / floor:>10.2f}{r['contacts']:>10.1f}"
              f"{r['nv']:>5}{r['neq']:>5}{r['trunk_z']:>9.3f}")


if __name__ == "__main__":
    main()
