"""Write evaluation results as JSON (machine-readable) and Markdown (README table)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cad_perception_ros.evaluation.metrics import EvaluationResults, format_markdown


def write_report(results: EvaluationResults, out_dir: str | Path, *, name: str = "evaluation",
                 overwrite: bool = False, title: str | None = None) -> tuple[Path, Path]:
    """Write <out_dir>/<name>.json and <name>.md; returns both paths.

    Raises FileExistsError when either file exists and overwrite is False.
    """
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    existing = [str(p) for p in (json_path, md_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (pass overwrite=True / --overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    header = f"# {title}\n\n" if title else ""
    md_path.write_text(header + format_markdown(results), encoding="utf-8")
    return json_path, md_path


def read_report(path: str | Path) -> dict:
    """Load a JSON report written by `write_report` (plain dict)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read evaluation report: {exc}") from None


def write_json_report(path: Path, results: dict, breakdown, *, model: str, data: str, split: str,
                      depth: str | None = None, floor: str | None = None, depth_fit: bool = False) -> None:
    """One JSON file: per protocol EvaluationResults.to_dict() (class and instance averages, the 95 %
    interval, per class) and the per-criterion breakdown of the detected objects. depth: the depth
    the model got (None = RGB alone, "sensor", "true"; evaluation/run.py); floor: the floor plane
    it got (None, "camera-pose"); depth_fit: whether its CADs were fitted to the depth."""
    report = {"model": model, "data": data, "split": split, "depth": depth, "floor": floor, "depth_fit": depth_fit,
              "protocols": {p: r.to_dict() for p, r in results.items()},
              "breakdown": {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                            for k, v in breakdown._asdict().items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
