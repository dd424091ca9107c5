"""Runtime on the real RocaNet (tiny random-weight config): export, op check, parity, model dir round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cad_perception_ros.model.checkpoint import save_model_dir
from cad_perception_ros.model.config import RocaConfig
from cad_perception_ros.pipeline import CadAligner
from cad_perception_ros.runtime.backends import OnnxRuntimeBackend, TorchBackend
from cad_perception_ros.runtime.onnx_cache import resolve_onnx
from cad_perception_ros.runtime.random_model import random_network
from cad_perception_ros.runtime.trt_ops import check_trt_ops

TINY = RocaConfig(input_size=(64, 96), backbone="resnet", pretrained=False, depth_focal_normalised=False,
                  backbone_widths=(8, 16, 16, 16), fpn_channels=16, head_channels=16, top_k=4,
                  roi_size=8, depth_channels=8, depth_feature_channels=16, shape_code_dim=16, hidden_dim=16,
                  embedding_dim=16, voxel_channels=(4, 4, 4))
IMAGE = np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)
K = np.array([[120.0, 0, 70.0], [0, 118.0, 52.0], [0, 0, 1]])


@pytest.fixture(scope="module")
def net_and_onnx(tmp_path_factory):
    net = random_network(config=TINY, cads_per_class=3)
    return net, resolve_onnx(net, cache_dir=tmp_path_factory.mktemp("onnx"))


def test_roca_export_passes_trt_op_check(net_and_onnx):
    report = check_trt_ops(net_and_onnx[1])
    assert report.unsupported == [] and "GridSample" in report.counts and "Conv" in report.counts


def test_roca_onnxruntime_matches_torch_raw(net_and_onnx):
    net, onnx = net_and_onnx
    rng = np.random.default_rng(3)
    inputs = {"image": rng.random((1, 3, 64, 96), dtype=np.float32),
              "K": np.array([[[80.0, 0, 47], [0, 80, 31], [0, 0, 1]]], np.float32)}
    ref = TorchBackend(model=net.model).run(inputs)
    out = OnnxRuntimeBackend(onnx_path=onnx, intra_op_threads=1).run(inputs)
    assert set(out) == set(ref)
    np.testing.assert_array_equal(out["classes"], ref["classes"])
    for name, value in ref.items():  # tolerance: 1e-4 absolute + 1e-3 relative (float32, fused kernels)
        np.testing.assert_allclose(out[name], value, atol=1e-4, rtol=1e-3, err_msg=name)


def test_roca_same_predictions_per_backend(tmp_path, net_and_onnx):
    net, onnx = net_and_onnx
    model_dir = save_model_dir(tmp_path / "model", net.model, TINY, cad_embeddings=net.index.embeddings,
                               cad_class_ids=net.index.class_ids, cad_ids=net.index.cad_ids)
    preds = {}
    for backend in ("torch", "onnxruntime"):
        aligner = CadAligner.from_model_dir(model_dir, backend=backend, score_threshold=0.0)
        preds[backend] = aligner(IMAGE, K)
        assert aligner.class_names == TINY.class_names and aligner.model_name == "roca"
        assert all(aligner.last_timings[s] >= 0 for s in ("preprocess", "network", "procrustes", "retrieval"))
    a, b = preds["torch"], preds["onnxruntime"]
    assert len(a) == len(b) == TINY.top_k
    for p, q in zip(a, b):
        assert (p.class_id, p.cad_id) == (q.class_id, q.cad_id) and p.cad_id.startswith("random_")
        assert p.mask.shape == IMAGE.shape[:2]
        np.testing.assert_allclose(p.box_xyxy, q.box_xyxy, atol=1e-3)
        np.testing.assert_allclose(p.alignment.rotation, q.alignment.rotation, atol=1e-3)
        np.testing.assert_allclose(p.alignment.translation, q.alignment.translation, atol=1e-3)


def test_export_and_predict_cli(tmp_path, net_and_onnx):
    from cad_perception_ros.cli import main

    net = net_and_onnx[0]
    model_dir = save_model_dir(tmp_path / "model", net.model, TINY, cad_embeddings=net.index.embeddings,
                               cad_class_ids=net.index.class_ids, cad_ids=net.index.cad_ids)
    assert main(["export", "--model-dir", str(model_dir)]) == 0
    side = json.loads((model_dir / "model.json").read_text())
    assert side["input_size"] == [64, 96] and side["class_names"] == list(TINY.class_names)
    from PIL import Image

    Image.fromarray(IMAGE).save(tmp_path / "photo.png")
    argv = ["predict", str(tmp_path / "photo.png"), "--intrinsics", "120,118,70,52", "--model-dir", str(model_dir),
            "--backend", "onnxruntime", "--score-threshold", "0", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    result = json.loads((tmp_path / "out" / "photo.json").read_text())
    overlay = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert len(result["predictions"]) == TINY.top_k and overlay.shape == IMAGE.shape
    assert (overlay != IMAGE).any()  # something was drawn
    with pytest.raises(SystemExit, match="overwrite"):
        main(argv)
