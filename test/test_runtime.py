"""Runtime: backends parity, export + TensorRT op check, pipeline pre-processing, retrieval."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cad_perception_ros.cad.retrieval import EmbeddingIndex
from cad_perception_ros.pipeline import CadAligner, preprocess, validate_intrinsics
from cad_perception_ros.runtime.backends import OnnxRuntimeBackend, TorchBackend, make_backend
from cad_perception_ros.runtime.onnx_export import export_onnx, read_sidecar
from cad_perception_ros.runtime.trt_ops import UnsupportedOpError, check_trt_ops, list_ops

SIZE = (64, 96)  # (H, W) network input


@pytest.fixture(scope="module")
def exported(tmp_path_factory, TinyExportNet):
    torch.manual_seed(0)
    model = TinyExportNet().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = export_onnx(model, path, input_size=SIZE, metadata={"class_names": ["a", "b", "c"]})
    return model, result


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    K = np.array([[[80.0, 0, 47.0], [0, 81.0, 33.0], [0, 0, 1]]], np.float32)
    return {"image": rng.random((1, 3, *SIZE), dtype=np.float32), "K": K}


def test_onnxruntime_matches_torch(exported):
    model, result = exported
    torch_out = TorchBackend(model=model).run(_inputs())
    ort_out = OnnxRuntimeBackend(onnx_path=result.onnx_path, intra_op_threads=1).run(_inputs())
    assert set(ort_out) == set(torch_out) == {"heatmap", "boxes", "translation", "embedding"}
    for name, value in torch_out.items():
        assert ort_out[name].shape == value.shape
        np.testing.assert_allclose(ort_out[name], value, atol=1e-5, rtol=1e-4, err_msg=name)  # stated tolerance


def test_sidecar_and_no_overwrite(exported):
    model, result = exported
    side = read_sidecar(result.onnx_path)
    assert side["input_size"] == list(SIZE) and side["class_names"] == ["a", "b", "c"]
    assert side["output_names"] == result.output_names and side["sha256"] == result.sha256
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(model, result.onnx_path, input_size=SIZE)


def test_op_check_passes_on_export(exported):
    report = check_trt_ops(exported[1].onnx_path)
    assert report.unsupported == [] and report.counts["Conv"] == 3 and report.opset == 17


def _graph_with(tmp_path, op_type, domain="", in_subgraph=False):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    node = helper.make_node(op_type, ["x"], ["y"], domain=domain)
    if in_subgraph:  # hide the op inside an If branch
        branch = helper.make_graph([node], "branch", [], [y])
        cond = helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True]))
        node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)
        nodes = [cond, node]
    else:
        nodes = [node]
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=opsets)
    path = tmp_path / f"{op_type}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("op,domain,sub", [("Det", "", False), ("Det", "", True), ("MadeUpOp", "my.domain", False)])
def test_op_check_fails_on_unsupported(tmp_path, op, domain, sub):
    path = _graph_with(tmp_path, op, domain, sub)
    name = f"{domain}::{op}" if domain else op
    assert name in list_ops(path).unsupported
    with pytest.raises(UnsupportedOpError, match=name):
        check_trt_ops(path)


def test_intrinsics_validation():
    good = np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])
    for bad, match in ((good[:2], "shape"), (np.where(good == 100, np.nan, good), "NaN"),
                       (np.diag([-1.0, 100, 1]), "positive"), (np.diag([100.0, 0, 1]), "positive"),
                       (np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 2]]), "last row")):
        with pytest.raises(ValueError, match=match):
            validate_intrinsics(bad)


@pytest.mark.parametrize("image,match", [(np.zeros((10, 10), np.uint8), "shape"),
                                         (np.zeros((10, 10, 4), np.uint8), "shape"),
                                         (np.zeros((10, 10, 3), np.float32), "uint8"),
                                         ([[0, 0, 0]], "numpy")])
def test_image_validation(image, match):
    with pytest.raises(ValueError, match=match):
        preprocess(image, np.diag([50.0, 50, 1]), SIZE)


def test_resize_keeps_projection():
    """A 3D point drawn as a blob at its projection lands where the scaled K projects it."""
    H, W = 131, 197
    K = np.array([[160.0, 0, 71.3], [0, 150.0, 80.9], [0, 0, 1]])  # off-centre principal point
    point = np.array([0.21, -0.13, 1.7])
    uv = (K @ point)[:2] / point[2]
    cols, rows = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)  # pixel centres
    blob = np.exp(-((cols - uv[0]) ** 2 + (rows - uv[1]) ** 2) / (2 * 6.0 ** 2))
    image = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    pre = preprocess(image, K, SIZE)
    small = pre.inputs["image"][0, 0].astype(np.float64)  # (h, w)
    c2, r2 = np.meshgrid(np.arange(SIZE[1]) + 0.5, np.arange(SIZE[0]) + 0.5)
    centroid = np.array([(small * c2).sum(), (small * r2).sum()]) / small.sum()
    uv_small = (pre.K_input @ point)[:2] / point[2]
    np.testing.assert_allclose(centroid, uv_small, atol=0.15)
    np.testing.assert_allclose(uv_small, uv * [SIZE[1] / W, SIZE[0] / H], atol=1e-9)
    assert pre.inputs["K"].shape == (1, 3, 3) and pre.inputs["image"].shape == (1, 3, *SIZE)


def _fake_decode(raw, *, image_size, score_threshold, timings):
    """Stand-in for model/roca/decode.decode: rounds the network outputs into a comparable list."""
    timings["procrustes"], timings["retrieval"] = 0.1, 0.2
    return [(round(float(raw["boxes"][0, i, 0]) * image_size[1], 3), tuple(np.round(raw["translation"][0, i], 3)))
            for i in range(raw["boxes"].shape[1])]


def test_aligner_same_predictions_per_backend(exported):
    model, result = exported
    image = np.random.default_rng(1).integers(0, 256, (120, 170, 3), dtype=np.uint8)
    K = np.array([[150.0, 0, 90.0], [0, 150.0, 55.0], [0, 0, 1]])
    outputs = []
    for name, kwargs in (("torch", {"model": model}), ("onnxruntime", {"onnx_path": result.onnx_path})):
        aligner = CadAligner(backend=make_backend(name, **kwargs), decode=_fake_decode, input_size=SIZE,
                             class_names=("a", "b", "c"))
        outputs.append(aligner(image, K))
        assert set(aligner.last_timings) >= {"preprocess", "network", "procrustes", "retrieval", "postprocess"}
        assert aligner.last_timings["retrieval"] == 0.2 and aligner.last_timings["network"] > 0
    assert outputs[0] == outputs[1] and len(outputs[0]) == 4


def test_make_backend_errors():
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tflite")
    with pytest.raises(ValueError, match="ONNX"):
        make_backend("onnxruntime")


def test_retrieval_exact_vs_brute_force():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((500, 16)).astype(np.float32)
    classes = rng.integers(0, 5, 500)
    index = EmbeddingIndex(emb, classes, [f"m{i}" for i in range(500)])
    queries = rng.standard_normal((40, 16)).astype(np.float32)
    qcls = rng.integers(0, 6, 40)  # class 5 has no model -> -1
    res = index.query(queries, qcls)
    for i, (q, c) in enumerate(zip(queries, qcls)):
        rows = np.flatnonzero(classes == c)
        if rows.size == 0:
            assert res.indices[i] == -1 and np.isinf(res.distances[i])
            continue
        d = np.linalg.norm(emb[rows].astype(np.float64) - q, axis=1)
        assert res.indices[i] == rows[d.argmin()]
        assert abs(res.distances[i] - d.min()) < 1e-4
    all_res = index.query(queries)
    brute = np.linalg.norm(emb[None].astype(np.float64) - queries[:, None], axis=2).argmin(1)
    np.testing.assert_array_equal(all_res.indices, brute)
