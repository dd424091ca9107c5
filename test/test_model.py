"""RocaNet: shapes, ONNX export parity, decode, model directory safety."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.cad.retrieval import EmbeddingIndex
from cad_perception_ros.model.checkpoint import ModelDirError, load_model_dir, save_model_dir
from cad_perception_ros.model.config import load_experiment
from cad_perception_ros.model.roca import alignment_ops as ops
from cad_perception_ros.model.roca.decode import ChamferIndex, decode, paste_mask
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.model.roca.targets import class_frequency_weights, collate
from cad_perception_ros.runtime.onnx_export import export_onnx

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "roca_tiny.yaml"


@pytest.fixture(scope="module")
def exp():
    return load_experiment(TINY)


@pytest.fixture(scope="module")
def net(exp):
    torch.manual_seed(0)
    model = RocaNet.from_config(exp.model)
    # Make the heatmap fire so decode has detections to work on.
    torch.nn.init.constant_(model.detector.heatmap.bias, 1.0)
    return model.eval()


def _inputs(exp, make_scene, seed=0):
    scene = make_scene(np.random.default_rng(seed), size=exp.model.input_size)
    image = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float() / 255
    return image, torch.from_numpy(scene.K[None].astype(np.float32))


def test_forward_export_static_shapes(exp, net, make_scene):
    c = exp.model
    image, K = _inputs(exp, make_scene)
    with torch.no_grad():
        out = net.forward_export(image, K)
    k, m, d = c.top_k, c.roi_size, c.embedding_dim
    expected = {"scores": (1, k), "classes": (1, k), "boxes": (1, k, 4), "masks": (1, k, m, m),
                "points": (1, k, m * m, 3), "nocs": (1, k, m * m, 3), "weights": (1, k, m * m),
                "scales": (1, k, 3), "translations_init": (1, k, 3), "embeddings": (1, k, d),
                "depth": (1, *c.input_size)}
    assert {key: tuple(v.shape) for key, v in out.items()} == expected
    assert out["classes"].dtype == torch.int64
    assert bool((out["scores"][:, :-1] >= out["scores"][:, 1:]).all())  # top-K sorted
    assert float(out["weights"].min()) >= 0.0


def test_forward_train_losses_finite_and_gradients(exp, make_cads, make_scene):
    torch.manual_seed(0)
    model = RocaNet.from_config(exp.model).train()
    rng = np.random.default_rng(3)
    scenes = [make_scene(rng, size=exp.model.input_size) for _ in range(2)]
    cw = class_frequency_weights([o.class_id for s in scenes for o in s.objects], exp.model.num_classes)
    batch = collate(scenes, num_classes=exp.model.num_classes, input_size=exp.model.input_size,
                    cads=make_cads(), class_weights=cw)
    losses = model.forward_train(batch)
    expected = {"heatmap", "box_size", "box_offset", "depth", "mask", "roi_depth", "points", "scale",
                "translation_init", "noc", "rotation", "translation", "triplet", "completion", "total"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)
    assert model.alignment.noc[0].weight.grad.abs().sum() > 0  # NOC head trained end to end


@pytest.mark.parametrize("through_alignment", [True, False])
def test_alignment_depth_gradients_switch(exp, through_alignment, make_cads, make_scene):
    """alignment_depth_gradients: False -> the NOC, rotation and translation losses leave the depth
    map's output layer untouched (points enter the alignment head detached; the shape code still
    trains the shared depth features); Eq. 3 (extents) still trains it."""
    torch.manual_seed(0)
    config = replace(exp.model, alignment_depth_gradients=through_alignment)
    model = RocaNet.from_config(config).train()
    scenes = [make_scene(np.random.default_rng(3), size=config.input_size) for _ in range(2)]
    batch = collate(scenes, num_classes=config.num_classes, input_size=config.input_size, cads=make_cads())

    def depth_grad(keys):
        model.zero_grad()
        losses = model.forward_train(batch)
        sum(losses[k] for k in keys).backward()
        return sum(float(p.grad.abs().sum()) for p in model.depth.to_depth.parameters() if p.grad is not None)

    alignment_terms = depth_grad(["noc", "rotation", "translation"])
    assert (alignment_terms > 0) == through_alignment
    assert depth_grad(["points"]) > 0
    model.zero_grad()
    model.forward_train(batch)["rotation"].backward()
    assert model.alignment.noc[0].weight.grad.abs().sum() > 0  # rotation loss still trains the NOCs


def test_onnx_export_matches_torch(exp, net, tmp_path, assert_onnx_matches_torch, make_scene):
    pytest.importorskip("onnxruntime")
    image, K = _inputs(exp, make_scene, seed=1)
    with torch.no_grad():
        ref = net.forward_export(image, K)
    result = export_onnx(net, tmp_path / "roca.onnx", input_size=exp.model.input_size)
    got = assert_onnx_matches_torch(net, result.onnx_path, result.output_names, image, K, atol=2e-4, rtol=1e-3)
    assert np.array_equal(got["classes"], ref["classes"].numpy())
    preds = decode(got, exp.model, index=None, image_size=(2 * exp.model.input_size[0], 2 * exp.model.input_size[1]))
    assert len(preds) == exp.model.top_k  # score_threshold 0 in the tiny config


def test_focal_normalised_depth_scales_with_the_focal_length(exp, tmp_path, assert_onnx_matches_torch, make_scene):
    """depth_focal_normalised: the same image seen through a 1.5x longer lens is 1.5x deeper
    (the image fixes depth / focal); without it the depth ignores fx. Exports to ONNX alike."""
    image, K = _inputs(exp, make_scene, seed=2)
    longer = K.clone()
    longer[:, 0, 0] *= 1.5
    for normalised in (False, True):
        torch.manual_seed(0)
        model = RocaNet.from_config(replace(exp.model, depth_focal_normalised=normalised)).eval()
        with torch.no_grad():
            near, far = model.forward_export(image, K)["depth"], model.forward_export(image, longer)["depth"]
        ratio = 1.5 if normalised else 1.0
        assert torch.allclose(far, ratio * near, rtol=1e-5), normalised
    fx = float(K[0, 0, 0])
    with torch.no_grad():
        raw, _ = model.depth(model.backbone(image))
    canonical = exp.model.depth_canonical_focal * exp.model.input_size[1]
    assert torch.allclose(near[:, None], raw * fx / canonical, rtol=1e-5)
    pytest.importorskip("onnxruntime")
    result = export_onnx(model, tmp_path / "roca.onnx", input_size=exp.model.input_size)
    assert_onnx_matches_torch(model, result.onnx_path, result.output_names, image, longer, atol=2e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="depth_canonical_focal"):
        replace(exp.model, depth_canonical_focal=0.0)


def test_decode_procrustes_recovers_pose_and_maps_boxes(exp):
    c = exp.model
    k, p = c.top_k, c.roi_size ** 2
    rng = np.random.default_rng(0)
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    rot = rot * torch.sign(torch.det(rot))
    scale, t = torch.tensor([0.5, 0.8, 0.6], dtype=torch.float64), torch.tensor([0.2, -0.1, 2.5], dtype=torch.float64)
    nocs = torch.rand(k, p, 3, dtype=torch.float64) - 0.5
    points = (nocs * scale) @ rot.T + t  # (K, P, 3)
    raw = {"scores": np.linspace(0.9, 0.1, k)[None], "classes": np.zeros((1, k), np.int64),
           "boxes": np.tile([[8.0, 4.0, 40.0, 36.0]], (1, k, 1)), "masks": np.ones((1, k, c.roi_size, c.roi_size)),
           "points": points[None].numpy(), "nocs": nocs[None].numpy(), "weights": np.ones((1, k, p)),
           "scales": np.tile(scale.numpy(), (1, k, 1)), "translations_init": np.tile(t.numpy() + 0.1, (1, k, 1)),
           "embeddings": rng.normal(size=(1, k, c.embedding_dim))}
    index = EmbeddingIndex(raw["embeddings"][0][:3] + 1e-3, np.zeros(3), ["a", "b", "c"])
    preds = decode(raw, c, index=index, score_threshold=0.5, image_size=(2 * c.input_size[0], c.input_size[1]))
    assert len(preds) == int((raw["scores"] >= 0.5).sum())
    assert np.allclose(preds[0].alignment.rotation, rot.numpy(), atol=1e-6)
    assert np.allclose(preds[0].alignment.translation, t.numpy(), atol=1e-6)
    assert preds[0].cad_id == "a" and preds[1].cad_id == "b"
    assert np.allclose(preds[0].box_xyxy, [8, 8, 40, 72])  # rows scaled by 2
    assert preds[0].mask.shape == (2 * c.input_size[0], c.input_size[1]) and preds[0].mask[20, 20]
    cham = ChamferIndex(np.stack([nocs[0].numpy(), nocs[0].numpy() * 0.3]), np.zeros(2, np.int64), ["good", "bad"])
    assert decode(raw, c, index=cham, score_threshold=0.85)[0].cad_id == "good"


def test_paste_mask_and_roi_crop_agree():
    mask = np.zeros((4, 4), bool)
    mask[:2] = True  # top half of the box
    out = paste_mask(mask, np.array([2.0, 2.0, 10.0, 10.0]), (12, 12))
    assert out[2:6, 2:10].all() and not out[6:10].any() and not out[:, :2].any()
    image = torch.arange(12 * 12, dtype=torch.float32).view(1, 1, 12, 12)
    crop = ops.roi_crop(image, torch.tensor([[[2.0, 2.0, 10.0, 10.0]]]), 8, (12, 12), mode="nearest")
    assert torch.equal(crop[0, 0, 0], image[0, 0, 2:10, 2:10])


def test_symmetric_rotation_target_picks_closest():
    r_gt = torch.eye(3).expand(2, 3, 3)
    flip = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # 180 deg about +y
    r_pred = torch.stack([flip, flip])
    best, _ = ops.closest_symmetric_rotation(r_pred, r_gt, torch.tensor([2, 1]))
    assert torch.allclose(best[0], flip, atol=1e-6) and torch.allclose(best[1], torch.eye(3))


def test_model_dir_roundtrip_and_corruption(exp, net, tmp_path, make_scene):
    emb = np.random.default_rng(0).normal(size=(6, exp.model.embedding_dim)).astype(np.float32)
    save_model_dir(tmp_path / "m", net, exp.model, cad_embeddings=emb, cad_class_ids=np.arange(6) % 3,
                   cad_ids=[f"c{i}" for i in range(6)])
    with pytest.raises(FileExistsError):
        save_model_dir(tmp_path / "m", net, exp.model)
    loaded = load_model_dir(tmp_path / "m")
    assert loaded.config == exp.model and loaded.cad_ids[2] == "c2"
    np.testing.assert_array_equal(loaded.cad_embeddings, emb)
    image, K = _inputs(exp, make_scene)
    with torch.no_grad():
        assert torch.allclose(loaded.model.forward_export(image, K)["depth"], net.forward_export(image, K)["depth"])
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelDirError, match="model.safetensors"):
        load_model_dir(tmp_path / "m")
    with pytest.raises(ModelDirError, match="not a valid safetensors"):
        load_model_dir(tmp_path / "m", verify=False)


def test_retrieval_embeddings_unit_norm_and_distinct(exp):
    """Unit-norm embeddings from both encoders; after a few triplet steps on two pairs of
    distinct CAD grids the CAD encoder keeps them apart (the first bundled model collapsed
    every CAD onto one embedding)."""
    torch.manual_seed(0)
    head = RocaNet.from_config(exp.model).retrieval
    g = head.grid
    grids = torch.zeros(4, g, g, g)
    grids[0, : g // 2] = 1  # four different occupancy shapes
    grids[1, :, : g // 2] = 1
    grids[2, :, :, : g // 2] = 1
    grids[3, g // 4: 3 * g // 4, g // 4: 3 * g // 4, g // 4: 3 * g // 4] = 1
    z = head.embed_cad(grids)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    nocs = torch.rand(4, 16, 3) - 0.5
    img = head.embed_image(torch.rand(4, exp.model.shape_code_dim), nocs, torch.ones(4, 16))
    assert torch.allclose(img.norm(dim=1), torch.ones(4), atol=1e-5)
    from cad_perception_ros.model.losses import triplet_loss
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(30):
        anchor = head.embed_cad(grids)
        loss = triplet_loss(anchor, head.embed_cad(grids), head.embed_cad(grids.roll(1, 0))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    z = head.embed_cad(grids).detach()
    gaps = torch.cdist(z, z)[~torch.eye(4, dtype=torch.bool)]
    assert float(gaps.min()) > 0.3, gaps


def test_objectness_decode_keeps_an_object_whose_evidence_two_classes_split():
    from cad_perception_ros.model.detector import CenterNetHead
    head = CenterNetHead(in_channels=8, head_channels=8, num_classes=3)
    logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
    heat = torch.full((1, 3, 6, 8), logit(0.01))
    heat[0, 0, 2, 3], heat[0, 2, 2, 3] = logit(0.4), logit(0.35)  # one object, chair-or-sofa evidence
    heat[0, 1, 4, 6] = logit(0.3)  # another object, one class
    out = {"heatmap": heat, "size": torch.ones(1, 2, 6, 8), "offset": torch.zeros(1, 2, 6, 8)}
    per_class = head.decode(out, top_k=3)
    assert per_class.scores[0, 0] == pytest.approx(0.4, abs=1e-5) and per_class.scores[0, 1] == pytest.approx(0.35, abs=1e-5)
    anyc = head.decode(out, top_k=3, score="any")
    expected = 1 - 0.6 * 0.65 * 0.99
    assert anyc.scores[0, 0] == pytest.approx(expected, abs=1e-5) and int(anyc.classes[0, 0]) == 0
    assert int(anyc.cells[0, 0]) == 2 * 8 + 3 and int(anyc.classes[0, 1]) == 1  # one detection per place
    assert torch.allclose(anyc.boxes[0, 0], per_class.boxes[0, 0])
