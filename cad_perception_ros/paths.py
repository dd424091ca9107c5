"""Where the package's assets (config/, launch/, models/, msg/, interfaces/) live.

In a source checkout (pip editable install) that is the repository root; in a colcon install
it is <prefix>/share/cad_perception_ros, found on AMENT_PREFIX_PATH.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

PACKAGE_NAME = "cad_perception_ros"


@functools.lru_cache(maxsize=1)
def asset_root() -> Path:
    """The directory holding config/ and models/ (repository root or the ament share dir)."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "config").is_dir() and (checkout / "models").is_dir():
        return checkout
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        share = Path(prefix) / "share" / PACKAGE_NAME
        if (share / "config").is_dir():
            return share
    return checkout


def models_dir() -> Path:
    """Bundled models and CAD database."""
    return asset_root() / "models"
