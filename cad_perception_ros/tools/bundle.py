"""Ship a trained model directory: verify it, copy it, point it at a CAD database beside it.

The copy keeps every hashed file byte for byte and rewrites only meta.json: `cad_db` becomes
the path of --cad-db relative to the new folder, and `bundle` records where the model came
from (source folder, training steps and the mean logged step time of the run's metrics.jsonl).
A ROCA v2 directory's crop network (crop_model.safetensors, crop_config.yaml) is verified and
copied with the rest.

Example (models/roca, ROCA v2, retrieves from models/cad_db_v2; models/roca_v1 from models/cad_db):
  cad-perception bundle --model-dir runs/roca_v2_model --out models/roca --cad-db models/cad_db_v2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.model.checkpoint import load_model_dir, read_meta
from cad_perception_ros.runtime.crop_stage import has_crop_network, load_crop_stage
from cad_perception_ros.runtime.rescoring import has_crop_classifier, load_rescorer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, required=True, help="trained model directory (RUN/model)")
    parser.add_argument("--out", type=Path, required=True, help="destination folder, e.g. models/roca")
    parser.add_argument("--cad-db", type=Path, required=True, help="CAD database the bundled model will use")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")


def training_summary(run_dir: Path) -> dict:
    """Steps of the run's checkpoint and the mean logged step time up to it ({} without a log).

    The step comes from RUN/checkpoint/state.json when present: metrics.jsonl may hold rows past
    the last checkpoint of an interrupted chunk."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    state = run_dir / "checkpoint" / "state.json"
    step = int(json.loads(state.read_text(encoding="utf-8"))["step"]) if state.is_file() else None
    rows = [r for r in rows if step is None or r["step"] <= step]
    if not rows:
        return {}
    # Rows are logged every log_every steps: report the mean time of a logged step, not a sum.
    seconds = [r["seconds"] for r in rows if "seconds" in r]
    return {"steps": step if step is not None else int(rows[-1]["step"]),
            "mean_step_seconds": round(sum(seconds) / len(seconds), 3) if seconds else None}


def bundle(model_dir: Path, out: Path, cad_db: Path, *, overwrite: bool = False) -> Path:
    """Copy a verified model directory to `out` with meta.json's cad_db relative to `out`."""
    load_model_dir(model_dir)  # raises ModelDirError on missing or tampered files
    if has_crop_network(model_dir):
        load_crop_stage(model_dir)  # ROCA v2: the crop network's files too
    if has_crop_classifier(model_dir):
        load_rescorer(model_dir)  # and its crop classifier's
    CadDatabase.load(cad_db)  # raises CadDatabaseError on a broken database
    meta = read_meta(model_dir, error=ValueError)
    if (out / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a model; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    for name in meta["sha256"]:
        shutil.copy2(model_dir / name, out / name)
    meta["cad_db"] = os.path.relpath(cad_db.resolve(), out.resolve())
    meta["bundle"] = {"source": str(model_dir.resolve()), **training_summary(model_dir.parent)}
    (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    load_model_dir(out)
    if has_crop_network(out):
        load_crop_stage(out)
    if has_crop_classifier(out):
        load_rescorer(out)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        path = bundle(args.model_dir, args.out, args.cad_db, overwrite=args.overwrite)
    except (OSError, ValueError) as exc:
        print(f"bundle: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) / 2**20
    print(f"bundled {args.model_dir} -> {path} ({size:.1f} MiB)")
    return 0
