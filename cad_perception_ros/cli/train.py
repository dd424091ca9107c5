"""Train a ROCA or Points2Objects model (model.kind of the config). Optimisation as ROCA Sec. 3.5:
SGD momentum 0.9, linear warm-up, step decay, weight decay, colour augmentation, class-frequency loss weighting. Checkpoints every N steps (--resume continues),
metrics.jsonl and loss_curves.png in the run folder, the runtime model directory in RUN_DIR/model.

CPU by default; on GPUs run the same command under torchrun (DistributedDataParallel when
WORLD_SIZE > 1, data split per rank with DistributedSampler):
    torchrun --nproc_per_node 4 -m cad_perception_ros.cli train --config config/roca_synthetic.yaml
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.data.dataset import ResizedCache, SyntheticDataset
from cad_perception_ros.model.checkpoint import save_model_dir, save_roca_model_dir
from cad_perception_ros.model.config import load_experiment
from cad_perception_ros.model.roca.targets import CadTable
from cad_perception_ros.model.training import build_model, train_loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment YAML (model: and train: sections)")
    parser.add_argument("--data", default=None, help="data set folder (default: train.data_root of the config)")
    parser.add_argument("--cad-db", default=None, help="CAD database folder (default: train.cad_db)")
    parser.add_argument("--image-root", default=None,
                        help="real data: root of the ScanNet frames the annotations name (default: inside --data)")
    parser.add_argument("--rendering-root", default=None,
                        help="real data: root of ROCA's depth/instance/NOC renderings (default: inside --data)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<model name>)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint (a new run when there is none yet)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a run folder that has a run")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: config)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="also stop once this much wall time has passed (a checkpoint and the model are "
                             "written; --resume continues), e.g. for a time-boxed GPU machine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")



def run(args: argparse.Namespace) -> int:
    try:
        exp = load_experiment(args.config)
    except (OSError, ValueError) as exc:  # ConfigError is a ValueError: a clear line, not a traceback
        print(f"train: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/{exp.model.name}")
    if (out / "checkpoint").exists() and not (args.resume or args.overwrite):
        print(f"{out} already has a run: pass --resume to continue or --overwrite to start again")
        return 2
    if args.resume and not (out / "checkpoint" / "state.json").exists():
        print(f"{out}: no checkpoint to resume from, starting a new run")  # restartable background jobs
        args.resume = False
    if args.overwrite and not args.resume and (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()
    torch.manual_seed(exp.train.seed)
    db = CadDatabase.load(args.cad_db or exp.train.cad_db)
    cads = CadTable.from_database(db)
    try:  # ROCA's re-sampled duplicates count; Scan2CAD keys resolve to db models, poses to their frames
        dataset = SyntheticDataset(args.data or exp.train.data_root, exp.train.train_split,
                                   image_root=args.image_root, rendering_root=args.rendering_root,
                                   include_duplicates=True, cad_database=db, require_noc=True)
    except (OSError, ValueError) as exc:
        print(f"train: {exc}")
        return 2
    if exp.train.cache_samples:
        dataset = ResizedCache(dataset, exp.model.input_size)
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    model, extend = build_model(exp, db, cads)
    t0 = time.time()
    if args.max_minutes is not None and args.max_minutes <= 0:
        print(f"--max-minutes must be positive, got {args.max_minutes}")
        return 2
    rows = train_loop(model, dataset, cads, exp, out, resume=args.resume, max_steps=args.max_steps,
                      progress=not args.no_progress, device=device, extend_batch=extend,
                      max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    if int(os.environ.get("RANK", 0)) == 0:
        model.cpu().eval()
        cad_db = os.path.relpath(Path(args.cad_db or exp.train.cad_db).resolve(), (out / "model").resolve())
        if exp.model.kind == "points2objects":
            save_model_dir(out / "model", model, exp.model, overwrite=True, cad_db=cad_db,
                           p2o=exp.points2objects, exemplars=model.exemplars)
        else:
            save_roca_model_dir(out / "model", model, exp.model, cads, cad_db=cad_db, overwrite=True)
        n = sum(r["seconds"] for r in rows)
        data = sum(r["data_seconds"] for r in rows)
        print(f"trained {len(rows)} steps in {time.time() - t0:.0f} s "
              f"({len(rows) * exp.train.batch_size / max(n, 1e-9):.2f} images/s, batch building "
              f"{100 * data / max(n, 1e-9):.0f} % of it on {device}); model in {out / 'model'}")
    return 0
