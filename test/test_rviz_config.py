"""config/cad_perception.rviz: valid YAML, its displays read the node's topics, and it lists the
Tools rviz_common loads (without a Tools list the mouse cannot move the view)."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_rviz_config_lists_tools_and_topics():
    config = yaml.safe_load((ROOT / "config" / "cad_perception.rviz").read_text())
    manager = config["Visualization Manager"]
    tools = [t["Class"] for t in manager["Tools"]]
    assert {"rviz_default_plugins/MoveCamera", "rviz_default_plugins/Interact",
            "rviz_default_plugins/FocusCamera"} <= set(tools)
    assert len(tools) == len(set(tools))
    topics = {d["Topic"]["Value"] for d in manager["Displays"] if "Topic" in d}
    assert topics == {"/cad_perception/markers", "/cad_perception/debug_image"}
    assert manager["Views"]["Current"]["Class"] == "rviz_default_plugins/Orbit"
