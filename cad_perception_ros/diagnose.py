"""Where a ROCA model's alignment errors come from: its NOCs, its depth, or both.

On the ground-truth boxes and masks of a data split, each object's pose is solved by the model's
weighted Procrustes from predicted or ground-truth NOCs against predicted or ground-truth depth
(four rows; ground truth on ground truth must pass). Then the predicted depth inside the objects:
error of its mean, and correlation / slope of its shape against the truth. Needs depth, instance
maps and NOC maps in the data (the synthetic data sets have them). Runs the torch model.

Example:
  cad-perception diagnose --model-dir models/roca --data /work/datasets/synth --split val
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=None, help="ROCA model directory (default: the bundled models/roca)")
    parser.add_argument("--data", type=Path, required=True, help="data root in the Scan2CAD image format")
    parser.add_argument("--split", default="val", help="split to diagnose (default: val)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N views")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.evaluate import objects_in_model_classes
    from cad_perception_ros.evaluation.oracle import OracleAccumulator, format_oracle
    from cad_perception_ros.model.checkpoint import ModelDirError, load_model_dir
    from cad_perception_ros.runtime.loading import default_model_dir

    if args.json is not None and args.json.exists() and not args.overwrite:
        print(f"diagnose: {args.json} exists: pass --overwrite to replace it", file=sys.stderr)
        return 2
    model_dir = args.model_dir or default_model_dir()
    try:
        loaded = load_model_dir(model_dir)
        if loaded.meta.get("model_kind", "roca") != "roca":
            raise ValueError(f"{model_dir} is a {loaded.meta['model_kind']} model; diagnose needs ROCA "
                             "(NOCs and a depth map)")
        dataset = SyntheticDataset(args.data, args.split)
    except (OSError, ValueError, ModelDirError) as exc:
        print(f"diagnose: {exc}", file=sys.stderr)
        return 2
    net = loaded.model.eval()
    torch.set_grad_enabled(False)
    acc = OracleAccumulator()
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    for i in tqdm(range(count), desc="diagnose", unit="view"):
        sample = dataset[i]
        objects = [(objects_in_model_classes([o], loaded.config.class_names) or [replace(o, visible_pixels=0)])[0]
                   for o in sample.objects]  # model class ids; other classes kept (instance ids) but skipped
        acc.add(net, replace(sample, objects=objects))
    report = acc.report()
    print(f"\n## where the errors come from ({loaded.config.name}, {args.data.name}/{args.split}, "
          f"ground-truth boxes and masks)\n")
    print(format_oracle(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
