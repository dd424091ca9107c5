"""Shared test data for test_data_*.py: one small procedural CAD database per test session."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=1)
def procedural_db_dir() -> Path:
    """A CadDatabase directory with one procedural model per class (built once per process)."""
    from cad_perception_ros.cad.procedural import build_procedural_database

    root = Path(tempfile.mkdtemp(prefix="cad_db_test_"))
    atexit.register(shutil.rmtree, root, True)
    build_procedural_database(root / "db", per_class=1, seed=0)
    return root / "db"
