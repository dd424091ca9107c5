"""ROCA's Tables 1 and 2 for ROCA v2: the ways to turn one trained crop network's outputs into a pose.

  cad-perception ablate-crop --data datasets/holdout-v2 [--model-dir models/roca] [--limit N] [--json F] [--md F]

Every row evaluates the same model directory (the same detections, the same crop network) on the
same views with one decode changed, and is compared with the shipped decode by a paired
bootstrap over the images:

    direct      rotation from the heading bins and the up vector, SITE translation (no solve; shipped)
    P           the weighted Procrustes solve on the predicted NOCs, uniform weights, SITE translation
    P+W         the same with the learned weights (ROCA Eq. 7)
    P+W+T       P+W, then the translation refined by ROCA Eq. 11
    gated       P+W where it lies within gate_deg of the heading rotation, else the heading rotation
    floor       the shipped decode plus the floor plane of each view's camera pose (geometry/floor.py)
    chamfer     the shipped decode with Chamfer retrieval from the detector's NOCs (Table 2; the
                others use the learned embedding)

What these rows cannot separate: end-to-end training (E) and the completion loss change the
training, not the decode, and would need a network trained without them. The crop network runs
in torch here; the detector runs again for every row (a few ms a view).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.evaluation.bootstrap import bootstrap_difference
from cad_perception_ros.evaluation.run import evaluate_aligner
from cad_perception_ros.jsonio import refuses_overwrite, write_json_report
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.crop_stage import CropStage
from cad_perception_ros.runtime.network import default_model_dir

# name -> (crop config overrides, retrieval, floor)
ROWS: dict[str, tuple[dict, str | None, str | None]] = {
    "direct": ({"rotation": "heading", "refine_translation": False}, None, None),
    "P": ({"rotation": "procrustes", "refine_translation": False, "learned_weights": False}, None, None),
    "P+W": ({"rotation": "procrustes", "refine_translation": False}, None, None),
    "P+W+T": ({"rotation": "procrustes", "refine_translation": True}, None, None),
    "gated": ({"rotation": "gated", "refine_translation": False}, None, None),
    "floor": ({"rotation": "heading", "refine_translation": False}, None, "camera-pose"),
    "chamfer": ({"rotation": "heading", "refine_translation": False}, "chamfer", None),
}
BASELINE = "direct"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data root in the Scan2CAD image format (views with poses)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model-dir", type=Path, default=None, help="ROCA v2 model directory (default: the bundled models/roca)")
    parser.add_argument("--limit", type=int, default=None, help="first N views (default: all)")
    parser.add_argument("--only", default=None, help=f"comma-separated rows (default: all of {', '.join(ROWS)})")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--md", type=Path, default=None, help="write the table as Markdown")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --json / --md files")


def row_aligner(base: CadAligner, model_dir: Path, overrides: dict, retrieval: str | None) -> CadAligner:
    """A copy of base whose crop stage decodes with the overrides (retrieval: a new load)."""
    aligner = CadAligner.from_model_dir(model_dir, retrieval=retrieval) if retrieval else copy.copy(base)
    stage = aligner.crop_stage
    if stage is None:
        raise ValueError(f"{model_dir} has no crop network (ROCA v2): nothing to ablate")
    aligner.crop_stage = CropStage(model=stage.model, config=dataclasses.replace(stage.config, **overrides))
    return aligner


def run(args: argparse.Namespace) -> int:
    names = list(ROWS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        print(f"ablate-crop: unknown rows {unknown}; rows: {list(ROWS)}", file=sys.stderr)
        return 2
    for path in (args.json, args.md):
        if path is not None and refuses_overwrite(path, args.overwrite, "ablate-crop"):
            return 2
    model_dir = args.model_dir or default_model_dir()
    try:
        base = CadAligner.from_model_dir(model_dir)
        dataset = SyntheticDataset(args.data, args.split, cad_database=base.cad_database, strict_cads=False)
        aligners = {n: row_aligner(base, model_dir, *ROWS[n][:2]) for n in names}
    except (OSError, ValueError) as exc:
        print(f"ablate-crop: {exc}", file=sys.stderr)
        return 2
    results = {}
    for name in names:
        print(f"row {name}", file=sys.stderr)
        results[name] = evaluate_aligner(aligners[name], dataset, limit=args.limit, protocols=("image", "breakdown"),
                                         floor=ROWS[name][2])
    rows = summarise_rows(results)
    table = format_rows(rows, model=str(model_dir), data=f"{args.data}/{args.split}", views=args.limit)
    print(table)
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(table + "\n", encoding="utf-8")
    if args.json is not None:
        write_json_report(args.json, {"model": str(model_dir), "data": str(args.data), "split": args.split,
                                      "limit": args.limit, "rows": rows})
    return 0


def summarise_rows(results: dict) -> list[dict]:
    """Per row: accuracies (percent), the per-criterion rates of the detected objects and the paired
    difference of the instance accuracy to BASELINE (when it was run)."""
    base = results.get(BASELINE)
    rows = []
    for name, r in results.items():
        image, b = r["image"], r["breakdown"]
        row = {"row": name, "instance": image.instance_average("alignment_accuracy"),
               "class": image.class_average("alignment_accuracy"),
               "retrieval_aware": image.instance_average("retrieval_accuracy"), "ap50": image.ap50_instance,
               "interval": list((image.alignment_interval or {}).get("instance_average", ())),
               "detected": b.num_detected, "rotation_ok": b.rotation_ok, "translation_ok": b.translation_ok,
               "scale_ok": b.scale_ok, "all_ok": b.all_ok, "right_cad": b.retrieval_ok}
        if base is not None and name != BASELINE:
            row["minus_direct"] = list(bootstrap_difference(image.unit_counts, base["image"].unit_counts)["instance_average"])
            row["difference"] = row["instance"] - base["image"].instance_average("alignment_accuracy")
        rows.append(row)
    return rows


def format_rows(rows: list[dict], *, model: str, data: str, views) -> str:
    lines = [f"Decode ablations of {model} on {data} ({'all' if views is None else views} views); "
             "criteria rates are of the detected objects (score >= 0.5, IoU >= 0.5).", "",
             "| row | align. inst. (95 %) | align. class | retrieval-aware inst. | R <= 20 deg | t <= 20 cm | "
             "scale <= 20 % | all three | right CAD | minus direct (paired 95 %) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        low_high = f" ({r['interval'][0]:.1f}-{r['interval'][1]:.1f})" if len(r["interval"]) == 2 else ""
        diff = (f"{r['difference']:+.1f} ({r['minus_direct'][0]:+.1f} to {r['minus_direct'][1]:+.1f})"
                if "minus_direct" in r else "-")
        lines.append(f"| {r['row']} | {r['instance']:.1f}{low_high} | {r['class']:.1f} | {r['retrieval_aware']:.1f} | "
                     f"{r['rotation_ok']:.1f} | {r['translation_ok']:.1f} | {r['scale_ok']:.1f} | {r['all_ok']:.1f} | "
                     f"{r['right_cad']:.1f} | {diff} |")
    return "\n".join(lines)
