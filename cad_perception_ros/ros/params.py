"""Node parameters: one frozen dataclass (defaults and validation, ROS-free) plus the glue that
declares them on a node with descriptors, reads them back and rejects invalid runtime changes.

Defaults live only in ``NodeParams``; ``config/cad_perception.yaml`` and the launch file repeat
them for users and a test checks that all three agree.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from cad_perception_ros.model.config import MODEL_KINDS
from cad_perception_ros.ros.sync import SYNC_MODES
from cad_perception_ros.runtime.contract import BACKENDS
from cad_perception_ros.types import SCORE_THRESHOLD

MODELS = MODEL_KINDS
FIXTURE_PREFIX = "fixture:"  # model "fixture:/path/preds.json": a recorded-predictions aligner (tests, demo)
RELIABILITIES = ("best_effort", "reliable")
MESH_URI_SCHEMES = ("package", "file")


@dataclass(frozen=True)
class NodeParams:
    """Every parameter of the node, with its default. Raises ValueError on an invalid value."""

    model_dir: str = ""              # "" = the bundled models/<model> (roca or points2objects)
    model: str = "roca"              # roca | points2objects | fixture:<json>
    backend: str = "torch"
    device: str = "cpu"
    score_threshold: float = SCORE_THRESHOLD
    max_objects: int = 20
    cad_db: str = ""                 # "" = the CAD database the model dir names
    class_filter: str = ""           # comma-separated class names; "" = all classes
    tf_prefix: str = "cad_"
    publish_tf: bool = True
    mesh_uri_scheme: str = "package"  # package: package:// inside the installed package, else file://
    track_max_distance_m: float = 0.5
    track_max_missed: int = 5
    map_frame: str = ""              # "" = no object map; e.g. odom or map
    map_match_distance_m: float = 0.5
    map_max_missed: int = 3
    map_max_range_m: float = 8.0
    map_tf_tolerance_s: float = 0.05
    map_fuse_score: float = 0.3      # detections down to this score join the map (evidence adds up)
    floor_frame: str = ""            # "" = no floor cue; e.g. base_footprint (its z = 0 plane is the floor)
    image_topic: str = "image"
    camera_info_topic: str = "camera_info"
    depth_topic: str = ""            # "" = RGB alone; else a registered depth sensor_msgs/Image
    depth_scale: float = 0.001       # metres per 16UC1 unit (millimetres)
    depth_min_m: float = 0.1
    depth_max_m: float = 10.0
    depth_fit: bool = False          # fit each retrieved CAD to the depth in its mask (ICP; docs/rgbd.md)
    qos_reliability: str = "best_effort"
    qos_depth: int = 5
    use_rectified_intrinsics: bool = False
    sync_tolerance_s: float = 0.005
    camera_info_mode: str = "exact"  # exact: CameraInfo of the image's stamp; latest: the newest one
    sync_window_s: float = 2.0
    max_image_pixels: int = 4096 * 4096  # larger frames are rejected ("too_large") before decoding
    marker_lifetime_s: float = 1.0
    debug_image: bool = True
    diagnostics_period_s: float = 1.0
    autostart: bool = False

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            expected = {"str": str, "float": (int, float), "int": int, "bool": bool}[f.type]
            if isinstance(value, bool) and f.type != "bool" or not isinstance(value, expected):
                raise ValueError(f"parameter {f.name}: expected {f.type}, got {value!r}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(f"parameter {name}: {value!r} outside [{low}, {high}]")
        if self.model not in MODELS and not (self.model.startswith(FIXTURE_PREFIX)
                                             and len(self.model) > len(FIXTURE_PREFIX)):
            raise ValueError(f"parameter model: {self.model!r} is not one of {list(MODELS)} "
                             f"(or {FIXTURE_PREFIX}<predictions.json>)")
        if self.backend not in BACKENDS:
            raise ValueError(f"parameter backend: {self.backend!r} is not one of {list(BACKENDS)}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise ValueError(f"parameter device: {self.device!r} is not cpu, cuda or cuda:N")
        if self.qos_reliability not in RELIABILITIES:
            raise ValueError(f"parameter qos_reliability: {self.qos_reliability!r} is not one of "
                             f"{list(RELIABILITIES)}")
        if self.camera_info_mode not in SYNC_MODES:
            raise ValueError(f"parameter camera_info_mode: {self.camera_info_mode!r} is not one of {list(SYNC_MODES)}")
        if self.mesh_uri_scheme not in MESH_URI_SCHEMES:
            raise ValueError(f"parameter mesh_uri_scheme: {self.mesh_uri_scheme!r} is not one of "
                             f"{list(MESH_URI_SCHEMES)}")
        if any(not c.replace("_", "").replace("-", "").isalnum() for c in self.classes):
            raise ValueError(f"parameter class_filter: {self.class_filter!r} is not a comma-separated "
                             "list of class names")
        for name in ("image_topic", "camera_info_topic"):
            if not getattr(self, name).strip() or " " in getattr(self, name):
                raise ValueError(f"parameter {name}: {getattr(self, name)!r} is not a topic name")
        if self.depth_topic != self.depth_topic.strip() or " " in self.depth_topic:
            raise ValueError(f"parameter depth_topic: {self.depth_topic!r} is not a topic name (empty = off)")
        if self.depth_min_m >= self.depth_max_m:
            raise ValueError(f"parameters depth_min_m {self.depth_min_m} and depth_max_m {self.depth_max_m}: "
                             "the minimum must be below the maximum")
        for name in ("map_frame", "floor_frame"):
            frame = getattr(self, name)
            if frame and (frame != frame.strip() or " " in frame or frame.startswith("/")):
                raise ValueError(f"parameter {name}: {frame!r} is not a TF frame name (no spaces, no leading '/')")
        if not all(c.isalnum() or c in "_-" for c in self.tf_prefix):
            raise ValueError(f"parameter tf_prefix: {self.tf_prefix!r} may hold only letters, "
                             "digits, '_' and '-'")

    @property
    def classes(self) -> tuple[str, ...]:
        """class_filter as a tuple of names (empty = keep every class)."""
        return tuple(c.strip() for c in self.class_filter.split(",") if c.strip())

    def replace(self, **changes: Any) -> "NodeParams":
        return dataclasses.replace(self, **changes)


# Inclusive numeric ranges, also declared to ROS as FloatingPointRange / IntegerRange.
RANGES: dict[str, tuple[float, float]] = {
    "score_threshold": (0.0, 1.0),
    "max_objects": (1, 1000),
    "qos_depth": (1, 1000),
    "sync_tolerance_s": (0.0, 1.0),
    "sync_window_s": (0.1, 30.0),
    "depth_scale": (1e-6, 1.0),
    "depth_min_m": (0.0, 100.0),
    "depth_max_m": (0.01, 1000.0),
    "max_image_pixels": (1, 100_000_000),
    "marker_lifetime_s": (0.0, 3600.0),
    "diagnostics_period_s": (0.05, 60.0),
    "track_max_distance_m": (0.01, 100.0),
    "track_max_missed": (0, 1000),
    "map_match_distance_m": (0.01, 100.0),
    "map_max_missed": (1, 1000),
    "map_max_range_m": (0.1, 1000.0),
    "map_tf_tolerance_s": (0.0, 10.0),
    "map_fuse_score": (0.0, 1.0),
}

DESCRIPTIONS: dict[str, str] = {
    "model_dir": "model directory (model.safetensors, config.yaml, meta.json); empty = bundled models/<model>",
    "model": "method: roca | points2objects (fixture:<json> replays recorded predictions, for tests)",
    "backend": "inference backend: torch | onnxruntime | tensorrt",
    "device": "cpu | cuda | cuda:N",
    "score_threshold": "minimum detection score in [0, 1]",
    "max_objects": "keep at most this many objects per image (highest scores)",
    "cad_db": "CAD database directory; empty = the one the model directory names",
    "class_filter": "comma-separated class names to keep; empty = all classes",
    "tf_prefix": "prefix of the per-object TF frames: {tf_prefix}{class}_{n}, n = the object's track number",
    "publish_tf": "publish one TF frame per object on /tf",
    "mesh_uri_scheme": "marker mesh URIs: package (package:// for meshes in the installed package, else file://) | file",
    "track_max_distance_m": "an object keeps its id while its centre moves less than this between frames, metres",
    "track_max_missed": "an object's id is dropped after this many frames without it",
    "map_frame": "fixed frame of the object map (e.g. odom or map; the camera pose comes from /tf and /tf_static); empty = no map",
    "map_match_distance_m": "an alignment joins a map object of its class within this centre distance, metres (along the viewing ray: 3x that)",
    "map_max_missed": "a map object is removed after this many frames in a row in which it should have been seen and was not",
    "map_max_range_m": "beyond this distance from the camera a map object is not expected to be seen, metres",
    "map_tf_tolerance_s": "how far an image stamp may lie beyond the camera's TF samples (else the frame is not fused, and has no floor), seconds",
    "map_fuse_score": "detections down to this score are fused into the object map; a map object is published once its confidence (noisy-or of its observations) reaches score_threshold",
    "floor_frame": "TF frame whose z = 0 plane is the floor (e.g. base_footprint): objects are corrected to stand on it (RGB alone); empty = off",
    "image_topic": "sensor_msgs/Image input topic (remap it or set it here)",
    "camera_info_topic": "sensor_msgs/CameraInfo input topic",
    "depth_topic": "registered depth sensor_msgs/Image (16UC1 or 32FC1), same size and K as the colour image, matched by stamp; empty = RGB alone",
    "depth_scale": "metres per 16UC1 depth unit (0.001: millimetres); 32FC1 depth is in metres",
    "depth_min_m": "depth below this is a hole (like 0, NaN and inf), metres",
    "depth_max_m": "depth beyond this is a hole, metres",
    "depth_fit": "with depth: fit each object's retrieved CAD to the depth in its mask (translation and heading ICP; off: measured +0.6 points, not significant)",
    "qos_reliability": "input QoS reliability: best_effort | reliable",
    "qos_depth": "input QoS history depth",
    "use_rectified_intrinsics": "use CameraInfo P (rectified image) instead of K",
    "sync_tolerance_s": "max stamp difference between an Image and its CameraInfo, seconds",
    "camera_info_mode": "exact: each image takes the CameraInfo of its own stamp (REP 104 drivers) | latest: the newest CameraInfo (drivers that publish it slower or once, latched)",
    "max_image_pixels": "images with more pixels (width x height) are rejected as too_large before they are decoded",
    "sync_window_s": "how long (in stamps) CameraInfos are kept and an image waits for its CameraInfo, seconds",
    "marker_lifetime_s": "lifetime of RViz markers, seconds (0 = forever)",
    "debug_image": "publish ~/debug_image (only while it has subscribers)",
    "diagnostics_period_s": "period of /diagnostics, seconds",
    "autostart": "configure and activate on start (plain node, no lifecycle manager)",
}

READ_ONLY = ("image_topic", "camera_info_topic", "depth_topic", "qos_reliability", "qos_depth", "diagnostics_period_s",
             "autostart")
# Read by configure: settable only while the node is unconfigured (applied at the next configure).
CONFIGURE_TIME = ("model_dir", "model", "backend", "device", "cad_db", "mesh_uri_scheme",
                  "track_max_distance_m", "track_max_missed", "map_frame", "map_match_distance_m", "map_max_missed",
                  "map_max_range_m", "map_tf_tolerance_s", "map_fuse_score", "floor_frame")


class ParamCheck(NamedTuple):
    ok: bool
    reason: str


def check_class_filter(classes: tuple[str, ...], model_classes) -> str:
    """"" if every name of `classes` is a class of the loaded model, else the reason (ROS-free)."""
    if model_classes is None:
        return ""
    unknown = [c for c in classes if c not in tuple(model_classes)]
    if unknown:
        return (f"parameter class_filter: {unknown} not among the loaded model's classes "
                f"{list(model_classes)}")
    return ""


def check_changes(current: NodeParams, changes: dict[str, Any], *, configured: bool = False,
                  model_classes=None) -> ParamCheck:
    """Validate runtime changes {name: value} against `current` (ROS-free). While `configured`,
    the CONFIGURE_TIME parameters are refused (clean the node up first); class_filter names must
    be classes of the loaded model (`model_classes`, None = no model loaded)."""
    locked = sorted(k for k in changes if k in CONFIGURE_TIME and changes[k] != getattr(current, k))
    if configured and locked:
        return ParamCheck(False, f"parameter(s) {locked} can change only while the node is unconfigured "
                                 "(cleanup, set, configure)")
    try:
        new = current.replace(**{k: (float(v) if isinstance(getattr(current, k), float)
                                     and isinstance(v, int) and not isinstance(v, bool) else v)
                                 for k, v in changes.items()})
    except (ValueError, TypeError) as exc:
        return ParamCheck(False, str(exc))
    reason = check_class_filter(new.classes, model_classes) if "class_filter" in changes else ""
    return ParamCheck(not reason, reason)


def declare(node) -> NodeParams:
    """Declare every parameter on `node` (with descriptors and ranges) and return their values."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    for f in dataclasses.fields(NodeParams):
        default = f.default
        descriptor = ParameterDescriptor(description=DESCRIPTIONS[f.name], read_only=f.name in READ_ONLY)
        if f.name in RANGES:
            low, high = RANGES[f.name]
            if isinstance(default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                                      to_value=float(high), step=0.0)]
        node.declare_parameter(f.name, default, descriptor)
    return read(node)


def read(node) -> NodeParams:
    """Current parameter values of `node` as NodeParams (raises ValueError if invalid)."""
    values = {f.name: node.get_parameter(f.name).value for f in dataclasses.fields(NodeParams)}
    return NodeParams(**values)


def make_on_set_callback(get_current, is_configured=lambda: False, model_classes=lambda: None):
    """on_set_parameters callback rejecting changes that NodeParams would refuse, changes of
    CONFIGURE_TIME parameters while `is_configured()`, and class_filter names the loaded model
    (`model_classes()`, None when unconfigured) does not know."""
    from rcl_interfaces.msg import SetParametersResult

    def callback(parameters) -> SetParametersResult:
        known = {f.name for f in dataclasses.fields(NodeParams)}
        changes = {p.name: p.value for p in parameters if p.name in known}
        result = check_changes(get_current(), changes, configured=is_configured(),
                               model_classes=model_classes())
        return SetParametersResult(successful=result.ok, reason=result.reason)

    return callback


def parse_value(name: str, text: str) -> Any:
    """A command-line / launch-argument string -> the typed value of parameter `name`
    ("true"/"false" for bools). Raises ValueError naming the parameter."""
    fields = {f.name: f.type for f in dataclasses.fields(NodeParams)}
    if name not in fields:
        raise ValueError(f"unknown parameter {name!r}; known: {sorted(fields)}")
    kind, text = fields[name], str(text).strip()
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower() == "true"
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError as exc:
        raise ValueError(f"parameter {name}: {text!r} is not a valid {kind} ({exc})") from None
    return text
