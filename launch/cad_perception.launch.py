"""Launch the CAD perception node on a ROS 2 install (needs launch and launch_ros).

    ros2 launch cad_perception_ros cad_perception.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info namespace:=perception score_threshold:=0.3

With a registered depth image (RGB-D cameras: depth aligned to the colour image, same size and K):

    ros2 launch cad_perception_ros cad_perception.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info depth_topic:=/camera/aligned_depth_to_color/image_raw

Every node parameter (cad_perception_ros/ros/params.py NodeParams) is a launch argument of the
same name. Empty (the default) keeps the value of params_file (config/cad_perception.yaml);
a value given on the command line overrides it. use_sim_time is passed to the node too.
Without launch (the project's venv): `cad-perception launch --remap image:=/cam/image ...`
starts the same node with the same parameters (test/test_launch_params.py checks both).
"""
import dataclasses
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from cad_perception_ros.ros.params import DESCRIPTIONS, NodeParams, parse_value

SHARE = get_package_share_directory("cad_perception_ros")

# Launch-only arguments: name -> (default, description).
ARGUMENTS = {
    "params_file": (os.path.join(SHARE, "config", "cad_perception.yaml"), "ROS parameters file of the node"),
    "namespace": ("", "namespace of the node"),
    "image": ("image", "remap the node's image input to this topic"),
    "camera_info": ("camera_info", "remap the node's camera_info input to this topic"),
    "use_sim_time": ("false", "use /clock (bag replay, simulation)"),
}
# Node parameters as launch arguments; autostart also picks plain node (true) or managed lifecycle node.
NODE_PARAMETERS = tuple(f.name for f in dataclasses.fields(NodeParams))
DEFAULTS = {"autostart": "true"}


def generate_launch_description():
    args = [DeclareLaunchArgument(name, default_value=default, description=text)
            for name, (default, text) in ARGUMENTS.items()]
    args += [DeclareLaunchArgument(name, default_value=DEFAULTS.get(name, ""),
                                   description=f"{DESCRIPTIONS[name]} (empty: the value in params_file)")
             for name in NODE_PARAMETERS]
    return LaunchDescription(args + [OpaqueFunction(function=node_actions)])


def node_actions(context):
    """The node, with params_file and then every launch argument that was given (typed)."""
    value = {name: LaunchConfiguration(name).perform(context) for name in (*ARGUMENTS, *NODE_PARAMETERS)}
    overrides = {"use_sim_time": parse_bool(value["use_sim_time"])}
    overrides.update({name: parse_value(name, value[name]) for name in NODE_PARAMETERS if value[name] != ""})
    autostart = overrides.get("autostart", True)
    common = dict(package="cad_perception_ros", executable="cad_perception_node", name="cad_perception",
                  namespace=value["namespace"], output="screen", parameters=[value["params_file"], overrides],
                  remappings=[("image", value["image"]), ("camera_info", value["camera_info"])])
    if autostart:  # plain mode: the node configures and activates itself
        return [Node(arguments=["--autostart"], **common)]
    return [LifecycleNode(**common)]  # managed: a lifecycle manager (or `ros2 lifecycle set`) drives it


def parse_bool(text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise ValueError(f"use_sim_time: {text!r} is not true or false")
    return text.strip().lower() == "true"
