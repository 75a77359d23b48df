"""Stage-conditioned heuristic planner for the door task, batched over N envs.

Like the pickup heuristic it sees only the planner's observation (hands by FK, grippers, gravity, the door
leaf as MoCap reports it in base_link) and emits clamped planner actions. The lever's grasp point and spindle
are fixed in the leaf's frame (t1_description.scenes.DoorFacts), so the observed leaf pose gives them; the
estimate is smoothed (the leaf's 0.5 deg rotation noise is ~7 mm at the handle, 0.8 m from the hinge) and
used live, never frozen: raising the arm leans the trunk back by up to 0.2 rad, which moves a world-fixed
handle by several cm in base_link.

Stages (per env):
    approach  walk towards the stance (the grasp point `stand_x` ahead and `stand_y` right of the trunk, square to
              the leaf), steering at a point on the stance line beyond it; from `raise_at` before it the right hand
              rises to a ready pose out to the side (kept 0.25 m off the leaf), fingers forward, tilted up. At the
              stance: sideways steps until the lateral offset is within `window_lat`, then turns in place to face
              the leaf (more slack facing left), then steps until the bar is `REACH_X` ahead
    reach     hand to `pre_back` behind the bar along the fingers, then onto it; an integral term on
              (target - measured hand) removes the arm policy's steady error (it falls 1-4 cm short up there)
    close     gripper closed on the bar
    turn      the hand follows the lever's arc about the spindle (past the 0.48 rad release; the arm yields to
              the lever's spring, so the command overshoots and is raised while the lever angle, estimated from
              the measured hand, lags); a hand that left the lever lets go and reaches again
    push      standing, the turned lever held and the hand pushed on along the leaf's normal until the hand has
              gone `open_enough` forward with the leaf (the bolt clear of the keeper); walking while holding the
              lever twists the robot over
    pass      let go, then walk through with the open hand ahead pushing the leaf, aimed past the opening
              (relative to the observed hinge and a dead-reckoned heading: the open leaf shows no heading)

Why these numbers (measured with the shipped legs and arms in TaskEnv, right arm raised): (0.2, 0, -0.25) walks
straight at ~0.11 m/s, 0 yaw rate asked yaws left at ~0.36 rad/s, and the legs turn right only when asked to
step left as well ((0.15, 0.1, -0.5): -0.18 rad/s); standing, (0, 0, 0.25) turns left ~0.1 rad/s, (0, 0.1,
-0.25) right ~0.18 rad/s while stepping left ~0.03 m/s, (0, -0.2, -0.25) steps right ~0.05 m/s while yawing
left; walking back hardly moves them. With the hand ~0.25 m above the trunk the arm policy tracks the grasp to
1-3 cm with the fingers tilted up 0.35-0.5 rad (3-5 cm with them horizontal). From the pretrain starts the
whole sequence takes 25-37 s of the 40 s limit: the hands move at most 0.05 m/s (planner clamps), so raising
the arm alone takes ~12 s.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from refine_dp_planner.planner_io import Clamps, actions_to_vectors, clamp_actions, observation_fields, rot6d_to_matrix
from t1_description.joint_table import ARM_GROUPS, load_joint_table
from t1_description.kinematics import arm_kinematics
from t1_description.scenes import scene_facts

from .common import redraw

APPROACH, REACH, CLOSE, TURN, PUSH, PASS = range(6)
STAGE_NAMES = ("approach", "reach", "close", "turn", "push", "pass")
FACTS = scene_facts("door")
_HINGE = np.asarray(FACTS.hinge_point)
GRASP_IN_LEAF = np.asarray(FACTS.handle_grasp_point) - _HINGE    # leaf (door body) frame = world at angle 0
SPINDLE_IN_LEAF = np.asarray(FACTS.handle_spindle) - _HINGE
# how far ahead of the trunk (base_link x, m) the right hand takes the bar at the stance: the arm policy tracks the
# grasp to 1-3 cm with the fingers tilted up 0.17-0.32 m to the right of the trunk and ~0.4-0.55 m ahead (the trunk
# leans back as the arm rises, which moves the bar ~3 cm further out in base_link); closer in the elbow runs into
# the body, further out, or further than ~0.33 m to the right, the arm cannot hold the lever down against its
# spring and slips off it (measured over the turns of 40 episodes)
REACH_X = (0.40, 0.52)
# the pass aim point (from the hinge, wall frame): beyond the opening's centre, on the latch side of it (the leaf
# swings to the hinge side)
PASS_AIM_IN_WORLD = np.array([FACTS.door_plane_x + 1.0, -0.05]) - _HINGE[:2]


@dataclass
class DoorHeuristicParams:
    """Per-episode ranges (uniform), so demonstrations differ. Positions in base_link / the leaf's frame."""

    stand_x: tuple = (0.45, 0.47)      # m, grasp point ahead of the trunk at the stance (along the leaf normal)
    stand_y: tuple = (-0.25, -0.23)    # m, ... and to its side (right)
    lookahead: tuple = (0.1, 0.2)      # m, the approach aims at the stance line this far beyond the stance
    stop_lead: tuple = (0.10, 0.13)    # m, stop walking this far before the stance (the robot coasts ~0.1 m)
    window_lat: tuple = (0.06, 0.08)   # m, lateral stance error tolerated (the hand takes it up)
    yaw_left: tuple = (0.3, 0.35)      # rad the robot may face left of square on at the stance, and right:
    yaw_right: tuple = (0.06, 0.1)     # (facing right the hand slips off the lever turning it)
    walk_speed: tuple = (0.18, 0.2)    # m/s (the legs barely walk slower commands)
    bearing_gain: tuple = (0.8, 1.2)   # rad/s of yaw asked per rad of bearing error while walking
    raise_at: tuple = (0.5, 0.6)       # m from the stance where the hand starts up (raised from the start, the
                                       # arm makes the legs veer left and the approach fails more often)
    ready_x: tuple = (0.28, 0.32)      # ready pose while walking: out to the side, below the shoulder
    ready_y: tuple = (-0.36, -0.32)
    ready_z: tuple = (0.08, 0.12)
    pitch: tuple = (-0.5, -0.35)       # rad, fingers tilted up (about the bar)
    pre_back: tuple = (0.06, 0.08)     # m, behind the bar along the fingers before closing in
    pre_tol: tuple = (0.03, 0.04)      # m, measured hand to the pre-grasp point before going on
    reach_tol: tuple = (0.012, 0.016)   # m, measured hand to the grasp point before closing
    integral_gain: tuple = (0.15, 0.3)  # per step, of the hand error folded into the command
    reach_timeout_s: tuple = (2.0, 3.0)  # s near the goal (6 cm) before going on anyway
    reach_cap_s: tuple = (12.0, 13.0)   # s in a reach phase before going on anyway
    close_s: tuple = (0.8, 1.0)        # s closing before turning
    turn_to: tuple = (0.95, 1.05)      # rad lever command (past the stop: the arm yields to the spring)
    turn_s: tuple = (2.2, 2.6)         # s to turn
    turn_hold_s: tuple = (0.4, 0.6)    # s held turned before pushing
    press: tuple = (0.005, 0.015)      # m the turning hand is pressed towards the leaf (it slides off the bar's
                                       # free end otherwise)
    turned_enough: tuple = (0.58, 0.62)  # rad, lever angle (estimated from the measured hand) before pushing
    turn_gain: tuple = (0.05, 0.08)    # rad of extra command per step and rad of lever angle short
    turn_timeout_s: tuple = (6.0, 7.0)  # s turning before letting go and reaching again
    push_depth: tuple = (0.08, 0.11)   # m the hand is pushed beyond the handle along the leaf normal, standing
    open_enough: tuple = (0.04, 0.06)  # m the hand holding the lever has gone forward (the leaf ~0.07 rad open)
                                       # when it lets go: the bolt is clear of the keeper; the rest is pushed walking
    push_timeout_s: tuple = (3.5, 4.5)  # s pushing before letting go anyway
    release_s: tuple = (0.6, 0.8)      # s the opened hand stays where it is before the arm moves on
    sweep_x: tuple = (0.42, 0.46)      # walking through, the open right hand ahead of the trunk pushes the leaf
    sweep_y: tuple = (-0.16, -0.12)
    sweep_z: tuple = (0.10, 0.14)

    def draw(self, rng: np.random.Generator, n: int) -> dict:
        return {f.name: rng.uniform(*getattr(self, f.name), n) for f in fields(self)}


def _rot_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] about unit axes [N, 3] by angles [N] (Rodrigues)."""
    k = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    K = np.zeros(k.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * K + (1 - c) * K @ K


def grasp_rotation(bar: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Right-hand rotation [N, 3, 3] on the bar: hand x along the bar (`bar` [N, 3], base_link), fingers (hand
    -y) forward, tilted up by -pitch about the bar, the pads (hand z) closing across it."""
    x = bar / np.linalg.norm(bar, axis=-1, keepdims=True)
    f = np.stack([np.cos(pitch), np.zeros_like(pitch), -np.sin(pitch)], -1)
    f = f - np.sum(f * x, -1, keepdims=True) * x
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    y = -f
    return np.stack([x, y, np.cross(x, y)], -1)


def steer(yaw_rate: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Base commands [N, 3] that walk forward turning at about `yaw_rate` (rad/s), from the legs' measured
    response (right arm raised, walking): (0.2, 0, -0.25) walks straight at ~0.11 m/s (wz 0 yaws left at
    ~0.36 rad/s: the legs drift left, more so with the right arm up), and they turn right only when asked to
    step left as well: (0.15, 0.1, -0.5) yaws right at ~0.18 rad/s. Interpolated between those."""
    r = np.clip(yaw_rate, -0.175, 0.34)
    wz = np.where(r >= 0, -0.25 + 0.25 * r / 0.34, -0.5)
    vy = np.where(r >= 0, 0.0, 0.1 * -r / 0.175)
    return np.stack([speed, vy, wz], -1)


def _wrap(a):
    return np.angle(np.exp(1j * a))


class DoorHeuristic:
    stage_names = STAGE_NAMES

    def __init__(self, spec, num_envs: int, seed: int = 0, clamps: Clamps | None = None, planner_dt: float = 0.1,
                 params: DoorHeuristicParams | None = None):
        self.n, self.dt = int(num_envs), float(planner_dt)
        self.clamps = clamps or Clamps()
        self.params = params or DoorHeuristicParams()
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
        self.p = self.params.draw(self.rng, n)
        self.stage, self.timer = np.zeros(n, np.int64), np.zeros(n)
        self.prev_pos, self.prev_rot = np.zeros((n, 2, 3)), np.tile(np.eye(3), (n, 2, 1, 1))
        self.fresh = np.ones(n, bool)
        self.door_pos, self.door_rot = np.zeros((n, 3)), np.tile(np.eye(3), (n, 1, 1))
        self.seen = np.zeros(n, bool)
        self.at_pre = np.zeros(n, bool)
        self.integral = np.zeros((n, 3))
        self.normal0 = np.zeros((n, 3))   # the leaf's normal when the turn began (the push direction)
        self.turn_cmd = np.zeros(n)       # rad, the lever command (ramped, then raised while the lever lags)
        self.hand0 = np.zeros((n, 3))     # the measured hand when the push began
        self.raised = np.zeros(n, bool)   # the hand has started up to the ready pose
        self.waited = np.zeros(n)         # s the reach command has been at its goal
        self.heading = np.zeros(n)        # the robot's yaw in the wall's frame: measured on the shut leaf, then
                                          # dead-reckoned from the commanded turn rates (the open leaf shows nothing)

    def reset(self, mask=None) -> None:
        mask = redraw(self.params, self.p, self.rng, self.n, mask)
        if mask is None:
            return
        self.stage[mask], self.timer[mask], self.fresh[mask] = APPROACH, 0.0, True
        self.seen[mask], self.at_pre[mask], self.integral[mask] = False, False, 0.0
        self.turn_cmd[mask], self.raised[mask] = 0.0, False

    # ------------------------------------------------------------------ observation
    def _door(self, obs):
        """Smoothed leaf pose in base_link (position [N, 3], rotation [N, 3, 3]); a dropped body is held."""
        door = obs[:, self.sl[self.door_name]].astype(np.float64)
        present = np.abs(door).sum(-1) > 0
        pos, rot = door[:, :3], rot6d_to_matrix(door[:, 3:9])
        a = np.where(self.seen, 0.3, 1.0)[:, None]
        upd = present[:, None]
        self.door_pos = np.where(upd, (1 - a) * self.door_pos + a * pos, self.door_pos)
        r6 = np.where(upd[..., None], (1 - a[..., None]) * self.door_rot + a[..., None] * rot, self.door_rot)
        self.door_rot = rot6d_to_matrix(np.concatenate([r6[..., 0], r6[..., 1]], -1))
        self.seen |= present
        return self.door_pos, self.door_rot

    def act(self, obs: np.ndarray) -> np.ndarray:
        p, n = self.p, self.n
        hands = obs[:, self.sl["hands"]].reshape(-1, 2, 9).astype(np.float64)
        hand_pos, hand_rot = hands[..., :3], rot6d_to_matrix(hands[..., 3:])
        if self.fresh.any():
            self.prev_pos[self.fresh], self.prev_rot[self.fresh] = hand_pos[self.fresh], hand_rot[self.fresh]
            self.door_pos[self.fresh], self.door_rot[self.fresh] = 0.0, np.eye(3)
            self.fresh[:] = False
        door_pos, R_door = self._door(obs)
        grasp = door_pos + np.einsum("nij,j->ni", R_door, GRASP_IN_LEAF)
        spindle = door_pos + np.einsum("nij,j->ni", R_door, SPINDLE_IN_LEAF)
        normal, bar = R_door[:, :, 0], R_door[:, :, 1]          # leaf normal (+x: away), bar direction (+y)
        door_yaw = np.arctan2(normal[:, 1], normal[:, 0])       # 0: facing the leaf square on
        st = self.stage
        self.timer += self.dt
        t = self.timer
        v = np.zeros((n, 3))
        pos = np.broadcast_to(self.default_pos, (n, 2, 3)).copy()
        rot = np.broadcast_to(self.default_rot, (n, 2, 3, 3)).copy()
        grip = np.zeros((n, 2))
        rot_grasp = grasp_rotation(bar, p["pitch"])
        fingers = -rot_grasp[:, :, 1]

        # ---- approach: the trunk's target in base_link, and a point `lookahead` beyond it along the normal
        c, s = np.cos(door_yaw), np.sin(door_yaw)
        target = grasp[:, :2] - np.stack([c * p["stand_x"] - s * p["stand_y"], s * p["stand_x"] + c * p["stand_y"]], -1)
        aim = target + p["lookahead"][:, None] * np.stack([c, s], -1)
        berr = np.arctan2(aim[:, 1], aim[:, 0])
        a = (st == APPROACH) & self.seen
        plane = np.sum(door_pos * normal, -1)   # the trunk's distance to the leaf's plane
        far = a & (target[:, 0] > p["stop_lead"])
        v[far] = steer(p["bearing_gain"] * berr, p["walk_speed"])[far]
        # at the stance: first the lateral offset from the stance line (sideways steps, which also yaw the legs
        # left), then the heading (turning right also steps them left: the window is wider facing left), then
        # the distance (walking back hardly moves them); judged in the leaf's frame, as turning moves the bar in
        # base_link
        near = a & ~far
        lateral = -s * target[:, 0] + c * target[:, 1]   # + : the stance is to the left
        roomy = plane > -GRASP_IN_LEAF[0] + REACH_X[0]  # no sideways steps with the lever in the way
        right = near & roomy & (lateral < -p["window_lat"])
        left = near & roomy & (lateral > p["window_lat"])
        v[right], v[left] = [0.0, -0.2, -0.25], [0.0, 0.15, 0.0]
        face = near & ~right & ~left & ((door_yaw < -p["yaw_left"]) | (door_yaw > p["yaw_right"]))
        v[face] = np.where((door_yaw > 0)[:, None], [0.0, 0.0, 0.25], [0.0, 0.1, -0.25])[face]
        gx = grasp[:, 0]
        step = near & ~face & ~right & ~left
        fwd, back = step & (gx > REACH_X[1]), step & (gx < REACH_X[0])
        v[fwd], v[back] = [0.2, 0.0, -0.25], [-0.2, 0.0, 0.0]
        moving = far | face | right | left | fwd | back
        self.timer[moving] = 0.0   # the timer counts standing time in approach
        ready = np.stack([p["ready_x"], p["ready_y"], p["ready_z"]], -1)
        ready[:, 0] = np.minimum(ready[:, 0], plane - 0.25)   # clear of the leaf and the lever (a hand resting
                                                              # on the leaf while the legs step tips the robot over)
        self.raised |= a & (target[:, 0] < p["raise_at"])
        up = a & self.raised
        pos[up, 1], rot[up, 1] = ready[up], grasp_rotation(np.tile([0.0, 1.0, 0.0], (n, 1)), p["pitch"])[up]
        self._advance(a & ~moving & (t > 1.0), REACH)

        # ---- reach: behind the bar along the fingers, then onto it, with the integral correction
        r = st == REACH
        pre = grasp - p["pre_back"][:, None] * fingers
        goal = np.where(self.at_pre[:, None], grasp, pre)
        err = goal - hand_pos[:, 1]
        dist = np.linalg.norm(err, axis=-1)
        caught_up = np.linalg.norm(self.prev_pos[:, 1] - (goal + self.integral), axis=-1) < 0.006
        correcting = r & (dist < 0.08) & caught_up
        self.integral = np.where(correcting[:, None],
                                 np.clip(self.integral + p["integral_gain"][:, None] * err, -0.05, 0.05), self.integral)
        # timeouts count from when the hand is near its goal (the hand rising from its default pose lags the
        # speed-limited command by seconds), and in any case after `reach_cap_s`
        self.waited = np.where(r & (dist < 0.06), self.waited + self.dt, 0.0)
        timed_out = (self.waited > p["reach_timeout_s"]) | (t > p["reach_cap_s"])
        reached_pre = r & ~self.at_pre & ((dist < p["pre_tol"]) | timed_out)
        self.at_pre |= reached_pre
        self.waited[reached_pre], self.timer[reached_pre] = 0.0, 0.0
        pos[r, 1], rot[r, 1] = (goal + self.integral)[r], rot_grasp[r]
        self._advance(r & self.at_pre & ~reached_pre & ((dist < p["reach_tol"]) | timed_out), CLOSE)

        cl = st == CLOSE
        pos[cl, 1], rot[cl, 1], grip[cl, 1] = (grasp + self.integral)[cl], rot_grasp[cl], 1.0
        start_turn = cl & (t > p["close_s"])
        self.normal0[start_turn], self.turn_cmd[start_turn] = normal[start_turn], 0.0
        self.heading[start_turn] = -door_yaw[start_turn]   # the robot's yaw in the wall's frame (the leaf is shut)
        self._advance(start_turn, TURN)

        # ---- turn: along the lever's arc about the spindle (axis -normal), then hold it turned; the lever's
        # angle is estimated from the measured hand (it holds the bar), and the command raised while it lags
        tu = (st == TURN) | (st == PUSH)
        lever0, lever = grasp - spindle, hand_pos[:, 1] - spindle
        lever0 = lever0 - np.sum(lever0 * normal, -1, keepdims=True) * normal
        lever = lever - np.sum(lever * normal, -1, keepdims=True) * normal
        est = np.arctan2(np.sum(np.cross(lever, lever0) * normal, -1), np.sum(lever * lever0, -1))
        ramp = np.clip(t / p["turn_s"], 0.0, 1.0) * p["turn_to"]
        lagging = (st == TURN) & (t > p["turn_s"])
        self.turn_cmd = np.where(st == TURN, np.maximum(ramp, self.turn_cmd), self.turn_cmd)
        self.turn_cmd = np.where(lagging, np.clip(self.turn_cmd + p["turn_gain"] * (p["turned_enough"] + 0.05 - est),
                                                  p["turn_to"], 1.5), self.turn_cmd)
        Rt = _rot_about(-normal, self.turn_cmd)
        turned = spindle + np.einsum("nij,nj->ni", Rt, grasp - spindle) + self.integral + p["press"][:, None] * normal
        pos[tu, 1], rot[tu, 1], grip[tu, 1] = turned[tu], (Rt @ rot_grasp)[tu], 1.0
        self.est = est
        # the hand still on the lever: as far from the spindle as the grasp point, turned no further than commanded
        on_lever = (np.abs(np.linalg.norm(lever, axis=-1) - np.linalg.norm(lever0, axis=-1)) < 0.03) \
            & (est < self.turn_cmd + 0.2)
        start_push = (st == TURN) & (t > p["turn_s"] + p["turn_hold_s"]) & (est > p["turned_enough"]) & on_lever
        self.hand0[start_push] = hand_pos[start_push, 1]
        self._advance(start_push, PUSH)
        failed = ((st == TURN) & (t > p["turn_timeout_s"])) | ((st == TURN) & (t > 1.0) & ~on_lever)
        self.at_pre[failed] = False
        self._advance(failed, REACH)   # let go (reach opens the gripper) and take the bar again

        # ---- push: standing, the hand pressed on beyond the turned lever along the leaf's first normal until the
        # leaf has turned open_enough (walking while holding the lever twists the robot over)
        pu = st == PUSH
        depth = np.clip(t / 1.2, 0.0, 1.0) * p["push_depth"]
        pos[pu, 1] = (turned + depth[:, None] * self.normal0)[pu]
        # the leaf has opened when the hand holding the lever has gone forward with it (the robot's own yaw,
        # which the observed leaf yaw includes, does not enter)
        opened = np.sum((hand_pos[:, 1] - self.hand0) * self.normal0, -1)
        self._advance(pu & ((opened > p["open_enough"]) | (t > p["push_timeout_s"])), PASS)

        # ---- pass: let go, then walk through with the open hand ahead pushing the leaf, aiming past the opening
        # (relative to the observed hinge, assuming the robot still faces the wall square on: its heading is not
        # observable once the leaf moves)
        ps = st == PASS
        ch, sh = np.cos(self.heading), np.sin(self.heading)
        pass_aim = door_pos[:, :2] + np.stack([ch * PASS_AIM_IN_WORLD[0] + sh * PASS_AIM_IN_WORLD[1],
                                               -sh * PASS_AIM_IN_WORLD[0] + ch * PASS_AIM_IN_WORLD[1]], -1)
        perr = np.arctan2(pass_aim[:, 1], pass_aim[:, 0])
        walking_through = ps & ~(t < p["release_s"])
        self.heading += np.where(walking_through, np.clip(p["bearing_gain"] * perr, -0.175, 0.34), 0.0) * self.dt
        letting_go = t < p["release_s"]
        sweep = np.stack([p["sweep_x"], p["sweep_y"], p["sweep_z"]], -1)
        v[ps & ~letting_go] = steer(p["bearing_gain"] * perr, p["walk_speed"])[ps & ~letting_go]
        pos[ps, 1] = np.where(letting_go[:, None], self.prev_pos[:, 1], sweep)[ps]
        rot[ps, 1] = self.prev_rot[ps, 1]

        v, pos, rot, _ = clamp_actions(v, pos, rot, self.prev_pos, self.prev_rot, self.dt, self.clamps,
                                       np.ones(n, bool))
        self.prev_pos, self.prev_rot = pos.copy(), rot.copy()
        return actions_to_vectors(v, pos, rot, grip).astype(np.float32)

    def _advance(self, mask, stage) -> None:
        self.stage[mask], self.timer[mask] = stage, 0.0
        if stage < CLOSE:
            self.integral[mask] = 0.0
