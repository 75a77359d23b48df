"""PlannerAction <-> refine_dp_msgs/HighLevelCommand, a chunk -> geometry_msgs/PoseArray (quaternions x, y, z, w)."""
from __future__ import annotations

from scipy.spatial.transform import Rotation

from refine_dp_planner.planner_io import PlannerAction, chunk_paths


def high_level_command(action: PlannerAction, stamp, chunk_index: int = 0, chunk_id: int = 0):
    from refine_dp_msgs.msg import HighLevelCommand

    cmd = HighLevelCommand(chunk_index=chunk_index, chunk_id=chunk_id)
    cmd.header.stamp, cmd.header.frame_id = stamp, "base_link"
    cmd.vx, cmd.vy, cmd.wz = (float(v) for v in action.base_velocity)
    for pose, pos, rot in ((cmd.left_hand_pose, action.hand_pos[0], action.hand_rot[0]),
                           (cmd.right_hand_pose, action.hand_pos[1], action.hand_rot[1])):
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
        x, y, z, w = Rotation.from_matrix(rot).as_quat()
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = x, y, z, w
    cmd.left_gripper, cmd.right_gripper = (float(g) for g in action.grippers)
    return cmd


CHUNK_TOPICS = ("planner_chunk/base", "planner_chunk/left_hand", "planner_chunk/right_hand")


def chunk_pose_arrays(chunk, dt: float, limits, stamp, frame_id: str = "base_link") -> dict:
    """A sampled chunk [Ta, ACTION_DIM] -> {CHUNK_TOPICS[i]: geometry_msgs/PoseArray} in base_link at the
    chunk's start (planner_io.chunk_paths): the base path (Ta + 1 planar poses from the identity, yaw
    about z) and each hand's Ta target poses."""
    import numpy as np
    from geometry_msgs.msg import Pose, PoseArray

    base, hand_pos, hand_quat = chunk_paths(chunk, dt, limits)

    def pose(p, q) -> Pose:
        m = Pose()
        m.position.x, m.position.y, m.position.z = (float(v) for v in p)
        m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w = (float(v) for v in q)
        return m

    def array(poses) -> PoseArray:
        msg = PoseArray(poses=poses)
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        return msg

    base_quat = np.column_stack([np.zeros((len(base), 2)), np.sin(base[:, 2] / 2), np.cos(base[:, 2] / 2)])
    return {CHUNK_TOPICS[0]: array([pose((x, y, 0.0), q) for (x, y, _), q in zip(base, base_quat)]),
            **{topic: array([pose(p, q) for p, q in zip(hand_pos[:, h], hand_quat[:, h])])
               for h, topic in enumerate(CHUNK_TOPICS[1:])}}


def action_from_command(msg) -> PlannerAction:
    """HighLevelCommand (an rclpy message, or the same fields read back from a bag) -> PlannerAction."""
    import numpy as np

    pos, rot = [], []
    for pose in (msg.left_hand_pose, msg.right_hand_pose):
        p, q = pose.position, pose.orientation
        pos.append([p.x, p.y, p.z])
        rot.append(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix())
    return PlannerAction(np.array([msg.vx, msg.vy, msg.wz], dtype=np.float64), np.array(pos), np.array(rot),
                         np.array([msg.left_gripper, msg.right_gripper], dtype=np.float64))


def robot_observation(msg, arm_idx, num_joints: int):
    """RobotState -> (arm joints [14] in table order, projected gravity [3]); None if the joint count
    differs from the joint table's (the caller says so)."""
    import numpy as np

    position = np.asarray(msg.position, dtype=np.float64)
    if len(position) != num_joints:
        return None
    g = msg.projected_gravity
    return position[arm_idx], np.array([g.x, g.y, g.z])


def objects_from_msg(msg) -> dict:
    """ObjectStateArray -> {name: (position in base_link [3], quaternion x, y, z, w [4], tracked)}; objects
    without a valid root-frame pose are left out (build_observation then zeros them, untracked)."""
    import numpy as np

    objects = {}
    for o in msg.objects:
        if o.root_valid:
            p, q = o.pose_in_root.position, o.pose_in_root.orientation
            objects[o.name] = (np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w]), bool(o.tracked))
    return objects
