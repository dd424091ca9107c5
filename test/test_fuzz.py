"""Hostile input, property-based: image decoding, CameraInfo intrinsics, config loading, the data
set readers and CAD database paths. Each property allows exactly one exception type with a clear
message (never another exception, a crash or a hang); examples and deadlines are bounded."""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(60)
FAST = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e308, -1e308, 5e-324])


# ---- ros/image_codec ---------------------------------------------------------------------------
@FAST
@given(height=st.integers(-2, 40), width=st.integers(-2, 40), step_pad=st.integers(-130, 16),
       encoding=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "16UC1", "yuv422", "", "RGB8"]),
       length_delta=st.integers(-5, 5) | st.just(0), seed=st.integers(0, 2**16))
def test_image_decode_returns_the_declared_shape_or_an_input_error(height, width, step_pad, encoding, length_delta, seed):
    from cad_perception_ros.ros.image_codec import CHANNELS, InputError, decode_rgb
    channels = CHANNELS.get(encoding, 3)
    step = max(width, 0) * channels + step_pad
    data = np.random.default_rng(seed).integers(0, 256, max(step * height + length_delta, 0), dtype=np.uint8).tobytes()
    try:
        rgb = decode_rgb(height, width, encoding, step, data)
    except InputError as exc:
        assert exc.kind in ("empty_image", "encoding", "step") and str(exc)
        return
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert encoding in CHANNELS and step >= width * channels and len(data) == step * height


# ---- ros/conversions.camera_matrix ---------------------------------------------------------------
@FAST
@given(k=st.lists(FLOATS, min_size=9, max_size=9), p=st.lists(FLOATS, min_size=12, max_size=12),
       info_size=st.tuples(st.integers(0, 2**31), st.integers(0, 2**31)) | st.just((48, 64)),
       rectified=st.booleans())
def test_camera_matrix_is_valid_or_rejected(k, p, info_size, rectified):
    from sensor_msgs.msg import CameraInfo

    from cad_perception_ros.ros.conversions import camera_matrix
    from cad_perception_ros.ros.image_codec import InputError
    info = CameraInfo(height=info_size[0], width=info_size[1], k=k, p=p)
    try:
        K = camera_matrix(info, (48, 64), use_rectified=rectified)
    except InputError as exc:
        assert exc.kind in ("size_mismatch", "intrinsics")
        return
    assert info_size == (48, 64) and K.shape == (3, 3) and np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0


# ---- config.from_mapping / load_config ----------------------------------------------------------
SCALARS = st.none() | st.booleans() | st.integers(-2**70, 2**70) | FLOATS | st.text(max_size=8)
KEYS = st.sampled_from(["name", "input_size", "top_k", "class_names", "fpn_channels", "rotation_mode", "loss",
                        "heatmap", "x"]) | st.integers(-3, 3) | st.text(max_size=5) | st.none() | st.booleans()
TREES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(KEYS, children, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(tree=TREES)
def test_from_mapping_raises_only_config_error(tree):
    from cad_perception_ros.config import ConfigError, from_mapping
    from cad_perception_ros.model.config import RocaConfig
    try:
        config = from_mapping(RocaConfig, tree, where="fuzz")
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(config, RocaConfig)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tree=TREES, garbage=st.binary(max_size=40), use_garbage=st.booleans())
def test_load_config_raises_only_config_error(tmp_path, tree, garbage, use_garbage):
    from cad_perception_ros.config import ConfigError, load_config
    from cad_perception_ros.model.config import RocaConfig
    path = tmp_path / "fuzz.yaml"
    if use_garbage:
        path.write_bytes(garbage)
    else:
        try:
            path.write_text(yaml.safe_dump({"model": tree}), encoding="utf-8")
        except (yaml.YAMLError, UnicodeEncodeError):
            assume(False)
    try:
        load_config(RocaConfig, path, section="model")
    except ConfigError as exc:
        assert str(exc)


# ---- data readers: pngio, coco_rle, scan2cad annotations -------------------------------------------
def _png(width: int, height: int, depth: int = 16, color: int = 0) -> bytes:
    from cad_perception_ros.data.pngio import encode_png16
    return encode_png16(np.arange(width * height, dtype=np.uint16).reshape(height, width))


@FAST
@given(cut=st.integers(0, 200), flip=st.integers(0, 199), garbage=st.binary(max_size=32),
       header=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.sampled_from([1, 8, 16]),
                        st.integers(0, 6)) | st.none())
def test_png_reader_raises_value_error_on_damage(cut, flip, garbage, header):
    from cad_perception_ros.data.pngio import _SIGNATURE, _chunk, decode_png16
    good = _png(7, 5)
    if header is not None:  # a well-formed file whose IHDR lies (huge or odd sizes, depths, types)
        w, h, depth, color = header
        blob = _SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)) \
            + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    else:
        blob = bytearray(good[:cut] + garbage)
        if flip < len(blob):
            blob[flip] ^= 0x5A
        blob = bytes(blob)
    try:
        out = decode_png16(blob, "fuzz.png")
    except ValueError as exc:
        assert "fuzz.png" in str(exc)
        return
    assert out.dtype == np.uint16 and out.ndim in (2, 3)


@FAST
@given(size=st.lists(st.integers(-5, 2**40) | FLOATS | st.text(max_size=3), max_size=3),
       counts=st.text(max_size=12) | st.lists(st.integers(-2**70, 2**70) | st.text(max_size=2), max_size=6)
       | st.integers() | st.none(), drop=st.sampled_from([None, "size", "counts"]))
def test_rle_decode_raises_value_error(size, counts, drop):
    from cad_perception_ros.data.coco_rle import decode_mask
    rle = {"size": size, "counts": counts}
    rle.pop(drop, None)
    try:
        mask = decode_mask(rle)
    except ValueError:
        return
    assert mask.dtype == bool and mask.shape == tuple(int(v) for v in size)


@FAST
@given(anno=st.dictionaries(st.sampled_from(["t", "q", "s", "bbox", "category_id", "model", "area", "sym", "id"]),
                            TREES, max_size=9) | TREES)
def test_scan2cad_annotation_raises_value_error(anno):
    from cad_perception_ros.data.scan2cad_format import _object_from_annotation
    try:
        obj = _object_from_annotation(anno, "fuzz.json", None, False)
    except ValueError as exc:
        assert "fuzz.json" in str(exc)
        return
    assert 0 <= obj.class_id < 9 and obj.alignment.rotation.shape == (3, 3)


def test_scan2cad_instances_garbage_file(tmp_path):
    from cad_perception_ros.data.scan2cad_format import load_instances
    for text in ("{", "[]", '{"images": 3, "annotations": []}', "\udcff"):
        (tmp_path / "scan2cad_instances_val.json").write_text(text, encoding="utf-8", errors="surrogateescape")
        with pytest.raises(ValueError, match="scan2cad_instances_val.json"):
            load_instances(tmp_path, "val")


# ---- CAD database paths: never outside the root --------------------------------------------------
PARTS = st.sampled_from(["..", ".", "meshes", "a.stl", "", "/", "\\", "C:", "~", "%2e%2e", "..."])


@FAST
@given(parts=st.lists(PARTS, min_size=1, max_size=5), absolute=st.booleans())
def test_safe_path_never_leaves_the_root(tmp_path_factory, parts, absolute):
    from cad_perception_ros.cad.database import CadDatabaseError, safe_path
    root = tmp_path_factory.getbasetemp() / "db_root"
    (root / "meshes").mkdir(parents=True, exist_ok=True)
    relative = ("/" if absolute else "") + "/".join(parts)
    try:
        path = safe_path(root, relative, "fuzz")
    except CadDatabaseError:
        return
    assert path.resolve().is_relative_to(root.resolve())


def test_symlinked_mesh_outside_the_root_is_refused(tmp_path, build_tiny_database):
    from cad_perception_ros.cad.database import CadDatabase, CadDatabaseError
    db = build_tiny_database(tmp_path / "db")
    outside = tmp_path / "secret.stl"
    mesh = db.root / "meshes" / "chair_0.stl"
    outside.write_bytes(mesh.read_bytes())
    mesh.unlink()
    os.symlink(outside, mesh)
    with pytest.raises(CadDatabaseError, match="outside the database root"):
        CadDatabase.load(db.root)
    manifest = json.loads((db.root / "manifest.json").read_text())
    for bad in ("../secret.stl", str(outside), "meshes/../../secret.stl"):
        manifest["models"][0]["mesh_file"] = bad
        (db.root / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(CadDatabaseError, match="mesh_file"):
            CadDatabase.load(db.root)


@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe not utf-8", b"{not json", b""])
def test_read_json_object_names_the_file_for_every_malformed_case(tmp_path, content):
    from cad_perception_ros.jsonio import read_json_object

    path = tmp_path / "meta.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="meta.json: model metadata"):
        read_json_object(path, what="model metadata")
    with pytest.raises(ValueError, match="not found"):
        read_json_object(tmp_path / "missing.json", what="model metadata")
