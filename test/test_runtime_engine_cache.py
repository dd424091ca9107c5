"""Engine cache (no TensorRT needed: the builder is injected) and the TensorRT backend (skipped without it)."""
from __future__ import annotations

import numpy as np
import pytest

from cad_perception_ros.runtime.engine_cache import MAGIC, EngineCache, EngineKey, sha256_file


class CountingBuilder:
    def __init__(self):
        self.calls = 0

    def __call__(self, onnx_path, key):
        self.calls += 1
        return f"engine of {key.onnx_sha256[:8]} {key.trt_version} {key.gpu_name} #{self.calls}".encode()


@pytest.fixture
def setup(tmp_path):
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"fake onnx 1")
    key = EngineKey(sha256_file(onnx), "10.15.1", "NVIDIA H100", "9.0", "fp16")
    builder = CountingBuilder()
    return EngineCache(cache_dir=tmp_path / "cache", builder=builder), builder, onnx, key


def test_miss_then_hit_across_instances(setup):
    cache, builder, onnx, key = setup
    first = cache.get(onnx, key)
    assert first.status == "miss" and builder.calls == 1 and first.path.is_file()
    again = EngineCache(cache_dir=cache.cache_dir, builder=builder).get(onnx, key)  # "next start"
    assert again.status == "hit" and again.engine == first.engine and builder.calls == 1
    assert not list(cache.cache_dir.glob("*.tmp"))  # atomic write left no temporary


@pytest.mark.parametrize("field,value", [("onnx_sha256", "0" * 64), ("trt_version", "10.16.0"),
                                         ("gpu_name", "Orin"), ("compute_capability", "8.7")])
def test_changed_key_rebuilds(setup, field, value):
    cache, builder, onnx, key = setup
    cache.get(onnx, key)
    changed = key._replace(**{field: value})
    result = cache.get(onnx, changed)
    assert result.status == "stale" and builder.calls == 2
    assert cache.get(onnx, changed).status == "hit" and builder.calls == 2


def test_changed_onnx_file_changes_key(setup):
    cache, builder, onnx, key = setup
    cache.get(onnx, key)
    onnx.write_bytes(b"fake onnx 2")
    assert cache.get(onnx, key._replace(onnx_sha256=sha256_file(onnx))).status == "stale"


@pytest.mark.parametrize("damage", ["truncate", "magic", "flip", "header", "empty"])
def test_corrupted_file_is_rebuilt(setup, damage):
    cache, builder, onnx, key = setup
    path = cache.get(onnx, key).path
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-3]
    elif damage == "magic":
        data[:len(MAGIC)] = b"XXXXXXXX"
    elif damage == "flip":
        data[-1] ^= 0xFF
    elif damage == "header":
        data[len(MAGIC) + 5] = ord("}")
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    result = cache.get(onnx, key)
    assert result.status == "corrupt" and builder.calls == 2
    assert cache.get(onnx, key).status == "hit"


def test_force_rebuild(setup):
    cache, builder, onnx, key = setup
    cache.get(onnx, key)
    result = cache.get(onnx, key, force=True)
    assert result.status == "forced" and builder.calls == 2 and result.engine.endswith(b"#2")
    assert cache.get(onnx, key).engine.endswith(b"#2")


def test_failed_build_keeps_old_file(setup):
    cache, builder, onnx, key = setup
    good = cache.get(onnx, key).engine

    def broken(path, k):
        raise RuntimeError("parser failed")

    with pytest.raises(RuntimeError, match="parser failed"):
        EngineCache(cache_dir=cache.cache_dir, builder=broken).get(onnx, key, force=True)
    assert cache.get(onnx, key).engine == good


def test_tensorrt_backend_matches_onnxruntime(tmp_path, TinyExportNet):
    """Runs only where TensorRT and CUDA exist (a GPU machine with TensorRT installed)."""
    pytest.importorskip("tensorrt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")

    from cad_perception_ros.runtime.backends import OnnxRuntimeBackend
    from cad_perception_ros.runtime.onnx_export import export_onnx
    from cad_perception_ros.runtime.tensorrt_backend import TensorRTBackend

    torch.manual_seed(0)
    onnx = export_onnx(TinyExportNet().eval(), tmp_path / "t.onnx", input_size=(64, 96)).onnx_path
    rng = np.random.default_rng(0)
    inputs = {"image": rng.random((1, 3, 64, 96), dtype=np.float32),
              "K": np.array([[[80.0, 0, 47], [0, 80, 33], [0, 0, 1]]], np.float32)}
    trt_backend = TensorRTBackend(onnx_path=onnx, cache_dir=tmp_path / "engines")
    assert trt_backend.cache_status == "miss"
    reference = OnnxRuntimeBackend(onnx_path=onnx).run(inputs)
    out = trt_backend.run(inputs)
    for name, value in reference.items():
        np.testing.assert_allclose(out[name], value, atol=2e-2, rtol=2e-2, err_msg=name)  # FP16 tolerance
    assert TensorRTBackend(onnx_path=onnx, cache_dir=tmp_path / "engines").cache_status == "hit"
