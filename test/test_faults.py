"""Faults in what the node loads: each configure fails with a message naming the file and the
problem (AlignerLoadError, which the node turns into a failed lifecycle transition), and a
corrupted TensorRT engine cache file is rebuilt, never raised."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cad_perception_ros.ros.aligners import AlignerLoadError, load_aligner
from cad_perception_ros.ros.params import NodeParams

pytestmark = pytest.mark.timeout(60)
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, build_tiny_model_dir):
    return build_tiny_model_dir(tmp_path_factory.mktemp("faults"))


@pytest.fixture
def model_dir(pristine, tmp_path):
    """A fresh copy of the tiny model dir and its CAD database (tests damage it)."""
    shutil.copytree(pristine.parent / "cad_db", tmp_path / "cad_db")
    return shutil.copytree(pristine, tmp_path / "model")


def configure(model_dir, **params):
    return load_aligner(NodeParams(model_dir=str(model_dir), **params))


def test_intact_model_dir_loads_and_runs(model_dir):
    aligner, lookup = configure(model_dir, score_threshold=0.0)
    assert isinstance(aligner(np.zeros((48, 64, 3), np.uint8), K), list)
    assert lookup("table_1").extent == pytest.approx((1.0, 0.6, 0.8))


def test_truncated_weights(model_dir, refresh_hash):
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AlignerLoadError, match=r"model\.safetensors: sha256 does not match"):
        configure(model_dir)
    refresh_hash(model_dir, "model.safetensors")  # a truncation the hash does not catch
    with pytest.raises(AlignerLoadError, match=r"model\.safetensors: not a valid safetensors file"):
        configure(model_dir)


@pytest.mark.parametrize("payload", [b"\x89PNG\r\n\x1a\n" + b"\0" * 64, b"\x80\x04\x95" + b"pickle" * 10, b""])
def test_wrong_format_weights(model_dir, payload, refresh_hash):
    (model_dir / "model.safetensors").write_bytes(payload)
    refresh_hash(model_dir, "model.safetensors")
    with pytest.raises(AlignerLoadError, match=r"model\.safetensors: not a valid safetensors file"):
        configure(model_dir)


def test_weights_of_another_architecture(model_dir, refresh_hash):
    import torch
    from safetensors.torch import save_file
    save_file({"backbone.stem.weight": torch.zeros(3, 3)}, str(model_dir / "model.safetensors"))
    refresh_hash(model_dir, "model.safetensors")
    with pytest.raises(AlignerLoadError, match="weights do not match the model config"):
        configure(model_dir)


def test_cad_database_with_a_missing_mesh(model_dir):
    (model_dir.parent / "cad_db" / "meshes" / "table_1.stl").unlink()
    with pytest.raises(AlignerLoadError, match=r"CAD database .*models\[1\]: mesh file .*table_1\.stl is missing"):
        configure(model_dir)


def test_cad_database_param_that_does_not_exist(model_dir):
    with pytest.raises(AlignerLoadError, match="CAD database directory not found"):
        configure(model_dir, cad_db=str(model_dir.parent / "nowhere"))


def test_embeddings_name_models_the_database_lacks(model_dir, rewrite_meta):
    rewrite_meta(model_dir, cad_ids=["chair_0", "table_1", "bed_9"])
    with pytest.raises(AlignerLoadError, match=r"1 of 3 CAD embeddings name models .* lacks, e.g. \['bed_9'\]"):
        configure(model_dir)


def test_embedding_count_differs_from_the_manifest_ids(model_dir, rewrite_meta):
    manifest = json.loads((model_dir.parent / "cad_db" / "manifest.json").read_text())
    assert len(manifest["models"]) == 3
    rewrite_meta(model_dir, cad_ids=["chair_0", "table_1"])  # 3 embeddings, 2 ids
    with pytest.raises(AlignerLoadError, match=r"embeddings \(3, 8\) and class_ids \(3,\) do not match the 2 cad_ids"):
        configure(model_dir)


def test_manifest_lists_fewer_models_than_its_arrays(model_dir):
    path = model_dir.parent / "cad_db" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["models"] = manifest["models"][:2]
    path.write_text(json.dumps(manifest))
    with pytest.raises(AlignerLoadError, match="holds 3 models but the manifest lists 2"):
        configure(model_dir)


def test_missing_meta_json(model_dir):
    (model_dir / "meta.json").unlink()
    with pytest.raises(AlignerLoadError, match="has no meta.json"):
        configure(model_dir)


# ---- TensorRT engine cache (pure Python; the builder stands in for TensorRT) ---------------------
def _cache(tmp_path):
    from cad_perception_ros.runtime.engine_cache import EngineCache, EngineKey
    builds = []
    cache = EngineCache(cache_dir=tmp_path / "engines", builder=lambda onnx, key: builds.append(key) or b"ENGINE" * 10)
    key = EngineKey("ab" * 32, "10.3", "NVIDIA H100", "9.0", "fp16")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    return cache, key, onnx, builds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), garbage=st.binary(max_size=64), flip=st.integers(0, 399))
def test_corrupted_engine_cache_file_is_rebuilt(tmp_path, cut, garbage, flip):
    cache, key, onnx, builds = _cache(tmp_path)
    builds.clear()
    path = cache.get(onnx, key, force=True).path
    good = path.read_bytes()
    damaged = bytearray(good[: min(cut, len(good))] + garbage)
    if damaged and flip < len(damaged):
        damaged[flip] ^= 0xFF
    path.write_bytes(bytes(damaged))
    result = cache.get(onnx, key)
    if bytes(damaged) == good:
        assert result.status == "hit" and len(builds) == 1
    else:
        assert result.status == "corrupt" and result.engine == b"ENGINE" * 10 and len(builds) == 2
        assert path.read_bytes() == good  # rewritten atomically
