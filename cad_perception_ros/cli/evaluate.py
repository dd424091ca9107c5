"""Evaluate a model directory on a data split with the Scan2CAD alignment criteria.

Runs the same CadAligner the node and `predict` use, then reports per class, class average
(and ROCA's 8-class "benchmark" average without beds) and instance average: alignment accuracy,
retrieval-aware alignment accuracy (by default the retrieved CAD model must be the ground
truth's, ROCA's default; --retrieval-match surface-iou accepts surface-voxel IoU >= 0.5) and
detection AP50; beside them the collision metrics of Points2Objects' Table 3 (mean
intersection volume per image, colliding pairs per image) of the predicted CAD models.
Protocols: "image" (every view on its own) and "scene" (views merged per scene in the world
frame with ROCA's NMS, when the views carry camera poses; with --full-annotations every
Scan2CAD object of every scene counts, as in ROCA, and the report names that ground truth).

Real data (ROCA's layout): --data DIR holding scan2cad_instances_val.json, --image-root the
ScanNet frames (tasks/scannet_frames_25k/...), --rendering-root ROCA's renderings.

With --compare-with OTHER_MODEL_DIR the other model is evaluated on the same views and the
difference of the alignment accuracies is printed with the 95 % interval of a paired bootstrap
over the same images (or scenes): far narrower than the two models' own intervals side by side.
With --depth sensor (simulated registered sensor depth from the rendered depth, a fixed seed per
view) or --depth true, the model gets depth; the --compare-with model runs on RGB alone, so
--compare-with the same model directory gives the paired gain of the depth. With --floor camera-pose
the model gets each view's floor plane from its camera pose (what a robot's TF gives: the camera
above its base on a flat floor) and rescales the objects to stand on it; the --compare-with model
then runs without it.

Example:
  cad-perception evaluate --data /work/datasets/synth --split val --out runs/eval
  cad-perception evaluate --model-dir runs/stage/model --compare-with models/roca --data datasets/synth
  cad-perception evaluate --depth sensor --compare-with models/roca --data datasets/holdout-v2 --limit 100
  cad-perception evaluate --floor camera-pose --compare-with models/roca --benchmark synthetic-val-v2
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cad_perception_ros.cad.identity import CadKeyIndex
from cad_perception_ros.data.benchmark_cache import ensure_benchmark
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.scan2cad_full import read_full_annotations, scene_objects
from cad_perception_ros.evaluation.breakdown import format_breakdown, plot_rotation_errors
from cad_perception_ros.evaluation.collisions import format_collisions
from cad_perception_ros.evaluation.metrics import EvaluationConfig, format_markdown
from cad_perception_ros.evaluation.report import write_json_report, write_report
from cad_perception_ros.jsonio import refuses_overwrite
from cad_perception_ros.evaluation.run import DEPTH_MODES, FLOOR_MODES, evaluate_aligner, format_comparison
from cad_perception_ros.geometry.depth_fit import DepthFitConfig
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.contract import BACKENDS
from cad_perception_ros.runtime.network import default_model_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, default=None, help="model directory (default: the bundled models/roca)")
    parser.add_argument("--data", type=Path, default=None, help="data root in the Scan2CAD image format")
    parser.add_argument("--benchmark", default=None, metavar="NAME",
                        help="evaluate on a named split instead of --data (data/benchmark.py), rendered on first "
                             "use into the cache (.cache/benchmarks/) and reused until its recipe changes")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write one JSON report: per protocol the class and instance averages, the 95 %% "
                             "interval, per-class figures, and the per-criterion breakdown")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument("--image-root", type=Path, default=None,
                        help="real data: root of the ScanNet frames the file_names name (default: DATA/images)")
    parser.add_argument("--rendering-root", type=Path, default=None,
                        help="real data: root of ROCA's depth/instance renderings (default: DATA/rendering)")
    parser.add_argument("--full-annotations", type=Path, default=None, metavar="FILE",
                        help="scene protocol ground truth: Scan2CAD's full_annotations.json; every object of "
                             "each scene counts (ROCA), also scenes without predictions (default: the objects "
                             "seen in the evaluated frames)")
    parser.add_argument("--scene-list", type=Path, default=None, metavar="FILE",
                        help="with --full-annotations: the scenes that count, one id a line (ROCA: "
                             "metadata/scannetv2_val.txt; default: the scenes of the split's images)")
    parser.add_argument("--retrieval-match", choices=("exact", "surface-iou"), default="exact",
                        help="retrieval-aware accuracy: exact CAD match (ROCA's default) or surface-voxel "
                             "IoU >= 0.5 of the 32^3 grids (ROCA's optional grid test)")
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="detections kept by the aligner (default 0.05): AP50 ranks all of them, "
                             "alignment accuracy counts only scores >= 0.5 (Scan2CAD/ROCA)")
    parser.add_argument("--retrieval", choices=("learned", "chamfer"), default=None,
                        help="CAD retrieval: learned embedding or Chamfer from NOCs (default: the model's)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N views")
    parser.add_argument("--protocol", default="both", choices=("image", "scene", "both"))
    parser.add_argument("--out", type=Path, default=None, help="write the reports (<name>_<protocol>.json/.md, <name>_collisions.json) and <name>_rotation_errors.png here")
    parser.add_argument("--name", default="evaluation", help="report file name stem (default: evaluation)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing reports")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="MODEL_DIR",
                        help="also evaluate this model on the same views and print the difference of the "
                             "alignment accuracies with a paired 95 %% bootstrap interval (on RGB alone "
                             "when --depth is given)")
    parser.add_argument("--depth", choices=DEPTH_MODES, default=None,
                        help="give the model registered depth: sensor (simulated sensor depth of the rendered "
                             "depth, data/sensor_depth.py, seeded per view) or true (the rendered depth)")
    parser.add_argument("--depth-fit", action="store_true",
                        help="with --depth: fit each object's retrieved CAD to the depth in its mask (trimmed ICP in "
                             "translation and heading, geometry/depth_fit.py)")
    parser.add_argument("--compare-inputs", choices=("rgb", "same"), default="rgb",
                        help="what the --compare-with model gets: rgb (RGB alone, the default) or same (the same "
                             "--depth and --floor; the paired difference is then that of the model or of --depth-fit)")
    parser.add_argument("--floor", choices=FLOOR_MODES, default=None,
                        help="give the model the floor plane: camera-pose (z = 0 of each view's world frame "
                             "seen from its camera pose, as a robot's TF gives it); objects are rescaled to stand on it")



def run(args: argparse.Namespace) -> int:
    if args.json is not None and _exists_without_overwrite(args.json, args):
        return 2  # before the evaluation, so no work is done for nothing
    model_dir = args.model_dir or default_model_dir()
    options = dict(backend=args.backend, device=args.device, retrieval=args.retrieval,
                   score_threshold=args.score_threshold)
    try:
        aligner = CadAligner.from_model_dir(model_dir, **options)
        other = CadAligner.from_model_dir(args.compare_with, **options) if args.compare_with else None
        if args.depth_fit:
            if args.depth is None:
                raise ValueError("--depth-fit needs --depth sensor or --depth true")
            aligner.depth_fit = DepthFitConfig()
        if args.benchmark:
            args.data, args.split = ensure_benchmark(args.benchmark)
        elif args.data is None:
            raise ValueError("pass --data DIR or --benchmark NAME")
        dataset = SyntheticDataset(args.data, args.split, image_root=args.image_root,
                                   rendering_root=args.rendering_root, cad_database=aligner.cad_database,
                                   strict_cads=False)
        scene_objects, ground_truth = _scene_ground_truth(args, dataset, aligner.cad_database)
        if missing := dataset.unresolved_keys():
            print(f"note: {len(missing)} ground-truth CAD models are not in the model's CAD database (e.g. "
                  f"{missing[0]}): their poses are read unconverted and they never count as retrieved", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    protocols = ("image", "scene") if args.protocol == "both" else (args.protocol,)
    config = EvaluationConfig(retrieval_match=args.retrieval_match)
    results = evaluate_aligner(aligner, dataset, limit=args.limit, protocols=(*protocols, "collisions", "breakdown"),
                               depth=args.depth, config=config, scene_objects=scene_objects, ground_truth=ground_truth,
                               floor=args.floor)
    collisions = results.pop("collisions", None)
    breakdown, matched = results.pop("breakdown"), results.pop("matched_errors")
    inputs = (f", depth {args.depth}" if args.depth else "") + (f", floor {args.floor}" if args.floor else "")
    with_depth = inputs + (", depth fit" if args.depth_fit else "")
    for protocol, result in results.items():
        print(f"\n## {protocol} protocol ({aligner.model_name}{with_depth}, {args.data.name}/{args.split})\n")
        print(format_markdown(result))
        if args.out is not None:
            try:
                paths = write_report(result, args.out, name=f"{args.name}_{protocol}", overwrite=args.overwrite,
                                     title=f"{aligner.model_name} on {args.data.name}/{args.split}, {protocol} protocol")
            except FileExistsError as exc:
                print(f"evaluate: {exc}", file=sys.stderr)
                return 2
            print(f"wrote {paths[0]} and {paths[1]}")
    if args.json is not None:
        write_json_report(args.json, results, breakdown, model=aligner.model_name,
                          data=str(args.benchmark or args.data), split=args.split, depth=args.depth, floor=args.floor,
                          depth_fit=args.depth_fit)
        print(f"wrote {args.json}")
    print(f"\n## each criterion alone, detected objects (score >= 0.5) ({aligner.model_name}{with_depth})\n")
    print(format_breakdown(breakdown))
    if args.out is not None:
        png = args.out / f"{args.name}_rotation_errors.png"
        if _exists_without_overwrite(png, args):
            return 2
        print(f"wrote {plot_rotation_errors(matched, png, title=f'{aligner.model_name}: rotation error of detected objects')}")
    if other is not None:
        same = args.compare_inputs == "same"
        other_name = f"{other.model_name}{' (RGB alone)' if (args.depth or args.floor) and not same else ''}"
        other_name += inputs if same else ""
        other_results = evaluate_aligner(other, dataset, limit=args.limit, protocols=(*protocols, "breakdown"),
                                         config=config, scene_objects=scene_objects, ground_truth=ground_truth,
                                         depth=args.depth if same else None, floor=args.floor if same else None)
        other_breakdown = other_results.pop("breakdown")
        other_results.pop("matched_errors")
        print(f"\n## each criterion alone, detected objects (score >= 0.5) ({other_name})\n")
        print(format_breakdown(other_breakdown))
        print(f"\n## {aligner.model_name}{with_depth} minus {other_name}: alignment accuracy, paired bootstrap\n")
        print(format_comparison(results, other_results))
    if collisions is not None:
        return _report_collisions(collisions, args, aligner.model_name)
    return 0



def _scene_ground_truth(args: argparse.Namespace, dataset, database) -> tuple[dict | None, str | None]:
    """(world-frame objects per scene, a sentence saying where they came from) of --full-annotations,
    or (None, None) without it. ValueError for a bad file."""
    if args.full_annotations is None:
        if args.scene_list is not None:
            raise ValueError("--scene-list needs --full-annotations")
        return None, None
    if args.scene_list is not None:
        scenes = [line.strip() for line in args.scene_list.read_text(encoding="utf-8").splitlines() if line.strip()]
        where = f"the {len(scenes)} scenes of {args.scene_list}"
    else:
        scenes = sorted(set(dataset.scene_ids()))
        where = f"the {len(scenes)} scenes of the split's images"
    keys = CadKeyIndex(database) if database is not None else None
    objects = scene_objects(read_full_annotations(args.full_annotations), keys=keys, scenes=scenes)
    count = sum(len(v) for v in objects.values())
    return objects, f"Scan2CAD full annotations {args.full_annotations} ({count} objects in {where})"


def _report_collisions(metrics, args: argparse.Namespace, model_name: str) -> int:
    """Print the collision table (Points2Objects Table 3) and write <name>_collisions.json to --out."""
    print(f"\n## collisions ({model_name}, {args.data.name}/{args.split})\n")
    print(format_collisions(metrics))
    if args.out is not None:
        path = args.out / f"{args.name}_collisions.json"
        if _exists_without_overwrite(path, args):
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics._asdict(), indent=1), encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _exists_without_overwrite(path: Path, args: argparse.Namespace) -> bool:
    return refuses_overwrite(path, args.overwrite, "evaluate")
