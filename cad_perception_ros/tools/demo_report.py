"""What the demo reports: Scan2CAD accuracy of the published predictions (evaluation/metrics.py),
latency percentiles, the node's overhead over the bare pipeline, and the bare pipeline run
directly on the same frames (`--measure-overhead`). Pure Python on decoded messages."""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from cad_perception_ros.evaluation.metrics import evaluate_images
from cad_perception_ros.evaluation.run import grid_iou_lookup
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.ros.aligners import filter_predictions
from cad_perception_ros.ros.params import NodeParams
from cad_perception_ros.runtime.timing import percentile
from cad_perception_ros.types import SCAN2CAD_CLASSES


def latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    """{n, p50, p95, mean, max} in milliseconds ({} when empty)."""
    values = [float(v) for v in values_ms]
    if not values:
        return {}
    return {"n": len(values), "p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2),
            "mean": round(float(np.mean(values)), 2), "max": round(max(values), 2)}


def accuracy(frames, database=None, class_names=None) -> dict:
    """Scan2CAD per-image scores of [(predictions, ground-truth objects)] (one camera frame each).

    Returns instance/class averages (percent) of alignment accuracy, retrieval-aware accuracy and
    AP50, plus ground-truth and prediction counts. Symmetries and voxel-IoU retrieval come from
    `database` when given (as `cad-perception evaluate` does).
    """
    frames = list(frames)
    kwargs = {"class_names": tuple(class_names or SCAN2CAD_CLASSES)}
    if database is not None:
        kwargs.update(symmetry_of={m.cad_id: m.symmetry for m in database}, cad_iou=grid_iou_lookup(database))
    result = evaluate_images(frames, **kwargs).to_dict()
    return {"instance_average": result["instance_average"], "class_average": result["class_average"],
            "aligned": sum(c["aligned"] for c in result["classes"]),
            "ground_truth": sum(len(objects) for _, objects in frames),
            "predicted": sum(len(preds) for preds, _ in frames), "images": result["num_units"],
            "criteria": {k: result["config"][k] for k in ("translation_m", "rotation_deg", "scale_ratio",
                                                          "score_threshold")}}


def last_diagnostics(messages: Sequence) -> dict[str, str]:
    """Key/values of the node's status in the last DiagnosticArray ({} when none)."""
    for msg in reversed(list(messages)):
        for status in msg.status:
            if "cad perception" in status.name:
                return {kv.key: kv.value for kv in status.values}
    return {}


def bare_pipeline(model_dir, samples, score_threshold: float, backend: str = "torch") -> dict:
    """The CadAligner run directly on the same frames (after one warm-up call), filtered like the
    node: {"predictions": [[CadPrediction]], "wall_ms": stats, "pipeline_ms": stats}."""
    aligner = CadAligner.from_model_dir(model_dir, backend=backend, score_threshold=score_threshold)
    params = NodeParams(score_threshold=score_threshold)
    aligner(samples[0].image, samples[0].K)  # warm-up
    predictions, wall, totals = [], [], []
    for sample in samples:
        t0 = time.perf_counter()
        predictions.append(filter_predictions(aligner(sample.image, sample.K), params))
        wall.append((time.perf_counter() - t0) * 1e3)
        totals.append(aligner.last_timings["total"])
    return {"predictions": predictions, "wall_ms": latency_stats(wall), "pipeline_ms": latency_stats(totals),
            "torch_threads": torch.get_num_threads(),
            "cad_database": aligner.cad_database, "class_names": aligner.class_names}


def format_accuracy(acc: dict) -> str:
    inst, cls = acc["instance_average"], acc["class_average"]
    fmt = lambda x: "-" if x is None else f"{x:.1f}%"  # noqa: E731
    c = acc["criteria"]
    return (f"alignment accuracy {fmt(inst['alignment_accuracy'])} ({acc['aligned']}/{acc['ground_truth']} objects, "
            f"class avg {fmt(cls['alignment_accuracy'])}), retrieval-aware {fmt(inst['retrieval_accuracy'])}, "
            f"AP50 {fmt(inst['ap50'])}; {acc['predicted']} predicted in {acc['images']} images "
            f"[Scan2CAD: t <= {c['translation_m']} m, R <= {c['rotation_deg']} deg, scale <= "
            f"{c['scale_ratio'] * 100:g} %, score > {c['score_threshold']}]")
