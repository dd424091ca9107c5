"""Where generated assets that are rebuilt on demand live: the v2 CAD database and the named
benchmark splits. ``$CAD_PERCEPTION_CACHE`` if set, else ``.cache/`` in the source checkout (git
ignores it) when writable, else ``$XDG_CACHE_HOME/cad_perception_ros`` (``~/.cache/...``).
"""
from __future__ import annotations

import os
from pathlib import Path

from cad_perception_ros.paths import asset_root


def cache_root() -> Path:
    env = os.environ.get("CAD_PERCEPTION_CACHE")
    if env:
        return Path(env)
    local = asset_root() / ".cache"
    if os.access(asset_root(), os.W_OK) and (asset_root() / ".git").exists():
        return local
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cad_perception_ros"


def v2_database_dir() -> Path:
    """Directory of the v2 CAD database (built by ``cad build --data-version 2`` or on first use)."""
    return cache_root() / "cad_db_v2"


def benchmarks_dir() -> Path:
    return cache_root() / "benchmarks"
