"""A T1 with its trunk welded to the world, arms on the joint table's PD, for physics tests of
grasping and of the task scenes (no walking needed: only the arms, grippers and objects move).

    t1 = WeldedT1("pick_place", trunk_xy=(0.2, -2.3), gravity_ff=True)  # welded before table 2
    t1.step(200)                                             # arms settle at the default pose
    t1.move_hand("left", pos, rot, duration=1.0, grip=(1, 0))  # differential IK + PD, physics stepped

The weld is an MjSpec equality added to the scene (the trunk held at the stand keyframe's height
and lean, at `trunk_xy`, `trunk_yaw`); nothing in the scene files changes. move_hand solves
damped least-squares IK on the arm's 7 joints at every control tick (10 ms) toward a target that
moves linearly (position) and by slerp (orientation), and the joint PD tracks the solution: the
grasp, the lever turn and the placing are done by the simulated fingers, not by setting poses
(place_box_in_hand only sets up a test that starts with the box already held).
"""
from __future__ import annotations

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from t1_description.joint_table import load_joint_table
from t1_description.model_paths import STAND_KEYFRAME, mjcf_path, robot_indices
from t1_description.pd import apply_pd_command, make_pd_actuators

HANDS = ("left", "right")
CONTROL_STEPS = 5  # physics steps (2 ms) per IK update


class WeldedT1:
    def __init__(self, scene: str = "table_box", trunk_xy=(0.0, 0.0), trunk_yaw: float = 0.0,
                 trunk_z_offset: float = 0.0, gravity_ff: bool = False):
        spec = mujoco.MjSpec.from_file(str(mjcf_path(scene)))
        probe = spec.compile()
        key = probe.key(STAND_KEYFRAME)
        lean = Rotation.from_quat(key.qpos[3:7], scalar_first=True)
        self.trunk_pos = np.array([trunk_xy[0], trunk_xy[1], key.qpos[2] + trunk_z_offset])
        self.trunk_quat = (Rotation.from_euler("z", trunk_yaw) * lean).as_quat(scalar_first=True)
        trunk = spec.body("Trunk")
        trunk.pos, trunk.quat = self.trunk_pos, self.trunk_quat  # qpos0 = the welded pose
        weld = spec.add_equality()
        weld.type, weld.objtype, weld.name1 = mujoco.mjtEq.mjEQ_WELD, mujoco.mjtObj.mjOBJ_BODY, "Trunk"
        self.m = m = spec.compile()
        self.d = mujoco.MjData(m)
        self.jt = load_joint_table()
        self.idx = robot_indices(m)
        make_pd_actuators(m, self.idx.ctrl, self.jt.effort_limit)
        mujoco.mj_resetDataKeyframe(m, self.d, m.key(STAND_KEYFRAME).id)
        self.d.qpos[self.idx.root_qpos] = np.concatenate([self.trunk_pos, self.trunk_quat])
        mujoco.mj_forward(m, self.d)
        self.q_des = self.jt.default_q.copy()
        self.grip = np.zeros(2)
        self._scratch = mujoco.MjData(m)
        self.arm = {h: np.array(self.jt.indices(g)) for h, g in zip(HANDS, self.jt.ARM_GROUPS)}
        self.site = dict(zip(HANDS, self.idx.hand_sites))
        self.posture_gain = 0.1
        self.gravity_ff = np.zeros(len(self.jt.names), dtype=bool)
        self.gravity_ff[np.concatenate(list(self.arm.values()))] = gravity_ff
        # the scene's free box, if it has one
        self.box = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "box")
        if self.box >= 0:
            joint = m.body_jntadr[self.box]
            self.box_q, self.box_v = m.jnt_qposadr[joint], m.jnt_dofadr[joint]

    # ------------------------------------------------------------------ scene edits
    def move_body(self, name: str, pos) -> None:
        """Move a static body (e.g. a table out of the way)."""
        self.m.body_pos[self.m.body(name).id] = pos
        mujoco.mj_forward(self.m, self.d)

    def qpos_of(self, joint: str) -> float:
        return float(self.d.qpos[self.m.jnt_qposadr[self.m.joint(joint).id]])

    # ------------------------------------------------------------------ stepping
    def step(self, n: int, grip=None, hook=None) -> None:
        """n physics steps; grip: left-hand scalar (legacy) or (left, right), 0 open .. 1 closed.
        hook(sim) runs before each step (e.g. to apply external forces)."""
        if grip is not None:
            self.grip = np.array([grip, 0.0] if np.ndim(grip) == 0 else grip, dtype=float)
        zeros = np.zeros(len(self.jt.names))
        for _ in range(n):
            # gravity feed-forward on the arms (as an arm controller would), so the PD tracks the IK
            tau_ff = np.where(self.gravity_ff, self.d.qfrc_bias[self.idx.qvel], 0.0)
            apply_pd_command(self.m, self.d, self.idx.ctrl, self.q_des, zeros, self.jt.kp, self.jt.kd, tau_ff)
            self.d.ctrl[self.idx.gripper_ctrl] = self.grip
            if hook is not None:
                hook(self)
            mujoco.mj_step(self.m, self.d)

    # ------------------------------------------------------------------ hands
    def hand_pose(self, hand: str) -> tuple[np.ndarray, np.ndarray]:
        s = self.site[hand]
        return self.d.site_xpos[s].copy(), self.d.site_xmat[s].reshape(3, 3).copy()

    def solve_ik(self, hand: str, pos, rot=None, iterations: int = 50, q_start=None,
                 rot_weight: float = 0.3, restarts: int = 0, seed: int = 0) -> tuple[np.ndarray, float, float]:
        """Arm joints (7, table order) putting the hand site at `pos` and, if `rot` is given, either
        the whole hand frame at `rot` (3x3) or, with rot = (axis, direction), axis "x", "y" or "z",
        only that hand axis along +-direction (e.g. hand x along a bar: the rotation about it is free).
        Starts from `q_start` (default: the current arm joints) and `restarts` random starts within
        the joint limits; the best solution wins. Returns (q_arm, position error m, orientation error rad)."""
        best = self._solve_ik(hand, pos, rot, iterations, q_start, rot_weight)
        rng = np.random.default_rng(seed)
        joints = self.arm[hand]
        for _ in range(restarts):
            if best[1] < 1e-3 and best[2] < 1e-2:
                break
            q0 = rng.uniform(self.jt.lower[joints], self.jt.upper[joints])
            cand = self._solve_ik(hand, pos, rot, iterations, q0, rot_weight)
            if cand[1] + 0.1 * cand[2] < best[1] + 0.1 * best[2]:
                best = cand
        return best

    def _solve_ik(self, hand, pos, rot, iterations, q_start, rot_weight):
        m, d = self.m, self._scratch
        d.qpos[:] = self.d.qpos
        joints = self.arm[hand]
        qadr, vadr = self.idx.qpos[joints], self.idx.qvel[joints]
        if q_start is not None:
            d.qpos[qadr] = q_start
        lo, hi = self.jt.lower[joints], self.jt.upper[joints]
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        site = self.site[hand]
        for it in range(iterations + 1):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            e_pos = np.asarray(pos) - d.site_xpos[site]
            cur = d.site_xmat[site].reshape(3, 3)
            if rot is None:
                e_rot = np.zeros(3)
            elif isinstance(rot, tuple):  # align one hand axis with a direction, either sign
                axis = cur[:, "xyz".index(rot[0])]
                want = np.asarray(rot[1], float) * np.sign(np.dot(axis, rot[1]) or 1.0)
                e_rot = np.cross(axis, want / np.linalg.norm(want))
            else:
                e_rot = (Rotation.from_matrix(rot) * Rotation.from_matrix(cur).inv()).as_rotvec()
            if it == iterations:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, site)
            J = jacp[:, vadr] if rot is None else np.vstack([jacp[:, vadr], rot_weight * jacr[:, vadr]])
            e = e_pos if rot is None else np.concatenate([e_pos, rot_weight * e_rot])
            Jinv = J.T @ np.linalg.inv(J @ J.T + 1e-4 * np.eye(len(e)))
            # the rest of the arm's freedom drifts toward the default pose (elbow down, natural)
            null = (np.eye(len(vadr)) - Jinv @ J) @ (self.jt.default_q[joints] - d.qpos[qadr])
            dq = Jinv @ e + self.posture_gain * null
            d.qpos[qadr] = np.clip(d.qpos[qadr] + dq, lo, hi)
        return d.qpos[qadr].copy(), float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))

    def move_arm(self, hand: str, q_arm, duration: float = 1.0, grip=None) -> None:
        """Interpolate the arm's PD targets to `q_arm` (joint space) over `duration` s."""
        joints = self.arm[hand]
        q0 = self.q_des[joints].copy()
        n = max(1, int(round(duration / (CONTROL_STEPS * self.m.opt.timestep))))
        for k in range(1, n + 1):
            self.q_des[joints] = q0 + (np.asarray(q_arm) - q0) * k / n
            self.step(CONTROL_STEPS, grip)

    def move_hand(self, hand: str, pos, rot=None, duration: float = 1.0, grip=None, hook=None) -> None:
        """Move the hand site to `pos` (`rot`) over `duration` s along a straight line (slerp)."""
        p0, r0 = self.hand_pose(hand)
        if isinstance(rot, tuple):  # one axis: turn it toward the direction (sign free) step by step
            a0 = r0[:, "xyz".index(rot[0])]
            want = np.asarray(rot[1], float) / np.linalg.norm(rot[1])
            want = want * (np.sign(np.dot(a0, want)) or 1.0)
            turn = Rotation.align_vectors(want[None], a0[None])[0].as_rotvec()
            rot_at = lambda s: (rot[0], Rotation.from_rotvec(s * turn).apply(a0))  # noqa: E731
        elif rot is not None:
            rots = Slerp([0.0, 1.0], Rotation.from_matrix([r0, rot]))
            rot_at = lambda s: rots(s).as_matrix()  # noqa: E731
        else:
            rot_at = lambda s: None  # noqa: E731
        n = max(1, int(round(duration / (CONTROL_STEPS * self.m.opt.timestep))))
        for k in range(1, n + 1):
            s = k / n
            target = (1 - s) * p0 + s * np.asarray(pos)
            q, _, _ = self.solve_ik(hand, target, rot_at(s), iterations=5, q_start=self.q_des[self.arm[hand]])
            self.q_des[self.arm[hand]] = q
            self.step(CONTROL_STEPS, grip, hook)

    # ------------------------------------------------------------------ the scene's box
    def place_box_in_hand(self, grip: float, steps: int = 150, hand: str = "left") -> None:
        """Hold the box at the hand site, aligned with the hand, while the gripper moves to `grip`."""
        site = self.site[hand]
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.d.site_xmat[site])
        pos = self.d.site_xpos[site].copy()
        grips = [grip, 0.0] if hand == "left" else [0.0, grip]
        for _ in range(steps):
            self.d.qpos[self.box_q:self.box_q + 3], self.d.qpos[self.box_q + 3:self.box_q + 7] = pos, quat
            self.d.qvel[self.box_v:self.box_v + 6] = 0.0
            self.step(1, grips)

    def box_to_hand(self, hand: str = "left") -> float:
        return float(np.linalg.norm(self.d.xpos[self.box] - self.d.site_xpos[self.site[hand]]))
