"""Where the package's assets (config/, launch/, models/, msg/, interfaces/) live.

In a source checkout (pip editable install) that is the repository root; in a colcon install
it is <prefix>/share/cad_perception_ros, found through the ament index (ament_index_python, or
AMENT_PREFIX_PATH when that module is missing). Never the current working directory.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

PACKAGE_NAME = "cad_perception_ros"


def _checkout_root() -> Path | None:
    """The repository root when this module runs from a source checkout, else None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "config").is_dir() and (root / "models").is_dir() and (root / "package.xml").is_file():
        return root
    return None


@functools.lru_cache(maxsize=1)
def installed_share() -> Path | None:
    """<prefix>/share/cad_perception_ros of an installed package (with its config/), or None."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
        shares = [p / "share" / PACKAGE_NAME for p in prefixes]
    else:
        try:
            shares = [Path(get_package_share_directory(PACKAGE_NAME))]
        except (PackageNotFoundError, ValueError, LookupError, OSError):  # OSError: no AMENT_PREFIX_PATH
            shares = []
    return next((s.resolve() for s in shares if (s / "config").is_dir()), None)


@functools.lru_cache(maxsize=1)
def asset_root() -> Path:
    """The directory holding config/ and models/: the checkout this module runs from, else the
    installed share directory. Raises FileNotFoundError naming both places when neither exists."""
    checkout = _checkout_root()
    if checkout is not None:
        return checkout
    share = installed_share()
    if share is not None:
        return share
    raise FileNotFoundError(f"cad_perception_ros assets not found: {Path(__file__).resolve().parents[1]} is "
                            f"not a source checkout and no share/{PACKAGE_NAME} with config/ is on the ament "
                            "index (source install/setup.bash of the colcon workspace)")


def models_dir() -> Path:
    """Bundled models and CAD database."""
    return asset_root() / "models"


def mesh_uri(path: str | Path, scheme: str = "package") -> str:
    """URI of a mesh file for RViz markers. scheme "package": package://cad_perception_ros/<rel>
    when the file lies inside the installed package's share directory (an RViz on another
    machine with the package installed resolves it), file:// otherwise; scheme "file": file://."""
    if scheme not in ("package", "file"):
        raise ValueError(f"mesh URI scheme {scheme!r} is not package or file")
    resolved = Path(path).resolve()
    share = installed_share() if scheme == "package" else None
    if share is not None and resolved.is_relative_to(share):
        return f"package://{PACKAGE_NAME}/{resolved.relative_to(share).as_posix()}"
    return resolved.as_uri()
