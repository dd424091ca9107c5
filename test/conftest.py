"""Shared test helpers and fixtures (pytest loads this file; tests ask for fixtures by name).

The helpers are also fixtures of the same name that return them (session scope), so a test that
needs, say, `make_scene` or the ROS harness lists it among its arguments instead of importing a
helper module: one small procedural CAD database per session, tiny scenes and CAD tables, a
tiny model directory for the fault tests, the ONNX-vs-torch check, a placeholder export net, and
for the node tests the DDS environment, node start/stop, spin-until and the camera client.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample
from cad_perception_ros.model.config import RocaConfig
from cad_perception_ros.model.roca.targets import CadTable
from cad_perception_ros.types import Alignment9D

# ---- Shared test data for test_data_*.py: one small procedural CAD database per test session

@functools.lru_cache(maxsize=1)
def procedural_db_dir() -> Path:
    """A CadDatabase directory with one procedural model per class (built once per process)."""
    from cad_perception_ros.cad.procedural import build_procedural_database

    root = Path(tempfile.mkdtemp(prefix="cad_db_test_"))
    atexit.register(shutil.rmtree, root, True)
    build_procedural_database(root / "db", per_class=1, seed=0)
    return root / "db"


# ---- Test harness for ROS tests: loopback-only DDS env from scripts/local_dds.sh with a domain id

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")  # this checkout's own environment


DDS_KEYS = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE",
            "RMW_IMPLEMENTATION", "ROS_DOMAIN_ID")


def dds_env(domain_id: int) -> dict[str, str]:
    """Environment of scripts/local_dds.sh (the single source of the DDS settings)."""
    script = f"source '{ROOT / 'scripts/local_dds.sh'}' && env -0"
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True,
                         env={**os.environ, "CAD_PERCEPTION_DOMAIN_ID": str(domain_id)}).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def unique_domain_id(offset: int = 0) -> int:
    return 120 + (os.getpid() * 7 + offset) % 100


def apply_env(env: dict[str, str]) -> None:
    """Make this (test) process use the same DDS settings before rclpy.init."""
    for key in DDS_KEYS:
        os.environ[key] = env[key]
    for key in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS"):
        os.environ.pop(key, None)


def python_executable() -> str:
    return VENV_PYTHON if Path(VENV_PYTHON).exists() else sys.executable


def start_node(env: dict[str, str], ros_args: list[str], log_path: Path, *, autostart: bool = True) -> subprocess.Popen:
    """The node in its own process (plain node with --autostart, else waiting for lifecycle transitions)."""
    child_env = dict(env)
    if python_executable() != sys.executable:
        child_env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    log = open(log_path, "w")
    return subprocess.Popen([python_executable(), "-m", "cad_perception_ros.ros.node",
                             *(["--autostart"] if autostart else []), "--ros-args", *ros_args],
                            env=child_env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: the node's main() shuts down cleanly
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spin_until(executor, condition, timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


def make_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def make_K(height: int = 48, width: int = 64) -> np.ndarray:
    return np.array([[60.0, 0.0, width / 2], [0.0, 60.0, height / 2], [0.0, 0.0, 1.0]])


# ---- Shared data for the node tests with a real model: a random-weight tiny RocaNet model dir over a

OUTPUTS = ("alignments", "detections", "poses", "tf", "markers", "debug_image")


def tiny_model_and_views(root: Path, views: int = 3):
    """(model_dir, db_dir, dataset): random-weight roca_tiny model (all 9 classes) and `views`
    rendered 96x128 views of one procedural scene (SyntheticDataset, split val)."""
    from cad_perception_ros.data.dataset import SyntheticDataset
    from cad_perception_ros.data.generate import GenerateConfig, generate_split
    from cad_perception_ros.runtime.random_model import save_random_model_dir

    db_dir = procedural_db_dir()
    model_dir = save_random_model_dir(root / "model", cad_db=db_dir, seed=0)
    generate_split(root / "data", GenerateConfig(split="val", scenes=1, views_per_scene=views, image_size=(96, 128)),
                   db_dir=db_dir, progress=False)
    return model_dir, db_dir, SyntheticDataset(root / "data", "val")


class CameraClient:
    """The node tests' camera: an image + CameraInfo publisher and subscribers to every output of
    the node under `out_ns` (and /diagnostics with diagnostics=True), each message kept in
    got[name] as (arrival ns, message).

    qos: the publishers' QoS (default reliable, depth 5; an int is a reliable depth). encoding:
    "rgb8" or "bgr8" (images are given RGB). Stamps: the wall clock, at least stamp_step_ns after
    the previous one; wall_clock=False: a synthetic clock, last_stamp + stamp_step_ns (tests move
    last_stamp to jump it, like a bag replay loop)."""

    def __init__(self, rclpy, *, camera: str, out_ns: str, qos=None, encoding: str = "rgb8",
                 frame_id: str = "cam_optical", diagnostics: bool = False, stamp_step_ns: int = 0,
                 wall_clock: bool = True, node_name: str = "camera_and_listener"):
        from cad_perception_ros.msg import ObjectAlignmentArray
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage
        from vision_msgs.msg import Detection3DArray
        from visualization_msgs.msg import MarkerArray
        self.node = rclpy.create_node(node_name)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.camera, self.out_ns, self.encoding, self.frame_id = camera, out_ns, encoding, frame_id
        self.stamp_step_ns, self.wall_clock = stamp_step_ns, wall_clock
        self.last_stamp = 0 if wall_clock else time.time_ns()
        qos = QoSProfile(depth=5 if qos is None else qos) if qos is None or isinstance(qos, int) else qos
        self.image_pub = self.node.create_publisher(Image, f"{camera}/image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{camera}/camera_info", qos)
        self.topics = {"alignments": (ObjectAlignmentArray, f"{out_ns}/alignments"),
                       "detections": (Detection3DArray, f"{out_ns}/detections"),
                       "poses": (PoseArray, f"{out_ns}/poses"), "tf": (TFMessage, "/tf"),
                       "markers": (MarkerArray, f"{out_ns}/markers"), "debug_image": (Image, f"{out_ns}/debug_image")}
        if diagnostics:
            self.topics["diagnostics"] = (DiagnosticArray, "/diagnostics")
        self.got: dict[str, list] = {name: [] for name in self.topics}
        for name, (msg_type, topic) in self.topics.items():
            self.node.create_subscription(msg_type, topic,
                                          lambda m, n=name: self.got[n].append((time.time_ns(), m)), 200)

    def spin_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.02)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def wait_connected(self, timeout: float = 30.0, proc=None) -> None:
        """Until the node subscribes to the camera and publishes every output topic."""
        def ready():
            if proc is not None and proc.poll() is not None:
                raise AssertionError("node process exited")
            return (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                    and all(self.node.count_publishers(t) > 0 for _, t in self.topics.values()))
        self.spin_until(ready, timeout, "the node to subscribe and advertise its outputs")

    def next_stamp(self, step_ns: int | None = None) -> int:
        step = self.stamp_step_ns if step_ns is None else step_ns
        after = self.last_stamp + step
        self.last_stamp = max(after, time.time_ns()) if self.wall_clock else max(after, 0)
        return self.last_stamp

    def publish(self, image, K, *, stamp_ns: int | None = None, info: bool = True, info_stamp_ns: int | None = None,
                info_after_s: float | None = None, mutate_image=None, mutate_info=None) -> int:
        """Publish RGB `image` (H, W, 3) and a CameraInfo with `K` (3, 3); returns the stamp (ns).

        info: False publishes the image alone; info_stamp_ns: another stamp for the CameraInfo;
        info_after_s: the CameraInfo after the image, that many seconds later (else before it);
        mutate_image / mutate_info: callables that spoil a message before it goes out."""
        from std_msgs.msg import Header

        from cad_perception_ros.ros import conversions as conv
        stamp_ns = self.next_stamp() if stamp_ns is None else stamp_ns
        header = Header(stamp=conv.ns_to_stamp(stamp_ns), frame_id=self.frame_id)
        pixels = image[:, :, ::-1].copy() if self.encoding == "bgr8" else image
        image_msg = conv.image_msg(header, pixels, self.encoding)
        info_header = header if info_stamp_ns is None else Header(stamp=conv.ns_to_stamp(info_stamp_ns),
                                                                  frame_id=self.frame_id)
        info_msg = conv.camera_info_msg(info_header, K, image.shape[:2])
        if mutate_image:
            mutate_image(image_msg)
        if mutate_info:
            mutate_info(info_msg)
        if info and info_after_s is None:
            self.info_pub.publish(info_msg)
        self.image_pub.publish(image_msg)
        if info and info_after_s is not None:
            self.spin(info_after_s)
            self.info_pub.publish(info_msg)
        return stamp_ns

    def by_stamp(self, name: str, stamp_ns: int):
        from cad_perception_ros.ros.conversions import stamp_to_ns
        for arrival, m in self.got[name]:
            header = (m.transforms[0].header if name == "tf" and m.transforms else
                      m.markers[0].header if name == "markers" and m.markers else getattr(m, "header", None))
            if header is not None and stamp_to_ns(header.stamp) == stamp_ns:
                return m
        return None

    def stamps(self, name: str = "alignments") -> set[int]:
        from cad_perception_ros.ros.conversions import stamp_to_ns
        return {stamp_to_ns(m.header.stamp) for _, m in self.got[name]}

    def status(self):
        """The newest DiagnosticStatus of the node under out_ns (diagnostics=True), or None."""
        for _, msg in reversed(self.got["diagnostics"]):
            for status in msg.status:
                if status.name.startswith(self.out_ns):
                    return status
        return None

    def counters(self) -> dict[str, str]:
        """Key -> value of the node's newest DiagnosticStatus ({} before the first)."""
        status = self.status()
        return {kv.key: kv.value for kv in status.values} if status is not None else {}

    def serve(self, image, K, outputs=OUTPUTS, timeout: float = 20.0, retry_s: float = 6.0) -> int:
        """Publish the frame (again with a fresh stamp every retry_s) until all `outputs` arrived
        for one stamp; returns that stamp."""
        stamps, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            stamps.append(self.publish(image, K))
            t_next = min(time.monotonic() + retry_s, deadline)
            while time.monotonic() < t_next:
                self.executor.spin_once(timeout_sec=0.02)
                for s in stamps:
                    if all(self.by_stamp(n, s) is not None for n in outputs):
                        return s
        raise AssertionError(f"outputs {outputs} never arrived")


# ---- Tiny synthetic SceneSamples for the model tests (no renderer)

COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [220, 220, 40]], np.uint8)


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def make_scene(rng: np.random.Generator, size=(64, 96), n_objects=2, num_classes=3) -> SceneSample:
    h, w = size
    f = 0.9 * w
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    image = (rng.integers(90, 120, (h, w, 3))).astype(np.uint8)
    depth = np.full((h, w), 4.0, np.float32)
    inst = np.full((h, w), -1, np.int32)
    noc = np.zeros((h, w, 3), np.float32)
    objects = []
    for k in range(n_objects):
        cls = int(rng.integers(num_classes))
        scale = rng.uniform(0.4, 0.8, 3)
        z = rng.uniform(1.8, 2.6)
        cx = rng.uniform(0.2, 0.8) * w if n_objects == 1 else (k + 0.5) / n_objects * w
        half = 0.35 * scale.max() * f / z
        x0, x1 = int(max(cx - half, 0)), int(min(cx + half, w))
        y0, y1 = int(max(h / 2 - half, 0)), int(min(h / 2 + half, h))
        rot = rotation_y(rng.uniform(-0.6, 0.6))
        t = np.array([(cx - w / 2) / f * (z + 0.2), 0.0, z + 0.2])
        vv, uu = np.mgrid[y0:y1, x0:x1] + 0.5
        pts = np.stack([(uu - K[0, 2]) / f * z, (vv - K[1, 2]) / f * z, np.full_like(uu, z)], -1)
        depth[y0:y1, x0:x1] = z
        inst[y0:y1, x0:x1] = k
        noc[y0:y1, x0:x1] = ((pts - t) @ rot) / scale
        image[y0:y1, x0:x1] = COLOURS[cls]
        objects.append(ObjectAnnotation(class_id=cls, cad_id=f"cad{cls}_{k % 2}",
                                        alignment=Alignment9D(rot, t, scale),
                                        box_xyxy=np.array([x0, y0, x1, y1], np.float32),
                                        visible_pixels=(x1 - x0) * (y1 - y0)))
    return SceneSample(image=image, depth=depth, K=K, instance_map=inst, noc=noc, objects=objects)


def make_cads(num_classes=3, grid=32) -> CadTable:
    ids, classes, grids = [], [], []
    rng = np.random.default_rng(1)
    for c in range(num_classes):
        for k in range(2):
            g = np.zeros((grid,) * 3, bool)
            lo, hi = rng.integers(4, 12, 3), rng.integers(20, 28, 3)
            g[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
            ids.append(f"cad{c}_{k}")
            classes.append(c)
            grids.append(g)
    return CadTable(ids, np.array(classes), np.stack(grids))


# ---- A tiny model directory next to a tiny CAD database (3 boxes), for the fault tests

TINY = RocaConfig(input_size=(48, 64), backbone="resnet", pretrained=False, depth_focal_normalised=False,
                  backbone_widths=(8, 8, 8, 8), backbone_blocks=(1, 1, 1, 1), fpn_channels=8,
                  head_channels=8, top_k=2, roi_size=4, depth_channels=4, depth_feature_channels=8, shape_code_dim=8,
                  hidden_dim=8, embedding_dim=8, voxel_channels=(2, 2, 2))


def build_tiny_database(root: Path):
    """3 canonical boxes (chair, table, sofa) -> CadDatabase at root."""
    import trimesh

    from cad_perception_ros.cad.database import CadDatabase, CadDatabaseConfig, CadModel
    from cad_perception_ros.types import SCAN2CAD_CLASSES
    entries = []
    for i, (name, extent) in enumerate((("chair", (0.5, 1.0, 0.5)), ("table", (1.0, 0.6, 0.8)), ("sofa", (1.0, 0.5, 0.4)))):
        model = CadModel(cad_id=f"{name}_{i}", class_name=name, class_id=SCAN2CAD_CLASSES.index(name), symmetry="none",
                         mesh_file="", extent=(0.0, 0.0, 0.0))
        entries.append((model, trimesh.creation.box(extents=extent)))
    return CadDatabase.build(root, entries, config=CadDatabaseConfig(grid_size=8, num_points=16))


def build_tiny_model_dir(tmp: Path) -> Path:
    """tmp/cad_db (3 models) and tmp/model (random TINY RocaNet whose embeddings name those 3)."""
    import torch

    from cad_perception_ros.model.checkpoint import save_model_dir
    from cad_perception_ros.model.roca.network import RocaNet
    db = build_tiny_database(tmp / "cad_db")
    torch.manual_seed(0)
    model = RocaNet.from_config(TINY)
    ids = [m.cad_id for m in db]
    emb = np.random.default_rng(0).standard_normal((len(ids), TINY.embedding_dim)).astype(np.float32)
    return save_model_dir(tmp / "model", model, TINY, cad_embeddings=emb,
                          cad_class_ids=np.array([m.class_id for m in db]), cad_ids=ids, cad_db="../cad_db")


def rewrite_meta(model_dir: Path, **changes) -> None:
    meta = json.loads((model_dir / "meta.json").read_text())
    meta.update(changes)
    (model_dir / "meta.json").write_text(json.dumps(meta))


def refresh_hash(model_dir: Path, name: str) -> None:
    """Make meta.json's sha256 agree with a file the test replaced (so the content check is what fails)."""
    import hashlib
    meta = json.loads((model_dir / "meta.json").read_text())
    meta["sha256"][name] = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
    (model_dir / "meta.json").write_text(json.dumps(meta))


# ---- Shared check for the export tests: an ONNX file run by onnxruntime matches the torch model

def onnx_outputs(onnx_path, output_names, image: torch.Tensor, K: torch.Tensor) -> dict[str, np.ndarray]:
    """Run the exported graph on CPU with inputs image (1, 3, H, W) and K (1, 3, 3)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return dict(zip(output_names, session.run(None, {"image": image.numpy(), "K": K.numpy()})))


def assert_onnx_matches_torch(model, onnx_path, output_names, image, K, *, rtol=1e-4, atol=1e-4) -> dict:
    """Every output of model.forward_export equals the ONNX Runtime output; returns the ONNX outputs."""
    with torch.no_grad():
        ref = model.forward_export(image, K)
    got = onnx_outputs(onnx_path, output_names, image, K)
    assert set(got) == set(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=rtol, atol=atol, err_msg=name)
    return got


# ---- Test-only placeholder network with the export contract of model/roca/network.py (not shipped)

class TinyExportNet(nn.Module):
    """forward_export(image (1, 3, H, W), K (1, 3, 3)) -> dict of static-shape tensors."""

    def __init__(self, top_k: int = 4, embedding_dim: int = 8):
        super().__init__()
        self.top_k = top_k
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.heatmap = nn.Conv2d(8, 3, 1)
        self.head = nn.Linear(8 + 4, top_k * (4 + 3 + embedding_dim))
        self.embedding_dim = embedding_dim

    def forward_export(self, image: torch.Tensor, K: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(image)  # (1, 8, H/4, W/4)
        heat = torch.sigmoid(self.heatmap(feats))  # (1, 3, H/4, W/4)
        pooled = feats.mean(dim=(2, 3))  # (1, 8)
        intr = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], 1) / 1000.0  # (1, 4)
        out = self.head(torch.cat([pooled, intr], 1)).view(1, self.top_k, -1)  # (1, k, 4+3+D)
        return {"heatmap": heat, "boxes": torch.sigmoid(out[..., :4]), "translation": out[..., 4:7],
                "embedding": out[..., 7:]}


def tampered_copy(model_dir: Path, out: Path, name: str) -> Path:
    """A copy of model_dir in which file `name` has its last byte flipped (a corrupt download)."""
    import shutil
    shutil.copytree(model_dir, out)
    data = bytearray((out / name).read_bytes())
    data[-1] ^= 1
    (out / name).write_bytes(bytes(data))
    return out


# ---- the helpers as fixtures (session scope, so module- and session-scoped fixtures can use them)

HELPERS = {
    "procedural_db_dir": procedural_db_dir,
    "make_scene": make_scene, "make_cads": make_cads, "rotation_y": rotation_y,
    "build_tiny_database": build_tiny_database, "build_tiny_model_dir": build_tiny_model_dir, "rewrite_meta": rewrite_meta, "refresh_hash": refresh_hash,
    "assert_onnx_matches_torch": assert_onnx_matches_torch, "TinyExportNet": TinyExportNet,
    "tiny_model_and_views": tiny_model_and_views, "CameraClient": CameraClient,
    "dds_env": dds_env, "unique_domain_id": unique_domain_id, "apply_env": apply_env, "start_node": start_node,
    "stop_process": stop_process, "spin_until": spin_until, "make_image": make_image, "make_K": make_K,
    "tampered_copy": tampered_copy,
}


def _helper_fixture(name: str):
    def fixture():
        return HELPERS[name]
    fixture.__name__ = name
    fixture.__doc__ = f"The shared helper `{name}` (defined above in conftest.py)."
    return pytest.fixture(scope="session", name=name)(fixture)


for _name in HELPERS:
    globals()[f"_fixture_{_name}"] = _helper_fixture(_name)
