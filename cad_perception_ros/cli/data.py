"""Generate, inspect and convert data sets.

  cad-perception data generate --out DIR --scenes N --seed S [--views-per-scene V] [--size 480x360]
                               [--focal LOW-HIGH] [--workers W] [--split train|val|both] [--db DIR] [--overwrite]
  cad-perception data generate --out DIR --benchmark synthetic-val-v1 [--focal 0.6] [--workers W] [--db DIR]
  cad-perception data show --data DIR --split val --out grid.png [--n 8]

Output: the Scan2CAD image format ROCA reads (see cad_perception_ros/data/scan2cad_format.py).
`generate` is resumable (finished scenes are skipped) and gives the same files for a seed
whatever --workers is. With --split both, val gets ceil(val_fraction * N) scenes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.procedural_v2 import ensure_v2_database
from cad_perception_ros.data import scan2cad_format as fmt
from cad_perception_ros.data.benchmark import get_benchmark
from cad_perception_ros.data.cache import v2_database_dir
from cad_perception_ros.jsonio import refuses_overwrite
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.generate import GenerateConfig, generate_split, split_scene_alignments
from cad_perception_ros.data.render import resolve_renderer
from cad_perception_ros.data.scan2cad_full import full_annotations_from_scenes
from cad_perception_ros.data.show import make_grid
from cad_perception_ros.paths import models_dir

DEFAULT_DB = models_dir() / "cad_db"


@dataclass(frozen=True)
class DataCliConfig:
    """Defaults of `data generate` / `data show` not covered by GenerateConfig."""

    split: str = "both"
    workers: int = 1
    val_fraction: float = 0.2
    show_count: int = 8
    show_split: str = "val"


def _size(text: str) -> tuple[int, int]:
    """'480x360' (width x height) -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 480x360, got {text!r}") from None
    if width < 8 or height < 8:
        raise argparse.ArgumentTypeError(f"--size too small: {text}")
    return height, width


def _focal(text: str) -> tuple[float, float]:
    """'1.4-1.7' or '1.5' (fx as a multiple of the image width) -> (low, high)."""
    try:
        values = [float(v) for v in text.split("-")] if "-" in text.strip("-") else [float(text)] * 2
    except ValueError:
        raise argparse.ArgumentTypeError(f"--focal must look like 1.4-1.7 or 1.5, got {text!r}") from None
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise argparse.ArgumentTypeError(f"--focal needs 0 < LOW <= HIGH, got {text!r}")
    return values[0], values[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    gen = sub.add_parser("generate", help="render a synthetic data set (train and/or val split)")
    gen.add_argument("--out", required=True, type=Path, help="output data root")
    gen.add_argument("--scenes", type=int, default=None, help="scenes in the train split (default: GenerateConfig); with --benchmark: only its first N scenes")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: GenerateConfig)")
    gen.add_argument("--views-per-scene", type=int, default=None, help="views rendered per scene")
    gen.add_argument("--size", type=_size, default=None, help="image size WIDTHxHEIGHT, e.g. 480x360")
    gen.add_argument("--focal", type=_focal, default=None, metavar="LOW-HIGH",
                     help="focal length fx = fy as a multiple of the image width, drawn per scene "
                          "(default 0.8-1.3; e.g. 0.6 for a wide-angle camera)")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: 1)")
    gen.add_argument("--split", choices=("train", "val", "both"), default=None, help="default: both")
    gen.add_argument("--db", type=Path, default=None, help=f"CAD database directory (default: {DEFAULT_DB})")
    gen.add_argument("--benchmark", default=None, help="generate a named fixed split (see data/benchmark.py)")
    gen.add_argument("--renderer", choices=("auto", "pybullet", "numpy"), default="auto",
                     help="pybullet's TinyRenderer or the pure-numpy backend, which gives the same views "
                          "without pybullet (default auto: pybullet when it is installed)")
    gen.add_argument("--shading", choices=("pybullet", "flat"), default=None,
                     help="mesh shading: pybullet (default; TinyRenderer lights every object like a sphere) or "
                          "flat (each face by its own normal; numpy renderer only)")
    gen.add_argument("--data-version", type=int, choices=(1, 2), default=None,
                     help="1 (default): the frozen v1 recipe; 2: part-based CAD models with materials, light and "
                          "shadows, robot cameras, 640x480 by default, CAD database built on first use")
    gen.add_argument("--styles", choices=("seen", "unseen", "all"), default=None,
                     help="data v2: CAD styles in the scenes (default seen: all but the held-out styles)")
    gen.add_argument("--roca-pickles", action="store_true",
                     help="also write ROCA's CAD .pkl files and full_annotations_{split}.json (Scan2CAD format)")
    gen.add_argument("--overwrite", action="store_true", help="regenerate scenes already present")
    show = sub.add_parser("show", help="PNG grid of views: masks, NOC colours, projected 3D boxes")
    show.add_argument("--data", required=True, type=Path, help="data root")
    show.add_argument("--split", default=None, help="split to show (default: val)")
    show.add_argument("--out", required=True, type=Path, help="output PNG")
    show.add_argument("--n", type=int, default=None, help="number of views (default: 8)")
    show.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _configs(args: argparse.Namespace, cli: DataCliConfig) -> list:

    if args.benchmark:
        config = get_benchmark(args.benchmark).generate_config()
        if args.focal:  # the benchmark's scenes seen through another lens
            config = replace(config, scene=replace(config.scene, focal_factor=args.focal))
        if args.shading:  # or shaded another way
            config = replace(config, shading=args.shading)
        if args.scenes:  # its first N scenes (scene i does not depend on N; resume later for the rest)
            config = replace(config, scenes=min(args.scenes, config.scenes))
        return [config]
    base = GenerateConfig()
    if (args.data_version or 1) == 2:
        base = replace(base, data_version=2, image_size=(480, 640), styles=args.styles or base.styles)
    if args.focal:
        base = replace(base, scene=replace(base.scene, focal_factor=args.focal))
    base = replace(base, scenes=args.scenes or base.scenes, seed=base.seed if args.seed is None else args.seed,
                   shading=args.shading or base.shading,
                   views_per_scene=args.views_per_scene or base.views_per_scene,
                   image_size=args.size or base.image_size)
    split = args.split or cli.split
    val = replace(base, split="val", scenes=max(1, math.ceil(cli.val_fraction * base.scenes)))
    return {"train": [base], "val": [replace(base, split="val")], "both": [base, val]}[split]


def run_generate(args: argparse.Namespace) -> int:

    cli = DataCliConfig()
    configs = _configs(args, cli)
    if configs[0].data_version == 2 and args.db is None:
        ensure_v2_database(v2_database_dir())
    db_dir = args.db or (DEFAULT_DB if configs[0].data_version == 1 else v2_database_dir())
    if not Path(db_dir).is_dir():
        print(f"error: no CAD database at {db_dir}; pass --db DIR (build one with "
              "cad_perception_ros.cad.procedural.build_procedural_database)", file=sys.stderr)
        return 2
    workers = args.workers or cli.workers
    renderer = resolve_renderer(args.renderer, configs[0].shading)
    if configs[0].data_version == 2:
        renderer = "materials"
    elif args.renderer == "auto" and renderer == "numpy" and configs[0].shading == "pybullet":
        print("note: pybullet is not installed; rendering with the numpy backend (same views)")
    for config in configs:
        start = time.perf_counter()
        rendered = generate_split(args.out, config, db_dir=db_dir, workers=workers, overwrite=args.overwrite,
                                  renderer=renderer)
        seconds = time.perf_counter() - start
        views = rendered * config.views_per_scene
        rate = f", {views / seconds:.2f} views/s" if rendered else " (all scenes already present)"
        print(f"{config.split}: {config.scenes} scenes x {config.views_per_scene} views at "
              f"{config.image_size[1]}x{config.image_size[0]} -> {args.out}{rate} ({renderer})")
        if args.roca_pickles:  # and what ROCA's Vid2CAD evaluation reads: Scan2CAD full annotations
            fmt.write_roca_pickles(args.out, config.split, CadDatabase.load(db_dir))
            path = Path(args.out) / f"full_annotations_{config.split}.json"
            fmt.atomic_write_json(path, full_annotations_from_scenes(split_scene_alignments(Path(args.out), config)))
    return 0


def _extents(root: Path) -> dict:
    """cad_id -> canonical extent from the CAD database named in scan2cad_cad_pool.json, if any."""
    pool = root / "scan2cad_cad_pool.json"
    try:
        db_rel = json.loads(pool.read_text())["cad_database"]
        return {m.cad_id: m.extent for m in CadDatabase.load((root / db_rel).resolve()).models}
    except Exception as exc:  # any failure: draw unit cubes instead, and say so
        print(f"note: no CAD extents ({type(exc).__name__}: {exc}); drawing unit cubes", file=sys.stderr)
        return {}


def run_show(args: argparse.Namespace) -> int:

    cli = DataCliConfig()
    if refuses_overwrite(args.out, args.overwrite, "data show"):
        return 2
    dataset = SyntheticDataset(args.data, args.split or cli.show_split)
    count = min(args.n or cli.show_count, len(dataset))
    picks = np.linspace(0, len(dataset) - 1, count).round().astype(int) if count else []
    grid = make_grid([dataset[int(i)] for i in picks], _extents(args.data))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(args.out, optimize=True)
    print(f"wrote {args.out} ({count} views, {grid.shape[1]}x{grid.shape[0]})")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.data_command == "generate":
            return run_generate(args)
        return run_show(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
