"""ros2 launch refine_dp bringup.launch.py [target:=robot|sim] [task:=pickup|door]
                                          [commander:=planner|scripted|heuristic] [record:=BAG_DIR] [rviz:=true]

Builds the launch description from config/bringup.yaml, the same graph that
`refine-dp bringup` starts as separate processes. rviz:=true adds rviz2 with rviz/refine_dp.rviz
(the robot, TF and markers of the graph's rviz_publisher node).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from refine_dp.graph import load_graph, recorder_node


def _nodes(context):
    target = LaunchConfiguration("target").perform(context)
    nodes = load_graph(target, commander=LaunchConfiguration("commander").perform(context) or None,
                       task=LaunchConfiguration("task").perform(context) or None)
    record = LaunchConfiguration("record").perform(context)
    if record:  # the planner's inputs and outputs as MCAP rosbag2 segments (refine_dp.recorder)
        nodes.append(recorder_node(record))
    actions = [Node(package=n.package, executable=n.executable, name=n.name, output="screen",
                    parameters=[n.parameters], remappings=list(n.remappings.items()))
               for n in nodes]
    if LaunchConfiguration("rviz").perform(context).lower() in ("true", "1"):
        config = os.path.join(get_package_share_directory("refine_dp"), "rviz", "refine_dp.rviz")
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", config],
                            parameters=[{"use_sim_time": target == "sim"}], output="screen"))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("target", default_value="robot", description="robot or sim"),
        DeclareLaunchArgument("task", default_value="",
                              description="the graph file's task (pickup, door): scene, start, planner engine, "
                                          "objects; empty: its default_task"),
        DeclareLaunchArgument("commander", default_value="planner",
                              description="what publishes high_level_command: planner, scripted (sim only) or "
                                          "heuristic; the graph file's commanders: section sets its parameters"),
        DeclareLaunchArgument("record", default_value="", description="folder to record the planner's I/O into"),
        DeclareLaunchArgument("rviz", default_value="false", description="true: start rviz2 with rviz/refine_dp.rviz"),
        OpaqueFunction(function=_nodes),
    ])
