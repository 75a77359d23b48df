"""Geometry facts of the task scenes (model/scene_*.xml), in one place for the task code.

The task framework (observations, rewards, success tests, heuristic planners) reads where the
tables, the target region, the door and the platform are from here instead of re-reading the XML
or hard-coding numbers; tests/test_task_scenes.py checks every number against the compiled model,
so the two cannot drift apart. Plain Python (no mujoco import). World frame, metres, radians;
the robot's stand keyframe puts the trunk at the origin facing +x in every scene.

    from t1_description.scenes import scene_facts
    pp = scene_facts("pick_place")
    pp.place_region.contains(box_pos)          # [..., 3] -> [...] bool, vectorised over envs
    door = scene_facts("door")
    door.walked_through(trunk_pos)             # trunk 0.5 m past the door plane

MoCap: sim_t1 serves the bodies named in its `mocap_bodies` parameter (default Trunk, box, door,
place_target; names missing from a scene are skipped) as NatNet rigid bodies of the same name; each scene's
`mocap_bodies` below lists the bodies of that scene a lab would put markers on, all covered by
that default.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAND_TRUNK_XY_YAW = (0.0, 0.0, 0.0)  # where the stand keyframe puts the trunk (x, y, yaw)
STAND_TRUNK_Z = 0.667                  # trunk height standing on the floor (m)
TRUNK_FRONT_M = 0.145                  # the trunk collision box reaches this far ahead of the trunk origin
TOE_M = 0.13                           # sole front ahead of the trunk origin in the stand pose


@dataclass(frozen=True)
class Region:
    """An axis-aligned box in the world: `center` (x, y, z) and `half_size` (hx, hy, hz)."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]

    def contains(self, pos) -> np.ndarray:
        """True where a point [..., 3] lies inside (vectorised over leading axes)."""
        d = np.abs(np.asarray(pos, dtype=float) - np.asarray(self.center))
        return np.all(d <= np.asarray(self.half_size), axis=-1)


@dataclass(frozen=True)
class TableFacts:
    """A static table or shelf: `body` name, `top_z` height of its top surface, and the top's
    footprint `x_range`, `y_range` (min, max) in the world."""

    body: str
    top_z: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]


@dataclass(frozen=True)
class ObjectFacts:
    """A free body the robot manipulates: `body` (also its freejoint and geom name, and its MoCap
    rigid-body name), `half_size` of the cube (m), `mass` (kg), `start_pos` of its centre."""

    body: str
    half_size: float
    mass: float
    start_pos: tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class SceneFacts:
    """What every task scene has."""

    scene: str
    """Name for t1_description.model_paths.load_model / mjcf_path and sim_t1's `scene` parameter."""
    mocap_bodies: tuple[str, ...]
    """Bodies a lab tracks with MoCap (served by sim_t1 as NatNet rigid bodies of these names)."""
    requires: tuple[str, ...] = ()
    """Robot capabilities the task needs beyond walking on flat ground and grasping (e.g.
    "step_up_0.10"); a task whose requirement the current legs lack is not yet solvable."""


@dataclass(frozen=True, kw_only=True)
class TableBoxFacts(SceneFacts):
    """scene_table_box (pickup)."""

    table: TableFacts
    """The table in front of the robot."""
    box: ObjectFacts
    """The box on it."""


@dataclass(frozen=True, kw_only=True)
class PickPlaceFacts(SceneFacts):
    """scene_pick_place: pick from `pick_table`, carry 2 m, place in `place_region` on `place_table`."""

    pick_table: TableFacts
    """The table the box starts on (as in table_box)."""
    place_table: TableFacts
    """The table to place the box on, 2.0 m to the robot's right (centres 2.0 m apart)."""
    box: ObjectFacts
    """The box to carry."""
    place_region: Region
    """Where the box's centre must end: the marked square on the place table's top (site
    `place_target` at its centre on the surface), z from the top to one box height above it. The
    marked mat is a static MoCap rigid body `place_target` (origin: that site), so the planner
    observes where to place as a lab's would."""

    def placed(self, box_pos, box_speed=None, max_speed: float = 0.05) -> np.ndarray:
        """Success test [...] bool: box centre in the region and (if given) the box at rest."""
        ok = self.place_region.contains(box_pos)
        if box_speed is not None:
            ok = ok & (np.asarray(box_speed) < max_speed)
        return ok


@dataclass(frozen=True, kw_only=True)
class DoorFacts(SceneFacts):
    """scene_door: a latched push door with a lever handle, opening away from the robot."""

    door_body: str = "door"
    """The door leaf body (MoCap rigid body "door")."""
    hinge_joint: str = "door_hinge"
    """Door hinge: 0 closed (against the stop) .. `open_range`[1], positive = opening away (+x)."""
    hinge_point: tuple[float, float, float] = (1.0, 0.445, 0.0)
    """A point on the door's hinge axis (world)."""
    hinge_axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    """Hinge axis direction (world); positive rotation opens the door."""
    open_range: tuple[float, float] = (0.0, 1.92)
    """door_hinge limits (rad)."""
    door_plane_x: float = 1.0
    """The closed door's plane is x = door_plane_x (normal +x, the robot starts on the x < side)."""
    opening_y_range: tuple[float, float] = (-0.45, 0.45)
    """Clear opening between the posts (world y)."""
    leaf_size: tuple[float, float, float] = (0.04, 0.88, 2.0)
    """Leaf thickness, width, height (m); 8 kg, damping 3 N m s/rad, frictionloss 1 N m."""
    passable_angle_rad: float = 1.3
    """A door open this far leaves about 0.65 m free at the latch side: enough for the T1."""
    handle_joint: str = "door_handle"
    """Lever hinge: 0 at rest (against its stop, spring-preloaded) .. `handle_range`[1]; positive
    turns the lever bar down (rotation about -x through the spindle)."""
    handle_site: str = "door_handle"
    """Grasp point on the lever bar (9 cm from the spindle, centre of the bar's cross-section)."""
    handle_range: tuple[float, float] = (0.0, 0.8)
    """door_handle limits (rad)."""
    handle_spindle: tuple[float, float, float] = (1.0, -0.37, 0.92)
    """Where the lever's hinge axis meets the leaf's centre plane (world, door closed)."""
    handle_grasp_point: tuple[float, float, float] = (0.91, -0.28, 0.92)
    """The handle site's world position with the door closed and the lever at rest."""
    lever_bar_size: tuple[float, float, float] = (0.02, 0.13, 0.022)
    """Lever bar depth (x), length (y, from the spindle toward the hinge), height (z), m."""
    latch_release_rad: float = 0.48
    """Handle angle past which the bolt clears the keeper (retraction 0.022 m/rad x angle
    > 0.0105 m); with the door pushed the bolt's friction adds a few hundredths of a radian."""
    bolt_joint: str = "door_latch_bolt"
    """The latch bolt's slide (positive = retracted), tied to the handle by equality door_latch."""
    walk_through_m: float = 0.5
    """Success: the trunk this far past the door plane."""

    def walked_through(self, trunk_pos) -> np.ndarray:
        """Success test [...] bool: trunk `walk_through_m` past the door plane (the walls beside the
        door leave no way around it)."""
        p = np.asarray(trunk_pos, dtype=float)
        return p[..., 0] > self.door_plane_x + self.walk_through_m

    def leaf_edge_xy(self, door_angle) -> np.ndarray:
        """Where the leaf's free edge is, [..., 2] (x, y), for a door_hinge angle (rad)."""
        a = np.asarray(door_angle, dtype=float)
        w = self.leaf_size[1]
        return np.stack([self.hinge_point[0] + w * np.sin(a), self.hinge_point[1] - w * np.cos(a)], axis=-1)


@dataclass(frozen=True, kw_only=True)
class StairsFacts(SceneFacts):
    """scene_stairs: a 10 cm platform against a wall with a shelf; the box on the shelf is out of
    reach from the floor and reachable standing on the platform."""

    platform: TableFacts
    """The step: top at 0.10 m, footprint x 0.35 .. 1.30, y -0.80 .. 0.80 (against the wall)."""
    shelf: TableFacts
    """The wall shelf over the platform's far part: top 0.84 m (0.74 m above the platform)."""
    wall_x: float = 1.30
    """The wall's face (world x); the platform and shelf end at it."""
    box: ObjectFacts
    """The box on the shelf."""
    platform_trunk_x_max: float = 0.85
    """On the platform the trunk box meets the shelf board's front edge (x 1.00) at this trunk x."""
    platform_trunk_z: float = STAND_TRUNK_Z + 0.10
    """Trunk height standing on the platform."""
    reach_from_platform_m: float = 0.26
    """Horizontal distance from the trunk origin standing at (platform_trunk_x_max - 0.03, 0) to the
    box centre, which is 0.10 m above the trunk origin there: the pickup box's place relative to a
    trunk 0.3 m back from its table (scene_table_box)."""
    floor_reach_shortfall_m: float = 0.15
    """From any floor stance the box is at least this much beyond the hands' reach (arm FK over
    sampled joints; tests/test_task_scenes.py)."""


PICKUP_TABLE = TableFacts("table", 0.74, (0.5, 1.1), (-0.4, 0.4))
BOX_AT_TABLE = ObjectFacts("box", 0.025, 0.2, (0.6, 0.0, 0.765))

SCENES: dict[str, SceneFacts] = {
    "table_box": TableBoxFacts(scene="table_box", mocap_bodies=("box",), table=PICKUP_TABLE, box=BOX_AT_TABLE),
    "pick_place": PickPlaceFacts(
        scene="pick_place", mocap_bodies=("box", "place_target"),
        pick_table=TableFacts("pick_table", 0.74, (0.5, 1.1), (-0.4, 0.4)),
        place_table=TableFacts("place_table", 0.70, (0.5, 1.1), (-2.4, -1.6)),
        box=BOX_AT_TABLE,
        place_region=Region((0.62, -2.0, 0.725), (0.10, 0.10, 0.025)),
    ),
    "door": DoorFacts(scene="door", mocap_bodies=("door",)),
    "stairs": StairsFacts(
        scene="stairs", mocap_bodies=("box",), requires=("step_up_0.10",),
        platform=TableFacts("platform", 0.10, (0.35, 1.30), (-0.80, 0.80)),
        shelf=TableFacts("shelf", 0.84, (1.00, 1.30), (-0.35, 0.35)),
        box=ObjectFacts("box", 0.025, 0.2, (1.08, 0.0, 0.865)),
    ),
}


def scene_facts(scene: str) -> SceneFacts:
    """The facts of a task scene; raises KeyError naming the scenes that have facts."""
    try:
        return SCENES[scene]
    except KeyError:
        raise KeyError(f"no scene facts for {scene!r}; task scenes: {', '.join(sorted(SCENES))}") from None
