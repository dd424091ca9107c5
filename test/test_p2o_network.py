"""P2ONet: shapes, losses and gradients, a tiny training run, ONNX parity, decode, model-dir round trip."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.evaluation.collisions import evaluate_collisions
from cad_perception_ros.model.checkpoint import ModelDirError, load_model_dir, save_model_dir
from cad_perception_ros.model.config import load_experiment
from cad_perception_ros.model.points2objects.decode import ExemplarIndex, decode
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
from cad_perception_ros.model.points2objects.network import P2ONet, backproject_centres
from cad_perception_ros.model.points2objects.training import build_table, extend_batch
from cad_perception_ros.model.roca.targets import collate
from cad_perception_ros.model.training import train_loop
from cad_perception_ros.types import Alignment9D, CadPrediction

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture(scope="module")
def exp():
    return load_experiment(CONFIG / "p2o_tiny.yaml")


@pytest.fixture(scope="module")
def cads(make_cads):
    return make_cads()


@pytest.fixture(scope="module")
def cad_points(cads):
    """(N, 128, 3) canonical points inside each tiny box CAD model."""
    rng = np.random.default_rng(3)
    pts = []
    for grid in cads.grids:
        centres = (np.argwhere(grid) + 0.5) / grid.shape[0] - 0.5
        pts.append(centres[rng.choice(len(centres), 128)])
    return np.stack(pts).astype(np.float32)


@pytest.fixture(scope="module")
def exemplars(cads, cad_points, exp):
    return ExemplarSet.build(grids=cads.grids, points=cad_points, class_ids=cads.class_ids, cad_ids=cads.cad_ids,
                             k=exp.points2objects.exemplars_per_class, sdf_grid=exp.points2objects.sdf_grid)


@pytest.fixture(scope="module")
def scenes(exp, make_scene):
    rng = np.random.default_rng(0)
    return [make_scene(rng, size=exp.model.input_size) for _ in range(3)]


def _model(exp, exemplars, seed=0):
    torch.manual_seed(seed)
    return P2ONet.from_config(exp.model, exp.points2objects, exemplars)


def _batch(exp, scenes, cads, cad_points, exemplars):
    table = build_table(list(cads.cad_ids), cad_points, exemplars, exp.points2objects)
    return extend_batch(collate(scenes[:2], num_classes=3, input_size=exp.model.input_size, cads=cads), table)


def test_forward_export_shapes_and_translation(exp, exemplars):
    model = _model(exp, exemplars).eval()
    image, K = torch.rand(1, 3, 64, 96), torch.tensor([[[80.0, 0.5, 50.0], [0.0, 85.0, 30.0], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        out = model.forward_export(image, K)
    k, e = exp.model.top_k, len(exemplars)
    shapes = {"scores": (1, k), "classes": (1, k), "boxes": (1, k, 4), "rotations_raw": (1, k, 3, 3),
              "translations": (1, k, 3), "scales": (1, k, 3), "shape_logits": (1, k, e)}
    assert {name: tuple(v.shape) for name, v in out.items()} == shapes
    assert (out["scales"] > 0).all() and (out["translations"][..., 2] > 0).all()
    # back-projection inverts the pinhole projection, skew included
    uv = torch.tensor([[[10.0, 20.0], [70.0, 5.0]]])
    points = backproject_centres(uv, torch.tensor([[2.0, 4.0]]), K)
    proj = points @ K[0].T
    torch.testing.assert_close(proj[..., :2] / proj[..., 2:], uv)
    with pytest.raises(ValueError, match="backproject_centres"):
        backproject_centres(uv[0], torch.ones(2), K)
    # depth_focal_normalised: a 2x longer lens puts every centre 2x deeper on the same ray
    torch.manual_seed(0)
    focal = P2ONet.from_config(dataclasses.replace(exp.model, depth_focal_normalised=True), exp.points2objects, exemplars).eval()
    longer = K.clone()
    longer[:, :2, :2] *= 2.0
    with torch.no_grad():
        near, far = focal.forward_export(image, K)["translations"], focal.forward_export(image, longer)["translations"]
    torch.testing.assert_close(far[..., 2], 2.0 * near[..., 2])


def test_losses_finite_with_gradients_and_collision_warmup(exp, scenes, cads, cad_points, exemplars):
    model = _model(exp, exemplars)
    with torch.no_grad():  # 3 m wide objects: neighbours overlap, so the collision term is active
        model.head.box[-1].bias[12:15] = math.log(3.0)
    batch = _batch(exp, scenes, cads, cad_points, exemplars)
    warmup = exp.points2objects.collision_warmup_steps
    before = model(batch, step=warmup - 1)
    assert float(before["collision"]) == 0.0
    losses = model(batch, step=warmup)
    assert set(losses) == {"heatmap", "box_size", "box_offset", "rt", "scale", "shape", "collision", "total"}
    assert all(math.isfinite(float(v)) for v in losses.values())
    assert float(losses["collision"]) > 0 and float(losses["rt"]) > 0
    losses["total"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.head.box[-1].weight.grad.abs().sum() > 0


def _hard(model_config):
    """The model section with hard shape labels (model.ablation.shape_labels, Eq. 2-3)."""
    return dataclasses.replace(model_config, ablation=dataclasses.replace(model_config.ablation, shape_labels="hard"))


def test_hard_labels_change_the_shape_loss(exp, scenes, cads, cad_points, exemplars):
    batch = _batch(exp, scenes, cads, cad_points, exemplars)
    soft = _model(exp, exemplars)(batch)["shape"]
    model = P2ONet.from_config(_hard(exp.model), exp.points2objects, exemplars)
    torch.manual_seed(0)
    model.load_state_dict(_model(exp, exemplars).state_dict())
    hard = model(batch)["shape"]
    assert float(hard) != pytest.approx(float(soft))


@pytest.mark.slow
def test_training_loss_falls(exp, scenes, cads, cad_points, exemplars, tmp_path):
    model = _model(exp, exemplars)
    table = build_table(list(cads.cad_ids), cad_points, exemplars, exp.points2objects)
    rows = train_loop(model, scenes, cads, exp, tmp_path, max_steps=30, progress=False,
                      extend_batch=lambda b: extend_batch(b, table))
    total = [r["total"] for r in rows]
    assert not any(r["skipped"] for r in rows)
    assert np.mean(total[-5:]) < 0.7 * np.mean(total[:5]), total
    assert np.mean([r["rt"] for r in rows[-5:]]) < np.mean([r["rt"] for r in rows[:5]])


def test_decode_rotations_and_class_cads(exp, exemplars):
    model = _model(exp, exemplars, seed=1).eval()
    with torch.no_grad():
        raw = model.forward_export(torch.rand(1, 3, 64, 96), torch.tensor([[[86.0, 0, 48], [0, 86.0, 32], [0, 0, 1]]]))
    raw["rotations_raw"] = raw["rotations_raw"] - 2 * torch.eye(3)  # det(raw) < 0: the det fix must act
    timings: dict[str, float] = {}
    preds = decode(raw, exp.model, index=ExemplarIndex.from_exemplars(exemplars), image_size=(128, 192),
                   score_threshold=0.0, timings=timings)
    assert len(preds) == exp.model.top_k and set(timings) == {"procrustes", "retrieval"}
    by_id = dict(zip(exemplars.cad_ids, exemplars.class_ids))
    for p, box in zip(preds, raw["boxes"][0]):
        r = p.alignment.rotation
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
        assert by_id[p.cad_id] == p.class_id and 0 <= p.retrieval_distance <= 1
        np.testing.assert_allclose(p.box_xyxy, box.double().numpy() * 2, rtol=1e-6)  # 2x image
    assert decode(raw, exp.model, index=ExemplarIndex.from_exemplars(exemplars), score_threshold=2.0) == []
    # a class without exemplars gets no CAD model; hard labels give softmax-based distances
    raw["classes"] = torch.tensor([[0, 0, 1, 2]])
    classes = np.where(exemplars.class_ids == 0, 1, exemplars.class_ids)
    hard = decode(raw, _hard(exp.model), index=ExemplarIndex(classes, list(exemplars.cad_ids)), score_threshold=0.0)
    assert [p.cad_id == "" for p in hard] == [p.class_id == 0 for p in hard] == [True, True, False, False]
    assert all(0 <= p.retrieval_distance <= 1 for p in hard if p.cad_id)


def test_model_dir_round_trip_and_backends(exp, exemplars, tmp_path):
    pytest.importorskip("onnxruntime")
    from cad_perception_ros.pipeline import CadAligner
    from cad_perception_ros.runtime.network import load_network, model_dir_kind

    model = _model(exp, exemplars, seed=2).eval()
    folder = save_model_dir(tmp_path / "p2o", model, exp.model, p2o=exp.points2objects, exemplars=exemplars)
    assert model_dir_kind(folder) == "points2objects" and (folder / "exemplars.npz").is_file()
    with pytest.raises(FileExistsError):
        save_model_dir(folder, model, exp.model, p2o=exp.points2objects, exemplars=exemplars)
    loaded = load_model_dir(folder)
    assert isinstance(loaded.model, P2ONet) and loaded.exemplars.cad_ids == exemplars.cad_ids
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    net = load_network(folder)
    assert isinstance(net.index, ExemplarIndex)
    image = np.random.default_rng(0).integers(0, 256, (120, 180, 3), dtype=np.uint8)
    K = np.array([[160.0, 0, 91], [0, 160.0, 58], [0, 0, 1]])
    runs = {b: CadAligner.from_model_dir(folder, backend=b)(image, K) for b in ("torch", "onnxruntime")}
    torch_preds, ort_preds = runs["torch"], runs["onnxruntime"]
    assert len(torch_preds) == len(ort_preds) == exp.model.top_k
    for a, b in zip(torch_preds, ort_preds):
        assert (a.class_id, a.cad_id) == (b.class_id, b.cad_id)
        np.testing.assert_allclose(a.alignment.rotation, b.alignment.rotation, atol=1e-4)
        np.testing.assert_allclose(a.alignment.translation, b.alignment.translation, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a.box_xyxy, b.box_xyxy, atol=1e-3)
    (folder / "exemplars.json").write_text((folder / "exemplars.json").read_text() + " ")
    with pytest.raises(ModelDirError, match="exemplars.json"):
        load_model_dir(folder)


def test_onnx_export_matches_onnxruntime(exp, exemplars, tmp_path, assert_onnx_matches_torch):
    pytest.importorskip("onnxruntime")
    from cad_perception_ros.runtime.onnx_export import export_onnx

    model = _model(exp, exemplars, seed=3).eval()
    result = export_onnx(model, tmp_path / "p2o.onnx", input_size=exp.model.input_size)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    K = torch.tensor([[[70.0, 0.0, 44.0], [0.0, 75.0, 35.0], [0.0, 0.0, 1.0]]])
    assert_onnx_matches_torch(model, result.onnx_path, result.output_names, image, K)


def test_node_model_parameter_must_match_model_dir(exp, exemplars, tmp_path):
    aligners = pytest.importorskip("cad_perception_ros.ros.aligners")
    from cad_perception_ros.ros.params import NodeParams

    folder = save_model_dir(tmp_path / "p2o", _model(exp, exemplars).eval(), exp.model,
                            p2o=exp.points2objects, exemplars=exemplars)
    with pytest.raises(aligners.AlignerLoadError, match="points2objects"):
        aligners.load_aligner(NodeParams(model="roca", model_dir=str(folder)))
    aligner, _ = aligners.load_aligner(NodeParams(model="points2objects", model_dir=str(folder)))
    assert aligner.model_name == exp.model.name


class _BoxDatabase:
    """Minimal CadDatabase stand-in: one box model filling [-0.25, 0.25]^3 of a 16^3 grid."""

    def __init__(self):
        grid = np.zeros((1, 16, 16, 16), bool)
        grid[0, 4:12, 4:12, 4:12] = True
        self.grids, self.points = grid, np.zeros((1, 8, 3), np.float32)

    def __contains__(self, cad_id):
        return cad_id == "box"

    def index_of(self, cad_id):
        return 0


def test_collision_metrics_of_predictions(exp):
    def pred(x):
        return CadPrediction(class_id=0, class_name="bathtub", score=1.0, box_xyxy=np.zeros(4),
                             alignment=Alignment9D(np.eye(3), np.array([x, 0.0, 3.0]), np.full(3, 2.0)), cad_id="box")
    config = dataclasses.replace(exp.points2objects, sdf_grid=16, collision_samples_per_axis=16)
    metrics = evaluate_collisions([[pred(0.0), pred(0.5)], [pred(0.0), pred(2.0)], [pred(0.0)]],
                                  _BoxDatabase(), config)
    # boxes of side 1 m shifted by 0.5 m overlap in 0.5 m^3; 2 m apart they do not touch
    assert (metrics.num_images, metrics.num_pairs, metrics.num_colliding_pairs) == (3, 2, 1)
    assert metrics.mean_intersection_volume == pytest.approx(0.5 / 3, rel=0.1)
