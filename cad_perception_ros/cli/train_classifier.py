"""Train ROCA v2's crop classifier (detection rescoring) on the detector's own candidates.

  cad-perception train-classifier --data DIR --out RUN_DIR [--model-dir models/roca] [--config YAML]
                                  [--max-views V] [--max-steps N] [--max-minutes M] [--resume]
  cad-perception train-classifier --out RUN_DIR --attach MODEL_DIR

The first run mines the candidates of MODEL_DIR's detector on the training views (cached in
RUN_DIR/candidates.safetensors); training starts from the crop network's encoder of MODEL_DIR
(ImageNet without one). Held-out accuracy, AUC of peak vs fused score and the fitted fusion go to
RUN_DIR/metrics.jsonl at every checkpoint; RUN_DIR/classifier/ is what --attach copies into a
ROCA model directory (model/roca/classifier_training.py). Use views the detector was not trained on.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.model.roca.classifier_training import (
    ClassifierExperiment,
    load_classifier_experiment,
    load_or_mine,
    train_classifier,
)
from cad_perception_ros.paths import models_dir
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.rescoring import attach_crop_classifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="data root with the training views")
    parser.add_argument("--split", default="train", help="split (default: train)")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--model-dir", type=Path, default=models_dir() / "roca",
                        help="the ROCA model whose detector is rescored (default: models/roca)")
    parser.add_argument("--config", default=None, help="YAML with classifier: and classifier_train: sections")
    parser.add_argument("--max-views", type=int, default=None, help="mine the first V views (default: all)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: config)")
    parser.add_argument("--max-minutes", type=float, default=None, help="also stop after this much wall time")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that has a run")
    parser.add_argument("--attach", type=Path, default=None, metavar="MODEL_DIR",
                        help="instead of training: copy RUN_DIR/classifier into the ROCA model directory MODEL_DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.attach is not None:
        attach_crop_classifier(args.attach, args.out / "classifier")
        print(f"train-classifier: {args.out / 'classifier'} attached to {args.attach}")
        return 0
    if args.data is None:
        print("train-classifier: --data is required to train", flush=True)
        return 2
    exp = load_classifier_experiment(args.config) if args.config else ClassifierExperiment()
    if args.max_views is not None:
        exp = dataclasses.replace(exp, classifier_train=dataclasses.replace(exp.classifier_train, max_views=args.max_views))
    started = (args.out / "checkpoint" / "state.json").is_file()
    if started and not (args.resume or args.overwrite):
        print(f"train-classifier: {args.out} has a run; pass --resume to continue or --overwrite to restart")
        return 2
    if started and args.overwrite:
        for name in ("checkpoint", "classifier", "metrics.jsonl"):
            path = args.out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    aligner = CadAligner.from_model_dir(args.model_dir, score_threshold=exp.classifier.candidate_score)
    aligner.crop_stage = aligner.rescorer = None  # the detector's own candidates
    candidates = load_or_mine(args.out, aligner, SyntheticDataset(args.data, args.split),
                              exp.classifier_train.max_views)
    crop_file = args.model_dir / "crop_model.safetensors"
    rows = train_classifier(exp, args.out, candidates, init_from=crop_file if crop_file.is_file() else None,
                            resume=args.resume, max_steps=args.max_steps,
                            max_seconds=args.max_minutes * 60 if args.max_minutes else None,
                            progress=not args.no_progress)
    last = next((r for r in reversed(rows) if "val_accuracy" in r), rows[-1] if rows else None)
    if last:
        print(f"train-classifier: step {last['step']}, {len(candidates.label)} candidates, "
              f"held-out accuracy {last.get('val_accuracy', float('nan')):.3f}, AUC peak {last.get('val_auc_peak', float('nan')):.3f}"
              f" -> fused {last.get('val_auc_fused', float('nan')):.3f}; {last['cpu_seconds']:.0f} CPU s; "
              f"classifier in {args.out / 'classifier'}")
    return 0
