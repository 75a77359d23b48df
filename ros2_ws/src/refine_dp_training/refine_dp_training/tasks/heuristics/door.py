"""Stage-conditioned heuristic planner for the door task, batched over N envs.

Like the pickup heuristic it sees only the planner's observation (hands by FK, grippers, gravity, the door
leaf as MoCap reports it in base_link) and emits clamped planner actions. The lever's grasp point and spindle
are fixed in the leaf's frame (t1_description.scenes.DoorFacts), so the observed leaf pose gives them; the
estimate is smoothed (the leaf's 0.5 deg rotation noise is ~7 mm at the handle, 0.8 m from the hinge) and
used live, never frozen: raising the arm leans the trunk back by up to 0.2 rad, which moves a world-fixed
handle by several cm in base_link.

Stages (per env):
    approach  walk towards the stance (the grasp point `stand_x` ahead and `stand_y` right of the trunk, square to
              the leaf): forward speed proportional to the distance left (floored at `min_walk`), yaw rate
              proportional to the bearing of a point on the stance line beyond it, blending over the last
              `align_within` into the leaf's yaw while sideways steps take up the lateral offset; from `raise_at`
              before it the right hand rises to a ready pose out to the side (kept 0.25 m off the leaf), fingers
              forward, tilted up. At the stance: proportional sideways steps and turns in place (floored above the
              planner's stand deadband) until the lateral offset is within `window_lat` and the heading within
              `yaw_left`/`yaw_right`, then steps until the bar is `REACH_X` ahead
    reach     hand to `pre_back` behind the bar along the fingers, then onto it; an integral term on
              (target - measured hand) removes the arm policy's steady error (up there the hand stays 3-10 cm
              right of and 1-4 cm short of its command)
    close     gripper closed on the bar
    turn      the hand follows the lever's arc about the spindle (past the 0.48 rad release; the arm yields to
              the lever's spring, so the command overshoots and is raised while the lever angle, estimated from
              the measured hand, lags); a hand that left the lever lets go and reaches again
    push      the turned lever held and the hand pushed on along the leaf's normal; standing, the arm (near the
              end of its reach) opened the leaf 0-0.11 rad (mostly under 0.07, 12 logged pushes), and released
              below ~0.05 rad the bolt caught the keeper again, so after `push_walk_after` the legs step forward
              slowly holding the lever (yaw held against the leaf's pull, which pivots the robot left with it)
              until the leaf has turned `open_angle` (or the hand has gone `open_enough` forward with it)
    pass      let go, then walk through with the open hand ahead pushing the leaf, steering to pass the observed
              hinge `pass_clear` on the left (the open leaf shows no heading, the hinge's position is all the
              observation still gives for sure); slowly while the hinge is ahead, at `walk_speed` once it is abeam

Why these numbers (measured with the shipped legs and arms in TaskEnv): the legs track forward commands of
0.08-0.2 m/s to within 5 % and do not drift walking straight, step sideways at ~0.7 and turn at 0.5-0.7 of the
command (TURN_RATIO); the planner's stand deadband zeroes any base command with |vx|, |vy| <= 0.06 m/s and
|wz| <= 0.15 rad/s, so every command meant to move keeps a component above it (MIN_SPEED, MIN_YAW). With the hand
~0.25 m above the trunk the arm policy tracks the grasp to 1-3 cm with the fingers tilted up 0.35-0.5 rad (3-5 cm
with them horizontal). From the pretrain starts the whole sequence takes 28-38 s of the 40 s limit (approach
5-10 s, reach 7-12 s, turn 3 s, push 1-4 s, pass 8-11 s): the hands move at most 0.05 m/s (planner clamps), so
raising the arm alone takes ~10 s (raised earlier in the approach, the reach stalls more often: 41/64 against
46/64 episodes walked through).
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
# the legs' measured response (constant commands, 8 s): forward speed is tracked to within 5 % from 0.08 to 0.2 m/s,
# sideways at ~0.7 of the command (vy 0.08 -> 0.054 m/s), turning in place at 0.5-0.7 of it (wz 0.15 -> 0.107,
# 0.3 -> 0.197, 0.5 -> 0.245 rad/s); walking straight they do not drift
TURN_RATIO = 0.6
MAX_YAW_CMD = 0.5
# the planner's stand deadband (Clamps: |vx|, |vy| <= 0.06 m/s and |wz| <= 0.15 rad/s -> exactly 0): a command meant
# to move keeps at least one component above it
MIN_SPEED, MIN_YAW = 0.075, 0.2


@dataclass
class DoorHeuristicParams:
    """Per-episode ranges (uniform), so demonstrations differ. Positions in base_link / the leaf's frame."""

    stand_x: tuple = (0.45, 0.47)      # m, grasp point ahead of the trunk at the stance (along the leaf normal)
    stand_y: tuple = (-0.25, -0.23)    # m, ... and to its side (right)
    lookahead: tuple = (0.1, 0.2)      # m, the approach aims at the stance line this far beyond the stance
    stop_lead: tuple = (0.01, 0.03)    # m, stop walking this far before the stance (slowed down, they hardly coast)
    window_lat: tuple = (0.04, 0.06)   # m, lateral stance error tolerated (the hand takes it up)
    yaw_left: tuple = (0.10, 0.15)     # rad the robot may face left of square on at the stance, and right:
    yaw_right: tuple = (0.06, 0.1)     # (facing right the hand slips off the lever turning it)
    walk_speed: tuple = (0.18, 0.2)    # m/s, top walking speed
    speed_gain: tuple = (1.0, 1.4)     # m/s of forward speed asked per m left to walk
    min_walk: tuple = (0.09, 0.11)     # m/s, the slowest approach (0.08 asked while the arm rises crept at
                                       # ~0.03 m/s)
    align_within: tuple = (0.25, 0.35)  # m before the stance where the approach starts squaring up to the leaf
    bearing_gain: tuple = (0.8, 1.2)   # rad/s of yaw rate wanted per rad of bearing error while walking
    lateral_gain: tuple = (0.8, 1.2)   # m/s of sideways speed asked per m of lateral error at the stance
    yaw_gain: tuple = (0.8, 1.2)       # rad/s of yaw rate wanted per rad of heading error at the stance
    raise_at: tuple = (0.5, 0.6)       # m from the stance where the hand starts up
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
    push_depth: tuple = (0.08, 0.11)   # m the hand is pushed beyond the handle along the leaf normal
    open_enough: tuple = (0.04, 0.06)  # m the hand holding the lever has gone forward (the leaf ~0.07 rad open)
                                       # when it lets go: the bolt is clear of the keeper; the rest is pushed passing
    open_angle: tuple = (0.09, 0.12)   # rad the observed leaf has turned open when the hand lets go
    push_walk_after: tuple = (1.0, 1.5)  # s pushing standing before the legs step forward, holding the lever
    hold_gain: tuple = (1.6, 2.4)      # rad/s of yaw rate wanted per rad the robot has turned since the push began
    push_speed: tuple = (0.08, 0.1)    # m/s forward then
    push_timeout_s: tuple = (4.5, 5.5)  # s pushing before letting go anyway
    release_s: tuple = (0.6, 0.8)      # s the opened hand stays where it is before the arm moves on
    pass_speed: tuple = (0.14, 0.18)   # m/s walking through (pushing the 8 kg leaf open with the hand)
    pass_clear: tuple = (0.44, 0.5)    # m, the trunk passes the hinge this far to its right
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


def walk(yaw_rate: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Base commands [N, 3] that walk forward at `speed` (m/s: the legs track 0.08-0.2 m/s to within 5 %) turning
    at about `yaw_rate` (rad/s: the legs turn at ~TURN_RATIO of the command, so it is divided by that)."""
    wz = np.clip(yaw_rate / TURN_RATIO, -MAX_YAW_CMD, MAX_YAW_CMD)
    return np.stack([speed, np.zeros_like(speed), wz], -1)


def floored(cmd: np.ndarray, floor: float, cap: float) -> np.ndarray:
    """A proportional command with its magnitude kept within [floor, cap] (the floor clears the planner's stand
    deadband, so a small error still moves the legs); 0 stays 0."""
    return np.sign(cmd) * np.clip(np.abs(cmd), floor, cap)


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
        self.yaw0 = np.zeros(n)           # the leaf's observed yaw when the push began
        self.hinge0 = np.zeros((n, 3))    # the observed hinge (leaf origin) in base_link then
        self.raised = np.zeros(n, bool)   # the hand has started up to the ready pose
        self.waited = np.zeros(n)         # s the reach command has been at its goal
        self.arrived = np.zeros(n, bool)  # the approach has reached the stance (corrections only from then on)

    def reset(self, mask=None) -> None:
        mask = redraw(self.params, self.p, self.rng, self.n, mask)
        if mask is None:
            return
        self.stage[mask], self.timer[mask], self.fresh[mask] = APPROACH, 0.0, True
        self.seen[mask], self.at_pre[mask], self.integral[mask] = False, False, 0.0
        self.turn_cmd[mask], self.raised[mask], self.arrived[mask] = 0.0, False, False

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
        # far: walk at a speed proportional to the distance left (floored at `min_walk`, above the deadband),
        # yawing towards the aim point in proportion to its bearing
        self.arrived |= a & (target[:, 0] <= p["stop_lead"])
        far = a & ~self.arrived
        speed = np.clip(p["speed_gain"] * target[:, 0] * np.clip(np.cos(berr), 0.5, 1), p["min_walk"], p["walk_speed"])
        # the last `align_within` m the heading error blends from the aim's bearing to the leaf's yaw (arriving
        # square on) and the remaining lateral offset is taken up by sideways steps
        lateral = -s * target[:, 0] + c * target[:, 1]   # + : the stance is to the left
        w = np.clip(target[:, 0] / p["align_within"], 0.0, 1.0)
        v[far] = walk(p["bearing_gain"] * (w * berr + (1 - w) * door_yaw), speed)[far]
        v[far, 1] = ((1 - w) * np.clip(p["lateral_gain"] * lateral, -0.1, 0.1))[far]
        # at the stance: proportional corrections of the lateral offset from the stance line (sideways steps), the
        # heading (turning in place) and, once those are within their windows, the distance to the bar, each
        # floored above the deadband while outside its window; judged in the leaf's frame, as turning moves the bar
        # in base_link
        near = a & ~far
        roomy = plane > -GRASP_IN_LEAF[0] + REACH_X[0]  # no sideways steps with the lever in the way
        side = near & roomy & (np.abs(lateral) > p["window_lat"])
        face = near & ((door_yaw < -p["yaw_left"]) | (door_yaw > p["yaw_right"]))
        v[side, 1] = floored(p["lateral_gain"] * lateral, MIN_SPEED, 0.15)[side]
        v[face, 2] = floored(p["yaw_gain"] * door_yaw / TURN_RATIO, MIN_YAW, MAX_YAW_CMD)[face]
        gx = grasp[:, 0]
        step = near & ~face & ~side & ((gx > REACH_X[1]) | (gx < REACH_X[0]))
        v[step, 0] = floored(p["speed_gain"] * (gx - 0.5 * (REACH_X[0] + REACH_X[1])), MIN_SPEED, 0.12)[step]
        moving = far | face | side | step
        self.timer[moving] = 0.0   # the timer counts standing time in approach
        ready = np.stack([p["ready_x"], p["ready_y"], p["ready_z"]], -1)
        ready[:, 0] = np.minimum(ready[:, 0], plane - 0.25)   # clear of the leaf and the lever (a hand resting
                                                              # on the leaf while the legs step tips the robot over)
        self.raised |= a & (target[:, 0] < p["raise_at"])
        up = a & self.raised
        pos[up, 1], rot[up, 1] = ready[up], grasp_rotation(np.tile([0.0, 1.0, 0.0], (n, 1)), p["pitch"])[up]
        self._advance(a & ~moving & (t > 0.5), REACH)   # after standing 0.5 s

        # ---- reach: behind the bar along the fingers, then onto it, with the integral correction
        r = st == REACH
        pre = grasp - p["pre_back"][:, None] * fingers
        goal = np.where(self.at_pre[:, None], grasp, pre)
        err = goal - hand_pos[:, 1]
        dist = np.linalg.norm(err, axis=-1)
        caught_up = np.linalg.norm(self.prev_pos[:, 1] - (goal + self.integral), axis=-1) < 0.006
        correcting = r & (dist < 0.13) & caught_up
        self.integral = np.where(correcting[:, None],
                                 np.clip(self.integral + p["integral_gain"][:, None] * err, -0.08, 0.08), self.integral)
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
        self.hand0[start_push], self.yaw0[start_push] = hand_pos[start_push, 1], door_yaw[start_push]
        self.hinge0[start_push] = door_pos[start_push]
        self._advance(start_push, PUSH)
        failed = ((st == TURN) & (t > p["turn_timeout_s"])) | ((st == TURN) & (t > 1.0) & ~on_lever)
        self.at_pre[failed] = False
        self._advance(failed, REACH)   # let go (reach opens the gripper) and take the bar again

        # ---- push: the hand pressed on beyond the turned lever along the leaf's first normal; standing, the arm
        # (near the end of its reach) opens the leaf too little to keep the bolt clear, so after `push_walk_after` the legs step
        # forward slowly, the held lever going with the trunk, until the leaf has turned `open_angle`. Held by the
        # lever the robot pivots left with the leaf (as much as it opens): its yaw since the push began is estimated
        # from the sideways shift of the world-fixed hinge in base_link and turned back in proportion
        pu = st == PUSH
        depth = np.clip(t / 1.2, 0.0, 1.0) * p["push_depth"]
        pos[pu, 1] = (turned + depth[:, None] * self.normal0)[pu]
        yawed = -(door_pos[:, 1] - self.hinge0[:, 1]) / np.maximum(door_pos[:, 0], 0.2)
        walking = pu & (t > p["push_walk_after"])
        v[walking, 0] = p["push_speed"][walking]
        v[walking, 2] = np.clip(-p["hold_gain"] * yawed / TURN_RATIO, -MAX_YAW_CMD, MAX_YAW_CMD)[walking]
        # the leaf has opened by the growth of its observed yaw, corrected by the robot's own, or when the hand
        # holding the lever has gone forward with it
        opened = np.sum((hand_pos[:, 1] - self.hand0) * self.normal0, -1)
        swung = _wrap(door_yaw - self.yaw0) + yawed
        self._advance(pu & ((opened > p["open_enough"]) | (swung > p["open_angle"]) | (t > p["push_timeout_s"])), PASS)

        # ---- pass: let go, then walk through with the open hand ahead pushing the leaf, steering to pass the hinge
        # (the one thing the open leaf still shows for sure: its position in base_link) `pass_clear` on the left:
        # along the tangent from the trunk to that circle about it, then straight on once it is abeam
        ps = st == PASS
        hinge_r = np.linalg.norm(door_pos[:, :2], axis=-1)
        tangent = np.arctan2(door_pos[:, 1], door_pos[:, 0]) \
            - np.arcsin(np.clip(p["pass_clear"] / np.maximum(hinge_r, 1e-3), 0, 1))
        perr = np.where(door_pos[:, 0] > 0, tangent, 0.0)
        letting_go = t < p["release_s"]
        sweep = np.stack([p["sweep_x"], p["sweep_y"], p["sweep_z"]], -1)
        # pushing the leaf, slowly; faster once the hinge is abeam (the leaf swung aside); slower the further off
        # course (turning first: walking on facing the hinge side runs into the leaf)
        pass_speed = np.interp(door_pos[:, 0], [0.0, 0.3], [0.0, 1.0]) * (p["pass_speed"] - p["walk_speed"]) \
            + p["walk_speed"]
        pass_speed = pass_speed * np.clip(1.0 - np.abs(perr) / 0.5, 0.0, 1.0)
        pass_speed = np.where(pass_speed < MIN_SPEED, np.where(np.abs(perr) > 0.1, 0.0, MIN_SPEED), pass_speed)
        v[ps & ~letting_go] = walk(p["bearing_gain"] * perr, pass_speed)[ps & ~letting_go]
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
