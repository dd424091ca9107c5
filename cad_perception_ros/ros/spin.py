"""The one `main()` body of the package's ROS executables: init, build the node, spin until
Ctrl-C or an external shutdown, always destroy the node and shut rclpy down (ros2/examples'
publisher_member_function pattern)."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(argv: list[str], make_node: Callable[[], Node],
             spin: Callable[[Node], None] = rclpy.spin) -> None:
    """rclpy.init(args=argv); node = make_node(); spin(node) until KeyboardInterrupt or
    ExternalShutdownException; finally destroy the node (when built) and rclpy.try_shutdown().
    Other exceptions (e.g. invalid parameters) propagate after the clean-up."""
    rclpy.init(args=argv)
    node = None
    try:
        node = make_node()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
