"""pip install of the pure-Python core (training, evaluation, export, CLI) and the ROS layer.

On a ROS 2 install, `colcon build` uses CMakeLists.txt instead (messages + this package).
"""
from setuptools import find_packages, setup

setup(
    name="cad_perception_ros",
    version="0.1.0",
    description="CAD model retrieval and 9-DoF alignment from one RGB camera, as a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cad_perception_ros", "cad_perception_ros.*"]),
    package_data={"cad_perception_ros": ["py.typed"]},
    install_requires=["numpy", "scipy", "pyyaml", "torch", "safetensors", "trimesh", "tqdm", "matplotlib", "pillow"],
    extras_require={
        "render": ["pybullet"],
        "onnx": ["onnx", "onnxruntime"],
        "record": ["mcap", "mcap-ros2-support", "rosbags"],
        "test": ["pytest", "pytest-timeout", "hypothesis"],
    },
    entry_points={
        "console_scripts": [
            "cad-perception = cad_perception_ros.cli:main",
            "cad_perception_node = cad_perception_ros.ros.node:main",
        ],
    },
)
