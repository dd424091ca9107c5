"""Train ROCA v2's zoom-in crop network on crops of jittered ground-truth boxes.

  cad-perception train-crop --data DIR --out RUN_DIR [--config YAML] [--resume] [--max-steps N]
                            [--max-minutes M] [--threads T] [--max-views V]

The first run caches every training object's patch (RUN_DIR/patches/, one file per data root); then each
step resamples jittered crops from them (model/roca/crop_training.py). RUN_DIR/crop/ is the crop
network a ROCA model directory takes (``cad-perception train-crop --attach MODEL_DIR`` copies it
beside the detector). Logs crops/s, CPU seconds, losses and held-out pose accuracy to
RUN_DIR/metrics.jsonl.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cad_perception_ros.model.roca.crop_config import CropExperiment, load_crop_experiment
from cad_perception_ros.model.roca.crop_training import CROP_CONFIG, CROP_WEIGHTS, train_crops, with_overrides
from cad_perception_ros.runtime.crop_stage import attach_crop_network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="data root with a train split (default: crop_train.data_root)")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--config", default=None, help="YAML with crop: and crop_train: sections (default: the dataclasses)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that has a run")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: config)")
    parser.add_argument("--max-minutes", type=float, default=None, help="also stop after this much wall time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: crop_train.threads)")
    parser.add_argument("--max-views", type=int, default=None, help="use the first V training views (default: all)")
    parser.add_argument("--attach", type=Path, default=None, metavar="MODEL_DIR",
                        help="instead of training: copy RUN_DIR/crop into the ROCA model directory MODEL_DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:


    if args.attach is not None:

        attach_crop_network(args.attach, args.out / "crop")
        print(f"train-crop: {args.out / 'crop'} attached to {args.attach}")
        return 0
    exp = load_crop_experiment(args.config) if args.config else CropExperiment()
    exp = with_overrides(exp, threads=args.threads, max_views=args.max_views)
    started = (args.out / "checkpoint" / "state.json").is_file()
    if started and not (args.resume or args.overwrite):
        print(f"train-crop: {args.out} has a run; pass --resume to continue or --overwrite to restart")
        return 2
    if started and args.overwrite:
        for name in ("checkpoint", "crop", "metrics.jsonl"):
            path = args.out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    rows = train_crops(exp, args.out, data_root=args.data, resume=args.resume, max_steps=args.max_steps,
                       max_seconds=args.max_minutes * 60 if args.max_minutes else None, progress=not args.no_progress)
    if rows:
        last = rows[-1]
        print(f"train-crop: step {last['step']}, loss {last['total']:.3f}, {last['crops_per_s']:.1f} crops/s, "
              f"{last['cpu_seconds']:.0f} CPU s; model in {args.out / 'crop'} ({CROP_WEIGHTS}, {CROP_CONFIG})")
    return 0
