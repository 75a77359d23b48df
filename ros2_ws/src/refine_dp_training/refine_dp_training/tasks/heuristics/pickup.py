"""Stage-conditioned heuristic planner for the pickup task, batched over N envs.

It sees only the planner's observation (hands by FK of the measured arm joints, grippers, gravity, the
box as MoCap reports it in base_link) and emits the planner's own action, through the planner's clamps
(planner_io.clamp_actions), so what it records is what a diffusion policy can output and the robot can run.

Stages (per env, closed loop on the observed box):
    approach  walk until the box is within reach (forward speed proportional to the distance left, yaw rate
              to the bearing error, sideways steps at the table); both hands go to mirrored ready poses
              ahead of the robot above table height meanwhile, and the hand on the box's side takes it
    settle    stand still until the feet have stopped (re-approach if the box left the window)
    pregrasp  hand behind the box along the grasp direction, a little above it, gripper open
    reach     hand to the grasp point; an integral term on (target - measured hand) removes the arm
              policy's steady tracking error
    close     gripper closed, hand held
    lift      hand raised; if the box does not follow, open and re-attempt from pregrasp
    hold      keep the box up (the task's success needs 1 s)

The grasp: fingers horizontal (a small random downward pitch) along the box face normal nearest the
hand's natural reach direction, closing across the box. The left hand takes boxes on the robot's left
when the robot has stopped, the right hand the others; the right-hand case is the left one mirrored
(y -> -y), so one set of numbers describes both. Gains, waypoints, offsets, speeds and timing are drawn per episode
(`HeuristicParams`), so demonstrations differ.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from refine_dp_planner.planner_io import Clamps, actions_to_vectors, clamp_actions, observation_fields, rot6d_to_matrix

from .common import redraw

APPROACH, SETTLE, PREGRASP, REACH, CLOSE, LIFT, HOLD = range(7)
STAGE_NAMES = ("approach", "settle", "pregrasp", "reach", "close", "lift", "hold")
MIRROR = np.diag([1.0, -1.0, 1.0])
REACH_Y = (-0.01, 0.14)
TURN_RATIO = 0.6             # the legs turn at ~0.6 of a commanded yaw rate (0.2 rad/s for 0.3, in place or walking)
MAX_WZ, TURN_MIN = 0.35, 0.18  # rad/s: the largest yaw command; the smallest in place (the clamps stand below 0.15)
SIDE_MIN = 0.07              # m/s, the smallest sideways command in place (the clamps stand below 0.06)
# bounds of the integral correction (m): never more than 2 cm below the target - a hand that does not come
# down further is resting on the box or at the arm policy's limit, and pushing on makes the robot lean and fall
INTEGRAL_LO, INTEGRAL_HI = np.array([-0.05, -0.05, -0.02]), np.array([0.05, 0.05, 0.05])  # m, box y towards the grasping hand's side that the hand takes from where the robot stands


@dataclass
class HeuristicParams:
    """Per-episode ranges (uniform). Positions in base_link of the (mirrored-to-left) grasping hand.

    Why these numbers: with the fingers horizontal the shipped arm policy reaches the box only with the arm
    extended (grip site 0.40-0.48 m ahead of the trunk, 0-0.15 m to the hand's side; closer in, the elbow
    yaw runs into the range the arm policy was trained on), so the hand is raised to a ready pose above
    table height, ahead of the robot, before the last steps to the table (with both arms up the legs fall).
    The shipped legs (legs_path2, iteration 40; 8 s constant commands) walk forward commands of 0.08-0.2 m/s
    at 0.95-1.0 of the command and straight (8 cm off over 2.5 m), sideways at ~0.65 of the command, turn
    at ~0.6-0.7 of it in place or walking (both ways), but step backwards only at ~0.025 m/s for 0.08-0.12:
    so the approach slows down before the goal instead of backing off. (The legs shipped before drifted
    left, walked 0.1 m/s at 0.03 m/s and turned right only when stepping left: this heuristic was rebuilt
    for the new legs; pickup success 0.35 -> 0.62 over the same 48 `eval task` episodes.)
    """

    goal_x: tuple = (0.435, 0.46)         # m, box x in base_link where the robot stops
    goal_y: tuple = (0.05, 0.09)          # m, box y towards the grasping hand's side
    window_x: tuple = (0.025, 0.035)      # m, +- tolerance on goal_x before the robot stands (closer than ~0.4 m
                                          # the arm policy cannot reach the box with the fingers horizontal)
    back_speed: tuple = (0.1, 0.12)       # m/s backwards when too close
    stop_lead: tuple = (0.02, 0.035)      # m, stop commanding forward this far before goal_x (the robot coasts)
    walk_speed: tuple = (0.16, 0.2)       # m/s forward command while far
    min_speed: tuple = (0.07, 0.08)       # m/s, the slowest forward command (the planner clamps stand below 0.06)
    approach_gain: tuple = (0.4, 0.6)     # 1/s, forward speed per m of distance left
    hold_back_x: tuple = (0.74, 0.8)      # m, the robot stops here (box x) to raise the hand before closing in
                                          # (nearer, the rising hand can catch the table's edge from below; a
                                          # waypoint near the body is not tracked by the arm policy)
    bearing_gain: tuple = (0.5, 0.8)      # rad/s of yaw wanted per rad of bearing error while walking
    side_gain: tuple = (0.8, 1.2)         # 1/s, sideways speed per m of lateral error near the table
    side_speed: tuple = (0.08, 0.1)       # m/s, the fastest sideways command
    side_tol: tuple = (0.02, 0.03)        # m, lateral error tolerated standing at the table
    turn_gain: tuple = (0.6, 0.9)         # rad/s of yaw wanted per rad of bearing error turning in place
    turn_room_x: tuple = (0.56, 0.6)      # m, box x beyond which turning in place is safe (away from the table)
    turn_first: tuple = (0.3, 0.4)        # rad of bearing error above which the robot turns in place
    turn_dead: tuple = (0.08, 0.14)       # rad of bearing error tolerated standing
    settle_s: tuple = (0.8, 1.4)          # s standing before the hand goes down to the box
    ready_x: tuple = (0.44, 0.47)         # ready pose: ahead, above table height
    ready_y: tuple = (0.08, 0.13)
    ready_z: tuple = (0.19, 0.22)         # m above the trunk origin (the table top is ~0.1, the box top ~0.15)
    natural_yaw: tuple = (-0.4, -0.2)     # rad, preferred finger direction (inwards)
    pitch: tuple = (0.0, 0.15)            # rad, fingers tilted down at the grasp
    ready_pitch: tuple = (-0.3, -0.1)     # rad, at the ready pose (tilted up: reachable higher)
    lift_pitch: tuple = (-0.35, -0.2)     # rad, while lifting (fingers tilted up: the extended arm reaches higher;
                                          # more and the box pivots in the grip about the closing axis and slips)
    max_tilt: tuple = (0.16, 0.2)         # |gravity x| (trunk pitch) above which the hand backs off
    grasp_dz: tuple = (0.008, 0.015)      # m, grip site above the box centre (palm clears the table)
    grasp_depth: tuple = (-0.02, -0.01)   # m, grip site beyond the box centre along the fingers (short of it:
                                          # deeper, the palm's front face came within ~1 cm of the box and
                                          # pressed the 0.2 kg box against the table, where the physics (5 ms
                                          # steps) blew up and the episode ended as a fall; this way 2-3 cm clear)
    pre_dz: tuple = (0.05, 0.07)          # m, pregrasp above the grasp point (the hand comes down onto the box)
    pre_back: tuple = (0.0, 0.02)         # m, pregrasp behind the grasp point along the fingers
    reach_tol: tuple = (0.008, 0.012)     # m, measured hand to grasp point before closing
    pre_tol: tuple = (0.012, 0.02)        # m, measured hand to pregrasp before descending
    integral_gain: tuple = (0.15, 0.3)    # per step, of the hand error folded into the command
    close_s: tuple = (0.6, 1.0)           # s with the gripper closing before lifting
    lift_dz: tuple = (0.14, 0.17)         # m raised
    lift_forward: tuple = (0.02, 0.05)    # m moved forward while raising (the arm reaches higher extended)
    stage_timeout_s: tuple = (5.0, 7.0)   # s in pregrasp/reach before going on anyway

    def draw(self, rng: np.random.Generator, n: int) -> dict:
        return {f.name: rng.uniform(*getattr(self, f.name), n) for f in fields(self)}


def _yaw(rot: np.ndarray) -> np.ndarray:
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def grasp_rotation(finger_yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Left-hand rotation [N, 3, 3] (columns: hand x, y = along the fingers, z = closing axis) with the
    fingers along finger_yaw, tilted down by pitch, and the closing axis horizontal."""
    c, s, cp, sp = np.cos(finger_yaw), np.sin(finger_yaw), np.cos(pitch), np.sin(pitch)
    f = np.stack([c * cp, s * cp, -sp], -1)
    z = np.stack([-s, c, np.zeros_like(c)], -1)
    x = np.cross(f, z)
    return np.stack([x, f, z], -1)


class PickupHeuristic:
    stage_names = STAGE_NAMES

    def __init__(self, spec, num_envs: int, seed: int = 0, clamps: Clamps | None = None, planner_dt: float = 0.1,
                 params: HeuristicParams | None = None):
        self.n, self.dt = int(num_envs), float(planner_dt)
        self.clamps = clamps or Clamps()
        self.params = params or HeuristicParams()
        self.rng = np.random.default_rng(seed)
        layout, start = {}, 0
        for name, size in observation_fields(spec.objects):
            layout[name] = slice(start, start + size)
            start += size
        self.sl = layout
        self.box_name = spec.objects[0]
        n = self.n
        self.stage = np.zeros(n, np.int64)
        self.timer = np.zeros(n)
        self.side = np.ones(n)  # +1 left hand, -1 right
        self.p = self.params.draw(self.rng, n)
        self.box = np.zeros((n, 3))
        self.box_yaw = np.zeros(n)
        self.box_seen = np.zeros(n, bool)
        self.integral = np.zeros((n, 3))
        self.finger_yaw = np.zeros(n)
        self.attempts = np.zeros(n, np.int64)
        self.prev_pos = np.zeros((n, 2, 3))
        self.prev_rot = np.tile(np.eye(3), (n, 2, 1, 1))
        self.fresh = np.ones(n, bool)
        self.raised = np.zeros(n, bool)
        self.behind = np.zeros(n, np.int64)
        self.via_done = np.zeros(n, bool)
        self.frozen = np.zeros((n, 3))
        self.frozen_rot = np.tile(np.eye(3), (n, 1, 1))
        self.finger_yaw_frozen = np.zeros(n)

    def reset(self, mask=None) -> None:
        """Start new episodes in the masked envs (all by default): new parameters, stage approach."""
        mask = redraw(self.params, self.p, self.rng, self.n, mask)
        if mask is None:
            return
        self.stage[mask], self.timer[mask], self.attempts[mask] = APPROACH, 0.0, 0
        self.box_seen[mask], self.integral[mask], self.fresh[mask] = False, 0.0, True
        self.raised[mask], self.via_done[mask], self.behind[mask] = False, False, 0

    # ------------------------------------------------------------------ observation
    def _parse(self, obs: np.ndarray):
        hands = obs[:, self.sl["hands"]].reshape(-1, 2, 9).astype(np.float64)
        hand_pos, hand_rot = hands[..., :3], rot6d_to_matrix(hands[..., 3:])
        box = obs[:, self.sl[self.box_name]].astype(np.float64)
        present = np.abs(box).sum(-1) > 0
        return hand_pos, hand_rot, box[:, :3], _yaw(rot6d_to_matrix(box[:, 3:9])), present

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions [N, 23] for observations [N, obs_dim] (already within the planner's clamps)."""
        p, n, env = self.p, self.n, np.arange(self.n)
        hand_pos, hand_rot, box_obs, box_yaw_obs, present = self._parse(obs)
        gravity = obs[:, self.sl["gravity"]].astype(np.float64)
        fresh = self.fresh
        if fresh.any():  # episode start: clamp from where the hands are
            self.prev_pos[fresh], self.prev_rot[fresh] = hand_pos[fresh], hand_rot[fresh]
            self.fresh[:] = False
        a = 0.5  # light smoothing of the MoCap estimate
        upd = present & self.box_seen
        self.box = np.where(upd[:, None], (1 - a) * self.box + a * box_obs,
                            np.where(present[:, None], box_obs, self.box))
        dyaw = np.angle(np.exp(1j * (box_yaw_obs - self.box_yaw)))
        self.box_yaw = np.where(upd, self.box_yaw + a * dyaw, np.where(present, box_yaw_obs, self.box_yaw))
        self.box_seen |= present
        st = self.stage

        # ---- which hand: the one on the box's side when the robot first stops to raise it
        near = self.box_seen & (self.box[:, 0] < p["hold_back_x"])
        start_raise = near & ~self.raised
        self.side = np.where(start_raise, np.where(self.box[:, 1] >= 0.0, 1.0, -1.0), self.side)
        self.raised |= near
        sgn = self.side
        flip = np.c_[np.ones(n), sgn, np.ones(n)]
        box, box_yaw = self.box * flip, self.box_yaw * sgn   # the grasping hand's (left) frame
        h = (sgn < 0).astype(int)
        meas = hand_pos[env, h] * flip
        ready = np.stack([p["ready_x"], p["ready_y"], p["ready_z"]], -1)
        # up: above table height, ahead (the ready pose itself is tracked to a few cm only)
        hand_up = self.raised & (meas[:, 2] > p["ready_z"] - 0.06) & (meas[:, 0] > p["ready_x"] - 0.08)


        # ---- base (in the left-hand frame; mirrored back at the end)
        ex = box[:, 0] - p["goal_x"]
        ey = box[:, 1] - p["goal_y"]
        goal_bearing = np.where(self.raised, np.arctan2(p["goal_y"], p["goal_x"]), 0.0)
        berr = np.angle(np.exp(1j * (np.arctan2(box[:, 1], box[:, 0]) - goal_bearing)))
        y_ok = (box[:, 1] > REACH_Y[0]) & (box[:, 1] < REACH_Y[1])
        in_window = hand_up & (np.abs(ex) < p["window_x"]) & y_ok
        may_close_in = hand_up | ~self.raised
        room = box[:, 0] > p["turn_room_x"]
        walk = (ex > p["stop_lead"]) & may_close_in & ((np.abs(berr) < p["turn_first"]) | ~room)
        # too close: back off (the legs step back slowly, ~0.025 m/s for a 0.1 m/s command, so the approach
        # slows down instead); near the table with the box out of the hand's lateral reach: step sideways
        back = (ex < -p["window_x"]) & ~walk
        side = ~walk & ~back & ~room & hand_up & (np.abs(ey) > p["side_tol"])
        turn = ~walk & ~back & ~side & (np.abs(berr) > p["turn_dead"]) & room
        # walking: forward speed proportional to the distance left (the legs walk 0.08-0.2 m/s commands at
        # 0.95-1.0 of the command), yaw rate proportional to the bearing error (they turn at ~0.6 of it);
        # standing at the table, sideways steps close what the bearing left of the lateral error
        vx = np.clip(p["approach_gain"] * ex, p["min_speed"], p["walk_speed"])
        wz = np.clip(p["bearing_gain"] * berr / TURN_RATIO, -MAX_WZ, MAX_WZ)
        wz_turn = np.sign(berr) * np.clip(p["turn_gain"] * np.abs(berr) / TURN_RATIO, TURN_MIN, MAX_WZ)
        vy_side = np.sign(ey) * np.clip(p["side_gain"] * np.abs(ey), SIDE_MIN, p["side_speed"])
        base = np.where(walk[:, None], np.stack([vx, np.zeros(n), wz], -1),
                        np.where(back[:, None], np.c_[-p["back_speed"], np.zeros((n, 2))],
                                 np.where(side[:, None], np.c_[np.zeros(n), vy_side, np.zeros(n)],
                                          np.where(turn[:, None], np.c_[np.zeros((n, 2)), wz_turn], 0.0))))
        base = np.where(((st == APPROACH) & self.box_seen)[:, None], base, 0.0)
        lost_window = (st >= SETTLE) & (st <= PREGRASP) & self.box_seen & (
            (np.abs(ex) > 2 * p["window_x"]) | (box[:, 1] < REACH_Y[0] - 0.03)
            | (box[:, 1] > REACH_Y[1] + 0.03))
        self._goto((st == APPROACH) & in_window, SETTLE)
        self._goto(lost_window, APPROACH)
        st = self.stage

        # ---- the grasp geometry
        natural = p["natural_yaw"]
        k = np.round((natural - box_yaw) / (np.pi / 2))
        self.finger_yaw = box_yaw + k * np.pi / 2  # the box face normal nearest the natural direction
        rot_grasp = grasp_rotation(self.finger_yaw, p["pitch"])
        f = rot_grasp[:, :, 1]
        up = lambda dz: np.c_[np.zeros((n, 2)), dz]  # noqa: E731
        grasp = box + p["grasp_depth"][:, None] * f + up(p["grasp_dz"])
        # from closing on, the grasp point is frozen where it was (the box moves with the hand)
        freeze = st < CLOSE
        self.frozen = np.where(freeze[:, None], grasp, self.frozen)
        self.frozen_rot = np.where(freeze[:, None, None], rot_grasp, self.frozen_rot)
        self.finger_yaw_frozen = np.where(freeze, self.finger_yaw, self.finger_yaw_frozen)
        grasp = np.where(freeze[:, None], grasp, self.frozen)
        rot_grasp = np.where(freeze[:, None, None], rot_grasp, self.frozen_rot)
        pre = grasp - p["pre_back"][:, None] * f + up(p["pre_dz"])
        lift = grasp + np.c_[p["lift_forward"], np.zeros(n), p["lift_dz"]]
        target = np.where((st <= SETTLE)[:, None], ready,
                          np.where((st == PREGRASP)[:, None], pre,
                                   np.where(((st == REACH) | (st == CLOSE))[:, None], grasp, lift)))
        rot_ready = grasp_rotation(natural, p["ready_pitch"])
        rot_lift = grasp_rotation(self.finger_yaw_frozen, p["lift_pitch"])
        rot_t = np.where((st <= SETTLE)[:, None, None], rot_ready,
                         np.where((st >= LIFT)[:, None, None], rot_lift, rot_grasp))

        # integral correction of the arm's steady tracking error: only where the clamped command has caught up
        # with the target (a command still moving at the hand-speed limit leads the hand by design)
        err = target - meas
        dist = np.linalg.norm(err, axis=-1)
        last_cmd = self.prev_pos[env, h] * flip
        caught_up = np.linalg.norm(last_cmd - (target + self.integral), axis=-1) < 0.006
        correcting = (dist < 0.08) & self.raised & caught_up
        self.integral = np.where(correcting[:, None],
                                 np.clip(self.integral + p["integral_gain"][:, None] * err, INTEGRAL_LO, INTEGRAL_HI),
                                 np.where(self.raised[:, None], self.integral, 0.0))
        command = target + self.integral

        # ---- stage machine of the arm
        self.timer += self.dt
        t = self.timer
        timeout = t > p["stage_timeout_s"]
        to_pregrasp = (st == SETTLE) & (t > p["settle_s"])
        self._goto(to_pregrasp, PREGRASP)
        self.integral[to_pregrasp] = 0.0
        self._goto((st == PREGRASP) & ((dist < p["pre_tol"]) | timeout), REACH)
        self._goto((st == REACH) & ((dist < p["reach_tol"]) | timeout), CLOSE)
        start_lift = (st == CLOSE) & (t > p["close_s"])
        self._goto(start_lift, LIFT)
        self.integral[start_lift] = 0.0  # another pose, another tracking error
        lifted = box[:, 2] > grasp[:, 2] - p["grasp_dz"] + 0.05  # grasp is the frozen point here
        self._goto((st == LIFT) & lifted & (dist < 0.03), HOLD)
        # leaning forward (the hand pushing on the table or box): back off, realign, try again
        tilted = (np.abs(gravity[:, 0]) > p["max_tilt"]) & (st >= PREGRASP) & (st <= CLOSE)
        self._goto(tilted, PREGRASP)
        self.integral[tilted] = 0.0
        # the box did not come with the hand: open and try again
        # (for half a second: the MoCap estimate lags a box moving up with the hand)
        self.behind = np.where((st >= LIFT) & (meas[:, 2] - box[:, 2] > 0.06), self.behind + 1, 0)
        left_behind = self.behind >= 5
        self.behind[left_behind] = 0
        self.attempts += left_behind
        self._goto(left_behind, PREGRASP)
        self.integral[left_behind] = 0.0
        gripper = np.where(self.stage >= CLOSE, 1.0, 0.0)

        # ---- back to the robot's frame: the grasping hand commanded once raised, the other held
        pos, rot = self.prev_pos.copy(), self.prev_rot.copy()
        rot_cmd = np.where((sgn < 0)[:, None, None], MIRROR @ rot_t @ MIRROR, rot_t)
        r = self.raised
        pos[env[r], h[r]], rot[env[r], h[r]] = (command * flip)[r], rot_cmd[r]
        grip = np.zeros((n, 2))
        grip[env, h] = gripper
        v = base * np.c_[np.ones(n), sgn, sgn]
        v, pos, rot, _ = clamp_actions(v, pos, rot, self.prev_pos, self.prev_rot, self.dt, self.clamps)
        self.prev_pos, self.prev_rot = pos, rot
        return actions_to_vectors(v, pos, rot, grip)

    def _goto(self, mask: np.ndarray, stage: int) -> None:
        self.stage = np.where(mask, stage, self.stage)
        self.timer = np.where(mask, 0.0, self.timer)
