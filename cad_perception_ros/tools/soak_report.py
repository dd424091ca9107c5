"""Figures of a soak run (ROS-free): per-second samples and per-frame latencies -> summary,
verdict against stated bounds, CSV / JSON files and a PNG plot over time.

Bounds (SoakBounds, the only place they live):
  * memory: node RSS at the end (median of the last 5 samples) minus RSS at the start (median of
    the first 5 samples after warm-up) < max_memory_growth_mb;
  * latency drift: p50 latency of the last window <= max_latency_drift * p50 of the first window
    after warm-up + latency_slack_ms (the slack keeps millisecond jitter of a fast aligner from
    failing the factor);
  * the node published at least one frame after warm-up.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from cad_perception_ros.runtime.timing import percentiles

SAMPLE_FIELDS = ("t_s", "rss_mb", "frames_in", "frames_out", "node_received", "node_processed",
                 "frames_dropped", "errors", "rejected", "latency_p50_ms", "latency_p95_ms")


@dataclass(frozen=True)
class SoakBounds:
    """Pass/fail bounds of a soak run (see the module docstring)."""

    max_memory_growth_mb: float = 50.0
    max_latency_drift: float = 1.5
    latency_slack_ms: float = 5.0


class Window(NamedTuple):
    """Time spans of a run in seconds from the first camera frame: warm-up end, drift windows."""

    warmup_s: float
    first: tuple[float, float]
    last: tuple[float, float]


def windows(duration_s: float, warmup_s: float, window_s: float) -> Window:
    """Warm-up capped at duration/4; drift windows capped at a third of the time after warm-up."""
    warm = min(warmup_s, duration_s / 4)
    span = min(window_s, (duration_s - warm) / 3)
    return Window(warm, (warm, warm + span), (duration_s - span, duration_s))


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    return percentiles(values, with_max=True)


def summarize(samples: list[dict], latencies: np.ndarray, span: Window, bounds: SoakBounds) -> dict:
    """samples: per-second dicts with SAMPLE_FIELDS; latencies: (F, 2) [t_s of arrival, latency ms]."""
    latencies = np.asarray(latencies, dtype=np.float64).reshape(-1, 2)  # (F, 2)
    after = [s for s in samples if s["t_s"] >= span.warmup_s] or samples[-1:]
    rss_start = float(np.median([s["rss_mb"] for s in after[:5]])) if after else float("nan")
    rss_end = float(np.median([s["rss_mb"] for s in after[-5:]])) if after else float("nan")
    in_span = lambda lo, hi: latencies[(latencies[:, 0] >= lo) & (latencies[:, 0] < hi), 1]  # noqa: E731
    first, last = in_span(*span.first), in_span(*span.last)
    p50_first = float(np.median(first)) if len(first) else None
    p50_last = float(np.median(last)) if len(last) else None
    end = samples[-1] if samples else {k: 0 for k in SAMPLE_FIELDS}
    growth = rss_end - rss_start
    checks = {
        "memory_growth_ok": bool(growth < bounds.max_memory_growth_mb),
        "latency_drift_ok": bool(p50_first is not None and p50_last is not None
                                 and p50_last <= bounds.max_latency_drift * p50_first + bounds.latency_slack_ms),
        "frames_published_ok": bool(len(latencies[latencies[:, 0] >= span.warmup_s]) > 0),
    }
    return {
        "frames_in": int(end["frames_in"]), "frames_out": int(end["frames_out"]),
        "node_received": int(end["node_received"]), "node_processed": int(end["node_processed"]),
        "frames_dropped": int(end["frames_dropped"]), "errors": int(end["errors"]), "rejected": int(end["rejected"]),
        "latency_ms_all": _percentiles(latencies[:, 1]),
        "latency_ms_after_warmup": _percentiles(latencies[latencies[:, 0] >= span.warmup_s, 1]),
        "latency_p50_first_window_ms": p50_first, "latency_p50_last_window_ms": p50_last,
        "rss_start_mb": rss_start, "rss_end_mb": rss_end, "rss_growth_mb": growth,
        "rss_peak_mb": max((s["rss_mb"] for s in samples), default=float("nan")),
        "windows": span._asdict(), "bounds": asdict(bounds), "checks": checks, "passed": all(checks.values()),
    }


def write_files(out: Path, samples: list[dict], latencies: np.ndarray, summary: dict) -> list[Path]:
    """samples.csv, latencies.csv, summary.json, soak.png in `out` (which must exist)."""
    with open(out / "samples.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SAMPLE_FIELDS)
        writer.writeheader()
        writer.writerows(samples)
    np.savetxt(out / "latencies.csv", np.asarray(latencies).reshape(-1, 2), delimiter=",", fmt="%.3f",
               header="t_arrival_s,latency_ms", comments="")
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    plot(out / "soak.png", samples, summary)
    return [out / n for n in ("samples.csv", "latencies.csv", "summary.json", "soak.png")]


def plot(path: Path, samples: list[dict], summary: dict) -> None:
    """Three panels over time: node RSS, latency p50/p95 per second, cumulative frame counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t_s"] for s in samples], dtype=np.float64)
    col = lambda k: np.array([np.nan if s[k] is None else s[k] for s in samples], dtype=np.float64)  # noqa: E731
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    axes[0].plot(t, col("rss_mb"), color="tab:blue")
    axes[0].set_ylabel("node RSS (MB)")
    axes[1].plot(t, col("latency_p50_ms"), label="p50", color="tab:green")
    axes[1].plot(t, col("latency_p95_ms"), label="p95", color="tab:orange")
    axes[1].set_ylabel("stamp -> ~/alignments (ms)")
    axes[1].legend(loc="upper right")
    for key, colour in (("frames_in", "tab:blue"), ("frames_out", "tab:green"), ("frames_dropped", "tab:red"),
                        ("errors", "black")):
        axes[2].plot(t, col(key), label=key, color=colour)
    axes[2].set_ylabel("frames (cumulative)")
    axes[2].set_xlabel("time since the first camera frame (s)")
    axes[2].legend(loc="upper left")
    for ax in axes:
        ax.axvspan(0, summary["windows"]["warmup_s"], color="grey", alpha=0.15)
        ax.grid(alpha=0.3)
    verdict = "PASS" if summary["passed"] else "FAIL"
    axes[0].set_title(f"soak: {summary['frames_in']} in, {summary['frames_out']} out, "
                      f"{summary['frames_dropped']} dropped; RSS growth {summary['rss_growth_mb']:.1f} MB; {verdict}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
