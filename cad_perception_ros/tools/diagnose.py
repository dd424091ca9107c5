"""Where a ROCA model's alignment errors come from: its NOCs, its depth, or both.

On the ground-truth boxes and masks of a data split, each object's pose is solved by the model's
weighted Procrustes from predicted or ground-truth NOCs against predicted or ground-truth depth
(four rows; ground truth on ground truth must pass). Then the predicted depth inside the objects:
error of its mean, and correlation / slope of its shape against the truth. Needs depth, instance
maps and NOC maps in the data (the synthetic data sets have them). Runs the torch model.
With --gradients N: which loss terms drive the depth map, the depth head and the backbone
(gradient norm per loss group, averaged over N training batches of 4 views of the split).

Example:
  cad-perception diagnose --model-dir models/roca --data /work/datasets/synth --split val
  cad-perception diagnose --data /work/datasets/synth_big --split train --limit 0 --gradients 6
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.evaluation.gradients import format_gradient_norms, loss_gradient_norms
from cad_perception_ros.evaluation.oracle import OracleAccumulator, format_oracle
from cad_perception_ros.evaluation.run import objects_in_model_classes
from cad_perception_ros.model.checkpoint import ModelDirError, load_model_dir
from cad_perception_ros.model.roca.targets import CadTable, collate
from cad_perception_ros.runtime.network import default_model_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=None, help="ROCA model directory (default: the bundled models/roca)")
    parser.add_argument("--data", type=Path, required=True, help="data root in the Scan2CAD image format")
    parser.add_argument("--split", default="val", help="split to diagnose (default: val)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N views")
    parser.add_argument("--gradients", type=int, default=0, metavar="N",
                        help="also print gradient norms per loss group over N batches of 4 views (default: 0, off)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:

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
    acc = OracleAccumulator()
    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    for i in tqdm(range(count), desc="diagnose", unit="view"):
        sample = dataset[i]
        objects = [(objects_in_model_classes([o], loaded.config.class_names) or [replace(o, visible_pixels=0)])[0]
                   for o in sample.objects]  # model class ids; other classes kept (instance ids) but skipped
        acc.add(net, replace(sample, objects=objects))
    figures: dict = {}
    if count:
        report = acc.report()
        figures.update(asdict(report))
        print(f"\n## where the errors come from ({loaded.config.name}, {args.data.name}/{args.split}, "
              f"ground-truth boxes and masks)\n")
        print(format_oracle(report))
    if args.gradients > 0:
        try:
            figures["gradient_norms"] = _gradients(loaded, model_dir, dataset, args)
        except (OSError, ValueError) as exc:
            print(f"diagnose: {exc}", file=sys.stderr)
            return 2
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _gradients(loaded, model_dir: Path, dataset, args: argparse.Namespace) -> dict:
    """Print and return the gradient norms per loss group over args.gradients batches of 4 views."""

    if len(dataset) == 0:
        raise ValueError(f"{args.data}/{args.split} has no views to draw batches from")
    if not loaded.meta.get("cad_db"):
        raise ValueError(f"{model_dir}/meta.json names no CAD database (needed for the retrieval targets)")
    db = CadDatabase.load(Path(model_dir) / loaded.meta["cad_db"])
    cads = CadTable.from_database(db)
    c, rng = loaded.config, np.random.default_rng(0)

    def batches():
        for _ in range(args.gradients):
            samples = [dataset[int(i)] for i in rng.integers(0, len(dataset), 4)]
            yield collate(samples, num_classes=c.num_classes, input_size=c.input_size, cads=cads)

    norms = loss_gradient_norms(loaded.model, batches())
    print(f"\n## gradient L2 norm per loss group ({c.name}, mean of {args.gradients} batches of 4 "
          f"{args.data.name}/{args.split} views)\n")
    print(format_gradient_norms(norms))
    return norms
