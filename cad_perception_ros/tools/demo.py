"""The main job: the node with the bundled model on a synthetic camera stream.

Generates a small rendered data set on first run (procedural CAD database + rendered views),
plays it as Image + CameraInfo, runs the cad_perception node in its own process, records every
topic to a rosbag2 MCAP bag (ros2 bag / Foxglove), writes overlay PNGs and prints frames
processed, latency (image stamp -> arrival of ~/alignments: p50 / p95), the node's overhead over
the bare pipeline and the Scan2CAD accuracy (evaluation/metrics.py) against the ground truth, and
renders a 3D view of each reconstructed view (predicted CAD meshes next to the ground truth).
Without a trained model (models/roca) it says so and replays the ground truth through the node
instead (checks the plumbing, not a model), unless --random-model asks for random weights.

  --measure-overhead  plays one frame at a time (no queueing) and runs the bare CadAligner on the
                      same frames in this process: node end-to-end latency vs bare pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cad_perception_ros.cad.database import CadDatabase
from cad_perception_ros.cad.procedural import build_procedural_database
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.generate import GenerateConfig, generate_split
from cad_perception_ros.data.scan2cad_format import instances_path
from cad_perception_ros.evaluation.scene_view import render_scene_view
from cad_perception_ros.paths import asset_root
from cad_perception_ros.ros.aligners import BUNDLED_MODEL_DIR, image_key, write_fixture
from cad_perception_ros.ros.conversions import CadInfo
from cad_perception_ros.ros.params import NodeParams
from cad_perception_ros.runtime.network import load_cad_database, load_network, model_dir_kind
from cad_perception_ros.runtime.random_model import save_random_model_dir
from cad_perception_ros.tools.demo_report import accuracy, bare_pipeline, format_accuracy
from cad_perception_ros.tools.recording import DemoSession
from cad_perception_ros.types import SCAN2CAD_CLASSES, CadPrediction

PACKAGE_ROOT = asset_root()


@dataclass(frozen=True)
class DemoConfig:
    """Defaults of `cad-perception demo` (the single place they live)."""

    data: str = str(PACKAGE_ROOT / "datasets" / "demo_640x480")
    out: str = str(PACKAGE_ROOT / "runs" / "demo")
    scenes: int = 2
    views_per_scene: int = 3
    image_height: int = 480          # a real camera's size: full frames over DDS (config/fastdds_local.xml)
    image_width: int = 640
    rate_hz: float = 2.0
    overlays: int = 3
    frame_timeout_s: float = 20.0
    lockstep: bool = False           # one frame in flight (--measure-overhead)
    random_model_config: str = str(PACKAGE_ROOT / "config" / "roca_synthetic.yaml")
    depth: str = ""                  # "" = RGB alone; sensor | true: the camera also publishes registered depth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    parser.add_argument("--data", default=None, help=f"data set root, generated if absent (default {d.data})")
    parser.add_argument("--out", default=None, help=f"output folder; a new run_<time> inside (default {d.out})")
    parser.add_argument("--model-dir", default=None, help="model directory (default: bundled models/roca)")
    parser.add_argument("--rate", type=float, default=None, help=f"camera frames per second (default {d.rate_hz})")
    parser.add_argument("--frames", type=int, default=None, help="play at most this many views (default: all)")
    parser.add_argument("--random-model", nargs="?", const="", default=None, metavar="CONFIG",
                        help="use a random-weight model built from CONFIG (default "
                             f"{Path(d.random_model_config).name}) instead of models/roca: measures "
                             "latency, accuracy is meaningless (pair with --score-threshold 0)")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="node parameter score_threshold (default: config/cad_perception.yaml)")
    parser.add_argument("--depth", choices=("sensor", "true"), default=None,
                        help="the camera also publishes registered depth (simulated sensor depth, or the rendered "
                             "depth) and the node uses it (depth_topic)")
    parser.add_argument("--measure-overhead", action="store_true",
                        help="one frame in flight, plus the bare pipeline on the same frames: node overhead")


def run(args: argparse.Namespace) -> int:
    cfg = DemoConfig(**{k: v for k, v in (("data", args.data), ("out", args.out), ("rate_hz", args.rate),
                                          ("random_model_config", args.random_model or None),
                                          ("depth", args.depth)) if v is not None},
                     lockstep=bool(args.measure_overhead))
    apply_local_dds()
    out = Path(cfg.out) / time.strftime("run_%Y%m%d_%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    t0 = time.monotonic()
    dataset, db_dir = ensure_dataset(Path(cfg.data), cfg)
    samples = [dataset[i] for i in range(min(len(dataset), args.frames or len(dataset)))]
    print(f"[demo] data: {len(samples)} views from {cfg.data} ({time.monotonic() - t0:.1f} s)")
    if args.random_model is not None:
        args.model_dir = str(save_random_model_dir(out / "random_model", cad_db=db_dir, config=cfg.random_model_config))
    overrides, mode, model_path = choose_model(args.model_dir, samples, db_dir, out)
    if args.score_threshold is not None:
        overrides += ["-p", f"score_threshold:={float(args.score_threshold)}"]
    print(f"[demo] model: {mode}")
    database = CadDatabase.load(db_dir)
    with DemoSession(out, samples, overrides, cfg) as session:
        session.play()
    summary = session.summary(mode, time.monotonic() - t0, database)
    published = session.published_predictions() if summary["frames_processed"] else {}
    if args.measure_overhead and model_path is not None:
        summary["bare_pipeline"] = measure_bare(model_path, samples, published, args.score_threshold, database)
    summary["scene_views"] = write_scene_views(out, samples, published, database, model_path, cfg.overlays)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary, out)
    return 0 if summary["frames_processed"] > 0 else 1


def measure_bare(model_path: Path, samples, published: dict, score_threshold, database) -> dict:
    """The bare CadAligner on the frames the node answered: timings and its own accuracy."""
    threshold = NodeParams().score_threshold if score_threshold is None else float(score_threshold)
    views = sorted(published)
    bare = bare_pipeline(model_path, [samples[i] for i in views], threshold)
    same_poses = all(len(a) == len(b) and all(
        p.cad_id == q.cad_id and np.allclose(p.alignment.translation, q.alignment.translation, atol=1e-4)
        and np.allclose(p.alignment.rotation, q.alignment.rotation, atol=1e-4) for p, q in zip(a, b))
        for a, b in zip(bare["predictions"], (published[i] for i in views)))
    return {"frames": len(views), "torch_threads": bare["torch_threads"], "wall_ms": bare["wall_ms"], "pipeline_ms": bare["pipeline_ms"],
            "accuracy": accuracy([(p, samples[i].objects) for p, i in zip(bare["predictions"], views)], database),
            "same_poses_as_node": bool(same_poses)}


def write_scene_views(out: Path, samples, published: dict, database, model_path, count: int) -> list[str]:
    """scene3d_<view>.png for the first `count` answered views (meshes: model db for predictions)."""
    pred_db = database
    if model_path is not None:
        pred_db = load_cad_database(load_network(model_path)) or database
    paths = []
    for i in sorted(published)[:count]:
        paths.append(str(render_scene_view(out / f"scene3d_{i}.png", published[i], samples[i].objects, database,
                                           prediction_database=pred_db,
                                           title=f"view {i} ({samples[i].scene_id}): published predictions vs ground truth")))
    return paths


def apply_local_dds() -> None:
    """Loopback-only DDS (scripts/local_dds.sh) for this process and the node it starts."""
    script = PACKAGE_ROOT / "scripts" / "local_dds.sh"
    if (os.environ.get("FASTDDS_BUILTIN_TRANSPORTS") == "SHM" and os.environ.get("ROS_DOMAIN_ID")
            and os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")):
        return
    env = subprocess.run(["bash", "-c", f"source '{script}' && env -0"], check=True, capture_output=True).stdout
    for item in env.decode().split("\0"):
        key, _, value = item.partition("=")
        if key in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE",
                   "RMW_IMPLEMENTATION", "ROS_DOMAIN_ID"):
            os.environ[key] = value
    for key in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS"):
        os.environ.pop(key, None)


def ensure_dataset(root: Path, cfg: DemoConfig):
    """The demo data set under `root` (generated on first run: procedural CAD db + rendered views)."""
    db_dir = root / "cad_db"
    if not instances_path(root, "val").is_file():
        print(f"[demo] generating the demo data set in {root} (first run only)")
        if not (db_dir / "meta.json").exists() and not any(db_dir.glob("*")):
            build_procedural_database(db_dir, per_class=2, seed=0)
        generate_split(root, GenerateConfig(split="val", scenes=cfg.scenes, views_per_scene=cfg.views_per_scene,
                                            image_size=(cfg.image_height, cfg.image_width)), db_dir=db_dir)
    return SyntheticDataset(root, "val"), db_dir


def choose_model(model_dir: str | None, samples, db_dir: Path, out: Path) -> tuple[list[str], str, Path | None]:
    """Node parameter overrides, a description and the model dir (None when replaying): the real
    model when it and the pipeline exist, else a ground-truth replay fixture (said plainly)."""
    path = Path(model_dir) if model_dir else BUNDLED_MODEL_DIR
    missing = []
    if not (path / "meta.json").is_file():
        missing.append(f"trained model {path} (meta.json)")
    if not missing:
        kind = model_dir_kind(path)  # the node checks its model parameter against the directory
        return ["-p", f"model_dir:={path}", "-p", f"model:={kind}"], f"{path} ({kind})", path
    fixture = write_truth_fixture(samples, db_dir, out / "ground_truth_fixture.json")
    return (["-p", f"model:=fixture:{fixture}"],
            "MISSING " + "; ".join(missing) + " -> replaying the GROUND TRUTH through the node "
            "(checks the ROS plumbing, not a model; accuracy is trivially exact). Train one "
            "(cad-perception train) or pass --model-dir DIR or --random-model", None)


def write_truth_fixture(samples, db_dir: Path, path: Path) -> Path:
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
    node = s.get("node", {})
    print(f"[demo] frames played {s['frames_played']}, processed {s['frames_processed']}, dropped by the node "
          f"{node.get('frames_dropped', '?')}, run time {s['run_time_s']:.1f} s")
    lat = s["latency_ms"]
    if lat:
        print(f"[demo] latency image stamp -> ~/alignments received: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, "
              f"max {lat['max']:.1f} ms ({lat['n']} frames)")
    if lat and float(node.get("pipeline_latency_ms_p50", 0.0)) > 0.0:  # 0: the replay fixture has no pipeline
        pipe = float(node["pipeline_latency_ms_p50"])
        print(f"[demo] node: pipeline (CadAligner.last_timings total) p50 {pipe:.1f} ms, stamp -> publish p50 "
              f"{float(node['stamp_to_publish_latency_ms_p50']):.1f} ms; node overhead (end-to-end p50 - pipeline "
              f"p50) {lat['p50'] - pipe:.1f} ms")
    bare = s.get("bare_pipeline")
    if bare and lat:
        print(f"[demo] bare pipeline on the same {bare['frames']} frames (this process, {bare['torch_threads']} torch "
              f"threads; the node inherits OMP_NUM_THREADS): p50 {bare['wall_ms']['p50']:.1f} ms,"
              f" p95 {bare['wall_ms']['p95']:.1f} ms; node overhead over it: p50 {lat['p50'] - bare['wall_ms']['p50']:.1f} ms")
    print(f"[demo] accuracy of the published predictions vs ground truth: {format_accuracy(s['accuracy'])}")
    if bare:
        same = bare["accuracy"] == s["accuracy"] and bare["same_poses_as_node"]
        print(f"[demo] bare pipeline accuracy: {format_accuracy(bare['accuracy'])} -> "
              f"{'identical to the node' if same else 'DIFFERS from the node'}")
    print(f"[demo] model: {s['model']}")
    print(f"[demo] bag: {s['bag']}  overlays: {', '.join(s['overlays'])}")
    print(f"[demo] 3D views: {', '.join(s['scene_views'])}")
    print(f"[demo] topics recorded: {', '.join(f'{k} ({v})' for k, v in sorted(s['messages'].items()))}")
    print(f"[demo] everything in {out}")
