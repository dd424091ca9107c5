"""Write evaluation results as JSON (machine-readable) and Markdown (README table)."""
from __future__ import annotations

import json
from pathlib import Path

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
