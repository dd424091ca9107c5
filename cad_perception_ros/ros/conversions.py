"""Pure functions: core types (CadPrediction, Alignment9D, numpy images) -> ROS messages (and back,
for scoring published alignments).

No node, no rclpy context: every function builds messages from plain values, so all of it is
testable without starting ROS. Every output copies the input image's header (stamp + optical
frame) and every pose is the CAD canonical frame in that optical frame (x_cam = R diag(s) x + t).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Protocol, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseArray, Transform, TransformStamped, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import (
    BoundingBox3D,
    Detection3D,
    Detection3DArray,
    ObjectHypothesisWithPose,
)
from visualization_msgs.msg import Marker, MarkerArray

from cad_perception_ros.geometry.camera import (
    binned_roi_intrinsics,
    check_plausible_intrinsics,
    validate_intrinsics,
)
from cad_perception_ros.geometry.sensor_depth import DepthError, clean_depth, depth_to_metres
from cad_perception_ros.mapping.tf_buffer import RigidTransform
from cad_perception_ros.msg import ObjectAlignment, ObjectAlignmentArray
from cad_perception_ros.ros import image_codec
from cad_perception_ros.ros.image_codec import InputError
from cad_perception_ros.types import Alignment9D, CadPrediction

MESH_NS, LABEL_NS = "cad_mesh", "cad_label"
LABEL_HEIGHT_M = 0.08
# Colour per class id (RGB in 0..1), cycling for ids beyond the table.
PALETTE = ((0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (1.00, 0.88, 0.10), (0.26, 0.39, 0.85),
           (0.96, 0.51, 0.19), (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.94, 0.20, 0.90),
           (0.82, 0.96, 0.24))


class CadInfo(NamedTuple):
    """What the messages need of a retrieved CAD model: mesh URI and canonical extent (3,)."""

    mesh_uri: str
    extent: tuple[float, float, float]


class CadLookup(Protocol):
    def __call__(self, cad_id: str) -> CadInfo | None: ...


UNIT_CUBE = CadInfo("", (1.0, 1.0, 1.0))


def database_lookup(cad_db, mesh_uri=None) -> CadLookup:
    """CadLookup over a CadDatabase: (mesh URI, db[cad_id].extent); unknown ids -> None.
    mesh_uri(path) -> str makes the URI of a mesh file (default: the database's file:// URI)."""
    def lookup(cad_id: str) -> CadInfo | None:
        if cad_db is None or not cad_id:
            return None
        try:
            uri = mesh_uri(cad_db.mesh_path(cad_id)) if mesh_uri is not None else cad_db.mesh_uri(cad_id)
            return CadInfo(uri, tuple(float(v) for v in cad_db[cad_id].extent))
        except (KeyError, ValueError):
            return None
    return lookup


def copy_header(header: Header) -> Header:
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec), frame_id=header.frame_id)


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def pose_msg(alignment: Alignment9D) -> Pose:
    """Rotation and translation of an Alignment9D (scale is carried separately)."""
    x, y, z, w = Rotation.from_matrix(alignment.rotation).as_quat()
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in alignment.translation)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
        float(x), float(y), float(z), float(w))
    return pose


def vector3(values: Sequence[float]) -> Vector3:
    return Vector3(x=float(values[0]), y=float(values[1]), z=float(values[2]))


def object_frames(predictions: Sequence[CadPrediction], tf_prefix: str,
                  names: Sequence[str] | None = None) -> list[str]:
    """TF child frame per object: "{tf_prefix}{name}" with the object's track name (e.g. "chair_3",
    tracking.Track.name); without names "{tf_prefix}{class}_{index}" (index = list position)."""
    if names is not None:
        return [f"{tf_prefix}{name}" for name in names]
    return [f"{tf_prefix}{p.class_name}_{i}" for i, p in enumerate(predictions)]


def alignments_msg(header: Header, predictions: Sequence[CadPrediction], lookup: CadLookup,
                   *, model: str = "", tf_frames: Sequence[str] | None = None) -> ObjectAlignmentArray:
    out = ObjectAlignmentArray(header=copy_header(header), model=model)
    for i, p in enumerate(predictions):
        info = lookup(p.cad_id) or UNIT_CUBE
        box = [float(v) for v in np.asarray(p.box_xyxy, dtype=np.float64).reshape(4)]
        out.objects.append(ObjectAlignment(
            class_name=p.class_name, class_id=int(p.class_id), score=float(p.score),
            box_x_min=box[0], box_y_min=box[1], box_x_max=box[2], box_y_max=box[3],
            pose=pose_msg(p.alignment), scale=vector3(p.alignment.scale), cad_id=p.cad_id,
            mesh_resource=info.mesh_uri, retrieval_distance=float(p.retrieval_distance),
            tf_frame=tf_frames[i] if tf_frames else ""))
    return out


def prediction_from_alignment(obj: ObjectAlignment) -> CadPrediction:
    """Inverse of one alignments_msg entry (for scoring published output): the CadPrediction
    (no mask) whose pose, scale, box, score and CAD id the message carries, in its optical frame."""
    q = obj.pose.orientation
    rotation = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()  # (3, 3)
    p = obj.pose.position
    alignment = Alignment9D(rotation, np.array([p.x, p.y, p.z]), np.array([obj.scale.x, obj.scale.y, obj.scale.z]))
    return CadPrediction(class_id=int(obj.class_id), class_name=obj.class_name, score=float(obj.score),
                         box_xyxy=np.array([obj.box_x_min, obj.box_y_min, obj.box_x_max, obj.box_y_max], np.float64),
                         alignment=alignment, cad_id=obj.cad_id, retrieval_distance=float(obj.retrieval_distance))


def detections_msg(header: Header, predictions: Sequence[CadPrediction], lookup: CadLookup,
                   ids: Sequence[str] | None = None) -> Detection3DArray:
    """vision_msgs: class + score in results[0].hypothesis, pose in results[0].pose.pose and
    bbox.center, bbox.size = s * canonical extent of the CAD model (metres), id = the object's
    track name (`ids`; the node passes tracking.Track.name), else cad_id."""
    out = Detection3DArray(header=copy_header(header))
    for i, p in enumerate(predictions):
        info = lookup(p.cad_id) or UNIT_CUBE
        pose = pose_msg(p.alignment)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = p.class_name
        hypothesis.hypothesis.score = float(p.score)
        hypothesis.pose.pose = pose
        size = np.asarray(p.alignment.scale) * np.asarray(info.extent)  # (3,) metres
        out.detections.append(Detection3D(header=copy_header(header), results=[hypothesis],
                                          bbox=BoundingBox3D(center=pose, size=vector3(size)),
                                          id=ids[i] if ids is not None else p.cad_id))
    return out


def poses_msg(header: Header, predictions: Sequence[CadPrediction]) -> PoseArray:
    return PoseArray(header=copy_header(header), poses=[pose_msg(p.alignment) for p in predictions])


def tf_msg(header: Header, predictions: Sequence[CadPrediction], frames: Sequence[str]) -> TFMessage:
    """One TransformStamped per object: parent = image optical frame, child = its object frame."""
    out = TFMessage()
    for p, frame in zip(predictions, frames):
        pose = pose_msg(p.alignment)
        transform = Transform(rotation=pose.orientation)
        transform.translation.x, transform.translation.y, transform.translation.z = (
            pose.position.x, pose.position.y, pose.position.z)
        out.transforms.append(TransformStamped(header=copy_header(header), child_frame_id=frame,
                                               transform=transform))
    return out


def rigid_from_transform_msg(msg: TransformStamped) -> tuple[str, str, int, RigidTransform]:
    """(parent, child, stamp ns, parent <- child) of a TransformStamped; ValueError on a quaternion
    that is not finite or is zero (it is normalised otherwise)."""
    q, t = msg.transform.rotation, msg.transform.translation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = float(np.linalg.norm(quat))
    if not np.all(np.isfinite(quat)) or norm < 1e-6:
        raise ValueError(f"transform {msg.header.frame_id!r} -> {msg.child_frame_id!r} has an invalid quaternion {quat.tolist()}")
    rigid = RigidTransform(Rotation.from_quat(quat / norm).as_matrix(), np.array([t.x, t.y, t.z], dtype=np.float64))
    return msg.header.frame_id.lstrip("/"), msg.child_frame_id.lstrip("/"), stamp_to_ns(msg.header.stamp), rigid


def class_colour(class_id: int, alpha: float = 0.8) -> ColorRGBA:
    r, g, b = PALETTE[int(class_id) % len(PALETTE)]
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration
    whole = int(math.floor(seconds))
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)) % 1_000_000_000)


def markers_msg(header: Header, predictions: Sequence[CadPrediction], lookup: CadLookup, *,
                previous_count: int = 0, lifetime_s: float = 1.0, marker_ids: Sequence[int] | None = None,
                clear: bool | None = None) -> MarkerArray:
    """RViz markers: DELETEALL first when `clear` (default: fewer objects than last frame), then
    per object a MESH_RESOURCE (the CAD mesh, scale = s; a CUBE of the canonical unit box when the
    mesh is unknown) in namespace "cad_mesh" and a TEXT_VIEW_FACING label in "cad_label";
    id = marker_ids[i] (the node passes the object's track id), else the list index."""
    out = MarkerArray()
    if (len(predictions) < previous_count) if clear is None else clear:
        out.markers.append(Marker(header=copy_header(header), action=Marker.DELETEALL))
    lifetime = _duration(lifetime_s)
    for index, p in enumerate(predictions):
        i = int(marker_ids[index]) if marker_ids is not None else index
        info = lookup(p.cad_id) or UNIT_CUBE
        mesh = Marker(header=copy_header(header), ns=MESH_NS, id=i, action=Marker.ADD,
                      pose=pose_msg(p.alignment), color=class_colour(p.class_id), lifetime=lifetime)
        if info.mesh_uri:
            mesh.type, mesh.mesh_resource, mesh.scale = Marker.MESH_RESOURCE, info.mesh_uri, vector3(p.alignment.scale)
        else:
            mesh.type = Marker.CUBE
            mesh.scale = vector3(np.asarray(p.alignment.scale) * np.asarray(info.extent))
        out.markers.append(mesh)
        top = p.alignment.transform_points(np.array([[0.0, 0.5 * info.extent[1], 0.0]]))[0]  # (3,) canonical top
        label = Marker(header=copy_header(header), ns=LABEL_NS, id=i, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, text=f"{p.class_name} {p.score:.2f}", lifetime=lifetime,
                       color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0))
        label.pose.position.x, label.pose.position.y, label.pose.position.z = (float(v) for v in top)
        label.pose.position.y -= LABEL_HEIGHT_M  # optical frame: -y is up
        label.pose.orientation.w = 1.0
        label.scale.z = LABEL_HEIGHT_M
        out.markers.append(label)
    return out


def image_msg(header: Header, array: np.ndarray, encoding: str = "rgb8") -> Image:
    """(H, W, C) uint8 array in `encoding` order -> sensor_msgs/Image."""
    raw = image_codec.encode(array, encoding)
    return Image(header=copy_header(header), height=raw.height, width=raw.width, encoding=raw.encoding,
                 is_bigendian=0, step=raw.step, data=raw.data)


def rgb_from_image_msg(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB; raises InputError (kind) on malformed input."""
    try:
        data = memoryview(msg.data).cast("B")  # bytes, array('B') or a CDR view: no copy
    except TypeError:
        data = bytes(msg.data)
    return image_codec.decode_rgb(msg.height, msg.width, msg.encoding, msg.step, data)


def depth_from_image_msg(msg: Image, image_size: tuple[int, int], depth_scale: float,
                         depth_range: tuple[float, float]) -> np.ndarray:
    """Registered depth sensor_msgs/Image (16UC1 x depth_scale, or 32FC1 metres) of a colour image of
    size (H, W) -> (H, W) float32 metres, holes 0. Raises a ValueError whose ``kind`` is
    depth_encoding, depth_size or depth_empty (geometry/sensor_depth.py). The size is checked
    before the buffer is decoded (a huge depth image costs nothing)."""
    if (msg.height, msg.width) != tuple(image_size):
        raise DepthError("depth_size", f"depth is {msg.width}x{msg.height} but the colour image is "
                                       f"{image_size[1]}x{image_size[0]} (a registered depth image has its size)")
    try:
        data = memoryview(msg.data).cast("B")
    except TypeError:
        data = bytes(msg.data)
    raw = image_codec.decode_depth(msg.height, msg.width, msg.encoding, msg.step, data, msg.is_bigendian)
    return clean_depth(depth_to_metres(raw, msg.encoding, depth_scale), image_size, depth_range)


def depth_image_msg(header: Header, depth: np.ndarray) -> Image:
    """(H, W) uint16 (-> 16UC1) or float32 (-> 32FC1, metres) array -> sensor_msgs/Image."""
    depth = np.ascontiguousarray(depth)
    encoding = {np.dtype(np.uint16): "16UC1", np.dtype(np.float32): "32FC1"}.get(depth.dtype)
    if encoding is None or depth.ndim != 2:
        raise ValueError(f"depth must be (H, W) uint16 or float32, got {depth.dtype} {depth.shape}")
    little = depth.astype(depth.dtype.newbyteorder("<"))
    return Image(header=copy_header(header), height=depth.shape[0], width=depth.shape[1], encoding=encoding,
                 is_bigendian=0, step=depth.shape[1] * depth.itemsize, data=little.tobytes())


def camera_matrix(info: CameraInfo, image_size: tuple[int, int], *, use_rectified: bool = False) -> np.ndarray:
    """CameraInfo -> K (3, 3) float64 of the image (from P[:, :3] when use_rectified).

    REP 104: CameraInfo width/height and K are the full-resolution calibration; a camera that bins
    or crops (binning_x/y, roi) sends smaller images. Where binning or ROI is set, K is mapped to the
    image (geometry/camera.binned_roi_intrinsics) and the image must have the binned ROI's size.
    Raises InputError: "size_mismatch" if the sizes disagree, "intrinsics" if K breaks the one rule
    of geometry/camera.validate_intrinsics or is implausible for the image size."""
    height, width = image_size
    which = "P" if use_rectified else "K"
    values = np.asarray(info.p if use_rectified else info.k, dtype=np.float64)
    K = np.array(values.reshape(3, 4)[:, :3] if use_rectified else values.reshape(3, 3))  # (3, 3)
    expected = expected_image_size(info)
    if binning_already_applied(info, image_size):
        expected = (height, width)  # the driver sent K for the binned / cropped image already
    if expected != (height, width):
        should = f" (images of {expected[1]}x{expected[0]} expected)" if binned_or_cropped(info) else ""
        raise InputError("size_mismatch", f"CameraInfo is {info.width}x{info.height}{_binning_note(info)} but the "
                                          f"image is {width}x{height}{should}")
    if binned_or_cropped(info) and not binning_already_applied(info, image_size):
        K = binned_roi_intrinsics(K, binning=(info.binning_x, info.binning_y),
                                  roi_offset=(info.roi.x_offset, info.roi.y_offset))
    try:
        K = validate_intrinsics(K)
        check_plausible_intrinsics(K, (height, width))
    except ValueError as exc:
        raise InputError("intrinsics", f"CameraInfo {which} is invalid: {exc}") from None
    return K


def binned_or_cropped(info: CameraInfo) -> bool:
    """True when the CameraInfo sets binning (> 1) or a ROI (REP 104)."""
    roi = info.roi
    return info.binning_x > 1 or info.binning_y > 1 or bool(roi.width or roi.height or roi.x_offset or roi.y_offset)


def binning_already_applied(info: CameraInfo, image_size: tuple[int, int]) -> bool:
    """Binning or ROI is set, yet CameraInfo's width/height already equal the image's (H, W): some
    drivers send the calibration of the binned image. K is then taken as it is (the node says so)."""
    return binned_or_cropped(info) and (info.height, info.width) == tuple(image_size) \
        and expected_image_size(info) != tuple(image_size)


def expected_image_size(info: CameraInfo) -> tuple[int, int]:
    """(H, W) of the images a camera with this CameraInfo sends: the ROI (or the full frame),
    divided by the binning (REP 104)."""
    roi = info.roi
    width = roi.width if roi.width else info.width
    height = roi.height if roi.height else info.height
    return height // max(info.binning_y, 1), width // max(info.binning_x, 1)


def _binning_note(info: CameraInfo) -> str:
    if not binned_or_cropped(info):
        return ""
    roi = info.roi
    return (f" with binning {info.binning_x}x{info.binning_y} and ROI {roi.width}x{roi.height}"
            f"+{roi.x_offset}+{roi.y_offset}")


def has_distortion(info: CameraInfo) -> bool:
    """True when the CameraInfo's D holds a non-zero coefficient (the image is not rectified)."""
    return any(abs(float(d)) > 0.0 for d in info.d)


def camera_info_msg(header: Header, K: np.ndarray, size: tuple[int, int]) -> CameraInfo:
    """Pinhole CameraInfo for an undistorted image of size (H, W) with intrinsics K (3, 3)."""
    K = np.asarray(K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=copy_header(header), height=int(size[0]), width=int(size[1]),
                      distortion_model="plumb_bob", d=[0.0] * 5, k=K.reshape(-1).tolist(),
                      r=np.eye(3).reshape(-1).tolist(), p=P.reshape(-1).tolist())
