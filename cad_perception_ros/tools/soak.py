"""Soak test: the node in its own process fed a steady camera stream for a long time.

Starts the cad_perception node (bundled model models/roca on CPU by default, --model-dir DIR, or
--fixture: recorded predictions with an artificial processing delay), a camera publisher at
--rate Hz and a monitor, all over loopback-only DDS (scripts/local_dds.sh). Every second it
samples the node's resident memory (psutil), frames in / out, dropped frames and errors (from
/diagnostics) and the latency image stamp -> arrival of ~/alignments. Writes samples.csv,
latencies.csv, summary.json and soak.png into a new run folder, prints the figures and a verdict
against the bounds of soak_report.SoakBounds (memory growth after warm-up, latency drift).

    cad-perception soak --duration 600 --rate 30            # bundled model, 10 minutes
    cad-perception soak --fixture --duration 120            # the node's own mechanics
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.data.transforms import resize_sample
from cad_perception_ros.paths import asset_root
from cad_perception_ros.ros.aligners import BUNDLED_MODEL_DIR, write_fixture
from cad_perception_ros.tools.demo import apply_local_dds
from cad_perception_ros.tools.soak_client import SoakClient
from cad_perception_ros.tools.soak_report import (
    SoakBounds,
    summarize,
    windows,
    write_files,
)
from cad_perception_ros.types import Alignment9D, CadPrediction

NODE_NS, CAMERA = "/soak", "/soak_camera"


@dataclass(frozen=True)
class SoakConfig:
    """Defaults of `cad-perception soak` (the single place they live)."""

    duration_s: float = 600.0
    rate_hz: float = 30.0
    width: int = 480
    height: int = 360
    fixture_delay_ms: float = 20.0   # --fixture: artificial processing time per frame
    warmup_s: float = 30.0           # capped at duration / 4
    window_s: float = 60.0           # latency drift windows, capped at a third of the post-warm-up time
    startup_timeout_s: float = 180.0
    frames: int = 8                  # distinct images cycled by the camera
    out: str = str(asset_root() / "runs" / "soak")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SoakConfig()
    parser.add_argument("--duration", type=float, default=None, help=f"seconds of camera stream (default {d.duration_s})")
    parser.add_argument("--rate", type=float, default=None, help=f"camera frames per second (default {d.rate_hz})")
    parser.add_argument("--size", default=None, help=f"image size WxH (default {d.width}x{d.height})")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model-dir", default=None, help="model directory (default: bundled models/roca)")
    source.add_argument("--fixture", action="store_true", help="fixture aligner (no model): tests the node itself")
    parser.add_argument("--fixture-delay-ms", type=float, default=None,
                        help=f"--fixture processing time per frame (default {d.fixture_delay_ms})")
    parser.add_argument("--backend", default=None, help="node backend parameter (default: the node's)")
    parser.add_argument("--data", default=None, help="play views of this data set (val split) instead of noise images")
    parser.add_argument("--warmup", type=float, default=None, help=f"warm-up seconds (default {d.warmup_s})")
    parser.add_argument("--out", default=None, help=f"output folder; a new run_<time> inside (default {d.out})")


def config_from_args(args: argparse.Namespace) -> SoakConfig:
    cfg = SoakConfig()
    changes = {k: v for k, v in (("duration_s", args.duration), ("rate_hz", args.rate), ("out", args.out),
                                 ("fixture_delay_ms", args.fixture_delay_ms), ("warmup_s", args.warmup))
               if v is not None}
    if args.size is not None:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--size {args.size!r}: expected WxH, e.g. 480x360") from None
        changes.update(width=width, height=height)
    cfg = replace(cfg, **changes)
    if cfg.duration_s <= 0 or cfg.rate_hz <= 0 or min(cfg.width, cfg.height) < 2:
        raise SystemExit("--duration and --rate must be positive and --size at least 2x2")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(cfg.out) / time.strftime("run_%Y%m%d_%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    overrides = model_overrides(args, cfg, out)
    if overrides is None:
        out.rmdir()  # still empty
        return 2
    apply_local_dds()  # this process and (inherited) the node process; the node never sets DDS itself
    images, K = camera_frames(cfg, args.data)
    proc = start_node(overrides, out / "node.log")
    try:
        samples, latencies = stream(proc, images, K, cfg)
    finally:
        stop_node(proc)
    if not samples:
        print(f"[soak] the node never came up; see {out / 'node.log'}", file=sys.stderr)
        return 1
    summary = summarize(samples, latencies, windows(cfg.duration_s, cfg.warmup_s, cfg.window_s), SoakBounds())
    summary.update(config={f.name: getattr(cfg, f.name) for f in fields(cfg)}, model=" ".join(overrides),
                   command=" ".join(sys.argv))
    write_files(out, samples, latencies, summary)
    print_summary(summary, out)
    return 0 if summary["passed"] else 1


def model_overrides(args, cfg: SoakConfig, out: Path) -> list[str] | None:
    """Node -p overrides naming the aligner; None (after a clear message) if the model is missing."""
    extra = ["-p", f"backend:={args.backend}"] if args.backend else []
    if args.fixture:
        preds = [CadPrediction(class_id=5, class_name="chair", score=0.9, box_xyxy=np.array([10.0, 20.0, 120.0, 200.0]),
                               alignment=Alignment9D(np.eye(3), np.array([0.1, 0.2, 2.5]), np.array([0.5, 0.9, 0.5])),
                               cad_id="chair_0000")]
        fixture = write_fixture(out / "fixture.json", default=preds, delay_ms=cfg.fixture_delay_ms,
                                model_name=f"fixture-{cfg.fixture_delay_ms:g}ms")
        return ["-p", f"model:=fixture:{fixture}", *extra]
    model_dir = Path(args.model_dir).expanduser() if args.model_dir else BUNDLED_MODEL_DIR
    if not (model_dir / "meta.json").is_file():
        print(f"[soak] no trained model at {model_dir} (meta.json missing): train one (cad-perception train), "
              "pass --model-dir DIR, or run --fixture to soak the node with a fixture aligner", file=sys.stderr)
        return None
    return ["-p", f"model_dir:={model_dir.resolve()}", *extra]


def camera_frames(cfg: SoakConfig, data: str | None) -> tuple[list[np.ndarray], np.ndarray]:
    """cfg.frames images (H, W, 3) uint8 and their K (3, 3): data set views resized, or seeded noise."""
    size = (cfg.height, cfg.width)
    if data:
        dataset = SyntheticDataset(data, "val")
        views = [resize_sample(dataset[i], size) for i in range(min(cfg.frames, len(dataset)))]
        return [v.image for v in views], np.asarray(views[0].K)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(cfg.frames)]
    f = 0.9 * cfg.width
    return images, np.array([[f, 0.0, cfg.width / 2], [0.0, f, cfg.height / 2], [0.0, 0.0, 1.0]])


def start_node(overrides: list[str], log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cad_perception_ros.ros.node", "--autostart", "--ros-args",
           "-r", f"__ns:={NODE_NS}", "-p", f"image_topic:={CAMERA}/image",
           "-p", f"camera_info_topic:={CAMERA}/camera_info", "-p", "diagnostics_period_s:=1.0", *overrides]
    print(f"[soak] node: {' '.join(cmd)}")
    return subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=dict(os.environ))


def stop_node(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stream(proc: subprocess.Popen, images, K, cfg: SoakConfig) -> tuple[list[dict], np.ndarray]:
    """Publish for cfg.duration_s once the node is up; returns (per-second samples, (F, 2) latencies)."""
    import rclpy

    rclpy.init()
    client = SoakClient(proc.pid, images, K, rate_hz=cfg.rate_hz, camera=CAMERA, node_ns=NODE_NS)
    try:
        if not client.wait_ready(proc, cfg.startup_timeout_s):
            return [], np.zeros((0, 2))
        print(f"[soak] node up; streaming {cfg.width}x{cfg.height} at {cfg.rate_hz:g} Hz for {cfg.duration_s:g} s")
        client.start()
        total = int(cfg.duration_s)
        with tqdm(total=total, unit="s", desc="soak") as bar:
            while client.elapsed() < cfg.duration_s and proc.poll() is None:
                client.executor.spin_once(timeout_sec=0.005)
                done = min(int(client.elapsed()), total)
                if done > bar.n:
                    bar.update(done - bar.n)
        client.stop_camera()
        client.drain(2.0)
        if proc.poll() is not None:
            print(f"[soak] the node exited with code {proc.returncode} during the run", file=sys.stderr)
        return client.samples, np.asarray(client.latencies, dtype=np.float64).reshape(-1, 2)
    finally:
        client.destroy()
        rclpy.try_shutdown()


def print_summary(s: dict, out: Path) -> None:
    lat = s["latency_ms_after_warmup"]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    b = s["bounds"]
    print(f"[soak] frames in {s['frames_in']} (node received {s['node_received']}), out {s['frames_out']}, "
          f"dropped {s['frames_dropped']}, errors {s['errors']}, rejected {s['rejected']}")
    print(f"[soak] latency after warm-up: p50 {fmt(lat['p50'])} ms, p95 {fmt(lat['p95'])} ms, "
          f"p99 {fmt(lat['p99'])} ms, max {fmt(lat['max'])} ms")
    print(f"[soak] node RSS: start {s['rss_start_mb']:.1f} MB (after {s['windows']['warmup_s']:g} s warm-up), "
          f"end {s['rss_end_mb']:.1f} MB, growth {s['rss_growth_mb']:+.1f} MB (bound < {b['max_memory_growth_mb']:g} MB)")
    print(f"[soak] latency drift: p50 first window {fmt(s['latency_p50_first_window_ms'])} ms, last window "
          f"{fmt(s['latency_p50_last_window_ms'])} ms (bound <= {b['max_latency_drift']:g} x first + "
          f"{b['latency_slack_ms']:g} ms)")
    failed = [k for k, ok in s["checks"].items() if not ok]
    print(f"[soak] verdict: {'PASS' if s['passed'] else 'FAIL (' + ', '.join(failed) + ')'}; files in {out}")
