"""A camera node that plays the rendered views of a data set as sensor_msgs/Image (rgb8) +
CameraInfo with equal stamps, at a fixed rate, keeping each view's ground truth by stamp; with
depth "sensor" or "true" also a registered depth image (16UC1 millimetres, same stamp) on
{camera}/depth: the simulated sensor depth of the view (evaluation/run.py view_depth) or its
rendered depth.

    python -m cad_perception_ros.tools.camera_player DATA_ROOT [--split val] [--rate 2] [--loop]
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.sample import SceneSample
from cad_perception_ros.evaluation.run import view_depth
from cad_perception_ros.ros import conversions as conv
from cad_perception_ros.ros.spin import run_node


class CameraPlayer(Node):
    """Publishes `samples` on `{camera}/image` and `{camera}/camera_info` every 1/rate_hz s.

    played: {stamp_ns: sample index} of every published view (the ground truth for scoring).
    """

    def __init__(self, samples: Sequence[SceneSample], *, rate_hz: float = 2.0, camera: str = "/camera",
                 frame_id: str = "camera_optical", loop: bool = False, node_name: str = "camera_player",
                 depth: str | None = None):
        super().__init__(node_name)
        if not samples:
            raise ValueError("CameraPlayer: no samples to play")
        self.samples, self.frame_id, self.loop = samples, frame_id, loop
        self.image_pub = self.create_publisher(Image, f"{camera}/image", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, f"{camera}/camera_info", qos_profile_sensor_data)
        self.depth = depth or None
        self.depth_pub = self.create_publisher(Image, f"{camera}/depth", qos_profile_sensor_data) if self.depth else None
        self.played: dict[int, int] = {}
        self.next_index = 0
        self.timer = self.create_timer(1.0 / rate_hz, self.publish_next)

    @property
    def done(self) -> bool:
        return not self.loop and self.next_index >= len(self.samples)

    def publish_next(self) -> None:
        if self.done:
            return
        index = self.next_index % len(self.samples)
        sample = self.samples[index]
        stamp = self.get_clock().now()
        header = Header(stamp=stamp.to_msg(), frame_id=self.frame_id)
        self.info_pub.publish(conv.camera_info_msg(header, sample.K, sample.size))
        if self.depth_pub is not None:
            metres = view_depth(sample, index, self.depth)  # (H, W), 0 = hole
            self.depth_pub.publish(conv.depth_image_msg(header, np.round(metres * 1000).clip(0, 65535).astype(np.uint16)))
        self.image_pub.publish(conv.image_msg(header, sample.image, "rgb8"))
        self.played[stamp.nanoseconds] = index
        self.next_index += 1


def main(argv: list[str] | None = None) -> None:
    import rclpy
    from rclpy.utilities import remove_ros_args

    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="data set root (cad-perception data generate)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second")
    parser.add_argument("--loop", action="store_true", help="play the views forever")
    parser.add_argument("--depth", choices=("sensor", "true"), default=None,
                        help="also publish {camera}/depth: simulated sensor depth or the rendered depth")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    def play(node) -> None:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)

    run_node(argv, lambda: CameraPlayer(SyntheticDataset(args.root, args.split), rate_hz=args.rate, loop=args.loop,
                                      depth=args.depth),
             spin=play)


if __name__ == "__main__":
    main()
