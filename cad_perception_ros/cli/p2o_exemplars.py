"""Build the Points2Objects shape-exemplar set (SDF k-means++ per class) from a CAD database.

Writes OUT.npz and OUT.json. Settings not given on the command line come from the
`points2objects` section of --config (a YAML file), else from P2OConfig's defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.config import load_config
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, type=Path, help="CAD database folder (cad_db)")
    parser.add_argument("--out", required=True, type=Path, help="output path (.npz; a .json is written beside)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file with a points2objects section (P2OConfig)")
    parser.add_argument("--k", type=int, default=None, help="exemplars per class (default: config)")
    parser.add_argument("--grid", type=int, default=None, help="SDF grid size (default: config)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    config = load_config(P2OConfig, args.config, section="points2objects") if args.config else P2OConfig()
    overrides = {k: v for k, v in (("exemplars_per_class", args.k), ("sdf_grid", args.grid)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    database = CadDatabase.load(args.db)
    start = time.perf_counter()
    exemplars = ExemplarSet.from_database(database, config)
    elapsed = time.perf_counter() - start
    try:
        path = exemplars.save(args.out, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"error: {exc} (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    counts = np.bincount(exemplars.class_ids)
    print(f"{len(exemplars)} exemplars from {len(database)} CAD models (per class id: {counts.tolist()}), "
          f"SDF {exemplars.grid}^3, {elapsed:.1f} s -> {path}")
    return 0
