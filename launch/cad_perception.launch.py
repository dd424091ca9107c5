"""Launch the CAD perception node on a ROS 2 install (needs launch and launch_ros).

    ros2 launch cad_perception_ros cad_perception.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info namespace:=perception

Without launch (the project's venv): `cad-perception launch --remap image:=/cam/image ...`
starts the same node with the same parameters. The defaults below must agree with
config/cad_perception.yaml and NodeParams (test/test_launch_params.py checks this).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

SHARE = get_package_share_directory("cad_perception_ros")

ARGUMENTS = {
    "params_file": os.path.join(SHARE, "config", "cad_perception.yaml"),
    "namespace": "",
    "image": "image",
    "camera_info": "camera_info",
    "model_dir": "",
    "model": "roca",
    "backend": "torch",
    "device": "cpu",
    "autostart": "true",
}


def generate_launch_description():
    args = [DeclareLaunchArgument(name, default_value=value) for name, value in ARGUMENTS.items()]
    overrides = {name: LaunchConfiguration(name) for name in ("model_dir", "model", "backend", "device")}
    common = dict(package="cad_perception_ros", executable="cad_perception_node", name="cad_perception",
                  namespace=LaunchConfiguration("namespace"), output="screen",
                  parameters=[LaunchConfiguration("params_file"), overrides],
                  remappings=[("image", LaunchConfiguration("image")),
                              ("camera_info", LaunchConfiguration("camera_info"))])
    autostart = LaunchConfiguration("autostart")
    return LaunchDescription(args + [
        # Plain mode: the node configures and activates itself.
        Node(arguments=["--autostart"], condition=IfCondition(autostart), **common),
        # Managed mode: a lifecycle manager (or `ros2 lifecycle set`) drives the transitions.
        LifecycleNode(condition=UnlessCondition(autostart), **common),
    ])
