"""Tensors made inside the networks' forward land on the input's device. Caught on a GPU
(scripts/gpu_check.sh, 2026-11-30: box clipping bounds made on the CPU); checked here without one by
running the bundled models on PyTorch's meta device, where a CPU tensor meeting a meta one raises."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cad_perception_ros.model.detector import clip_boxes
from cad_perception_ros.runtime.network import load_network

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.parametrize("name", ["roca", "points2objects"])
def test_forward_export_keeps_the_input_device(name):
    net = load_network(MODELS / name)
    model = net.model.to("meta")
    height, width = net.config.input_size
    with torch.no_grad():
        out = model(torch.empty(1, 3, height, width, device="meta"), torch.empty(1, 3, 3, device="meta"))
    assert out and all(t.device.type == "meta" for t in out.values())
    assert out["boxes"].shape == (1, net.config.top_k, 4)


def test_a_cpu_tensor_inside_the_forward_would_be_caught():
    """The premise of the check above: mixing a CPU tensor into a meta computation raises."""
    with pytest.raises(RuntimeError):
        torch.minimum(torch.empty(1, 4, 4, device="meta"), torch.zeros(4))


def test_clip_boxes():
    boxes = torch.tensor([[[-5.0, 3.0, 200.0, 130.0], [10.0, 20.0, 30.0, 40.0]]])
    clipped = clip_boxes(boxes, 120, 160)
    assert clipped.tolist() == [[[0.0, 3.0, 160.0, 120.0], [10.0, 20.0, 30.0, 40.0]]]
    assert clip_boxes(boxes.to("meta"), 120, 160).device.type == "meta"
