"""The object map on a benchmark's multi-view scenes: fused map vs per image vs per scene (issue 27).

The first --limit views of a split are replayed scene by scene as a moving camera (each view's
camera pose goes through the TF buffer as map <- camera_optical, as the node does with /tf) and
fused by the object map (mapping/object_map.py). Reported, with the Scan2CAD criteria of
`evaluate` (evaluation/metrics.py): the per-image alignment accuracy, the per-scene protocol of
`evaluate` (world-frame pooling + ROCA's NMS) and the fused map's (one unit per scene), class and
instance averages; identity switches of the map ids and, for comparison, of the camera-frame
tracker's ids (tracking.py) over the same views.

Predictions come from a model directory (cached in --predictions: written on the first run,
read on later ones, so the fusion can be tuned without the model), or with --simulate from the
ground truth plus noise and false positives (evaluation/simulated.py), which measures the
fusion's own gain apart from the model. With --floor camera-pose the model gets each view's floor
plane from its camera pose (the node's floor_frame), as `evaluate --floor camera-pose` does.

Examples:
  cad-perception map-eval --data datasets/holdout-v2 --limit 100 --predictions runs/map/roca.json
  cad-perception map-eval --data datasets/holdout-v2 --limit 100 --simulate --seed 0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.evaluation.map_replay import ReplayView, evaluate_map, map_precision, replay
from cad_perception_ros.evaluation.metrics import evaluate_images
from cad_perception_ros.evaluation.run import FLOOR_MODES, objects_in_model_classes, view_floor
from cad_perception_ros.evaluation.scene import SceneFrame, evaluate_scenes
from cad_perception_ros.evaluation.simulated import SimulatedNoise, simulate_view
from cad_perception_ros.jsonio import refuses_overwrite, write_json_report
from cad_perception_ros.mapping.object_map import MapConfig
from cad_perception_ros.mapping.predictions_io import read_predictions, write_predictions
from cad_perception_ros.model.checkpoint import read_meta
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.network import default_model_dir, model_database
from cad_perception_ros.types import SCAN2CAD_CLASSES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data root in the Scan2CAD image format (views with poses)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=100, help="replay the first N views (default 100)")
    parser.add_argument("--model-dir", type=Path, default=None, help="model directory (default: the bundled models/roca)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--predictions", type=Path, default=None,
                        help="per-view predictions JSON: read when it exists, else written after running the model")
    parser.add_argument("--floor", choices=FLOOR_MODES, default=None,
                        help="give the model each view's floor plane (camera-pose: z = 0 of its world frame)")
    parser.add_argument("--simulate", action="store_true", help="ground truth + noise + false positives instead of a model")
    parser.add_argument("--seed", type=int, default=0, help="seed of --simulate")
    parser.add_argument("--match-distance", type=float, default=MapConfig.match_distance_m,
                        help="fusion gate: centre distance to join a map object, metres")
    parser.add_argument("--max-missed", type=int, default=MapConfig.max_missed,
                        help="remove an object after this many frames it should have been seen and was not")
    parser.add_argument("--fuse-score", type=float, default=MapConfig.score_threshold,
                        help="predictions at or above this score are fused (the map's confidence is the noisy-or of "
                             "its observations; the metric still counts map objects at >= 0.5)")
    parser.add_argument("--depth-ratio", type=float, default=MapConfig.depth_uncertainty_ratio,
                        help="a centre is this many times less sure along its viewing ray than across it")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    if args.json is not None and refuses_overwrite(args.json, args.overwrite, "map-eval"):
        return 2  # before the replay, so no work is done for nothing
    try:
        dataset = SyntheticDataset(args.data, args.split)
        config = MapConfig(match_distance_m=args.match_distance, max_missed=args.max_missed,
                           score_threshold=args.fuse_score, depth_uncertainty_ratio=args.depth_ratio)
        count = min(args.limit, len(dataset))
        samples = [dataset[i] for i in range(count)]
        per_view, symmetry_of, source = _predictions(args, samples)
    except (OSError, ValueError) as exc:
        print(f"map-eval: {exc}", file=sys.stderr)
        return 2
    frames = [SceneFrame(scene_id=s.scene_id, camera_to_world=s.camera_to_world, predictions=p,
                         objects=objects_in_model_classes(s.objects, SCAN2CAD_CLASSES))
              for s, p in zip(samples, per_view)]
    views = [ReplayView(f, s.K, s.size) for f, s in zip(frames, samples)]
    replayed = replay(views, config=config, symmetry_of=lambda cad: symmetry_of.get(cad, "none"))
    results = {"image": evaluate_images(((f.predictions, f.objects) for f in frames), symmetry_of=symmetry_of),
               "scene": evaluate_scenes(frames, symmetry_of=symmetry_of),
               "map": evaluate_map(replayed, frames, symmetry_of=symmetry_of)}
    summary = _summary(results, replayed, source, args, count)
    confident, true = map_precision(replayed, frames)
    summary["confident_map_objects"] = {"count": confident, "real": true,
                                        "precision": round(100.0 * true / confident, 1) if confident else None}
    print(format_summary(summary))
    if args.json is not None:
        write_json_report(args.json, summary)
    return 0


def _predictions(args, samples):
    """Per-view predictions, the cad_id -> symmetry table the evaluation and fusion use, a label."""
    if args.simulate:
        rng = np.random.default_rng(args.seed)
        views = [simulate_view(s.objects, s.K, s.size, rng) for s in samples]
        symmetry_of = {o.cad_id: o.symmetry for s in samples for o in s.objects}
        return views, symmetry_of, f"simulated (seed {args.seed}, {SimulatedNoise()})"
    if args.predictions is not None and args.predictions.is_file():
        stored = read_predictions(args.predictions)
        if len(stored["views"]) < len(samples):
            raise ValueError(f"{args.predictions} holds {len(stored['views'])} views, fewer than --limit {len(samples)}")
        views, model = stored["views"][:len(samples)], stored["model"]
        model_dir = args.model_dir or default_model_dir()
        database = model_database(model_dir, read_meta(model_dir, error=ValueError))
    else:
        aligner = CadAligner.from_model_dir(args.model_dir or default_model_dir(), device=args.device,
                                            score_threshold=0.05)
        views = [aligner(s.image, s.K, floor=view_floor(s, args.floor)) for s in samples]
        model, database = aligner.model_name + (f", floor {args.floor}" if args.floor else ""), aligner.cad_database
        if args.predictions is not None:
            write_predictions(args.predictions, views, model=model, data=str(args.data), split=args.split)
    symmetry_of = {m.cad_id: m.symmetry for m in database} if database is not None else {}
    return views, symmetry_of, f"model {model}"


def _summary(results: dict, replayed, source: str, args, count: int) -> dict:
    out = {"source": source, "data": str(args.data), "split": args.split, "views": count,
           "scenes": len(replayed.maps), "match_distance_m": args.match_distance, "max_missed": args.max_missed,
           "fuse_score": args.fuse_score, "depth_ratio": args.depth_ratio,
           "identity_switches": {"map": replayed.map_switches, "camera_frame_tracker": replayed.tracker_switches,
                                 "matched_observations": replayed.matched_observations},
           "map_objects": sum(len(v) for v in replayed.maps.values()), "map_objects_removed": replayed.removed}
    for protocol, r in results.items():
        interval = r.alignment_interval or {}
        out[protocol] = {"units": r.num_units, "gt_objects": sum(c.num_gt for c in r.classes),
                         "instance_alignment_accuracy": round(r.instance_average("alignment_accuracy"), 2),
                         "class_alignment_accuracy": round(r.class_average("alignment_accuracy"), 2),
                         "instance_95_interval": [round(v, 2) for v in interval.get("instance_average", ())]}
    return out


def format_summary(summary: dict) -> str:
    """Markdown table of the three protocols and the identity switches."""
    lines = [f"## object map: {summary['source']}, {summary['views']} views of {summary['data']}/{summary['split']} "
             f"({summary['scenes']} scenes)", "",
             "| protocol | units | GT objects | instance alignment acc. (%) | 95 % interval | class avg (%) |",
             "|---|---:|---:|---:|---|---:|"]
    for protocol, label in (("image", "per image"), ("scene", "per scene (evaluate)"), ("map", "fused map")):
        r = summary[protocol]
        band = "-".join(f"{v:.1f}" for v in r["instance_95_interval"]) or "-"
        lines.append(f"| {label} | {r['units']} | {r['gt_objects']} | {r['instance_alignment_accuracy']:.1f} | "
                     f"{band} | {r['class_alignment_accuracy']:.1f} |")
    ids = summary["identity_switches"]
    lines += ["", f"identity switches over {ids['matched_observations']} matched observations: map {ids['map']}, "
                  f"camera-frame tracker {ids['camera_frame_tracker']}; map objects {summary['map_objects']} "
                  f"(removed on the way: {summary['map_objects_removed']})"]
    confident = summary.get("confident_map_objects")
    if confident:
        lines.append(f"confident map objects (>= 0.5): {confident['count']}, of them real (same class within "
                     f"0.4 m of a scene object): {confident['real']} ({confident['precision']} %)")
    return "\n".join(lines)
