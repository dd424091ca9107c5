"""The main job: the node with the bundled model on a synthetic camera stream.

Generates a small rendered data set on first run (procedural CAD database + pybullet views),
plays it as Image + CameraInfo, runs the cad_perception node in its own process, records every
topic to a rosbag2 MCAP bag (ros2 bag / Foxglove), writes overlay PNGs and prints frames
processed, latency (image stamp -> arrival of ~/alignments) and accuracy against the ground truth.
Without a trained model (models/roca) or the pipeline it says so and replays the
ground truth through the node instead (checks the plumbing, not a model).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cad_perception_ros.paths import asset_root

PACKAGE_ROOT = asset_root()


@dataclass(frozen=True)
class DemoConfig:
    """Defaults of `cad-perception demo` (the single place they live)."""

    data: str = str(PACKAGE_ROOT / "datasets" / "demo")
    out: str = str(PACKAGE_ROOT / "runs" / "demo")
    scenes: int = 2
    views_per_scene: int = 3
    image_height: int = 240
    image_width: int = 320
    rate_hz: float = 2.0
    overlays: int = 3
    frame_timeout_s: float = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    parser.add_argument("--data", default=None, help=f"data set root, generated if absent (default {d.data})")
    parser.add_argument("--out", default=None, help=f"output folder; a new run_<time> inside (default {d.out})")
    parser.add_argument("--model-dir", default=None, help="model directory (default: bundled models/roca)")
    parser.add_argument("--rate", type=float, default=None, help=f"camera frames per second (default {d.rate_hz})")
    parser.add_argument("--frames", type=int, default=None, help="play at most this many views (default: all)")


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig(**{k: v for k, v in (("data", args.data), ("out", args.out), ("rate_hz", args.rate)) if v is not None})
    apply_local_dds()
    out = Path(cfg.out) / time.strftime("run_%Y%m%d_%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    t0 = time.monotonic()
    dataset, db_dir = ensure_dataset(Path(cfg.data), cfg)
    samples = [dataset[i] for i in range(min(len(dataset), args.frames or len(dataset)))]
    print(f"[demo] data: {len(samples)} views from {cfg.data} ({time.monotonic() - t0:.1f} s)")
    overrides, mode = choose_model(args.model_dir, samples, db_dir, out)
    print(f"[demo] model: {mode}")
    from cad_perception_ros.ros.recording import DemoSession
    with DemoSession(out, samples, overrides, cfg) as session:
        session.play()
    summary = session.summary(mode, time.monotonic() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, out)
    return 0 if summary["frames_processed"] > 0 else 1


def apply_local_dds() -> None:
    """Loopback-only DDS (scripts/local_dds.sh) for this process and the node it starts."""
    script = PACKAGE_ROOT / "scripts" / "local_dds.sh"
    if os.environ.get("FASTDDS_BUILTIN_TRANSPORTS") == "SHM" and os.environ.get("ROS_DOMAIN_ID"):
        return
    env = subprocess.run(["bash", "-c", f"source '{script}' && env -0"], check=True, capture_output=True).stdout
    for item in env.decode().split("\0"):
        key, _, value = item.partition("=")
        if key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS", "RMW_IMPLEMENTATION", "ROS_DOMAIN_ID"):
            os.environ[key] = value
    for key in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS"):
        os.environ.pop(key, None)


def ensure_dataset(root: Path, cfg: DemoConfig):
    """The demo data set under `root` (generated on first run: procedural CAD db + rendered views)."""
    from cad_perception_ros.data.dataset import SyntheticDataset
    db_dir = root / "cad_db"
    if not (root / "scan2cad_instances_val.json").is_file():
        from cad_perception_ros.cad.procedural import build_procedural_database
        from cad_perception_ros.data.generate import GenerateConfig, generate_split
        print(f"[demo] generating the demo data set in {root} (first run only)")
        if not (db_dir / "meta.json").exists() and not any(db_dir.glob("*")):
            build_procedural_database(db_dir, per_class=2, seed=0)
        generate_split(root, GenerateConfig(split="val", scenes=cfg.scenes, views_per_scene=cfg.views_per_scene,
                                            image_size=(cfg.image_height, cfg.image_width)), db_dir=db_dir)
    return SyntheticDataset(root, "val"), db_dir


def choose_model(model_dir: str | None, samples, db_dir: Path, out: Path) -> tuple[list[str], str]:
    """Node parameter overrides and a description: the real model when it and the pipeline exist,
    else a ground-truth replay fixture (said plainly)."""
    from cad_perception_ros.ros.aligners import BUNDLED_MODEL_DIR
    path = Path(model_dir) if model_dir else BUNDLED_MODEL_DIR
    missing = []
    if not (path / "meta.json").is_file():
        missing.append(f"trained model {path} (meta.json)")
    try:
        import cad_perception_ros.pipeline  # noqa: F401
    except ImportError as exc:
        missing.append(f"model pipeline (cad_perception_ros.pipeline: {exc})")
    if not missing:
        from cad_perception_ros.runtime.loading import model_dir_kind
        kind = model_dir_kind(path)  # the node checks its model parameter against the directory
        return ["-p", f"model_dir:={path}", "-p", f"model:={kind}"], f"{path} ({kind})"
    fixture = write_truth_fixture(samples, db_dir, out / "ground_truth_fixture.json")
    return (["-p", f"model:=fixture:{fixture}"],
            "MISSING " + "; ".join(missing) + " -> replaying the GROUND TRUTH through the node "
            "(checks the ROS plumbing, not a model; accuracy is trivially exact)")


def write_truth_fixture(samples, db_dir: Path, path: Path) -> Path:
    from cad_perception_ros.cad.database import CadDatabase
    from cad_perception_ros.ros.aligners import image_key, write_fixture
    from cad_perception_ros.ros.conversions import CadInfo
    from cad_perception_ros.types import SCAN2CAD_CLASSES, CadPrediction
    db = CadDatabase.load(db_dir)
    by_image, cad_models = {}, {}
    for s in samples:
        by_image[image_key(s.image)] = [
            CadPrediction(class_id=o.class_id, class_name=SCAN2CAD_CLASSES[o.class_id], score=1.0,
                          box_xyxy=o.box_xyxy, alignment=o.alignment, cad_id=o.cad_id) for o in s.objects]
        for o in s.objects:
            cad_models[o.cad_id] = CadInfo(db.mesh_uri(o.cad_id), tuple(db[o.cad_id].extent))
    return write_fixture(path, by_image=by_image, cad_models=cad_models, model_name="ground-truth-replay")


def print_summary(s: dict, out: Path) -> None:
    print(f"[demo] frames played {s['frames_played']}, processed {s['frames_processed']}, "
          f"run time {s['run_time_s']:.1f} s")
    lat = s["latency_ms"]
    if lat:
        print(f"[demo] latency image stamp -> ~/alignments: median {lat['median']:.1f} ms, max {lat['max']:.1f} ms")
    acc = s["accuracy"]
    print(f"[demo] accuracy vs ground truth: {acc['matched']}/{acc['ground_truth']} objects matched "
          f"({acc['predicted']} predicted); median translation error {acc['median_translation_error_m']} m, "
          f"median rotation error {acc['median_rotation_error_deg']} deg (symmetry not folded)")
    print(f"[demo] model: {s['model']}")
    print(f"[demo] bag: {s['bag']}  overlays: {', '.join(s['overlays'])}")
    print(f"[demo] topics recorded: {', '.join(f'{k} ({v})' for k, v in sorted(s['messages'].items()))}")
    print(f"[demo] everything in {out}")
