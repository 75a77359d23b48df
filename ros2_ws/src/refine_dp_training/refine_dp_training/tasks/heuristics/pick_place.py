"""Stage-conditioned heuristic planner for the pick-and-place task, batched over N envs.

The pickup part is the pickup heuristic itself (`PickupHeuristic`, this class's base: walk to the table,
grasp, lift); once it holds the box up, this planner's own stages carry it to the place table 2 m to the
robot's right, set it down in the target region and let go. Like the base it sees only the planner's
observation and emits clamped planner actions.

Where to place: the target region is fixed in the world, and once the box is held its pose in base_link no
longer says where the robot is (and the box's start yaw, random by +-45 deg on a cube, does not give the
robot's world heading either: a 0.2 rad heading error is 0.4 m off after 2 m). So the marked target mat is
a MoCap rigid body, `place_target` (a static body in scene_pick_place.xml, origin at the region's centre on
the table's surface, axes the world's), observed like the box: the task's second object. Its pose in
base_link gives the robot's heading (minus the mat's yaw) and position relative to the target, so the whole
carry is closed loop on it, as a lab would put markers on the mat.

Stages after the base's `hold` (the route: back out, turn right ~100 deg, walk ~2 m, turn back left to
`final_yaw`, walk in; docs/architecture.md "The pick-and-place heuristic". Its numbers were measured on the
legs shipped before session 12; for the present legs only their compensations were taken out (no drift or
crab, yaw rate over the 0.6 turn ratio, plain in-place turns): the carry is not retuned yet):
    back_out        hand in to the carry pose (standing), then back away from the pick table (and to the
                    right) to `clear_x`: the right turn creeps towards it
    turn_out        turn right until the corner point (`corner_back` behind the place stance) is ahead,
                    backing out again whenever the creep has brought the trunk `clear_margin` closer
    carry           walk to the corner point (turning again where the heading is off by more than `walk_max`)
    turn_in         turn (left) to `final_yaw`, facing the place table
    approach_place  walk forward (bang-bang, as the base approaches) until the target is `stop_lead` beyond
                    `reach_x`, aiming at the place stance; stand still `settle_s`
    place           the hand moved (closed loop on the observed box) until the box is over the target, rolled
                    back there (pads closing sideways), then down until the box is `release_dz` above its
                    resting height
    release         open the gripper, hold the hand
    retreat         hand straight up, open; stand (success needs the box at rest, grippers open, for 1 s)
While carrying, the hand holds the box rolled 90 deg about the fingers, so that the lower pad carries it
(held sideways by friction alone it slides down the pads and drops after 20-30 s of walking).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from refine_dp_planner.planner_io import actions_to_vectors, clamp_actions, rot6d_to_matrix
from t1_description.scenes import scene_facts

from .pickup import (HOLD, MAX_WZ, MIRROR, STAGE_NAMES as PICKUP_STAGES, TURN_RATIO, PickupHeuristic, _yaw,
                     grasp_rotation)

BACK_OUT, TURN_OUT, CARRY, TURN_IN, APPROACH_PLACE, PLACE, RELEASE, RETREAT = range(HOLD + 1, HOLD + 9)
STAGE_NAMES = PICKUP_STAGES + ("back_out", "turn_out", "carry", "turn_in", "approach_place", "place", "release",
                               "retreat")
TARGET = "place_target"
FACTS = scene_facts("pick_place")
BOX_HALF, TARGET_X = FACTS.box.half_size, FACTS.place_region.center[0]
# base commands, measured with one hand holding the box at the carry pose: backwards and to the right
# (0.02-0.05 m/s); turns: which command turns the shipped legs which way depends on which hand is up and on
# the gait's state (e.g. with the right hand up, (0.2, 0, 0) turned one run left at 0.38 rad/s and (0.2, 0,
# 0.25) right at 0.37), so each turn tries these in order and moves on to the next when the heading has not
# come round by `turn_check` rad in `turn_check_s`: right first (0, 0.1, -0.25) (-0.1..-0.18 rad/s, creeping
# ~0.05 m/s to the left), left first in place (0.06-0.12 rad/s); the commands that walk forward (the last) are
# not tried in `turn_out` and `turn_in`, next to a table (walking a left arc, the robot overshot the place
# stance by 0.4 m)
BACK_RIGHT = np.array([-0.1, -0.1, -0.25])
TURNS = np.array([[[0.0, 0.0, -0.3], [-0.2, 0.0, -0.25], [0.2, 0.0, -0.25]],     # right
                  [[0.0, 0.0, 0.3], [-0.2, 0.0, 0.25], [0.2, 0.0, 0.25]]])       # left
IN_PLACE_TURNS = 2
ROLL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +90 deg about the hand's y (the fingers)


@dataclass
class PlaceParams:
    """Per-episode ranges (uniform) of the carry and place stages (distances in metres, angles in rad)."""

    hold_s: tuple = (0.3, 0.6)          # s in the base's `hold` before carrying (the box has followed the hand)
    clear_x: tuple = (-0.15, -0.10)     # world x the trunk backs out to before turning (the right turn creeps
                                        # ~0.3 m left = towards the pick table once it faces the place table)
    clear_margin: tuple = (0.25, 0.3)   # turning out, the trunk backs out again when this far past clear_x
                                        # (backing and turning in turn is slow: a last resort)
    pull_in_s: tuple = (3.5, 4.5)       # s standing while the hand comes in to the carry pose (stepping back at
                                        # once, with the arm swinging in, the robot fell more often)
    back_out_s: tuple = (8.0, 10.0)     # s backing out at most (the first time)
    carry_x: tuple = (0.30, 0.34)       # the holding hand pulled in while carrying (base_link, to its side): with
    carry_y: tuple = (0.18, 0.22)       # the box held out at the lift pose the legs turn right slower and veer
    carry_z: tuple = (0.15, 0.18)       # more walking (higher, the box dropped more often)
    carry_pitch: tuple = (-0.1, 0.1)    # fingers' pitch while carrying (rolled: see act)
    crab_left: tuple = (-0.05, 0.05)    # rad, walking direction relative to the heading, left hand holding
    crab_right: tuple = (-0.05, 0.05)   # ... right hand holding (the legs shipped before crabbed 0.1-0.4 rad;
                                        # the present ones walk straight: not measured at the carry pose yet)
    turn_check_s: tuple = (1.8, 2.2)    # s between checks that a turn command turns the robot the right way
    turn_check: tuple = (0.05, 0.07)    # rad it must have turned by then
    reach_x: tuple = (0.44, 0.47)       # the target this far ahead of the trunk when the robot stops to place
    reach_y: tuple = (0.05, 0.09)       # ... and this far to the holding hand's side
    final_yaw: tuple = (-0.55, -0.4)    # world yaw at the place stance (facing the target from the pick table's
                                        # side: less to turn back; the near edge of the place table is clear)
    corner_back: tuple = (0.55, 0.65)   # corner point this far behind the place stance (room to turn in; the
                                        # way there passes behind the pick table's corner)
    turn_lead: tuple = (0.15, 0.25)     # stop turning this far before the heading is right (the legs coast)
    walk_max: tuple = (0.45, 0.55)      # heading error beyond which the robot turns in place instead of walking
    corner_tol: tuple = (0.12, 0.18)    # distance to the corner point that ends `carry`
    face_tol: tuple = (0.12, 0.18)      # heading error (to the place table) that ends `turn_in`
    stop_lead: tuple = (0.05, 0.08)     # stop walking in while the target is this much beyond reach_x
    settle_s: tuple = (0.6, 1.0)        # s standing before placing
    place_dx: tuple = (-0.03, 0.0)      # box aimed this far from the region's centre (x, towards the robot)
    release_dz: tuple = (0.005, 0.015)  # box centre this far above its resting height when let go
    unroll_s: tuple = (3.2, 3.8)        # s for the hand to roll back (0.5 rad/s) over the target before going down
    place_gain: tuple = (0.15, 0.25)    # per step, of the observed box error folded into the hand command
    place_timeout_s: tuple = (6.0, 8.0)  # s in `place` before letting go anyway (over the region)
    release_s: tuple = (0.6, 0.9)       # s opening before the hand leaves
    retreat_dz: tuple = (0.06, 0.08)    # hand raised this much after letting go

    def draw(self, rng: np.random.Generator, n: int) -> dict:
        return {f.name: rng.uniform(*getattr(self, f.name), n) for f in fields(self)}


def _wrap(a):
    return np.angle(np.exp(1j * a))


class PickPlaceHeuristic(PickupHeuristic):
    stage_names = STAGE_NAMES

    def __init__(self, spec, num_envs: int, seed: int = 0, clamps=None, planner_dt: float = 0.1, params=None,
                 place_params: PlaceParams | None = None):
        super().__init__(spec, num_envs, seed, clamps, planner_dt, params)
        if TARGET not in self.sl:
            raise ValueError(f"task {spec.name!r}: the pick-and-place heuristic needs the MoCap object {TARGET!r} "
                             f"in the observation (objects {spec.objects})")
        self.place_params = place_params or PlaceParams()
        n = self.n
        self.q = self.place_params.draw(self.rng, n)
        self.target = np.zeros((n, 3))       # the mat in base_link (smoothed; held while not observed)
        self.target_yaw = np.zeros(n)
        self.target_seen = np.zeros(n, bool)
        self.hand_cmd = np.zeros((n, 3))     # the holding hand's command (base_link) from the carry on
        self.turn_dir = np.zeros(n, np.int64)  # 0 not turning, 1 right, 2 left
        self.turn_try = np.zeros(n, np.int64)  # which of TURNS[dir] is being tried
        self.turn_clock = np.zeros(n)
        self.turn_ref = np.zeros(n)           # heading at the last check
        self.unroll_t = np.zeros(n)           # s since the hand began to roll back over the target

    def reset(self, mask=None) -> None:
        mask = np.ones(self.n, bool) if mask is None else np.asarray(mask, bool)
        super().reset(mask)
        k = int(mask.sum())
        if k:
            draw = self.place_params.draw(self.rng, k)
            for key in self.q:
                self.q[key][mask] = draw[key]
            self.target_seen[mask], self.turn_dir[mask] = False, 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions [N, 23]: the pickup heuristic's until it holds the box, then the carry and place stages'."""
        q, n, env = self.q, self.n, np.arange(self.n)
        mine = self.stage > HOLD
        saved = self.stage.copy(), self.timer.copy(), self.prev_pos.copy(), self.prev_rot.copy()
        actions = super().act(obs)
        # the base's stage machine does not run past `hold` (e.g. it would re-grasp a box let go on purpose)
        self.stage[mine], self.timer[mine] = saved[0][mine], saved[1][mine] + self.dt
        self.behind[mine] = 0
        self._observe_target(obs)

        # ---- start carrying: the box has stayed up in the base's `hold`
        h = (self.side < 0).astype(int)
        start = (self.stage == HOLD) & (self.timer > q["hold_s"]) & self.target_seen
        self._goto(start, BACK_OUT)
        mine = self.stage > HOLD
        if not mine.any():
            return actions

        # ---- the robot's pose relative to the target (world axes, target at the origin)
        psi = -self.target_yaw
        c, s = np.cos(psi), np.sin(psi)
        tx, ty = self.target[:, 0], self.target[:, 1]
        robot = -np.stack([c * tx - s * ty, s * tx + c * ty], -1)
        # the place stance: the trunk here, facing final_yaw, has the target at (reach_x, reach_y) in base_link
        cf, sf = np.cos(q["final_yaw"]), np.sin(q["final_yaw"])
        ahead = np.stack([cf, sf], -1)
        rx, ry = q["reach_x"], self.side * q["reach_y"]
        stance = -np.stack([cf * rx - sf * ry, sf * rx + cf * ry], -1)
        corner = stance - q["corner_back"][:, None] * ahead

        def bearing(point):
            d = point - robot
            return _wrap(np.arctan2(d[:, 1], d[:, 0]) - psi)

        st, t = self.stage, self.timer
        b_corner, b_face = bearing(corner), _wrap(q["final_yaw"] - psi)
        world_x = TARGET_X + robot[:, 0]
        self._goto((st == BACK_OUT) & ((world_x < q["clear_x"]) | (t > q["pull_in_s"] + q["back_out_s"])), TURN_OUT)
        # turn_out -> carry: the corner point ahead (within the turn's coasting)
        self._goto((st == TURN_OUT) & (b_corner > -q["turn_lead"]), CARRY)
        near_corner = (np.linalg.norm(corner - robot, axis=-1) < q["corner_tol"]) | (robot[:, 1] < corner[:, 1] + 0.05)
        self._goto((st == CARRY) & near_corner, TURN_IN)
        self._goto((st == TURN_IN) & (np.abs(b_face) < q["face_tol"]), APPROACH_PLACE)
        box = self.box
        ex = self.target[:, 0] - q["reach_x"]
        standing = (st == APPROACH_PLACE) & (ex < q["stop_lead"])
        self.timer = np.where((st == APPROACH_PLACE) & ~standing, 0.0, self.timer)
        self._goto((st == APPROACH_PLACE) & (self.timer > q["settle_s"]), PLACE)
        goal = self.target + np.c_[q["place_dx"], np.zeros(n), BOX_HALF + q["release_dz"]]
        err = goal - box
        over = np.linalg.norm(err[:, :2], axis=-1) < 0.02
        down = over & (err[:, 2] > -0.01)
        region = np.linalg.norm(err[:, :2], axis=-1) < 0.07
        # the hand rolls back only over the target (unrolled the box may slip: it then falls on the table)
        self.unroll_t = np.where((st == PLACE) & (self.unroll_t > 0.0) | (st == PLACE) & region,
                                 self.unroll_t + self.dt, 0.0)
        unrolled = self.unroll_t > q["unroll_s"]
        self._goto((st == PLACE) & (down | ((t > q["place_timeout_s"]) & region)) & unrolled, RELEASE)
        self._goto((st == RELEASE) & (t > q["release_s"]), RETREAT)
        st = self.stage

        # ---- base
        aim = np.where((st == CARRY)[:, None], corner, stance + q["corner_back"][:, None] * ahead)
        # walking, the legs crab (with the right hand up ~0.4 rad to the left of the heading, with the left
        # ~0.15 rad to the right): the heading aimed at is the bearing less that angle
        berr = bearing(aim) - np.where(self.side > 0, q["crab_left"], q["crab_right"])
        walking = ((st == CARRY) | ((st == APPROACH_PLACE) & ~standing)) & (np.abs(berr) < q["walk_max"])
        wz = np.clip(self.p["bearing_gain"] * berr / TURN_RATIO, -MAX_WZ, MAX_WZ)
        turn_err = np.where(st == TURN_OUT, b_corner, np.where(st == TURN_IN, b_face, berr))
        # turning out, the creep towards the pick table is undone by backing out again
        creeping = (st == TURN_OUT) & (world_x > q["clear_x"] + q["clear_margin"])
        backing = ((st == BACK_OUT) & (t > q["pull_in_s"])) | creeping
        turning = ((st == TURN_OUT) | (st == TURN_IN) | (st == CARRY) | ((st == APPROACH_PLACE) & ~standing)) \
            & ~walking & ~backing
        near_table = (st == TURN_OUT) | (st == TURN_IN)
        turn = self._turn(turning, turn_err, psi, q, np.where(near_table, IN_PLACE_TURNS, TURNS.shape[1]))
        base = np.where(walking[:, None], np.stack([self.p["walk_speed"], np.zeros(n), wz], -1),
                        np.where(turning[:, None], turn, np.where(backing[:, None], BACK_RIGHT, 0.0)))

        # ---- the holding hand (base_link): pulled in to the carry pose, then moved by the observed box's error
        # over the target and down; up again once open
        step = np.clip(q["place_gain"][:, None] * err, -0.006, 0.006)
        above = np.linalg.norm(err[:, :2], axis=-1) < 0.03
        above &= unrolled  # the hand rolled back (pads closing sideways again) before going down
        step[:, 2] = np.where(above | (err[:, 2] > 0), step[:, 2], 0.0)  # down only over the target
        carry = np.stack([q["carry_x"], self.side * q["carry_y"], q["carry_z"]], -1)
        rising = (st == RETREAT) & (t < q["retreat_dz"] / self.clamps.max_hand_speed)
        up = np.c_[np.zeros((n, 2)), np.where(rising, 0.01, 0.0)]
        cmd = np.where((st < PLACE)[:, None], carry, self.hand_cmd + np.where((st == PLACE)[:, None], step, up))
        level = grasp_rotation(self.finger_yaw_frozen, self.p["pitch"])
        # carrying, the hand is rolled 90 deg about the fingers (hand x inwards): the pads close vertically and
        # the lower one carries the box (held sideways by friction alone it slides down the pads walking)
        carry_rot = grasp_rotation(self.finger_yaw_frozen, q["carry_pitch"]) @ ROLL
        rot = np.where(((st >= PLACE) & ((self.unroll_t > 0.0) | (st > PLACE)))[:, None, None], level, carry_rot)
        rot = np.where((self.side < 0)[:, None, None], MIRROR @ rot @ MIRROR, rot)

        pos, rot_all = saved[2].copy(), saved[3].copy()
        pos[env, h], rot_all[env, h] = cmd, rot
        grip = np.zeros((n, 2))
        grip[env, h] = np.where(st < RELEASE, 1.0, 0.0)
        v, pos, rot_all, _ = clamp_actions(base, pos, rot_all, saved[2], saved[3], self.dt, self.clamps)
        self.hand_cmd = pos[env, h]  # the next place/retreat step starts from what was commanded (no wind-up)
        out = actions_to_vectors(v, pos, rot_all, grip)
        actions[mine] = out[mine]
        self.prev_pos[mine], self.prev_rot[mine] = pos[mine], rot_all[mine]
        return actions

    def _turn(self, turning, err, psi, q, tries) -> np.ndarray:
        """Base commands [N, 3] turning towards err's sign: the first of TURNS[:tries] that turns the robot
        that way."""
        d = np.where(turning, np.where(err > 0, 2, 1), 0)
        new = d != self.turn_dir
        self.turn_dir, self.turn_try = d, np.where(new, 0, self.turn_try)
        self.turn_clock = np.where(new, 0.0, self.turn_clock + self.dt)
        self.turn_ref = np.where(new, psi, self.turn_ref)
        check = turning & (self.turn_clock >= q["turn_check_s"])
        stuck = check & (_wrap(psi - self.turn_ref) * np.where(d == 2, 1.0, -1.0) < q["turn_check"])
        self.turn_try = np.where(stuck, self.turn_try + 1, self.turn_try) % tries
        self.turn_clock = np.where(check, 0.0, self.turn_clock)
        self.turn_ref = np.where(check, psi, self.turn_ref)
        return np.where(turning[:, None], TURNS[np.maximum(d - 1, 0), self.turn_try], 0.0)

    def _observe_target(self, obs: np.ndarray) -> None:
        """The mat's pose in base_link, lightly smoothed (MoCap noise), held while it is not observed."""
        raw = obs[:, self.sl[TARGET]].astype(np.float64)
        present = np.abs(raw).sum(-1) > 0
        yaw = _yaw(rot6d_to_matrix(raw[:, 3:9]))
        a = np.where(self.target_seen, 0.5, 1.0)
        upd = present
        self.target = np.where(upd[:, None], self.target + a[:, None] * (raw[:, :3] - self.target), self.target)
        self.target_yaw = np.where(upd, self.target_yaw + a * _wrap(yaw - self.target_yaw), self.target_yaw)
        self.target_seen |= present
