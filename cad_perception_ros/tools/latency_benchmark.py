"""Measure the pipeline per backend and input size, or the CAD retrieval alone (--retrieval).

Pipeline mode: for each backend and each camera image size WxH (--sizes), a W x H image goes
through the whole pipeline (resize to the network input size, which is the model's or
--input-size, intrinsics scaling, network, decode); after warm-up runs, N
timed runs give the median and 95th percentile of the end-to-end latency, the median of every
stage (pre-processing, network, Procrustes, retrieval, post-processing, ROCA v2 crop stage), frames per second
(1000 / median) and peak memory (process RSS via psutil; CUDA max allocated on GPU devices).
Results: benchmark.md (table), benchmark.json and benchmark.png (stacked stage bars). With --depth
every case runs twice, on RGB alone and with a registered sensor depth image (the sensor model of
data/sensor_depth.py on a 2.5 m scene), so the cost of the depth is the difference of two rows.

Retrieval mode: EmbeddingIndex query time for N random CAD embeddings (N = 1k, 10k, 100k by
default; D = the model's embedding size, 128 without a model), a batch of detections per frame.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from cad_perception_ros.cad.retrieval import EmbeddingIndex
from cad_perception_ros.data.sensor_depth import simulate_sensor_depth
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.network import load_network, with_input_size
from cad_perception_ros.runtime.random_model import random_network
from cad_perception_ros.runtime.timing import STAGES, percentile


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"480x360,640x480" -> [(360, 480), (480, 640)] as (H, W)."""
    sizes = []
    for item in text.split(","):
        try:
            w, h = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"size must be WxH, got {item!r}") from None
        sizes.append((h, w))
    return sizes


def summarize(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per-run timings (ms) -> median / p95 of the total, medians per stage, fps."""
    total = np.array([s["total"] for s in samples])
    row = {"median_ms": float(np.median(total)), "p95_ms": percentile(total, 95),
           "fps": float(1000.0 / np.median(total))}
    row.update({f"{stage}_ms": float(np.median([s.get(stage, 0.0) for s in samples])) for stage in STAGES})
    return row


def time_aligner(aligner, image: np.ndarray, K: np.ndarray, runs: int, warmup: int = 2,
                 depth: np.ndarray | None = None) -> dict[str, float]:
    """Run `aligner` warmup + runs times on one image (and its depth (H, W) metres, if given);
    summary with peak RSS (MiB)."""
    import psutil

    process = psutil.Process()
    inputs = (image, K) if depth is None else (image, K, depth)
    for _ in range(warmup):
        aligner(*inputs)
    samples, peak = [], process.memory_info().rss
    for _ in range(runs):
        aligner(*inputs)
        samples.append(dict(aligner.last_timings))
        peak = max(peak, process.memory_info().rss)
    return {**summarize(samples), "peak_rss_mib": peak / 2**20}


def benchmark_retrieval(counts=(1000, 10000, 100000), dim: int = 128, detections: int = 8, runs: int = 50,
                        num_classes: int = 9, seed: int = 0) -> list[dict[str, float]]:
    """Median / p95 time (ms) of one per-frame query (`detections` embeddings with class ids)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in counts:
        index = EmbeddingIndex(rng.standard_normal((n, dim)).astype(np.float32), rng.integers(0, num_classes, n),
                               [str(i) for i in range(n)])
        queries = rng.standard_normal((detections, dim)).astype(np.float32)
        for by_class in (True, False):
            classes = rng.integers(0, num_classes, detections) if by_class else None
            index.query(queries, classes)  # warm-up
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                index.query(queries, classes)
                times.append((time.perf_counter() - t0) * 1e3)
            rows.append({"cads": n, "dim": dim, "detections": detections, "per_class": by_class,
                         "median_ms": float(np.median(times)), "p95_ms": percentile(times, 95)})
    return rows


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(r[c]) for c in columns) + " |\n" for r in rows)


def plot_stages(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\n{r['size']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(rows)), 4))
    bottom = np.zeros(len(rows))
    for stage in STAGES:
        values = np.array([r[f"{stage}_ms"] for r in rows])
        ax.bar(labels, values, bottom=bottom, label=stage)
        bottom += values
    ax.set_ylabel("median latency per stage (ms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_retrieval(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for by_class in (True, False):
        sel = [r for r in rows if r["per_class"] == by_class]
        ax.loglog([r["cads"] for r in sel], [r["median_ms"] for r in sel], "o-",
                  label="per-class" if by_class else "all classes")
    ax.set_xlabel("CAD models in the index")
    ax.set_ylabel("query time per frame (ms, median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", default=None, help="model directory (default: random weights)")
    parser.add_argument("--backends", default="torch,onnxruntime", help="comma list of torch,onnxruntime,tensorrt")
    parser.add_argument("--sizes", default=None, help="comma list of WxH camera image sizes (default: the input size)")
    parser.add_argument("--input-size", default=None, help="WxH network input (multiples of 32; default: the model's)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per case (default 20)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="aligner score threshold (default: the model's; 0 with random weights). "
                             "0 sends all top-K detections through Procrustes and retrieval (worst case)")
    parser.add_argument("--depth", action="store_true",
                        help="also time every case with a registered sensor depth image (rows depth: sensor)")
    parser.add_argument("--retrieval", action="store_true", help="measure CAD retrieval only (1k, 10k, 100k)")
    parser.add_argument("--cads", default="1000,10000,100000", help="index sizes for --retrieval")
    parser.add_argument("--out", default="benchmark", help="output folder (default ./benchmark)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the tables and picture of an earlier run in --out")


def _write(out: Path, name: str, rows: list[dict], columns: list[str], title: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    table = f"# {title}\n\n" + markdown_table(rows, columns)
    (out / f"{name}.md").write_text(table, encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return table


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    name = "retrieval" if args.retrieval else "benchmark"
    earlier = [out / f"{name}.{ext}" for ext in ("md", "json", "png") if (out / f"{name}.{ext}").exists()]
    if earlier and not args.overwrite:  # checked before measuring: nothing is lost, no time is spent
        print(f"benchmark: {earlier[0]} exists: pass --overwrite to replace it, or --out another folder",
              file=sys.stderr)
        return 2
    if args.retrieval:
        dim = 128
        if args.model_dir:
            dim = load_network(args.model_dir).embedding_dim
        rows = benchmark_retrieval([int(v) for v in args.cads.split(",")], dim=dim, runs=max(args.runs, 20))
        print(_write(out, "retrieval", rows, ["cads", "dim", "detections", "per_class", "median_ms", "p95_ms"],
                     "CAD retrieval query time (exact L2, numpy)"))
        plot_retrieval(rows, out / "retrieval.png")
        return 0

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for case in benchmark_cases(args.model_dir, backends=args.backends.split(","),
                                sizes=parse_sizes(args.sizes) if args.sizes else None, device=args.device,
                                input_size=parse_sizes(args.input_size)[0] if args.input_size else None,
                                threads=args.threads, score_threshold=args.score_threshold):
        for depth in (None, sensor_depth_for(case.image)) if args.depth else (None,):
            result = time_aligner(case.aligner, case.image, case.K, runs=args.runs, depth=depth)
            if args.device.startswith("cuda"):
                result["cuda_max_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
            h, w = case.aligner.input_size
            rows.append({"backend": case.backend, "size": f"{case.image.shape[1]}x{case.image.shape[0]}",
                         "input": f"{w}x{h}", "depth": "none" if depth is None else "sensor", **result})
            print(f"{rows[-1]['backend']} {rows[-1]['size']} depth {rows[-1]['depth']}: "
                  f"median {result['median_ms']:.1f} ms", flush=True)
    columns = ["backend", "size", "input", *(["depth"] if args.depth else []), "median_ms", "p95_ms", "fps", *[f"{s}_ms" for s in STAGES], "peak_rss_mib"]
    columns += ["cuda_max_alloc_mib"] if args.device.startswith("cuda") else []
    print(_write(out, "benchmark", rows, columns, f"End-to-end latency ({args.device}, {args.runs} runs)"))
    plot_stages(rows, out / "benchmark.png")
    return 0


def sensor_depth_for(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 metres: the sensor model on a scene 2.5 m away with a 1.5 m box in the middle."""
    h, w = image.shape[:2]
    depth = np.full((h, w), 2.5, np.float32)
    depth[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1.5
    return simulate_sensor_depth(depth, image, np.random.default_rng(0))


class BenchmarkCase(NamedTuple):
    backend: str
    aligner: Any
    image: np.ndarray  # (H, W, 3) uint8 at the network input size
    K: np.ndarray  # (3, 3)



def benchmark_cases(model_dir, *, backends, sizes=None, input_size=None, device="cpu",
                    threads=None, score_threshold: float | None = None) -> Iterator[BenchmarkCase]:
    """One aligner per backend (network at `input_size` (H, W), default the model's), fed one image per
    camera size in `sizes` ((H, W) list, default the input size). Random weights use score threshold 0:
    all top_k detections go through Procrustes and retrieval (the worst case)."""

    net = load_network(model_dir) if model_dir else random_network(input_size=input_size)
    net = with_input_size(net, input_size) if input_size else net
    threshold = score_threshold if score_threshold is not None else (None if model_dir else 0.0)
    rng = np.random.default_rng(0)
    for name in backends:
        options = {"intra_op_threads": threads} if threads and name == "onnxruntime" else {}
        aligner = CadAligner.from_model_dir(net, backend=name, device=device, score_threshold=threshold, **options)
        for h, w in sizes or [net.input_size]:
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            K = np.array([[0.9 * w, 0.0, w / 2], [0.0, 0.9 * w, h / 2], [0.0, 0.0, 1.0]])
            yield BenchmarkCase(name, aligner, image, K)
