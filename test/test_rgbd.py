"""RGB-D (issue 26) without ROS: depth decoding and holes, fusion, the pipeline with and without
depth (RGB alone bit for bit as before), the crop decode's sensor_z, the sensor model, the stamp
matcher of frames and depth images."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.data.sensor_depth import SensorDepthConfig, simulate_sensor_depth
from cad_perception_ros.evaluation.run import view_depth
from cad_perception_ros.geometry.camera import pixel_rays
from cad_perception_ros.geometry.sensor_depth import DepthError, clean_depth, depth_to_metres, fuse_depth
from cad_perception_ros.model.roca.alignment_head import solve_alignment
from cad_perception_ros.model.roca.crop_config import CropConfig
from cad_perception_ros.model.roca.crop_decode import crop_poses, output_rays, site_targets
from cad_perception_ros.model.roca.crop_network import CropNet
from cad_perception_ros.model.roca.crop_training import save_crop_model
from cad_perception_ros.model.roca.decode import REQUIRED, to_torch
from cad_perception_ros.pipeline import CadAligner, preprocess
from cad_perception_ros.ros.sync import DepthMatcher
from cad_perception_ros.runtime.crop_stage import attach_crop_network

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "models" / "roca_v1"  # the previous bundle: no crop network, retrieves from models/cad_db


def _image(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    K = np.array([[0.9 * w, 0.0, w / 2], [0.0, 0.9 * w, h / 2], [0.0, 0.0, 1.0]])
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), K


# ---- decoding and holes

def test_16uc1_millimetres_and_32fc1_metres_decode_to_metres():
    mm = np.array([[0, 1500], [65535, 250]], np.uint16)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1", 0.001), [[0, 1.5], [65.535, 0.25]], rtol=1e-6)
    np.testing.assert_allclose(depth_to_metres(mm, "16UC1", 0.0001)[0, 1], 0.15, rtol=1e-6)
    m = np.array([[np.nan, 2.0]], np.float32)
    out = depth_to_metres(m, "32FC1")
    assert out.dtype == np.float32 and out[0, 1] == 2.0 and np.isnan(out[0, 0])


@pytest.mark.parametrize("array, encoding, words", [
    (np.zeros((2, 2), np.uint16), "mono8", "encoding 'mono8'"),
    (np.zeros((2, 2), np.float32), "16UC1", "must be uint16"),
    (np.zeros((2, 2), np.uint16), "32FC1", "must be float32"),
    (np.zeros((2, 2, 3), np.uint16), "16UC1", "one channel"),
])
def test_a_wrong_encoding_names_the_problem(array, encoding, words):
    with pytest.raises(DepthError, match=words) as info:
        depth_to_metres(array, encoding)
    assert info.value.kind == "depth_encoding"


def test_zero_nan_inf_and_out_of_range_are_holes():
    depth = np.array([[0.0, np.nan, np.inf, -1.0], [0.05, 0.5, 9.0, 12.0]], np.float32)
    out = clean_depth(depth, (2, 4), (0.1, 10.0))
    np.testing.assert_array_equal(out, [[0, 0, 0, 0], [0, 0.5, 9.0, 0]])


@pytest.mark.parametrize("depth, kind, words", [
    (np.ones((3, 4), np.float32), "depth_size", "depth is 4x3 but the colour image is 5x4"),
    (np.zeros((4, 5), np.float32), "depth_empty", "no valid pixel"),
    (np.full((4, 5), np.nan, np.float32), "depth_empty", "no valid pixel"),
    (np.ones((4, 5), np.uint16), "depth_encoding", "float array in metres"),
])
def test_bad_depth_raises_a_value_error_naming_it(depth, kind, words):
    with pytest.raises(ValueError, match=words) as info:
        clean_depth(depth, (4, 5))
    assert info.value.kind == kind


def test_fusion_takes_the_sensor_where_valid_and_rescales_the_holes():
    predicted = torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    sensor = torch.tensor([[2.2, 2.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.ones_like(sensor)
    fused = fuse_depth(predicted, sensor, mask)
    np.testing.assert_allclose(fused.numpy(), [[2.2, 2.2, 2.2, 2.2], [1.0, 1.0, 1.0, 1.0]])
    raw = fuse_depth(predicted, sensor, mask, rescale_holes=False)
    np.testing.assert_allclose(raw.numpy(), [[2.2, 2.2, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]])


# ---- the pipeline

@pytest.fixture(scope="module")
def v1():
    """models/roca_v1: the detector path alone (no crop network), the outputs these tests pin."""
    return CadAligner.from_model_dir(V1, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(p.alignment.rotation, q.alignment.rotation) and np.array_equal(p.alignment.translation, q.alignment.translation)
        and np.array_equal(p.alignment.scale, q.alignment.scale) and np.array_equal(p.box_xyxy, q.box_xyxy)
        and p.cad_id == q.cad_id and p.score == q.score for p, q in zip(a, b))


def test_without_depth_the_outputs_are_bit_for_bit_those_of_rgb_alone(v1):
    """depth=None runs today's path: the decode's alignment is the network's points and t_init
    through solve_alignment (the formula before issue 26), bit for bit."""
    image, K = _image(240, 320)
    got, again = v1(image, K), v1(image, K, depth=None)
    assert _same(got, again) and len(got) == 16
    raw = to_torch(v1.backend.run(preprocess(image, K, v1.input_size).inputs), REQUIRED)
    assert v1.decode.keywords["config"].ablation.rotation_mode == "procrustes"
    w = raw["weights"].double()
    w = torch.where(((w > 0).sum(1) < 3)[:, None], raw["masks"].flatten(1).double() + 1e-3, w)
    rot, trans = solve_alignment(raw["nocs"].double(), raw["points"].double(), w, raw["scales"].double(),
                                 raw["translations_init"].double(), None)
    order = torch.argsort(raw["scores"], descending=True, stable=True)  # all 16 kept (threshold 0)
    by_score = {float(raw["scores"][i]): i for i in order.tolist()}
    for p in got:
        i = by_score[p.score]
        assert np.array_equal(p.alignment.rotation, rot[i].numpy())
        assert np.array_equal(p.alignment.translation, trans[i].numpy())


def test_with_depth_the_translation_follows_the_sensor(v1):
    """A depth map 1 m farther than the prediction moves every object about 1 m along z; the
    rotation solve still runs (a proper rotation) and the boxes and CAD models stay."""
    image, K = _image(240, 320)
    rgb = v1(image, K)
    raw = v1.backend.run(preprocess(image, K, v1.input_size).inputs)
    predicted = np.asarray(raw["depth"])[0]  # (h, w) at the network input
    ys = (np.arange(240) * predicted.shape[0] / 240).astype(int)
    xs = (np.arange(320) * predicted.shape[1] / 320).astype(int)
    farther = predicted[ys][:, xs] + 1.0  # (240, 320)
    rgbd = v1(image, K, farther)
    assert len(rgbd) == len(rgb) == 16
    dz = np.array([q.alignment.translation[2] - p.alignment.translation[2] for p, q in zip(rgb, rgbd)])
    assert np.median(dz) == pytest.approx(1.0, abs=0.25)
    for p, q in zip(rgb, rgbd):
        assert np.array_equal(p.box_xyxy, q.box_xyxy) and p.cad_id == q.cad_id
        assert np.linalg.det(q.alignment.rotation) == pytest.approx(1.0)


def test_depth_of_another_size_is_refused_by_the_pipeline(v1):
    image, K = _image()
    with pytest.raises(ValueError, match="colour image is 160x120"):
        v1(image, K, np.ones((60, 80), np.float32))


@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory):
    """A copy of models/roca_v1 (no crop network) with a random-weight crop network attached."""
    folder = tmp_path_factory.mktemp("rgbd_v2") / "roca"
    shutil.copytree(V1, folder)
    torch.manual_seed(0)
    save_crop_model(folder.parent / "crop", CropNet.from_config(CropConfig(pretrained=False, max_crops=8)))
    attach_crop_network(folder, folder.parent / "crop")
    return folder


@pytest.fixture(scope="module")
def v2_aligner(v2_dir):
    return CadAligner.from_model_dir(v2_dir, cad_db=ROOT / "models" / "cad_db", score_threshold=0.0)


def test_crop_stage_without_depth_is_unchanged_and_with_depth_uses_it(v2_aligner):
    image, K = _image(240, 320)
    got = v2_aligner(image, K)
    assert _same(got, v2_aligner(image, K, None))
    pre = preprocess(image, K, v2_aligner.input_size)
    detector = v2_aligner.decode(v2_aligner.backend.run(pre.inputs), image_size=image.shape[:2], score_threshold=0.0)
    assert _same(got, v2_aligner.crop_stage(image, K, detector))  # the crop stage's call before issue 26
    rgbd = v2_aligner(image, K, np.full(image.shape[:2], 3.0, np.float32))
    z = np.array([p.alignment.translation[2] for p in rgbd])
    assert np.all(np.abs(z - 3.0) < 1.0), z  # every object is near the 3 m wall the sensor sees


def _crop_case(bias: float, holes: float, seed: int = 0):
    """Crop outputs of 8 objects on perfect relative depth and NOCs, with SITE's depth ratio biased
    by log(1 + bias); sensor z of the true surface with a fraction `holes` of holes."""
    g = torch.Generator().manual_seed(seed)
    n, r = 8, 16
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]], dtype=torch.float64)
    t = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) * 0.4 - 0.2,
                     2 + 2 * torch.rand(n, generator=g)], 1).double()  # (n, 3)
    scale = (0.4 + 0.6 * torch.rand(n, 3, generator=g)).double()
    centre = (K @ t[:, :, None])[:, :2, 0] / t[:, 2:]
    side = (500.0 * scale.norm(dim=1) / t[:, 2]).double()
    boxes = torch.cat([centre - side[:, None] / 2, centre + side[:, None] / 2], 1)
    rays = output_rays(boxes, K, r)  # (n, 2, r, r)
    relief = 0.2 * torch.rand(n, r, r, generator=g).double() - 0.1  # metres, object surface in front of / behind t
    z = t[:, 2, None, None] + relief
    points = torch.stack([rays[:, 0] * z, rays[:, 1] * z, z], 1)  # (n, 3, r, r)
    nocs = (points - t[:, :, None, None]) / scale[:, :, None, None]  # rotation = identity
    offset, ratio = site_targets(t, scale, boxes, K)
    out = {"depth": relief / scale.norm(dim=1)[:, None, None], "offset": offset,
           "depth_ratio": ratio + np.log(1 + bias), "log_scale": scale.log(),
           "mask_logits": torch.full((n, r, r), 10.0, dtype=torch.float64),
           "weight_logits": torch.zeros(n, r, r, dtype=torch.float64),
           "noc_logits": torch.zeros(n, 3, 2, r, r, dtype=torch.float64)}
    sensor = torch.where(torch.rand(n, r, r, generator=g) < holes, torch.zeros_like(z), z)
    return out, boxes, K, nocs, sensor, t


def test_crop_decode_with_sensor_depth_recovers_a_biased_site_translation():
    out, boxes, K, nocs, sensor, t = _crop_case(bias=0.2, holes=0.5)
    options = dict(window=1, mask_threshold=0.5, nocs=nocs)
    rgb = crop_poses(out, boxes, K, **options)
    rgbd = crop_poses(out, boxes, K, **options, sensor_z=sensor)
    err_rgb = (rgb.translation - t).norm(dim=1)
    err_rgbd = (rgbd.translation - t).norm(dim=1)
    assert err_rgb.min() > 0.3 and err_rgbd.max() < 1e-6
    assert torch.allclose(rgbd.rotation, torch.eye(3, dtype=torch.float64).expand(8, 3, 3), atol=1e-6)
    all_holes = crop_poses(out, boxes, K, **options, sensor_z=torch.zeros_like(sensor))
    assert torch.equal(all_holes.translation, rgb.translation)  # no valid pixel: SITE as before


# ---- the sensor model

def test_sensor_model_holes_noise_and_range():
    h, w = 60, 80
    depth = np.full((h, w), 2.0, np.float32)
    depth[:, 40:] = 8.0  # beyond max range
    depth[20:40, 10:30] = 1.0  # a box in front: edges
    image = np.full((h, w, 3), 128, np.uint8)
    image[50:, :40] = 5  # dark
    config = SensorDepthConfig(speckle_prob=0.0)
    out = simulate_sensor_depth(depth, image, np.random.default_rng(0), config)
    assert out.dtype == np.float32 and out.shape == (h, w)
    assert np.all(out[:, 40:] == 0)  # nothing beyond the range
    assert out[19, 20] == 0 and out[20, 20] == 0 and out[30, 9] == 0  # depth edges
    assert np.mean(out[52:, :38] == 0) > 0.6  # dark pixels
    plain = out[2:18, 2:38]
    assert np.all(plain > 0) and abs(plain.mean() - 2.0) < 0.01
    assert plain.std() == pytest.approx(config.noise_k * 4, rel=0.4)  # sigma = k z^2
    assert len(np.unique(plain)) < 40  # quantised in disparity
    again = simulate_sensor_depth(depth, image, np.random.default_rng(0), config)
    assert np.array_equal(out, again)


def test_the_evaluation_seeds_the_sensor_per_view(make_scene):
    sample = make_scene(np.random.default_rng(0))
    a, b = view_depth(sample, 3, "sensor"), view_depth(sample, 3, "sensor")
    assert np.array_equal(a, b) and not np.array_equal(a, view_depth(sample, 4, "sensor"))
    assert np.array_equal(view_depth(sample, 0, "true"), sample.depth) and view_depth(sample, 0, None) is None


# ---- frames and depth images by stamp

def test_depth_matcher_pairs_by_stamp_and_serves_without_depth_when_it_cannot_come():
    m = DepthMatcher(tolerance_s=0.005, window_s=1.0)
    ms = 1_000_000
    assert m.add_frame(100 * ms, "f100").ready == [("f100", None)]  # no depth flowing yet
    assert m.add_depth(200 * ms, "d200").ready == []
    assert m.add_frame(202 * ms, "f202").ready == [("f202", "d200")]  # within tolerance
    assert m.add_frame(300 * ms, "f300").ready == []  # waits: depth is flowing
    assert m.add_depth(301 * ms, "d301").ready == [("f300", "d301")]
    assert m.add_frame(400 * ms, "f400").ready == []
    assert m.add_depth(450 * ms, "d450").ready == [("f400", None)]  # its depth was skipped
    result = m.add_frame(2000 * ms, "f2000")  # d450 fell out of the window, unmatched
    assert result.unmatched_depths == ["d450"] and result.ready == [("f2000", None)]


def test_onnxruntime_with_depth_matches_torch(v2_dir, v2_aligner, tmp_path, monkeypatch):
    """The depth fusion runs after the network, so every backend gets it (here onnxruntime, with the crop stage)."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    ort = CadAligner.from_model_dir(v2_dir, backend="onnxruntime", cad_db=ROOT / "models" / "cad_db",
                                    score_threshold=0.0)
    image, K = _image(240, 320)
    depth = np.full(image.shape[:2], 3.0, np.float32)
    depth[::3] = 0.0  # every third row a hole
    a, b = v2_aligner(image, K, depth), ort(image, K, depth)
    assert len(a) == len(b) == 16
    err = [np.abs(p.alignment.translation - q.alignment.translation).max() for p, q in zip(a, b)]
    assert np.median(err) < 1e-3
