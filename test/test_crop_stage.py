"""ROCA v2 in the pipeline: a model directory with a crop network re-aligns each detection; old ones
(models/roca_v1, the previous bundle) do not change; the bundled default (models/roca) has one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.model.roca.crop_config import CropConfig
from cad_perception_ros.model.roca.crop_network import CropNet
from cad_perception_ros.model.roca.crop_training import save_crop_model
from cad_perception_ros.pipeline import CadAligner, preprocess
from cad_perception_ros.runtime.crop_stage import attach_crop_network
from cad_perception_ros.runtime.network import default_model_dir

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "models" / "roca_v1"  # the previous bundle: no crop network, retrieves from models/cad_db


def _image(h=240, w=320):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    K = np.array([[0.9 * w, 0.0, w / 2], [0.0, 0.9 * w, h / 2], [0.0, 0.0, 1.0]])
    return image, K


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory):
    """A copy of models/roca_v1 (no crop network) with a random-weight crop network attached."""
    folder = tmp_path_factory.mktemp("roca_v2") / "roca"
    shutil.copytree(V1, folder)
    torch.manual_seed(0)
    crop = CropNet.from_config(CropConfig(pretrained=False, max_crops=8))
    save_crop_model(folder.parent / "crop", crop)
    attach_crop_network(folder, folder.parent / "crop")
    return folder


def test_a_model_dir_without_a_crop_network_behaves_as_before():
    aligner = CadAligner.from_model_dir(V1, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)
    assert aligner.crop_stage is None
    image, K = _image()
    got = aligner(image, K)
    assert "crop" not in aligner.last_timings
    pre = preprocess(image, K, aligner.input_size)  # the path of the pipeline before the crop stage
    ref = aligner.decode(aligner.backend.run(pre.inputs), image_size=image.shape[:2],
                         score_threshold=0.0)
    assert len(got) == len(ref) == 16
    for a, b in zip(got, ref):
        assert a.cad_id == b.cad_id and np.array_equal(a.box_xyxy, b.box_xyxy)
        assert np.array_equal(a.alignment.rotation, b.alignment.rotation)
        assert np.array_equal(a.alignment.translation, b.alignment.translation)


def test_the_bundled_default_is_roca_v2_with_its_crop_network_and_the_v2_database():
    """models/roca (default_model_dir) runs the crop stage and names CAD models of the database its
    meta.json points at (models/cad_db_v2), none of the v1 database."""
    bundled = default_model_dir()
    assert bundled == ROOT / "models" / "roca" and json.loads((bundled / "meta.json").read_text())["crop_network"]
    aligner = CadAligner.from_model_dir(bundled, score_threshold=0.0)
    assert aligner.crop_stage is not None
    assert aligner.cad_database is not None and aligner.cad_database.root.resolve() == (ROOT / "models" / "cad_db_v2").resolve()
    image, K = _image()
    got = aligner(image, K)
    assert got and aligner.last_timings["crop"] > 0
    assert all(p.cad_id in aligner.cad_database for p in got)
    v1_ids = set(json.loads((V1 / "meta.json").read_text())["cad_ids"])
    assert not {p.cad_id for p in got} & v1_ids


def test_a_crop_network_realigns_every_detection_and_keeps_the_rest(v2_dir):
    old = CadAligner.from_model_dir(V1, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)
    new = CadAligner.from_model_dir(v2_dir, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)
    assert new.crop_stage is not None and json.loads((v2_dir / "meta.json").read_text())["crop_network"]
    image, K = _image()
    a, b = old(image, K), new(image, K)
    assert len(a) == len(b) == 16 and new.last_timings["crop"] > 0
    assert [p.cad_id for p in a] == [p.cad_id for p in b] and [p.class_id for p in a] == [p.class_id for p in b]
    assert all(np.allclose(p.alignment.rotation @ p.alignment.rotation.T, np.eye(3), atol=1e-6) for p in b)
    moved = [np.abs(p.alignment.translation - q.alignment.translation).max() for p, q in zip(a, b)]
    assert min(moved) > 0  # the crop network, not the detector's head, placed them


def test_onnxruntime_crop_stage_matches_torch(v2_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch_aligner = CadAligner.from_model_dir(v2_dir, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)
    ort_aligner = CadAligner.from_model_dir(v2_dir, backend="onnxruntime", cad_db=ROOT / "models" / "cad_db",
                                            score_threshold=0.0)
    assert ort_aligner.crop_stage.session is not None
    image, K = _image()
    a, b = torch_aligner(image, K), ort_aligner(image, K)
    assert len(a) == len(b)
    same_box = [np.allclose(p.box_xyxy, q.box_xyxy, atol=1e-2) for p, q in zip(a, b)]
    assert all(same_box)
    err = [np.abs(p.alignment.translation - q.alignment.translation).max() for p, q in zip(a, b)]
    assert np.median(err) < 1e-3


def test_a_modified_crop_network_is_refused(v2_dir, tmp_path, tampered_copy):
    from cad_perception_ros.model.checkpoint import ModelDirError

    broken = tampered_copy(v2_dir, tmp_path / "roca", "crop_model.safetensors")
    with pytest.raises(ModelDirError, match="crop_model.safetensors"):
        CadAligner.from_model_dir(broken, cad_db=ROOT / "models" / "cad_db")


def test_blend_depth_moves_centres_along_their_rays():
    from cad_perception_ros.runtime.crop_stage import blend_depth

    t = torch.tensor([[0.4, -0.2, 2.0], [0.1, 0.3, 4.0]], dtype=torch.float64)
    other = torch.tensor([8.0, -1.0], dtype=torch.float64)  # the second has no valid detector depth
    got = blend_depth(t, other, 0.5)
    assert got[0, 2] == pytest.approx(4.0) and torch.allclose(got[0] / got[0, 2], t[0] / t[0, 2])
    assert torch.equal(got[1], t[1])
    assert torch.equal(blend_depth(t, other, 0.0), t)


def test_export_writes_the_crop_graph_beside_the_detectors(v2_dir, tmp_path, capsys):
    pytest.importorskip("onnx")
    import onnx

    from cad_perception_ros.cli.main import main
    out = tmp_path / "net.onnx"
    assert main(["export", "--model-dir", str(v2_dir), "--out", str(out)]) == 0
    crop = tmp_path / "net_crop.onnx"
    assert out.is_file() and crop.is_file() and (tmp_path / "net_crop_global.onnx").is_file()
    assert "crop network without its decoder" in capsys.readouterr().out
    graph = onnx.load(str(crop)).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [8, 3, 64, 64]  # static: max_crops
    assert not {n.op_type for n in graph.node} & {"SVD", "Det", "NonZero", "RoiAlign", "Loop"}
    before = crop.read_bytes()
    out.unlink()
    assert main(["export", "--model-dir", str(v2_dir), "--out", str(out)]) == 2  # the crop graph is kept
    assert "--overwrite" in capsys.readouterr().err and crop.read_bytes() == before and not out.exists()
