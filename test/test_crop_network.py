"""ROCA v2's zoom-in crop network: crop geometry, targets, decode, training, ONNX parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cad_perception_ros.geometry.camera import crop_intrinsics, project
from cad_perception_ros.model.roca.crop_config import CropConfig, CropExperiment, CropTrainConfig
from cad_perception_ros.model.roca.crop_decode import (
    bin_centres,
    crop_poses,
    decode_nocs,
    noc_to_bins,
    output_rays,
    site_targets,
    site_translation,
)
from cad_perception_ros.model.roca.crop_losses import crop_losses, noc_loss
from cad_perception_ros.model.roca.crop_network import CropNet
from cad_perception_ros.model.roca.crop_sampling import crop_maps, crop_rays, jitter_square_boxes, square_boxes
from cad_perception_ros.model.roca.crop_targets import build_patches, sample_crops


def _k(w=640, h=480, f=560.0):
    return torch.tensor([[f, 0.0, w / 2 + 3.0], [0.0, f * 1.01, h / 2 - 2.0], [0.0, 0.0, 1.0]])


def test_crop_pixels_map_back_through_the_crop_intrinsics():
    h, w = 48, 64
    vv, uu = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    image = torch.stack([uu, vv])  # (2, H, W): each pixel holds its own (u, v)
    boxes = torch.tensor([[10.0, 6.0, 34.0, 30.0], [20.5, 11.25, 52.5, 43.25]])
    crops = crop_maps(image, boxes, 16)  # (2, 2, 16, 16)
    k = _k(w, h, 50.0)
    kc = crop_intrinsics(k, boxes, (16, 16))  # (2, 3, 3)
    point = torch.tensor([0.3, -0.2, 2.0])
    uv = project(point, k)  # image pixel of the point
    for i in range(2):
        uv_crop = project(point[None], kc[i])[0]
        side = boxes[i, 2] - boxes[i, 0]
        assert torch.allclose(uv_crop, (uv - boxes[i, :2]) * 16 / side, atol=1e-4)
        # the crop's pixel centre (j + 0.5, r + 0.5) sampled image point (x0 + (j + 0.5) side / 16, ...)
        j, r = 5, 9
        expected = boxes[i, :2] + (torch.tensor([j, r]) + 0.5) * side / 16
        assert torch.allclose(crops[i, :, r, j], expected, atol=1e-3)
    rays = crop_rays(kc, 16)  # (2, 2, 16, 16)
    back = torch.linalg.solve(kc[1], torch.tensor([5.5, 9.5, 1.0]))
    assert torch.allclose(rays[1, :, 9, 5], back[:2] / back[2], atol=1e-5)


def test_square_and_jittered_boxes():
    tight = torch.tensor([[10.0, 20.0, 50.0, 40.0]])
    sq = square_boxes(tight, 1.5)
    assert torch.allclose(sq, torch.tensor([[0.0, 0.0, 60.0, 60.0]]))
    jit = jitter_square_boxes(tight.repeat(500, 1), torch.Generator().manual_seed(0), shift=0.1, enlarge=(1.2, 1.6))
    side = jit[:, 2] - jit[:, 0]
    assert torch.allclose(side, jit[:, 3] - jit[:, 1])
    assert side.min() >= 48 - 1e-4 and side.max() <= 64 + 1e-4 and side.std() > 2
    centre = (jit[:, :2] + jit[:, 2:]) / 2
    assert (centre - torch.tensor([30.0, 30.0])).abs().max() <= 4 + 1e-4


def test_site_translation_inverts_its_targets():
    g = torch.Generator().manual_seed(1)
    t = torch.stack([torch.rand(8, generator=g) - 0.5, torch.rand(8, generator=g) - 0.5,
                     1 + 3 * torch.rand(8, generator=g)], 1).double()
    s = (0.3 + torch.rand(8, 3, generator=g)).double()
    boxes = torch.tensor([[100.0, 80.0, 300.0, 280.0]]).repeat(8, 1).double() + 20 * torch.rand(8, 1, generator=g).double()
    offset, ratio = site_targets(t, s, boxes, _k().double())
    assert torch.allclose(site_translation(offset, ratio, s, boxes, _k().double()), t, atol=1e-9)


def test_noc_bins_decode_to_one_mode_not_the_average():
    bins = 32
    logits = torch.full((1, 3, bins, 1, 1), -10.0)
    logits[0, :, 3] = 5.0   # front, slightly more likely
    logits[0, :, 28] = 4.9  # back
    noc = decode_nocs(logits, window=2)[0, :, 0, 0]
    assert torch.allclose(noc, bin_centres(bins)[3].expand(3), atol=1e-3)  # the average would be near 0
    values = torch.linspace(-0.499, 0.499, 50)
    assert (bin_centres(bins)[noc_to_bins(values, bins)] - values).abs().max() <= 0.5 / bins + 1e-6


def _oracle_outputs(rotation, t, s, boxes, K, size, bins=32):
    """Network outputs that encode the true pose: relative depth and NOCs of points on the crop rays."""
    rays = output_rays(boxes, K, size)  # (1, 2, R, R)
    g = torch.Generator().manual_seed(3)
    z = t[2] + (torch.rand(1, size, size, generator=g, dtype=torch.float64) - 0.5) * 0.4  # (1, R, R)
    pts = torch.stack([rays[:, 0] * z, rays[:, 1] * z, z], -1).reshape(1, -1, 3)  # camera points
    nocs = ((pts - t) @ rotation) / s  # canonical, (1, P, 3)
    offset, ratio = site_targets(t[None], s[None], boxes, K)
    out = {"mask_logits": torch.full((1, size, size), 5.0, dtype=torch.float64),
           "weight_logits": torch.zeros(1, size, size, dtype=torch.float64),
           "depth": (z - t[2]) / s.norm(), "log_scale": torch.log(s)[None], "offset": offset, "depth_ratio": ratio,
           "noc_logits": torch.zeros(1, 3, bins, size, size, dtype=torch.float64)}
    return out, nocs.transpose(1, 2).reshape(1, 3, size, size)


def test_decode_of_oracle_outputs_gives_the_true_pose(rotation_y):
    rotation = rotation_y(0.7) @ np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]])
    rotation = torch.as_tensor(rotation)
    t, s = torch.tensor([0.4, 0.1, 3.0], dtype=torch.float64), torch.tensor([0.6, 0.9, 0.5], dtype=torch.float64)
    K = _k().double()
    boxes = torch.tensor([[330.0, 200.0, 470.0, 340.0]], dtype=torch.float64)
    out, nocs = _oracle_outputs(rotation, t, s, boxes, K, 32)
    pose = crop_poses(out, boxes, K, window=2, mask_threshold=0.5, nocs=nocs)
    assert torch.allclose(pose.rotation[0], rotation, atol=1e-6)
    assert torch.allclose(pose.translation[0], t, atol=1e-6)
    assert torch.allclose(pose.scale[0], s, atol=1e-9)
    assert abs(torch.det(pose.rotation[0]) - 1) < 1e-9
    # a wrong depth ratio moves the SITE centre along its ray; the refined translation follows the points
    out["depth_ratio"] = out["depth_ratio"] + 0.1
    far = crop_poses(out, boxes, K, window=2, mask_threshold=0.5, nocs=nocs, refine_translation=False)
    assert far.translation[0, 2] == pytest.approx(3.0 * math.exp(0.1), rel=1e-6)


def _patches(make_scene, n_views=4):
    rng = np.random.default_rng(0)
    views = [make_scene(rng, size=(96, 128), n_objects=2, num_classes=3) for _ in range(n_views)]
    return build_patches(views, patch_size=64, min_visible_pixels=16, progress=False)


def test_patch_and_crop_targets_agree_with_the_pose(make_scene):
    patches = _patches(make_scene, 2)
    assert len(patches) == 4 and patches.image.dtype == torch.uint8
    batch = sample_crops(patches, torch.arange(4), crop_size=32, generator=torch.Generator().manual_seed(0))
    assert batch["crops"].shape == (4, 3, 32, 32) and batch["noc"].shape == (4, 16, 16, 3)
    assert (batch["mask"].sum((1, 2)) > 10).all()
    # targets agree with the pose: points from the relative depth on the crop rays = R (q s) + t
    m = batch["mask"][0] > 0
    z = batch["translation"][0, 2] + batch["depth"][0] * batch["scale"][0].norm()
    pts = torch.stack([batch["out_rays"][0, 0] * z, batch["out_rays"][0, 1] * z, z], -1)[m]  # (n, 3)
    model_pts = (batch["noc"][0][m] * batch["scale"][0]) @ batch["rotation"][0].T + batch["translation"][0]
    assert (pts - model_pts).norm(dim=1).median() < 0.02
    # the SITE targets give back the translation
    t = site_translation(batch["offset"], batch["depth_ratio"], batch["scale"], batch["boxes"], batch["K"])
    assert torch.allclose(t, batch["translation"], atol=1e-4)


def test_noc_loss_forgives_a_symmetric_turn_only_for_symmetric_objects():
    bins = 16
    noc = torch.rand(2, 4, 4, 3) - 0.5
    turned = noc.clone()
    turned[..., 0], turned[..., 2] = -noc[..., 0], -noc[..., 2]  # a half turn about +y
    logits = torch.zeros(2, 3, bins, 4, 4).scatter_(2, noc_to_bins(turned, bins).permute(0, 3, 1, 2)[:, :, None], 20.0)
    mask = torch.ones(2, 4, 4)
    loss = noc_loss(logits, noc, mask, torch.tensor([2, 1]))
    assert loss[0] < 1e-3 and loss[1] > 1.0


def _tiny_config():
    return CropConfig(class_names=("a", "b", "c"), crop_size=32, noc_bins=16, decoder_channels=16, hidden_dim=32,
                      pretrained=False, max_crops=4)


def test_a_tiny_training_run_lowers_the_loss(tmp_path, make_scene):
    from cad_perception_ros.model.roca.crop_training import load_crop_model, train_crops

    exp = CropExperiment(crop=_tiny_config(),
                         crop_train=CropTrainConfig(batch_size=8, max_steps=40, base_lr=3e-3, warmup_steps=1,
                                                    rotation_loss_after=30, checkpoint_every=20, log_every=10,
                                                    color_jitter=0.0))
    rows = train_crops(exp, tmp_path, patches=_patches(make_scene, 12), progress=False)
    assert rows[0]["step"] == 1 and rows[-1]["step"] == 40
    first, before_rotation = rows[0], rows[-2]  # step 30: the same loss terms as step 1
    assert before_rotation["total"] < 0.85 * first["total"] and before_rotation["noc"] < first["noc"]
    assert rows[-1]["crops_per_s"] > 0 and rows[-1]["cpu_seconds"] > 0 and "rotation" in rows[-1]
    assert "val_r_ok" in rows[-1] and 0 <= rows[-1]["val_heading_r_ok"] <= 1
    model = load_crop_model(tmp_path / "crop")
    assert model.config == exp.crop
    more = train_crops(exp, tmp_path, patches=_patches(make_scene, 12), progress=False, resume=True, max_steps=41)
    assert [r["step"] for r in more] == [41]  # resumed at 40


def test_init_from_starts_a_fine_tune_from_another_runs_weights(tmp_path):
    from dataclasses import replace

    from cad_perception_ros.model.checkpoint import ModelDirError
    from cad_perception_ros.model.roca.crop_training import init_crop_weights, save_crop_model
    torch.manual_seed(1)
    source = save_crop_model(tmp_path / "source", CropNet.from_config(_tiny_config()))
    torch.manual_seed(2)
    model = CropNet.from_config(_tiny_config())
    init_crop_weights(model, source)
    from safetensors.torch import load_file
    stored = load_file(str(source / "crop_model.safetensors"))
    assert all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())
    other = CropNet.from_config(replace(_tiny_config(), heading_bins=_tiny_config().heading_bins + 4))
    with pytest.raises(ModelDirError, match="does not fit"):
        init_crop_weights(other, source)
    with pytest.raises(ModelDirError, match="not found"):
        init_crop_weights(model, tmp_path / "nowhere")


def test_losses_are_finite_and_reach_every_output(make_scene):
    torch.manual_seed(0)
    c = _tiny_config()
    model = CropNet.from_config(c)
    batch = sample_crops(_patches(make_scene, 2), torch.arange(4), crop_size=32, generator=torch.Generator().manual_seed(0))
    out = model(batch["crops"], batch["rays"], batch["classes"])
    assert out["noc_logits"].shape == (4, 3, 16, 16, 16) and out["log_scale"].shape == (4, 3)
    losses = crop_losses(out, batch, c)
    assert set(losses) >= {"mask", "noc", "depth", "depth_gradient", "scale", "offset", "depth_ratio", "rotation",
                           "heading", "up"}
    losses["total"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.to_offset.weight.grad.abs().sum() > 0 and model.dense.weight.grad.abs().sum() > 0
    assert model.to_heading.weight.grad.abs().sum() > 0 and model.to_up.weight.grad.abs().sum() > 0
    assert "depth_normal" not in losses  # off by default: the shipped recipe is unchanged


def test_normal_loss_sees_a_tilt_the_l1_barely_sees(make_scene):
    """A relative depth map tilted by a small ramp: its L1 error is small, its normals turn; the
    true map has no normal error; the loss trains the depth head when switched on."""
    from dataclasses import replace

    from cad_perception_ros.model.roca.crop_config import CropLossWeights
    from cad_perception_ros.model.roca.crop_losses import normal_loss
    batch = sample_crops(_patches(make_scene, 2), torch.arange(4), crop_size=32, generator=torch.Generator().manual_seed(0))
    depth, mask = batch["depth"], batch["mask"]
    args = (mask, batch["out_rays"], batch["translation"], batch["scale"])
    assert normal_loss(depth, depth, *args).abs().max() < 1e-6
    ramp = torch.linspace(-0.1, 0.1, depth.shape[-1])[None, None, :] * torch.ones_like(depth)
    tilted = normal_loss(depth + ramp, depth, *args)
    assert (tilted[mask.sum((1, 2)) > 20] > 1e-3).all()
    c = replace(_tiny_config(), loss_weights=CropLossWeights(depth_normal=1.0))
    model = CropNet.from_config(c)
    losses = crop_losses(model(batch["crops"], batch["rays"], batch["classes"]), batch, c, with_rotation=False)
    assert torch.isfinite(losses["depth_normal"])
    losses["depth_normal"].backward()
    assert model.dense.weight.grad.abs().sum() > 0  # the head that gives the relative depth


def test_the_global_outputs_alone_give_the_shipped_pose(make_scene):
    """dense=False skips the decoder: the global outputs are those of the full forward, and the
    heading + SITE decode (the shipped one) gives the same pose from them; the other decodes need
    the dense outputs (CropConfig.needs_dense)."""
    from dataclasses import replace
    c = replace(_tiny_config(), rotation="heading", refine_translation=False)
    assert not c.needs_dense() and c.needs_dense(with_depth=True)
    assert replace(c, rotation="gated").needs_dense() and replace(c, refine_translation=True).needs_dense()
    torch.manual_seed(0)
    model = CropNet.from_config(c).eval()
    batch = sample_crops(_patches(make_scene, 2), torch.arange(4), crop_size=32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(batch["crops"], batch["rays"], batch["classes"])
        small = model(batch["crops"], batch["rays"], batch["classes"], dense=False)
    assert set(small) == {"log_scale", "offset", "depth_ratio", "up", "heading_logits"}
    assert all(torch.equal(small[k], full[k]) for k in small)
    a = crop_poses(full, batch["boxes"], batch["K"], **c.decode_options())
    b = crop_poses(small, batch["boxes"], batch["K"], **c.decode_options())
    assert torch.allclose(a.rotation, b.rotation) and torch.allclose(a.translation, b.translation)


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from cad_perception_ros.model.roca.crop_export import ONNX_OUTPUTS, CropExportWrapper, export_crop_onnx, run_session

    torch.manual_seed(0)
    model = CropNet.from_config(_tiny_config()).eval()
    path = export_crop_onnx(model, tmp_path / "crop.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"SVD", "Det", "NonZero", "RoiAlign", "Loop"}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    crops, rays = torch.rand(6, 3, 32, 32), torch.randn(6, 2, 32, 32) * 0.1
    classes = torch.tensor([0, 1, 2, 0, 1, 2])
    got = run_session(session, crops, rays, classes, max_crops=4)  # two chunks, the second padded
    with torch.no_grad():
        ref = CropExportWrapper(model)(crops, rays, classes)
    assert ONNX_OUTPUTS[-2:] == ("up", "heading_logits") and len(ref) == len(ONNX_OUTPUTS)
    for name, value in zip(ONNX_OUTPUTS, ref):
        assert got[name].shape == value.shape
        assert torch.allclose(got[name], value, atol=2e-4), name
    small = export_crop_onnx(model, tmp_path / "crop_global.onnx", dense=False)  # without the decoder
    session = ort.InferenceSession(str(small), providers=["CPUExecutionProvider"])
    got_small = run_session(session, crops, rays, classes, max_crops=4)
    assert set(got_small) == {"log_scale", "offset", "depth_ratio", "up", "heading_logits"}
    assert all(torch.allclose(got_small[k], got[k], atol=2e-4) for k in got_small)
    assert "Resize" in ops and "Resize" not in {node.op_type for node in onnx.load(str(small)).graph.node}  # no decoder


def test_patches_are_cached_per_data_root(tmp_path, make_scene, monkeypatch):
    from cad_perception_ros.model.roca import crop_training

    built = []
    monkeypatch.setattr(crop_training, "SyntheticDataset", lambda root, split: (built.append(root), root)[1])
    monkeypatch.setattr(crop_training, "build_patches", lambda root, *a: _patches(make_scene, 1 + (root == "b")))
    tc = CropTrainConfig()
    one = crop_training.load_or_build_patches(tmp_path, "a", "train", tc)
    two = crop_training.load_or_build_patches(tmp_path, "a,b", "train", tc)  # a from its cache, b built
    assert built == ["a", "b"] and len(two) == len(one) + 4
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    with pytest.raises(ValueError, match="no data root"):
        crop_training.load_or_build_patches(tmp_path, ",", "train", tc)


def test_crop_diagnose_rows_cover_every_variant_and_the_oracle_is_right(make_scene):
    from cad_perception_ros.tools.crop_diagnose import SITE_ROWS, VARIANTS, format_rows, oracle_rows

    torch.manual_seed(0)
    rows = oracle_rows(CropNet.from_config(_tiny_config()).eval(), _patches(make_scene, 3))
    assert len(rows) == len(VARIANTS) + len(SITE_ROWS) and all(r["count"] == 6 for r in rows)
    by_key = {(r["nocs"], r["depth"], r["rotation"]): r for r in rows}
    oracle = by_key[("ground truth", "ground truth", "procrustes")]
    assert oracle["r_ok"] == 100.0 and oracle["median_t"] < 0.05
    # an untrained network's SITE is far off; with every SITE input but the offset true, the depth is right
    assert by_key[("SITE", "true scale + ratio", "-")]["median_t"] < by_key[("SITE", "-", "-")]["median_t"]
    assert format_rows(rows).count("\n") == len(rows) + 1
