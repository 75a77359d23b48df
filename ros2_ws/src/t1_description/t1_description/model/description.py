"""One Python description of the T1 from which both t1.xml (MuJoCo) and t1.urdf (rviz) are generated.

Why one description: the simulator and the visualiser must show the same robot; generating
both from here (plus the joint table for limits, gains and armature) means they cannot drift.

Numbers: link frames (origins, axes) and inertials are the vendor's 29-joint T1 URDF
(BoosterRobotics/booster_assets T1_29dof.urdf, BSD-3-Clause), re-typed as data. Geometry is
primitive only, sized after the vendor's collision shapes; the parallel-jaw grippers replace
the vendor hands' visuals and are this project's own (the hand links keep the vendor mass).

Conventions: lengths in m, masses in kg, inertia tensors about the COM in the link frame as
(ixx, iyy, izz, ixy, ixz, iyz); rpy is URDF roll-pitch-yaw (extrinsic x, y, z).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Vec3 = tuple[float, float, float]

# Collision roles -> (contype, conaffinity). Bits: 1 environment (floor ct=1 ca=0; scene objects
# ct=1 ca=1), 2 foot contact points, 4 soles (only sole-sole), 8 hands, 16 robot body,
# 32 legs (leg-leg self collision). See model/README.md.
COLLISION_BITS = {
    "visual": (0, 0),
    "body": (16, 1),
    "leg": (16 | 32, 1 | 32),
    "hand": (8, 1),
    "sole": (4, 4),
    "foot_point": (2, 1),
}


@dataclass(frozen=True)
class Geom:
    """A primitive in its link's frame. Capsules use `fromto`; boxes use half-extents in `size`."""

    type: str  # "box" | "sphere" | "capsule"
    size: tuple[float, ...]
    role: str = "visual"
    pos: Vec3 = (0.0, 0.0, 0.0)
    fromto: tuple[float, float, float, float, float, float] | None = None
    name: str | None = None
    rgba: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 1.0)
    friction: float | None = None


@dataclass(frozen=True)
class Site:
    name: str
    pos: Vec3
    type: str = "sphere"
    size: tuple[float, ...] = (0.01,)


@dataclass(frozen=True)
class Link:
    name: str
    parent: str | None
    joint: str | None  # joint connecting to the parent (None only for the floating root)
    pos: Vec3  # joint/link frame origin in the parent frame
    rpy: Vec3
    axis: Vec3 | None
    com: Vec3
    mass: float
    inertia: tuple[float, float, float, float, float, float]
    geoms: tuple[Geom, ...] = ()
    sites: tuple[Site, ...] = ()
    joint_type: str = "hinge"  # "hinge" (table joint) | "slide" (gripper finger)


ROOT = "Trunk"
ROOT_JOINT = "root"

LIGHT = (0.76, 0.76, 0.76, 1.0)
DARK = (0.35, 0.35, 0.38, 1.0)
HAND = (0.85, 0.55, 0.2, 1.0)
SOLE = (0.1, 0.1, 0.1, 1.0)

# Gripper: two fingers slide along the hand frame's z towards the grip centre.
GRIP_CENTRE_Y = 0.115  # along the hand frame's +y (left) / -y (right), from the hand roll joint
FINGER_OPEN_Z = 0.05  # finger centre offset when open
FINGER_HALF = (0.012, 0.035, 0.006)  # finger box half-extents
FINGER_TRAVEL = FINGER_OPEN_Z - FINGER_HALF[2] - 0.001  # closed: 2 mm gap between the pads
FINGER_MASS = 0.05
GRIPPER_STIFFNESS = 1000.0  # N/m per finger (grip force = stiffness x squeeze, capped below)
GRIPPER_MAX_FORCE = 40.0  # N per finger
GRIPPER_DAMPING = 10.0  # N s/m
FINGER_ARMATURE = 0.05  # kg, keeps the stiff light finger stable at 2 ms

# Passive joint terms for the 29 hinges ("a little", FACTS.md: menagerie/playground frictionloss 0.1).
JOINT_DAMPING = 0.1
JOINT_FRICTIONLOSS = 0.1

# Foot contact (MuJoCo Playground recipe): sole box 0.223 x 0.100 x 0.030 m, four 1 cm spheres
# inset by their radius at the sole corners; the sole's bottom plane is z = SOLE_BOTTOM_Z.
SOLE_CENTRE_X = 0.01
SOLE_HALF = (0.1115, 0.05, 0.015)
SOLE_BOTTOM_Z = -2 * SOLE_HALF[2]
FOOT_POINT_RADIUS = 0.01


def _box_inertia(mass: float, half: Vec3) -> tuple[float, float, float, float, float, float]:
    x, y, z = half
    return (mass / 3 * (y * y + z * z), mass / 3 * (x * x + z * z), mass / 3 * (x * x + y * y), 0.0, 0.0, 0.0)


def _cap(p0: Vec3, p1: Vec3, r: float, role: str = "visual", rgba=DARK, name: str | None = None) -> Geom:
    return Geom("capsule", (r,), role=role, fromto=(*p0, *p1), rgba=rgba, name=name)


def _mirror_y(g: Geom, side: str) -> Geom:
    """Right-side copy of a left-side geom: y negated, names re-prefixed."""
    pos = (g.pos[0], -g.pos[1], g.pos[2])
    ft = None if g.fromto is None else (g.fromto[0], -g.fromto[1], g.fromto[2], g.fromto[3], -g.fromto[4], g.fromto[5])
    name = None if g.name is None else g.name.replace("left_", f"{side}_")
    return replace(g, pos=pos, fromto=ft, name=name)


def _arm_geoms(side: str) -> dict[str, tuple[Geom, ...]]:
    left = {
        "1": (_cap((-0.025, 0.047, 0), (0.025, 0.047, 0), 0.03),),
        "2": (Geom("sphere", (0.03,), pos=(0, 0.035, 0), rgba=DARK),),
        "3": (_cap((0, 0.03, 0), (0, 0.13, 0), 0.03, role="body", rgba=LIGHT),),
        "4": (_cap((0, 0.02, 0), (0, 0.1, 0), 0.032, role="body", rgba=LIGHT),),
        "5": (_cap((0, 0.0, 0), (0, 0.04, 0), 0.03),),
        "6": (_cap((0, 0.0, 0), (0, 0.06, 0), 0.028),),
        "hand": (Geom("box", (0.025, 0.035, 0.055), role="hand", pos=(0, 0.045, 0), rgba=HAND,
                      name="left_palm", friction=1.5),),
    }
    if side == "left":
        return left
    return {k: tuple(_mirror_y(g, side) for g in v) for k, v in left.items()}


def _fingers(side: str) -> tuple[Link, ...]:
    sign = 1.0 if side == "left" else -1.0
    fingers = []
    for i, z_sign in ((1, 1.0), (2, -1.0)):
        name = f"{side}_gripper_finger_{i}"
        fingers.append(Link(
            name=f"{name}_link", parent=f"{side}_hand_link", joint=name,
            pos=(0.0, sign * GRIP_CENTRE_Y, z_sign * FINGER_OPEN_Z), rpy=(0, 0, 0),
            axis=(0.0, 0.0, -z_sign), joint_type="slide",
            com=(0, 0, 0), mass=FINGER_MASS, inertia=_box_inertia(FINGER_MASS, FINGER_HALF),
            geoms=(Geom("box", FINGER_HALF, role="hand", rgba=HAND, name=f"{name}_pad", friction=1.5),),
        ))
    return tuple(fingers)


def _foot_geoms(side: str) -> tuple[Geom, ...]:
    cx, (hx, hy, hz), r = SOLE_CENTRE_X, SOLE_HALF, FOOT_POINT_RADIUS
    points = tuple(
        Geom("sphere", (r,), role="foot_point", rgba=SOLE,
             pos=(cx + sx * (hx - r), sy * (hy - r), SOLE_BOTTOM_Z + r), name=f"{side}_foot_{tag}")
        for tag, sx, sy in (("front_left", 1, 1), ("front_right", 1, -1), ("back_left", -1, 1), ("back_right", -1, -1))
    )
    sole = Geom("box", SOLE_HALF, role="sole", pos=(cx, 0, -hz), rgba=SOLE, name=f"{side}_sole")
    return (sole,) + points


def _foot_site(side: str) -> Site:
    """Sole centre on the sole's bottom plane; its box is also the touch-sensor volume."""
    hx, hy, _ = SOLE_HALF
    return Site(f"{side}_foot", (SOLE_CENTRE_X, 0.0, SOLE_BOTTOM_Z), type="box", size=(hx + 0.01, hy + 0.01, 0.015))


def _leg_geoms() -> dict[str, tuple[Geom, ...]]:
    return {
        "pitch": (_cap((-0.045, 0, -0.02), (0.04, 0, -0.02), 0.045, rgba=LIGHT),),
        "roll": (_cap((0, 0, -0.09), (0, 0, -0.13), 0.045),),
        "yaw": (_cap((0, 0, -0.01), (-0.014, 0, -0.12), 0.055, role="leg"),),
        "shank": (_cap((0, 0, -0.05), (0, 0, -0.23), 0.045, role="leg"),),
        "cross": (Geom("box", (0.015, 0.02, 0.01), pos=(0, 0, -0.006)),),
    }


_ARM = {s: _arm_geoms(s) for s in ("left", "right")}
_LEG = _leg_geoms()
_GRIP_SITE = {s: Site(f"{s}_hand", (0.0, (1 if s == "left" else -1) * GRIP_CENTRE_Y, 0.0)) for s in ("left", "right")}

# Links in MJCF body order (depth first). Joint order of the 29 hinges equals the joint table.
LINKS: tuple[Link, ...] = (
    Link("Trunk", None, None, (0, 0, 0), (0, 0, 0), None,
         com=(0.0551365401093076, -1.42058017623659e-06, 0.105062332707657), mass=11.7,
         inertia=(0.0915287235057927, 0.076778716903413, 0.0556171053368987, -4.25369739206781e-07,
                  0.000646360369011163, 5.82340020271393e-07),
         geoms=(Geom("box", (0.085, 0.09, 0.145), role="body", pos=(0.06, 0, 0.12), rgba=LIGHT, name="trunk"),),
         sites=(Site("imu", (0.0, 0.0, 0.0)),)),
    Link("H1", "Trunk", "AAHead_yaw", (0.0625, 0, 0.243), (0, 0, 0), (0, 0, 1),
         com=(-0.000508, -0.001403, 0.057432), mass=0.443910,
         inertia=(0.000224, 0.000241, 0.000150, 0.000003, 0.000001, -0.000002),
         geoms=(_cap((0, 0, 0.02), (0, 0, 0.06), 0.025),)),
    Link("H2", "H1", "Head_pitch", (0, 0, 0.06185), (0, 0, 0), (0, 1, 0),
         com=(0.007802, 0.001262, 0.098631), mass=0.631019,
         inertia=(0.002025, 0.001920, 0.001739, -0.000025, 0.000046, 0.000036),
         geoms=(Geom("sphere", (0.08,), role="body", pos=(0.01, 0, 0.11), rgba=LIGHT, name="head"),)),
    # Left arm
    Link("AL1", "Trunk", "Left_Shoulder_Pitch", (0.0575, 0.1063, 0.219), (0, 0.00088113, 0), (0, 1, 0),
         com=(-0.000677, 0.044974, 0.0), mass=0.53,
         inertia=(0.001293, 0.000293, 0.001367, -0.000017, 0.0, 0.0), geoms=_ARM["left"]["1"]),
    Link("AL2", "AL1", "Left_Shoulder_Roll", (0, 0.047, 0), (0, 0, 0), (1, 0, 0),
         com=(0.003862, 0.037976, 0.0), mass=0.160,
         inertia=(0.000345, 0.000177, 0.000401, 0.000008, 0.0, 0.0), geoms=_ARM["left"]["2"]),
    Link("AL3", "AL2", "Left_Elbow_Pitch", (0.00025, 0.0605, 0), (0, 0, 0), (0, 1, 0),
         com=(0.0, 0.085353, -0.000099), mass=1.02,
         inertia=(0.012869, 0.000621, 0.012798, 0.0, 0.0, -0.000024), geoms=_ARM["left"]["3"]),
    Link("AL4", "AL3", "Left_Elbow_Yaw", (0, 0.1471, 0), (0, 0, 0), (0, 0, 1),
         com=(-0.00046851, 0.062372, 0.0015178), mass=0.5570,
         inertia=(0.001673, 0.000214, 0.001608, -1.2e-05, 0.0, 4e-06), geoms=_ARM["left"]["4"]),
    Link("AL5", "AL4", "Left_Wrist_Pitch", (0, 0.105, 0.00025), (0, 0, 0), (0, 1, 0),
         com=(-3.8402e-05, 0.036076, 0.0056711), mass=0.43402,
         inertia=(0.000823, 0.000216, 0.000785, 0.0, 0.0, 9.8e-05), geoms=_ARM["left"]["5"]),
    Link("AL6", "AL5", "Left_Wrist_Yaw", (0, 0.042, 0), (0, 0, 0), (0, 0, 1),
         com=(-0.00072939, 0.056578, -0.0056257), mass=0.47922,
         inertia=(0.001171, 0.000166, 0.001138, -1.5e-05, -1e-06, -1.5e-05), geoms=_ARM["left"]["6"]),
    Link("left_hand_link", "AL6", "Left_Hand_Roll", (0.00475, 0.07, 0.0015), (0, 0, 0), (1, 0, 0),
         com=(-0.0067917, 0.06373, 0.011867), mass=0.30603,
         inertia=(0.002302, 0.000307, 0.002439, 0.000002, 0.0, -0.000108),
         geoms=_ARM["left"]["hand"], sites=(_GRIP_SITE["left"],)),
    *_fingers("left"),
    # Right arm
    Link("AR1", "Trunk", "Right_Shoulder_Pitch", (0.0575, -0.1063, 0.219), (0, 0.00088113, 0), (0, 1, 0),
         com=(-0.000677, -0.044974, 0.0), mass=0.53,
         inertia=(0.001293, 0.000293, 0.001367, -0.000017, 0.0, 0.0), geoms=_ARM["right"]["1"]),
    Link("AR2", "AR1", "Right_Shoulder_Roll", (0, -0.047, 0), (0, 0, 0), (1, 0, 0),
         com=(0.003862, -0.037976, 0.0), mass=0.160,
         inertia=(0.000345, 0.000177, 0.000401, -0.000008, 0.0, 0.0), geoms=_ARM["right"]["2"]),
    Link("AR3", "AR2", "Right_Elbow_Pitch", (0.00025, -0.0605, 0), (0, 0, 0), (0, 1, 0),
         com=(0.0, -0.085353, -0.000099), mass=1.02,
         inertia=(0.012869, 0.000621, 0.012798, 0.0, 0.0, 0.000024), geoms=_ARM["right"]["3"]),
    Link("AR4", "AR3", "Right_Elbow_Yaw", (0, -0.1471, 0), (0, 0, 0), (0, 0, 1),
         com=(-0.0004573, -0.067734, 0.0017465), mass=0.5570,
         inertia=(0.002292, 0.000234, 0.002223, 1.4e-05, 0.0, -5e-06), geoms=_ARM["right"]["4"]),
    Link("AR5", "AR4", "Right_Wrist_Pitch", (0, -0.105, 0.00025), (0, 0, 0), (0, 1, 0),
         com=(3.7355e-05, -0.035638, 0.0053147), mass=0.43402,
         inertia=(0.000836, 0.00022, 0.000797, 0.0, 0.0, -9.5e-05), geoms=_ARM["right"]["5"]),
    Link("AR6", "AR5", "Right_Wrist_Yaw", (0, -0.042, 0), (0, 0, 0), (0, 0, 1),
         com=(-0.0011437, -0.056205, -0.0056621), mass=0.47922,
         inertia=(0.001238, 0.000182, 0.00121, 2.4e-05, -1e-06, 1.4e-05), geoms=_ARM["right"]["6"]),
    Link("right_hand_link", "AR6", "Right_Hand_Roll", (0.00475, -0.07, 0.0015), (0, 0, 0), (1, 0, 0),
         com=(-0.0047758, -0.064411, 0.011992), mass=0.30603,
         inertia=(0.002287, 0.000292, 0.002418, -0.000002, 0.0, -0.000102),
         geoms=_ARM["right"]["hand"], sites=(_GRIP_SITE["right"],)),
    *_fingers("right"),
    # Waist and legs
    Link("Waist", "Trunk", "Waist", (0.0625, 0, -0.1155), (0, 0, 0), (0, 0, 1),
         com=(0.002284, 0.000003, 0.007301), mass=2.581,
         inertia=(0.005289, 0.005299, 0.004821, 0.0, 0.000207, 0.000001),
         geoms=(_cap((0, -0.05, 0), (0, 0.05, 0), 0.06, role="body", rgba=LIGHT, name="waist"),)),
    Link("Hip_Pitch_Left", "Waist", "Left_Hip_Pitch", (0, 0.106, 0), (0, 0, 0), (0, 1, 0),
         com=(0.000534, -0.007296, -0.018083), mass=1.021,
         inertia=(0.001805, 0.001421, 0.001292, 0.000006, -0.000015, 0.000080), geoms=_LEG["pitch"]),
    Link("Hip_Roll_Left", "Hip_Pitch_Left", "Left_Hip_Roll", (0, 0, -0.02), (0, 0, 0), (1, 0, 0),
         com=(0.001101, 0.000024, -0.053750), mass=0.385,
         inertia=(0.001517, 0.001743, 0.000515, 0.0, 0.000017, 0.0), geoms=_LEG["roll"]),
    Link("Hip_Yaw_Left", "Hip_Roll_Left", "Left_Hip_Yaw", (0, 0, -0.081854), (0, 0, 0), (0, 0, 1),
         com=(-0.007233, 0.000206, -0.089184), mass=2.166,
         inertia=(0.025108, 0.025733, 0.002787, -0.000007, 0.002094, -0.000050), geoms=_LEG["yaw"]),
    Link("Shank_Left", "Hip_Yaw_Left", "Left_Knee_Pitch", (-0.014, 0, -0.134), (0, 0, 0), (0, 1, 0),
         com=(-0.006012, 0.000259, -0.124318), mass=1.82,
         inertia=(0.034618, 0.034539, 0.001934, 0.000011, 0.001561, 0.000197), geoms=_LEG["shank"]),
    Link("Ankle_Cross_Left", "Shank_Left", "Left_Ankle_Pitch", (0, 0, -0.28), (0, 0, 0), (0, 1, 0),
         com=(-0.003722, 0.0, -0.007981), mass=0.073,
         inertia=(0.000012, 0.000029, 0.000025, 0.0, 0.000003, 0.0), geoms=_LEG["cross"]),
    Link("left_foot_link", "Ankle_Cross_Left", "Left_Ankle_Roll", (0, 0.00025, -0.012), (0, 0, 0), (1, 0, 0),
         com=(-0.000249, 0.0, -0.009140), mass=0.685,
         inertia=(0.001738, 0.002385, 0.002671, 0.0, -0.000147, 0.0),
         geoms=_foot_geoms("left"), sites=(_foot_site("left"),)),
    Link("Hip_Pitch_Right", "Waist", "Right_Hip_Pitch", (0, -0.106, 0), (0, 0, 0), (0, 1, 0),
         com=(0.000534, 0.007514, -0.018082), mass=1.021,
         inertia=(0.001805, 0.001421, 0.001292, -0.000008, -0.000015, -0.000085), geoms=_LEG["pitch"]),
    Link("Hip_Roll_Right", "Hip_Pitch_Right", "Right_Hip_Roll", (0, 0, -0.02), (0, 0, 0), (1, 0, 0),
         com=(0.001099, 0.000024, -0.053748), mass=0.385,
         inertia=(0.001517, 0.001743, 0.000515, 0.0, 0.000017, 0.0), geoms=_LEG["roll"]),
    Link("Hip_Yaw_Right", "Hip_Roll_Right", "Right_Hip_Yaw", (0, 0, -0.081854), (0, 0, 0), (0, 0, 1),
         com=(-0.007191, -0.000149, -0.089220), mass=2.17,
         inertia=(0.025137, 0.025762, 0.002787, 0.000006, 0.002086, 0.000044), geoms=_LEG["yaw"]),
    Link("Shank_Right", "Hip_Yaw_Right", "Right_Knee_Pitch", (-0.014, 0, -0.134), (0, 0, 0), (0, 1, 0),
         com=(-0.005741, -0.000541, -0.122602), mass=1.82,
         inertia=(0.035098, 0.034958, 0.002039, -0.000009, 0.001554, -0.000086), geoms=_LEG["shank"]),
    Link("Ankle_Cross_Right", "Shank_Right", "Right_Ankle_Pitch", (0, 0, -0.28), (0, 0, 0), (0, 1, 0),
         com=(-0.003722, 0.0, -0.007981), mass=0.073,
         inertia=(0.000012, 0.000029, 0.000025, 0.0, 0.000003, 0.0), geoms=_LEG["cross"]),
    Link("right_foot_link", "Ankle_Cross_Right", "Right_Ankle_Roll", (0, -0.00025, -0.012), (0, 0, 0), (1, 0, 0),
         com=(-0.000248, 0.0, -0.009140), mass=0.685,
         inertia=(0.001738, 0.002385, 0.002671, 0.0, -0.000147, 0.0),
         geoms=_foot_geoms("right"), sites=(_foot_site("right"),)),
)

GRIPPER_SIDES = ("left", "right")
