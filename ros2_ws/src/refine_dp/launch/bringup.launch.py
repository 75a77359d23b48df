"""ros2 launch refine_dp bringup.launch.py [target:=robot|sim] [commander:=planner|scripted|heuristic] [record:=BAG_DIR]

Builds the launch description from config/bringup.yaml, the same graph that
`refine-dp bringup` starts as separate processes.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from refine_dp.graph import load_graph, recorder_node


def _nodes(context):
    target = LaunchConfiguration("target").perform(context)
    nodes = load_graph(target, commander=LaunchConfiguration("commander").perform(context) or None)
    record = LaunchConfiguration("record").perform(context)
    if record:  # the planner's inputs and outputs as MCAP rosbag2 segments (refine_dp.recorder)
        nodes.append(recorder_node(record))
    return [Node(package=n.package, executable=n.executable, name=n.name, output="screen",
                 parameters=[n.parameters], remappings=list(n.remappings.items()))
            for n in nodes]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("target", default_value="robot", description="robot or sim"),
        DeclareLaunchArgument("commander", default_value="planner",
                              description="what publishes high_level_command: planner or scripted (sim only)"),
        DeclareLaunchArgument("record", default_value="", description="folder to record the planner's I/O into"),
        OpaqueFunction(function=_nodes),
    ])
