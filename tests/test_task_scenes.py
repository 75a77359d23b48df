"""The task scenes' physics, proven: pick-and-place, the latched lever door, the stair platform.

Grasping is physical everywhere (the fingers close on the object and friction holds it; no weld,
attach or teleport of the object). The robot's trunk is welded (tests/support/welded_t1.py) so
only the arms, the grippers and the scene move; the arm follows differential IK on the joint
PD with gravity feed-forward. The facts in t1_description.scenes are checked against the models.
"""
import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from t1_description.joint_table import load_joint_table
from t1_description.kinematics import arm_kinematics
from t1_description.model_paths import STAND_KEYFRAME, load_model
from t1_description.scenes import SCENES, scene_facts
from welded_t1 import WeldedT1


def _site(m, d, name):
    return d.site_xpos[m.site(name).id].copy()


# ---------------------------------------------------------------------------------- facts
@pytest.mark.parametrize("scene", sorted(SCENES))
def test_scene_facts_match_the_model(scene):
    facts = scene_facts(scene)
    m = load_model(scene)
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key(STAND_KEYFRAME).id)
    mujoco.mj_forward(m, d)
    for body in facts.mocap_bodies:
        assert m.body(body).id > 0
    tables = [getattr(facts, k) for k in ("table", "pick_table", "place_table", "platform", "shelf") if hasattr(facts, k)]
    for t in tables:  # the highest geom of the body is the top, its footprint the ranges
        geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == m.body(t.body).id and m.geom_contype[g]]
        top = max(geoms, key=lambda g: d.geom_xpos[g][2] + m.geom_size[g][2])
        assert d.geom_xpos[top][2] + m.geom_size[top][2] == pytest.approx(t.top_z, abs=1e-6), t.body
        lo, hi = d.geom_xpos[top][:2] - m.geom_size[top][:2], d.geom_xpos[top][:2] + m.geom_size[top][:2]
        assert np.allclose([lo[0], hi[0]], t.x_range) and np.allclose([lo[1], hi[1]], t.y_range), t.body
    box = getattr(facts, "box", None)
    if box is not None:
        g = m.geom(box.body)
        assert np.allclose(m.geom_size[g.id], box.half_size) and m.body(box.body).mass[0] == pytest.approx(box.mass)
        assert np.allclose(d.xpos[m.body(box.body).id], box.start_pos)
        assert m.jnt_type[m.body(box.body).jntadr[0]] == mujoco.mjtJoint.mjJNT_FREE
    if scene == "pick_place":
        r = facts.place_region
        assert np.allclose(_site(m, d, "place_target"), [r.center[0], r.center[1], facts.place_table.top_z])
        assert np.allclose(m.geom_size[m.geom("place_target").id][:2], r.half_size[:2])
        assert r.center[2] - r.half_size[2] == pytest.approx(facts.place_table.top_z)
        # the region fits on the table top, a box's reach from its near edge
        assert facts.place_table.x_range[0] < r.center[0] - r.half_size[0]
    if scene == "door":
        j = m.joint(facts.hinge_joint)
        assert np.allclose(d.xanchor[j.id], [facts.hinge_point[0], facts.hinge_point[1], d.xanchor[j.id][2]])
        assert np.allclose(d.xaxis[j.id], facts.hinge_axis)
        assert np.allclose(m.jnt_range[j.id], facts.open_range)
        h = m.joint(facts.handle_joint)
        assert np.allclose(m.jnt_range[h.id], facts.handle_range)
        assert np.allclose(d.xanchor[h.id][1:], facts.handle_spindle[1:])
        assert np.allclose(_site(m, d, facts.handle_site), facts.handle_grasp_point)
        leaf = m.geom("door_leaf")
        assert np.allclose(2 * m.geom_size[leaf.id], facts.leaf_size)
        assert d.geom_xpos[leaf.id][0] == pytest.approx(facts.door_plane_x)
        # the latch: bolt clears the keeper (inner face) exactly at latch_release_rad
        coef = m.eq_data[m.equality("door_latch").id][1]
        bolt = m.geom("door_latch_bolt")
        keeper = m.geom("door_keeper")
        tip = d.geom_xpos[bolt.id][1] - m.geom_size[bolt.id][1]
        keeper_inner = d.geom_xpos[keeper.id][1] + m.geom_size[keeper.id][1]
        assert (keeper_inner - tip) / coef == pytest.approx(facts.latch_release_rad, abs=0.01)
    if scene == "stairs":
        assert d.geom_xpos[m.geom("wall").id][0] - m.geom_size[m.geom("wall").id][0] == pytest.approx(facts.wall_x)
        assert facts.platform_trunk_x_max + 0.145 == pytest.approx(facts.shelf.x_range[0], abs=0.01)


# ---------------------------------------------------------------------------------- pick and place
def _horizontal_frame(finger_yaw: float, x_up: float) -> np.ndarray:
    """Left-hand frame with the fingers (+y) horizontal at `finger_yaw` and the hand x axis
    vertical (sign x_up): the pads close horizontally, so a held cube stays upright."""
    f = np.array([np.cos(finger_yaw), np.sin(finger_yaw), 0.0])
    x = np.array([0.0, 0.0, x_up])
    return np.column_stack([x, f, np.cross(x, f)])


def test_pick_place_box_set_down_by_the_hand_stays_in_the_target_region():
    facts = scene_facts("pick_place")
    t1 = WeldedT1("pick_place", trunk_xy=(0.2, -2.3), gravity_ff=True)  # 0.3 m before the place table
    m, d = t1.m, t1.d
    t1.step(200, (0.0, 0.0))
    t1.place_box_in_hand(1.0, hand="left")
    t1.step(300, (1.0, 0.0))
    R = _horizontal_frame(np.deg2rad(-29), -1.0)
    target = np.array(facts.place_region.center[:2] + (facts.place_table.top_z + facts.box.half_size,))
    above = target + [0.0, 0.0, 0.08]
    # raise the hand in front of the shoulder (clear of the table's edge), then over the target
    q, err, _ = t1.solve_ik("left", [0.32, -2.02, 0.85], R, iterations=100, restarts=10,
                            q_start=t1.jt.default_q[t1.arm["left"]])
    assert err < 0.01
    t1.move_arm("left", q, 1.5)
    t1.move_hand("left", above, R, 1.0)
    t1.step(100)
    assert t1.box_to_hand() < 0.03, "the box slipped out of the hand on the way"
    t1.move_hand("left", target + [0.0, 0.0, 0.003], R, 1.0)  # down until the box meets the table
    t1.step(200)
    t1.step(300, (0.0, 0.0))                                   # release
    hand = t1.hand_pose("left")[0]
    t1.move_hand("left", hand - 0.08 * R[:, 1], R, 1.0)         # back off along the fingers
    t1.step(500)
    box = d.xpos[t1.box]
    speed = np.linalg.norm(d.qvel[t1.box_v:t1.box_v + 3])
    assert np.linalg.norm(box - t1.hand_pose("left")[0]) > 0.06, "the hand did not let go"
    assert box[2] == pytest.approx(target[2], abs=0.005), "the box is not resting on the place table"
    assert facts.placed(box, speed), f"box at {box.round(3)} outside the place region {facts.place_region}"


# ---------------------------------------------------------------------------------- door
class Door:
    """The door scene with the robot welded out of the way (the door is 1 m ahead of it)."""

    def __init__(self, timestep: float = 0.002):
        self.facts = scene_facts("door")
        self.t1 = WeldedT1("door")
        self.m, self.d = self.t1.m, self.t1.d
        self.m.opt.timestep = timestep
        self.door = self.m.body(self.facts.door_body).id
        self.handle_dof = self.m.jnt_dofadr[self.m.joint(self.facts.handle_joint).id]
        self.t1.step(100)

    def angles(self):
        f = self.facts
        return self.t1.qpos_of(f.hinge_joint), self.t1.qpos_of(f.handle_joint), self.t1.qpos_of(f.bolt_joint)

    def run(self, seconds: float, push_n: float = 0.0, handle_angle: float | None = None) -> None:
        """Push (+x) or pull (-x) the leaf at the handle's height 0.8 m from the hinge (xfrc_applied:
        force at the leaf's centre of mass plus the moment of moving it to that point), and/or turn
        the handle to `handle_angle` with a torque on its hinge (a PD servo plus the return spring's
        and gravity's torques, as a hand would apply)."""
        j = self.m.joint(self.facts.handle_joint).id
        spring_ref = self.m.qpos_spring[self.m.jnt_qposadr[j]]

        def hook(sim):
            d = sim.d
            point = d.xipos[self.door] + d.xmat[self.door].reshape(3, 3) @ [0.0, -0.36, -0.09]
            force = d.xmat[self.door].reshape(3, 3) @ [push_n, 0.0, 0.0]
            d.xfrc_applied[self.door] = np.concatenate([force, np.cross(point - d.xipos[self.door], force)])
            if handle_angle is not None:
                q, dq = sim.qpos_of(self.facts.handle_joint), d.qvel[self.handle_dof]
                d.qfrc_applied[self.handle_dof] = (self.m.jnt_stiffness[j] * (q - spring_ref) + d.qfrc_bias[self.handle_dof]
                                                   + 5.0 * (handle_angle - q) - 0.05 * dq)
        self.t1.step(int(round(seconds / self.m.opt.timestep)), hook=hook)
        self.d.xfrc_applied[self.door] = 0.0
        self.d.qfrc_applied[self.handle_dof] = 0.0


@pytest.mark.parametrize("timestep", [0.002, 0.005])  # sim_t1's and the training env's
def test_latched_door_holds_against_push_and_pull(timestep):
    door = Door(timestep)
    door.run(2.0, push_n=100.0)
    assert door.angles()[0] < 0.005, "a 100 N push opened the latched door"
    door.run(2.0, push_n=-100.0)
    assert door.angles()[0] > -0.005, "a 100 N pull moved the door past its stop"
    door.run(1.0, push_n=30.0, handle_angle=door.facts.latch_release_rad - 0.1)
    hinge, handle, _ = door.angles()
    assert handle == pytest.approx(door.facts.latch_release_rad - 0.1, abs=0.03)
    assert hinge < 0.005, "the handle turned short of the release angle unlatched the door"


@pytest.mark.parametrize("timestep", [0.002, 0.005])
def test_turned_handle_unlatches_the_door_and_springs_back(timestep):
    door = Door(timestep)
    door.run(0.5, handle_angle=0.7)
    hinge, handle, bolt = door.angles()
    assert handle == pytest.approx(0.7, abs=0.02) and bolt > 0.0105
    door.run(2.0, push_n=20.0, handle_angle=0.7)
    assert door.angles()[0] > door.facts.passable_angle_rad, "a 20 N push did not open the unlatched door"
    door.run(0.5)  # let go of the handle: its spring brings it and the bolt back
    hinge, handle, bolt = door.angles()
    assert abs(handle) < 0.01 and abs(bolt) < 0.001
    assert hinge > door.facts.passable_angle_rad, "the door swung shut by itself (it has no closer)"


def test_gripper_grasps_the_lever_and_turns_it_past_the_latch():
    facts = scene_facts("door")
    t1 = WeldedT1("door", trunk_xy=(0.42, -0.05), gravity_ff=True)  # 0.5 m before the handle
    m, d = t1.m, t1.d
    t1.step(100)
    grasp = _site(m, d, facts.handle_site)
    bar = ("x", [0.0, 1.0, 0.0])  # hand x along the lever bar; the pads close across it
    q, err, _ = t1.solve_ik("right", grasp, bar, iterations=80, restarts=15, q_start=t1.jt.default_q[t1.arm["right"]])
    assert err < 1e-3
    R = t1._scratch.site_xmat[t1.site["right"]].reshape(3, 3).copy()
    pre = grasp + 0.08 * R[:, 1]  # right-hand fingers point along -y: 8 cm back from the bar
    q_pre, _, _ = t1.solve_ik("right", pre, R, iterations=100, q_start=q)
    t1.move_arm("right", q_pre, 1.0, grip=(0.0, 0.0))
    t1.move_hand("right", grasp, R, 1.0)
    t1.step(200, (0.0, 1.0))
    gap = d.qpos[t1.idx.gripper_qpos[2:]]
    assert np.all(gap < 0.04), "the fingers closed on nothing (closed is 0.043)"
    spindle = d.xanchor[m.joint(facts.handle_joint).id].copy()
    for angle in np.linspace(0.0, 1.0, 21)[1:]:  # command past the stop: the arm's PD yields
        turn = Rotation.from_rotvec(angle * np.array([-1.0, 0.0, 0.0]))
        t1.move_hand("right", spindle + turn.apply(grasp - spindle), turn.as_matrix() @ R, 0.1)
    t1.step(100)
    hinge, handle = t1.qpos_of(facts.hinge_joint), t1.qpos_of(facts.handle_joint)
    assert handle > facts.latch_release_rad + 0.1, f"the hand turned the lever only to {handle:.2f} rad"
    assert np.linalg.norm(_site(m, d, facts.handle_site) - t1.hand_pose("right")[0]) < 0.015, "the lever slipped"
    door = m.body(facts.door_body).id

    def push(sim):  # 30 N on the leaf near its free edge
        point = sim.d.xipos[door] + sim.d.xmat[door].reshape(3, 3) @ [0.0, -0.4, 0.0]
        force = sim.d.xmat[door].reshape(3, 3) @ [30.0, 0.0, 0.0]
        sim.d.xfrc_applied[door] = np.concatenate([force, np.cross(point - sim.d.xipos[door], force)])
    t1.step(500, hook=push)
    assert t1.qpos_of(facts.hinge_joint) > 0.5, "the door held with its handle turned by the hand"


# ---------------------------------------------------------------------------------- stairs
@pytest.fixture(scope="module")
def hand_workspace():
    """Hand-site positions of 200k uniformly sampled arm joint configurations (both arms, arm FK
    from the URDF), relative to the trunk origin, in a yaw-0 frame with the stand pose's lean."""
    jt = load_joint_table()
    arms = np.concatenate([jt.indices(g) for g in jt.ARM_GROUPS])
    q = np.random.default_rng(0).uniform(jt.lower[arms], jt.upper[arms], size=(200_000, 14))
    pos, _ = arm_kinematics().fk(q)
    key = load_model("stairs").key(STAND_KEYFRAME)
    lean = Rotation.from_quat(key.qpos[3:7], scalar_first=True)
    return lean.apply(pos.reshape(-1, 3)), float(key.qpos[2])


def test_stairs_box_is_out_of_reach_from_the_floor_and_within_reach_from_the_platform(hand_workspace):
    facts = scene_facts("stairs")
    W, trunk_z = hand_workspace
    box = np.array(facts.box.start_pos)
    rho, h = np.linalg.norm(W[:, :2], axis=1), W[:, 2]
    # floor: the trunk anywhere whose 0.12 m footprint (less than the toes' 0.13 m) is clear of the
    # platform and the wall, any heading; a hand within 3 cm of the box's height reaches at most
    # max(rho) horizontally, so the box is out of reach if every such floor trunk is farther.
    xs, ys = np.meshgrid(np.arange(-1.0, 3.0, 0.01), np.arange(-3.0, 3.0, 0.01))
    r = 0.12
    px, py = facts.platform.x_range, facts.platform.y_range
    on_platform = (xs > px[0] - r) & (xs < px[1] + r) & (ys > py[0] - r) & (ys < py[1] + r)
    floor = ~on_platform & (xs < facts.wall_x - r)
    nearest_floor = np.hypot(xs - box[0], ys - box[1])[floor].min()
    band = np.abs(h + trunk_z - box[2]) < 0.03
    shortfall = nearest_floor - rho[band].max()
    assert shortfall > 0.1, f"the box is only {shortfall:.3f} m beyond the floor reach"
    assert shortfall == pytest.approx(facts.floor_reach_shortfall_m, abs=0.02)
    # platform: standing 3 cm behind where the trunk meets the shelf, hand samples reach the box
    trunk = np.array([facts.platform_trunk_x_max - 0.03, 0.0, trunk_z + facts.platform.top_z])
    rel = box - trunk
    assert np.hypot(*rel[:2]) == pytest.approx(facts.reach_from_platform_m, abs=0.01)
    assert np.min(np.linalg.norm(W - rel, axis=1)) < 0.02
    assert rho[np.abs(h - rel[2]) < 0.03].max() > np.hypot(*rel[:2]) + 0.3  # well inside the reach


def test_stairs_box_has_a_grasp_pose_from_the_platform():
    """Arm IK (kinematic only) puts the left hand's grip centre on the box with the pads closing
    across it (hand z along x), joints inside their limits, standing on the platform."""
    facts = scene_facts("stairs")
    t1 = WeldedT1("stairs", trunk_xy=(facts.platform_trunk_x_max - 0.03, -0.2), trunk_z_offset=facts.platform.top_z)
    joints = t1.arm["left"]
    q, err_pos, err_rot = t1.solve_ik("left", facts.box.start_pos, ("z", [1.0, 0.0, 0.0]), iterations=60,
                                      restarts=8, q_start=t1.jt.default_q[joints])
    assert err_pos < 0.003 and err_rot < 0.03
    assert np.all(q > t1.jt.lower[joints] + 0.05) and np.all(q < t1.jt.upper[joints] - 0.05)


# ---------------------------------------------------------------------------------- sim_t1
@pytest.mark.parametrize("scene", ["pick_place", "door", "stairs"])
def test_sim_t1_core_settles_the_robot_in_every_task_scene(scene):
    """sim_t1's physics core loads the scene and stands the robot; the scene's objects stay put
    (the node itself: `python -m t1_sim.sim_t1 --ros-args -p scene:=door`, checked by hand)."""
    from t1_sim.sim_core import SimCore

    facts = scene_facts(scene)
    sim = SimCore(scene)
    sim.settle()
    m, d = sim.model, sim.data
    assert sim.trunk_height() == pytest.approx(0.666, abs=0.01)
    box = getattr(facts, "box", None)
    if box is not None:
        sim.step(500)
        assert np.allclose(d.xpos[m.body(box.body).id], box.start_pos, atol=0.002)
    if scene == "door":
        sim.step(500)
        for joint in (facts.hinge_joint, facts.handle_joint):
            assert abs(d.qpos[m.jnt_qposadr[m.joint(joint).id]]) < 0.005
