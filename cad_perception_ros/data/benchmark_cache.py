"""Named benchmark splits rendered on first use into a cache folder, reused afterwards.

A split lives in ``benchmarks_dir() / f"{name}-{recipe_hash}"``, the hash taken over its
GenerateConfig.info() (seed, sizes, classes, data version, recipe strings), so a changed recipe
renders a fresh folder and never reuses a stale one. Rendering is resumable (generate.py): an
interrupted first use finishes on the next call.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cad_perception_ros.cad.procedural_v2 import ensure_v2_database
from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.data.benchmark import get_benchmark
from cad_perception_ros.data.cache import benchmarks_dir, v2_database_dir
from cad_perception_ros.paths import models_dir
from cad_perception_ros.data.generate import generate_split


def recipe_hash(name: str) -> str:
    """12 hex digits identifying what the named split's files hold."""
    info = get_benchmark(name).generate_config().info()
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:12]


def benchmark_path(name: str) -> Path:
    return benchmarks_dir() / f"{name}-{recipe_hash(name)}"


def ensure_benchmark(name: str, *, workers: int = 1, progress: bool = True) -> tuple[Path, str]:
    """(data root, split) of the named benchmark, rendering (or finishing) it when needed."""

    bench = get_benchmark(name)
    config = bench.generate_config()
    root = benchmark_path(name)
    if (root / "COMPLETE").is_file() and fmt.instances_path(root, config.split).is_file():
        return root, config.split
    if config.data_version == 2:
        db_dir = v2_database_dir()
        ensure_v2_database(db_dir, progress=progress)
    else:
        db_dir = models_dir() / "cad_db"
    generate_split(root, config, db_dir=db_dir, workers=workers, progress=progress)
    (root / "COMPLETE").write_text(json.dumps(config.info(), sort_keys=True), encoding="utf-8")
    return root, config.split
