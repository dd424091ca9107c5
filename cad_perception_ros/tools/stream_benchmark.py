"""Stream camera frames through the node at full size: sent / received / processed / dropped by
its queue / lost in transport, and latency, per image size.

    cad-perception stream-benchmark                       # 60 s at 30 Hz at 640x480, 1280x720, 1920x1080
    cad-perception stream-benchmark --seconds 5 --sizes 640x480,1280x720
    cad-perception stream-benchmark --model-dir models/roca   # the real model instead of the fixture

The node runs in its own process and a camera (best-effort sensor QoS, like a camera driver)
publishes rgb8 Image + CameraInfo from this one, over the DDS settings of scripts/local_dds.sh
(shared memory only; config/fastdds_local.xml sizes its segment for 1920x1080 frames). The
default aligner is a fixture with --fixture-delay-ms of work per frame, so the figures are the
ROS path's (transport, decoding, queue), not a model's.

  sent       frames the camera published
  received   frames the node's image callback got (/diagnostics frames_received)
  processed  frames the node published alignments for (/diagnostics frames_processed)
  dropped    frames its drop-oldest queue replaced on purpose (/diagnostics frames_dropped)
  lost       sent - received: frames lost on the way (transport or the subscription's queue)
  latency    image stamp -> arrival of ~/alignments here, p50 / p99 (ms)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cad_perception_ros.ros.aligners import write_fixture
from cad_perception_ros.tools.demo import apply_local_dds
from cad_perception_ros.tools.soak import stop_node
from cad_perception_ros.tools.soak_client import SoakClient
from cad_perception_ros.types import Alignment9D, CadPrediction

NODE_NS, CAMERA = "/stream_bench", "/stream_bench_camera"
DEFAULT_SIZES = "640x480,1280x720,1920x1080"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming time per size (default: 60)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second (default: 30)")
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"WxH list (default: {DEFAULT_SIZES})")
    parser.add_argument("--model-dir", default=None, help="run this model directory instead of the fixture aligner")
    parser.add_argument("--fixture-delay-ms", type=float, default=20.0,
                        help="work per frame of the fixture aligner (default: 20)")
    parser.add_argument("--qos-depth", type=int, default=None, help="node parameter qos_depth (default: the node's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """ "640x480,1280x720" -> [(480, 640), (720, 1280)] as (H, W); ValueError on a bad entry."""
    sizes = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            width, height = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ValueError(f"--sizes: {item!r} is not WIDTHxHEIGHT") from None
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"--sizes: {item!r} outside 16..8192 pixels")
        sizes.append((height, width))
    if not sizes:
        raise ValueError("--sizes: no size given")
    return sizes


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes)
    if args.seconds <= 0 or args.rate <= 0:
        raise SystemExit("stream-benchmark: --seconds and --rate must be positive")
    apply_local_dds()  # this process and (inherited) the node; the node itself never sets DDS
    with tempfile.TemporaryDirectory(prefix="stream_bench_") as tmp:
        proc = start_node(node_overrides(args, Path(tmp)), Path(tmp) / "node.log")
        try:
            results = stream_sizes(proc, sizes, args)
        finally:
            stop_node(proc)
            log = (Path(tmp) / "node.log").read_text()
    if results is None:
        print(f"[stream-benchmark] the node did not come up:\n{log[-3000:]}", file=sys.stderr)
        return 1
    print_table(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["lost"] == 0 for r in results) else 1


def node_overrides(args, tmp: Path) -> list[str]:
    extra = ["-p", f"qos_depth:={args.qos_depth}"] if args.qos_depth else []
    if args.model_dir:
        return ["-p", f"model_dir:={Path(args.model_dir).expanduser().resolve()}", *extra]
    preds = [CadPrediction(class_id=5, class_name="chair", score=0.9, box_xyxy=np.array([10.0, 20.0, 120.0, 200.0]),
                           alignment=Alignment9D(np.eye(3), np.array([0.1, 0.2, 2.5]), np.array([0.5, 0.9, 0.5])))]
    fixture = write_fixture(tmp / "fixture.json", default=preds, delay_ms=args.fixture_delay_ms,
                            model_name=f"fixture-{args.fixture_delay_ms:g}ms")
    return ["-p", f"model:=fixture:{fixture}", *extra]


def start_node(overrides: list[str], log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cad_perception_ros.ros.node", "--autostart", "--ros-args", "-r", f"__ns:={NODE_NS}",
           "-p", f"image_topic:={CAMERA}/image", "-p", f"camera_info_topic:={CAMERA}/camera_info",
           "-p", "diagnostics_period_s:=0.5", "-p", "debug_image:=false", *overrides]
    env = {k: v for k, v in os.environ.items() if k != "_ROS_WHEELS_BOOTSTRAP_COMPLETE"}
    return subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)


def frames_of_size(height: int, width: int, count: int = 4) -> tuple[list[np.ndarray], np.ndarray]:
    """`count` seeded noise images (H, W, 3) uint8 and a K (3, 3) for them."""
    rng = np.random.default_rng(height * 10000 + width)
    f = 0.9 * width
    return ([rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)],
            np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]))


def stream_sizes(proc, sizes, args) -> list[dict] | None:
    """One run per size against the same node; None if the node never came up."""
    import rclpy

    rclpy.init()
    results = []
    try:
        for height, width in sizes:
            images, K = frames_of_size(height, width)
            client = SoakClient(proc.pid, images, K, rate_hz=args.rate, camera=CAMERA, node_ns=NODE_NS)
            try:
                if not client.wait_ready(proc, 120.0) or not wait_counters(client, proc, 10.0):
                    return None
                before = node_counters(client)
                client.start()
                with tqdm(total=int(args.seconds), unit="s", desc=f"{width}x{height}", leave=False, disable=None) as bar:
                    while client.elapsed() < args.seconds and proc.poll() is None:
                        client.executor.spin_once(timeout_sec=0.002)
                        bar.update(min(int(client.elapsed()), int(args.seconds)) - bar.n)
                client.stop_camera()
                settle(client)
                results.append(size_result(width, height, client, before, node_counters(client)))
            finally:
                client.destroy()
    finally:
        rclpy.try_shutdown()
    return results


def node_counters(client) -> dict[str, int]:
    c = client.counters
    return {k: int(float(c.get(k, 0) or 0)) for k in ("frames_received", "frames_processed", "frames_dropped", "errors")}


def wait_counters(client, proc, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not client.counters and time.monotonic() < deadline and proc.poll() is None:
        client.executor.spin_once(timeout_sec=0.05)
    return bool(client.counters)


def settle(client, timeout_s: float = 10.0) -> None:
    """Spin until the node's counters stop changing (1.5 s) and account for every frame it
    received (processed + dropped), so late frames are counted; at most timeout_s."""
    deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        client.executor.spin_once(timeout_sec=0.05)
        now = node_counters(client)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif (time.monotonic() - stable_since > 1.5
              and now["frames_processed"] + now["frames_dropped"] >= now["frames_received"]):
            return


def size_result(width: int, height: int, client, before: dict[str, int], after: dict[str, int]) -> dict:
    delta = {k: after[k] - before[k] for k in after}
    latencies = np.asarray([lat for _, lat in client.latencies], dtype=np.float64)
    pct = (lambda q: round(float(np.percentile(latencies, q)), 1) if len(latencies) else None)
    return {"size": f"{width}x{height}", "frame_bytes": width * height * 3, "sent": client.frames_in,
            "received": delta["frames_received"], "processed": delta["frames_processed"],
            "dropped_by_queue": delta["frames_dropped"], "lost": client.frames_in - delta["frames_received"],
            "alignments_received": client.frames_out, "errors": delta["errors"],
            "latency_ms_p50": pct(50), "latency_ms_p99": pct(99)}


def print_table(results: list[dict], args) -> None:
    print(f"[stream-benchmark] {args.seconds:g} s at {args.rate:g} Hz per size, rgb8, best-effort camera QoS, "
          f"{'model ' + str(args.model_dir) if args.model_dir else f'fixture aligner {args.fixture_delay_ms:g} ms/frame'}")
    head = ("size", "sent", "received", "processed", "dropped-by-queue", "lost-in-transport", "p50 ms", "p99 ms")
    print(" | ".join(head))
    for r in results:
        print(" | ".join(str(v) for v in (r["size"], r["sent"], r["received"], r["processed"], r["dropped_by_queue"],
                                          r["lost"], r["latency_ms_p50"], r["latency_ms_p99"])))
