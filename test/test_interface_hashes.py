"""The interface packages built from our own definitions (tf2_msgs, vision_msgs, std_srvs) carry upstream's type hashes,
so real ROS 2 tools (ros2 topic, rosbag2, RViz, Foxglove) accept their messages."""
import json
import sys
from pathlib import Path

import pytest

# Upstream hashes: tf2_msgs (ros2/geometry2) and vision_msgs 4.1.1 (ros-perception/vision_msgs).
UPSTREAM = {
    ("tf2_msgs", "TFMessage"): "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    ("vision_msgs", "Detection3DArray"): "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    ("vision_msgs", "Detection3D"): "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    ("vision_msgs", "ObjectHypothesisWithPose"): "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    ("vision_msgs", "BoundingBox3D"): "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    ("vision_msgs", "Detection2DArray"): "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    ("vision_msgs", "VisionInfo"): "RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
    ("vision_msgs", "LabelInfo"): "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    ("std_srvs", "srv/Trigger"): "RIHS01_eeff2cd6fa5ad9d27cdf4dec64818317839b62f212a91e6b5304b634b2062c5f",  # ros2/common_interfaces
}


def built_hash(package: str, type_name: str) -> str:
    kind, _, name = type_name.rpartition("/")  # "srv/Trigger" for a service, else a message
    path = Path(sys.prefix) / "share" / package / (kind or "msg") / f"{name}.json"
    if not path.is_file():
        pytest.fail(f"{path} missing: interface package {package} was not built (scripts/setup_env.sh)")
    return json.loads(path.read_text())["type_hashes"][0]["hash_string"]


@pytest.mark.parametrize(("package", "type_name"), sorted(UPSTREAM))
def test_built_interface_matches_upstream_hash(package, type_name):
    assert built_hash(package, type_name) == UPSTREAM[(package, type_name)]


def test_every_vision_msgs_definition_is_built():
    defined = {p.stem for p in (Path(__file__).parent.parent / "interfaces/vision_msgs/msg").glob("*.msg")}
    built = {p.stem for p in (Path(sys.prefix) / "share/vision_msgs/msg").glob("*.json")}
    assert defined and defined <= built


def test_own_messages_import_beside_the_core_package():
    from cad_perception_ros.msg import ObjectAlignment, ObjectAlignmentArray

    from cad_perception_ros.types import Alignment9D  # the core package is the same package
    msg = ObjectAlignmentArray(objects=[ObjectAlignment(class_name="chair", score=0.5)])
    assert msg.objects[0].class_name == "chair"
    assert Alignment9D is not None and built_hash("cad_perception_ros", "ObjectAlignment").startswith("RIHS01_")
