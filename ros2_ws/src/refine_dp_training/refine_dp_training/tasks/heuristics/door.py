"""Stage-conditioned heuristic planner for the door task, batched over N envs (first version).

Like the pickup heuristic it sees only the planner's observation (hands by FK, grippers, gravity, the door
leaf as MoCap reports it in base_link) and emits clamped planner actions. The lever's grasp point and spindle
are fixed in the leaf's frame (t1_description.scenes.DoorFacts), so the observed leaf pose gives them.

Stages (per env):
    approach  walk until the grasp point is at `stand_at` in base_link (the welded-trunk proof's stance:
              trunk 0.5 m before the handle, 0.23 m to its left), facing the leaf
    reach     right hand to 8 cm behind the bar until it is there (measured), then onto it (hand x along the bar, fingers forward,
              pads closing vertically across the bar), gripper open
    close     gripper closed on the bar
    turn      the hand follows the lever's arc about the spindle to `turn_to` rad (past the 0.48 rad release;
              the arm's PD yields to the lever's spring, so the command overshoots, as in the proof)
    push      walk forward holding the turned lever: the leaf swings open
    pass      let go, arm back to its default pose, walk through the opening
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refine_dp_planner.planner_io import Clamps, actions_to_vectors, clamp_actions, observation_fields, rot6d_to_matrix
from t1_description.kinematics import arm_kinematics
from t1_description.joint_table import ARM_GROUPS, load_joint_table
from t1_description.scenes import scene_facts

APPROACH, REACH, CLOSE, TURN, PUSH, PASS = range(6)
STAGE_NAMES = ("approach", "reach", "close", "turn", "push", "pass")
FACTS = scene_facts("door")
_HINGE = np.asarray(FACTS.hinge_point)
GRASP_IN_LEAF = np.asarray(FACTS.handle_grasp_point) - _HINGE    # leaf (door body) frame = world at angle 0
SPINDLE_IN_LEAF = np.asarray(FACTS.handle_spindle) - _HINGE
# right hand on the bar: hand x along the bar (+y), fingers (hand -y) forward (+x), pads closing along z
GRASP_ROT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class DoorHeuristicParams:
    stand_at: tuple = (0.49, -0.23)   # grasp point in base_link (x, y) where the robot stops
    window: float = 0.04              # m, stop tolerance
    walk_speed: float = 0.2           # m/s forward while far (the legs barely walk slower commands)
    pre_back: float = 0.08            # m behind the bar before closing in
    turn_to: float = 1.0              # rad lever command (past the stop: the arm yields to the spring)
    open_enough: float = 0.35         # rad door angle (from the observed leaf yaw) to let go and walk through


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


class DoorHeuristic:
    stage_names = STAGE_NAMES

    def __init__(self, spec, num_envs: int, seed: int = 0, clamps: Clamps | None = None, planner_dt: float = 0.1,
                 params: DoorHeuristicParams | None = None):
        self.n, self.dt = int(num_envs), float(planner_dt)
        self.clamps = clamps or Clamps()
        self.p = params or DoorHeuristicParams()
        self.rng = np.random.default_rng(seed)
        layout, start = {}, 0
        for name, size in observation_fields(spec.objects):
            layout[name] = slice(start, start + size)
            start += size
        self.sl, self.door_name = layout, spec.objects[0]
        jt = load_joint_table()
        arms = np.concatenate([jt.indices(g) for g in ARM_GROUPS])
        self.default_pos, self.default_rot = (x[0] for x in arm_kinematics().fk(jt.default_q[arms][None]))
        n = self.n
        self.stage, self.timer = np.zeros(n, np.int64), np.zeros(n)
        self.prev_pos, self.prev_rot = np.zeros((n, 2, 3)), np.tile(np.eye(3), (n, 2, 1, 1))
        self.fresh = np.ones(n, bool)
        self.grasp = np.zeros((n, 3))     # base_link grasp point frozen at the end of approach
        self.spindle = np.zeros((n, 3))
        self.at_pre = np.zeros(n, bool)

    def reset(self, mask=None) -> None:
        mask = np.ones(self.n, bool) if mask is None else np.asarray(mask, bool)
        self.stage[mask], self.timer[mask], self.fresh[mask], self.at_pre[mask] = APPROACH, 0.0, True, False

    def act(self, obs: np.ndarray) -> np.ndarray:
        p, n = self.p, self.n
        hands = obs[:, self.sl["hands"]].reshape(-1, 2, 9).astype(np.float64)
        hand_pos, hand_rot = hands[..., :3], rot6d_to_matrix(hands[..., 3:])
        door = obs[:, self.sl[self.door_name]].astype(np.float64)
        R_door = rot6d_to_matrix(door[:, 3:9])
        grasp = door[:, :3] + np.einsum("nij,j->ni", R_door, GRASP_IN_LEAF)
        spindle = door[:, :3] + np.einsum("nij,j->ni", R_door, SPINDLE_IN_LEAF)
        door_yaw = np.arctan2(R_door[:, 1, 0], R_door[:, 0, 0])   # leaf yaw in base_link (0: facing it)
        if self.fresh.any():
            self.prev_pos[self.fresh], self.prev_rot[self.fresh] = hand_pos[self.fresh], hand_rot[self.fresh]
            self.fresh[:] = False
        st = self.stage
        self.timer += self.dt
        v = np.zeros((n, 3))
        pos = np.broadcast_to(self.default_pos, (n, 2, 3)).copy()
        rot = np.broadcast_to(self.default_rot, (n, 2, 3, 3)).copy()
        grip = np.zeros((n, 2))

        # approach: forward bang-bang while far, sideways and yaw proportional (the leaf's yaw is the heading error)
        ex, ey = grasp[:, 0] - p.stand_at[0], grasp[:, 1] - p.stand_at[1]
        a = st == APPROACH
        v[a, 0] = np.where(ex[a] > 0.15, p.walk_speed, np.clip(1.0 * ex[a], -0.1, 0.2))
        v[a, 1] = np.clip(1.0 * ey[a], -0.1, 0.1)
        v[a, 2] = np.clip(1.0 * door_yaw[a], -0.3, 0.3)
        arrived = a & (np.abs(ex) < p.window) & (np.abs(ey) < p.window) & (self.timer > 1.0)
        self.grasp[arrived], self.spindle[arrived] = grasp[arrived], spindle[arrived]
        self._advance(arrived, REACH)

        # reach: behind the bar until the measured hand is there (the hands move at most 0.05 m/s: ~10 s up
        # from the default pose), then onto it
        r = st == REACH
        pre = self.grasp - p.pre_back * np.array([1.0, 0, 0])
        self.at_pre |= r & (np.linalg.norm(hand_pos[:, 1] - pre, axis=-1) < 0.03)
        target = np.where(self.at_pre[:, None], self.grasp, pre)
        pos[r, 1], rot[r, 1] = target[r], GRASP_ROT
        on_bar = np.linalg.norm(hand_pos[:, 1] - self.grasp, axis=-1) < 0.02
        self._advance(r & ((self.at_pre & on_bar) | (self.timer > 20.0)), CLOSE)

        c = st == CLOSE
        pos[c, 1], rot[c, 1], grip[c, 1] = self.grasp[c], GRASP_ROT, 1.0
        self._advance(c & (self.timer > 1.0), TURN)

        # turn: along the lever's arc about the spindle (axis -x), up to turn_to over 3 s, then hold 1 s
        t = (st == TURN) | (st == PUSH)
        angle = np.clip(self.timer / 3.0, 0.0, 1.0) * p.turn_to
        angle = np.where(st == PUSH, p.turn_to, angle)
        Rt = _rot_x(-angle)
        pos[t, 1] = self.spindle[t] + np.einsum("nij,nj->ni", Rt[t], (self.grasp - self.spindle)[t])
        rot[t, 1] = Rt[t] @ GRASP_ROT
        grip[t, 1] = 1.0
        self._advance((st == TURN) & (self.timer > 4.0), PUSH)

        # push: walk forward holding the lever until the leaf has swung open_enough (or 8 s)
        pu = st == PUSH
        v[pu, 0] = p.walk_speed
        self._advance(pu & ((-door_yaw > p.open_enough) | (self.timer > 8.0)), PASS)

        # pass: let go, arm back, walk through aiming at the opening's centre (world y 0 ~ where it started)
        ps = st == PASS
        v[ps, 0] = p.walk_speed
        v[ps, 2] = 0.0

        v, pos, rot, _ = clamp_actions(v, pos, rot, self.prev_pos, self.prev_rot, self.dt, self.clamps,
                                       np.ones(n, bool))
        self.prev_pos, self.prev_rot = pos.copy(), rot.copy()
        return actions_to_vectors(v, pos, rot, grip).astype(np.float32)

    def _advance(self, mask, stage) -> None:
        self.stage[mask], self.timer[mask] = stage, 0.0
