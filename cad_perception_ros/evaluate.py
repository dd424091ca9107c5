"""Evaluate a model directory on a data split with the Scan2CAD alignment criteria.

Runs the same CadAligner the node and `predict` use, then reports per class, class average
and instance average: alignment accuracy, retrieval-aware alignment accuracy (the retrieved
CAD model must match the ground truth's, or reach voxel IoU >= 0.5 with it, as ROCA scores
it) and detection AP50; beside them the collision metrics of Points2Objects' Table 3 (mean
intersection volume per image, colliding pairs per image) of the predicted CAD models. Protocols: "image" (every view on its own) and "scene" (views merged
per scene in the world frame with ROCA's NMS, when the views carry camera poses).

With --compare-with OTHER_MODEL_DIR the other model is evaluated on the same views and the
difference of the alignment accuracies is printed with the 95 % interval of a paired bootstrap
over the same images (or scenes): far narrower than the two models' own intervals side by side.

Example:
  cad-perception evaluate --data /work/datasets/synth --split val --out runs/eval
  cad-perception evaluate --model-dir runs/stage/model --compare-with models/roca --data datasets/synth
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np


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
    parser.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="detections kept by the aligner (default 0.05): AP50 ranks all of them, "
                             "alignment accuracy counts only scores > 0.5 (Scan2CAD/ROCA)")
    parser.add_argument("--retrieval", choices=("learned", "chamfer"), default=None,
                        help="CAD retrieval: learned embedding or Chamfer from NOCs (default: the model's)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N views")
    parser.add_argument("--protocol", default="both", choices=("image", "scene", "both"))
    parser.add_argument("--out", type=Path, default=None, help="write the reports (<name>_<protocol>.json/.md, <name>_collisions.json) and <name>_rotation_errors.png here")
    parser.add_argument("--name", default="evaluation", help="report file name stem (default: evaluation)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing reports")
    parser.add_argument("--compare-with", type=Path, default=None, metavar="MODEL_DIR",
                        help="also evaluate this model on the same views and print the difference of the "
                             "alignment accuracies with a paired 95 %% bootstrap interval")


def grid_iou_lookup(database) -> Callable[[str, str], float]:
    """cad_iou(a, b): voxel IoU of two CAD models' 32^3 occupancy grids (cached per pair)."""
    grids = database.grids  # (N, G, G, G) bool
    cache: dict[tuple[str, str], float] = {}

    def cad_iou(a: str, b: str) -> float:
        if a == b:
            return 1.0
        if a not in database or b not in database:
            return 0.0
        key = (a, b) if a < b else (b, a)
        if key not in cache:
            ga, gb = grids[database.index_of(a)], grids[database.index_of(b)]
            union = np.logical_or(ga, gb).sum()
            cache[key] = float(np.logical_and(ga, gb).sum() / union) if union else 0.0
        return cache[key]

    return cad_iou


def objects_in_model_classes(objects, class_names) -> list:
    """Ground truth (class ids in SCAN2CAD_CLASSES order) re-indexed to the model's class list by
    name; objects of classes the model does not predict are left out of its evaluation."""
    from dataclasses import replace

    from cad_perception_ros.types import SCAN2CAD_CLASSES

    names = list(class_names)
    out = []
    for obj in objects:
        name = SCAN2CAD_CLASSES[obj.class_id] if 0 <= obj.class_id < len(SCAN2CAD_CLASSES) else None
        if name in names:
            out.append(replace(obj, class_id=names.index(name)))
    return out


def evaluate_aligner(aligner, dataset, *, limit: int | None = None, protocols=("image", "scene"),
                     progress: bool = True) -> dict:
    """Run `aligner` over `dataset` (Sequence[SceneSample]); EvaluationResults per protocol,
    CollisionMetrics under "collisions" when protocols names it and the aligner has a CAD database,
    and the per-criterion ErrorBreakdown under "breakdown" (with the per-object MatchedErrors
    under "matched_errors") when protocols names it."""
    from tqdm import tqdm

    from cad_perception_ros.evaluation.metrics import evaluate_images
    from cad_perception_ros.evaluation.scene import SceneFrame, evaluate_scenes

    database = aligner.cad_database
    symmetry_of = {m.cad_id: m.symmetry for m in database} if database is not None else None
    cad_iou = grid_iou_lookup(database) if database is not None else None
    count = len(dataset) if limit is None else min(limit, len(dataset))
    frames = []
    for i in tqdm(range(count), desc="evaluate", unit="view", disable=not progress):
        sample = dataset[i]
        predictions = aligner(sample.image, sample.K)
        frames.append(SceneFrame(scene_id=sample.scene_id, camera_to_world=sample.camera_to_world,
                                 predictions=predictions,
                                 objects=objects_in_model_classes(sample.objects, aligner.class_names)))
    kwargs = dict(class_names=aligner.class_names, symmetry_of=symmetry_of, cad_iou=cad_iou)
    results = {}
    if "collisions" in protocols and database is not None:
        from cad_perception_ros.evaluation.collisions import evaluate_collisions

        from cad_perception_ros.evaluation.metrics import EvaluationConfig

        # Collisions between the objects the model reports: the alignment metrics' score cut.
        cut = EvaluationConfig().score_threshold
        results["collisions"] = evaluate_collisions([[p for p in f.predictions if p.score > cut] for f in frames],
                                                    database)
    if "breakdown" in protocols:
        from cad_perception_ros.evaluation.breakdown import match_errors, summarise
        matched = match_errors(((f.predictions, f.objects) for f in frames), symmetry_of=symmetry_of, cad_iou=cad_iou)
        results["breakdown"], results["matched_errors"] = summarise(matched), matched
    if "image" in protocols:
        results["image"] = evaluate_images(((f.predictions, f.objects) for f in frames), **kwargs)
    if "scene" in protocols:
        results["scene"] = evaluate_scenes(frames, **kwargs)
    return results


def run(args: argparse.Namespace) -> int:
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.evaluation.metrics import format_markdown
    from cad_perception_ros.evaluation.report import write_report
    from cad_perception_ros.pipeline import CadAligner
    from cad_perception_ros.runtime.loading import default_model_dir

    model_dir = args.model_dir or default_model_dir()
    options = dict(backend=args.backend, device=args.device, retrieval=args.retrieval,
                   score_threshold=args.score_threshold)
    try:
        aligner = CadAligner.from_model_dir(model_dir, **options)
        other = CadAligner.from_model_dir(args.compare_with, **options) if args.compare_with else None
        if args.benchmark:
            from cad_perception_ros.data.benchmark_cache import ensure_benchmark

            args.data, args.split = ensure_benchmark(args.benchmark)
        elif args.data is None:
            raise ValueError("pass --data DIR or --benchmark NAME")
        dataset = SyntheticDataset(args.data, args.split)
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    protocols = ("image", "scene") if args.protocol == "both" else (args.protocol,)
    results = evaluate_aligner(aligner, dataset, limit=args.limit, protocols=(*protocols, "collisions", "breakdown"))
    collisions = results.pop("collisions", None)
    breakdown, matched = results.pop("breakdown"), results.pop("matched_errors")
    for protocol, result in results.items():
        print(f"\n## {protocol} protocol ({aligner.model_name}, {args.data.name}/{args.split})\n")
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
                          data=str(args.benchmark or args.data), split=args.split)
        print(f"wrote {args.json}")
    from cad_perception_ros.evaluation.breakdown import format_breakdown
    print(f"\n## each criterion alone, detected objects (score > 0.5) ({aligner.model_name})\n")
    print(format_breakdown(breakdown))
    if args.out is not None:
        from cad_perception_ros.evaluation.breakdown import plot_rotation_errors
        png = args.out / f"{args.name}_rotation_errors.png"
        if png.exists() and not args.overwrite:
            print(f"evaluate: {png} exists: pass --overwrite to replace it", file=sys.stderr)
            return 2
        print(f"wrote {plot_rotation_errors(matched, png, title=f'{aligner.model_name}: rotation error of detected objects')}")
    if other is not None:
        other_results = evaluate_aligner(other, dataset, limit=args.limit, protocols=protocols)
        print(f"\n## {aligner.model_name} minus {other.model_name}: alignment accuracy, paired bootstrap\n")
        print(format_comparison(results, other_results))
    if collisions is not None:
        return _report_collisions(collisions, args, aligner.model_name)
    return 0


def format_comparison(results: dict, other_results: dict) -> str:
    """Markdown: per protocol and average, model A's alignment accuracy, model B's, and A - B with
    the 95 % interval of a paired bootstrap over the shared units (evaluation/bootstrap.py)."""
    from cad_perception_ros.evaluation.bootstrap import bootstrap_difference, format_difference

    lines = ["| protocol | average | this model | other model | difference (paired 95 % interval) |",
             "|---|---|---:|---:|---|"]
    for protocol, a in results.items():
        b = other_results[protocol]
        try:
            band = bootstrap_difference(a.unit_counts, b.unit_counts)
        except ValueError as exc:  # e.g. no units with ground truth
            lines.append(f"| {protocol} | - | - | - | not comparable: {exc} |")
            continue
        for average, fn_a, fn_b in (("class", a.class_average, b.class_average),
                                    ("instance", a.instance_average, b.instance_average)):
            va, vb = fn_a("alignment_accuracy"), fn_b("alignment_accuracy")
            lines.append(f"| {protocol} ({a.num_units} units) | {average} | {va:.1f} % | {vb:.1f} % | "
                         f"{format_difference(va - vb, band[f'{average}_average'])} |")
    return "\n".join(lines) + "\n"


def _report_collisions(metrics, args: argparse.Namespace, model_name: str) -> int:
    """Print the collision table (Points2Objects Table 3) and write <name>_collisions.json to --out."""
    from cad_perception_ros.evaluation.collisions import format_collisions

    print(f"\n## collisions ({model_name}, {args.data.name}/{args.split})\n")
    print(format_collisions(metrics))
    if args.out is not None:
        path = args.out / f"{args.name}_collisions.json"
        if path.exists() and not args.overwrite:
            print(f"evaluate: {path} exists; pass --overwrite to replace it", file=sys.stderr)
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics._asdict(), indent=1), encoding="utf-8")
        print(f"wrote {path}")
    return 0


def summary_line(results: dict) -> str:
    """One line: instance-average alignment accuracy per protocol (for logs)."""
    return json.dumps({p: round(r.instance_average("alignment_accuracy"), 4) for p, r in results.items()})


def write_json_report(path: Path, results: dict, breakdown, *, model: str, data: str, split: str) -> None:
    """One JSON file: per protocol EvaluationResults.to_dict() (class and instance averages, the 95 %
    interval, per class) and the per-criterion breakdown of the detected objects."""
    report = {"model": model, "data": data, "split": split,
              "protocols": {p: r.to_dict() for p, r in results.items()},
              "breakdown": {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                            for k, v in breakdown._asdict().items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
