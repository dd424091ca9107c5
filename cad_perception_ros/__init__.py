"""cad_perception_ros: CAD model retrieval and 9-DoF alignment from one RGB camera.

The core (everything outside ``cad_perception_ros.ros``) is pure Python + torch and never
imports rclpy or message packages.
"""
import pkgutil

# The generated ROS messages (``cad_perception_ros.msg``) may live in another directory of
# the same package name (a venv build puts them on a .pth path); merge it into this package.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
