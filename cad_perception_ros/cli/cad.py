"""Build and inspect CAD databases.

  cad-perception cad build --out DIR [--per-class N] [--seed S] [--overwrite]
  cad-perception cad build --out DIR --data-version 2 [--overwrite]     (the v2 part-based models)
  cad-perception cad build --out DIR --from-meshes FOLDER --classes MAP.yaml [--up-axis z] [--overwrite]
  cad-perception cad build --out DIR --from-shapenet SHAPENET_ROOT --annotations full_annotations.json
  cad-perception cad show --db DIR --out sheet.png [--columns N]

The procedural build makes --per-class furniture models of each of the nine classes (defaults
from ProceduralConfig: 24 per class, seed 0). --from-meshes imports OBJ/GLB/STL/PLY files named
in a JSON/YAML map {file: class} or {file: {class: C, symmetry: S}}. --from-shapenet imports the
ShapeNet models (ROOT/catid/id/models/model_normalized.obj) that a Scan2CAD full-annotations or
COCO instances file names, keyed by (catid_cad, id_cad) and with the transform that normalised
each mesh recorded, so Scan2CAD poses are converted exactly (cad/shapenet_import.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from cad_perception_ros.cad.database import CadDatabase, CadDatabaseError
from cad_perception_ros.cad.mesh_import import mesh_folder_entries, read_class_map
from cad_perception_ros.cad.parts import STYLES
from cad_perception_ros.cad.procedural import (
    ProceduralConfig,
    build_procedural_database,
)
from cad_perception_ros.cad.procedural_v2 import V2DatabaseConfig, build_v2_database
from cad_perception_ros.cad.render import ContactSheetConfig, contact_sheet
from cad_perception_ros.cad.shapenet_import import shapenet_entries
from cad_perception_ros.data.scan2cad_full import annotated_models
from cad_perception_ros.jsonio import refuses_overwrite
from cad_perception_ros.types import SCAN2CAD_CLASSES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cad_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="write a CAD database (procedural or from a mesh folder)",
                           description="Write a CAD database directory (manifest, meshes, grids, points).")
    build.add_argument("--out", required=True, help="database directory to write")
    build.add_argument("--per-class", type=int, default=None, help="procedural models per class (default 24)")
    build.add_argument("--seed", type=int, default=None, help="procedural seed (default 0)")
    build.add_argument("--from-meshes", default=None, metavar="FOLDER", help="import meshes from FOLDER instead")
    build.add_argument("--classes", default=None, metavar="MAP", help="JSON/YAML map file -> class (with --from-meshes)")
    build.add_argument("--from-shapenet", default=None, metavar="ROOT",
                       help="import the ShapeNetCore v2 models named by --annotations from ROOT")
    build.add_argument("--annotations", default=None, metavar="FILE",
                       help="with --from-shapenet: Scan2CAD full_annotations.json or scan2cad_instances_*.json")
    build.add_argument("--up-axis", choices=("y", "z"), default="y", help="up axis of the imported meshes")
    build.add_argument("--data-version", type=int, choices=(1, 2), default=1,
                       help="2: the part-based v2 models with material slots (cad/parts/), with parts.json, "
                            "face_parts.npz and coloured GLB meshes (default 1)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing database at --out")
    show = sub.add_parser("show", help="render a contact sheet PNG of a database",
                          description="Render the first models of each class into one PNG grid.")
    show.add_argument("--db", required=True, help="database directory")
    show.add_argument("--out", required=True, help="PNG file to write")
    show.add_argument("--columns", type=int, default=None, help="models per class (default 12)")
    show.add_argument("--overwrite", action="store_true", help="replace an existing PNG")


def run(args: argparse.Namespace) -> int:
    try:
        return _build(args) if args.cad_command == "build" else _show(args)
    except CadDatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _build(args: argparse.Namespace) -> int:
    if args.data_version == 2:
        total = sum(STYLES.values()) * V2DatabaseConfig().per_style
        db = build_v2_database(args.out, overwrite=args.overwrite,
                               progress=lambda it: tqdm(it, total=total, unit="model"))
    elif args.from_shapenet:
        if not args.annotations:
            print("error: --from-shapenet needs --annotations FILE", file=sys.stderr)
            return 2
        try:
            models = annotated_models(args.annotations)
        except ValueError as exc:
            raise CadDatabaseError(str(exc)) from None
        entries = tqdm(shapenet_entries(args.from_shapenet, models), total=len(models), unit="mesh")
        db = CadDatabase.build(args.out, entries, overwrite=args.overwrite)
    elif args.from_meshes:
        if not args.classes:
            print("error: --from-meshes needs --classes MAP", file=sys.stderr)
            return 2
        total = len(read_class_map(args.classes))
        entries = tqdm(mesh_folder_entries(args.from_meshes, args.classes, args.up_axis), total=total, unit="mesh")
        db = CadDatabase.build(args.out, entries, overwrite=args.overwrite)
    else:
        per_class = args.per_class if args.per_class is not None else ProceduralConfig.per_class
        db = build_procedural_database(args.out, per_class, args.seed, overwrite=args.overwrite,
                                       progress=lambda it: tqdm(it, total=per_class * len(SCAN2CAD_CLASSES),
                                                                unit="model"))
    print(f"wrote {len(db)} models to {db.root}")
    return 0


def _show(args: argparse.Namespace) -> int:
    if refuses_overwrite(args.out, args.overwrite, "cad show"):
        return 2
    db = CadDatabase.load(args.db)
    cfg = ContactSheetConfig() if args.columns is None else ContactSheetConfig(columns=args.columns)
    out = contact_sheet(db, args.out, cfg, progress=lambda jobs: tqdm(jobs, unit="model"))
    print(f"wrote {out}")
    return 0
