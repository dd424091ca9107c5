"""Average the weights of ROCA model directories of one architecture (a "model soup").

Meant for stages of one training lineage (a run and the run fine-tuned from it): every floating
point tensor becomes the mean of the inputs', integer buffers come from the first. The result
takes the first model's config (renamed with --name) and CAD database; its CAD embeddings are
recomputed with the averaged retrieval head. Ship it with `bundle` like any trained model.

Example:
  cad-perception average --model-dir models/roca --model-dir runs/roca_depth7/model --out runs/roca_avg
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.model.checkpoint import (
    ModelDirError,
    load_model_dir,
    save_roca_model_dir,
)
from cad_perception_ros.model.roca.targets import CadTable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, action="append", required=True,
                        help="a ROCA model directory; give it twice or more")
    parser.add_argument("--out", type=Path, required=True, help="folder for the averaged model directory")
    parser.add_argument("--name", default=None, help="model name in the new config (default: <first>_avg)")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")


def average_state_dicts(states: list[dict]) -> dict:
    """Mean of floating-point tensors over `states` (same keys and shapes), others from the first.
    Raises ValueError naming the first tensor that differs in name or shape."""
    first = states[0]
    for i, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys():
            extra = sorted(set(state) ^ set(first))[:3]
            raise ValueError(f"model {i} has other tensors than model 1 (e.g. {extra}): not one architecture")
        for key, value in first.items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise ValueError(f"model {i}: {key} has shape {tuple(state[key].shape)}, model 1 {tuple(value.shape)}")
    return {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v.clone()
            for k, v in first.items()}


def run(args: argparse.Namespace) -> int:

    if len(args.model_dir) < 2:
        print("average: give --model-dir at least twice", file=sys.stderr)
        return 2
    if (args.out / "meta.json").exists() and not args.overwrite:
        print(f"average: {args.out} already holds a model; pass --overwrite to replace it", file=sys.stderr)
        return 2
    try:
        loaded = [load_model_dir(d) for d in args.model_dir]
        if any(m.meta.get("model_kind", "roca") != "roca" for m in loaded):
            raise ValueError("average supports ROCA model directories only")
        merged = average_state_dicts([m.model.state_dict() for m in loaded])
        first = loaded[0]
        cad_db = (args.model_dir[0] / first.meta["cad_db"]).resolve() if first.meta.get("cad_db") else None
        db = CadDatabase.load(cad_db) if cad_db is not None else None
    except (OSError, ValueError, ModelDirError) as exc:
        print(f"average: {exc}", file=sys.stderr)
        return 2
    net = first.model
    net.load_state_dict(merged)
    net.eval()
    config = dataclasses.replace(first.config, name=args.name or f"{first.config.name}_avg")
    save_roca_model_dir(args.out, net, config, CadTable.from_database(db) if db is not None else None,
                        cad_db=str(cad_db) if cad_db is not None else "", overwrite=True,
                        extra_meta={"averaged_from": [str(d.resolve()) for d in args.model_dir]})
    print(f"averaged {len(loaded)} models -> {args.out}")
    return 0
