"""Which loss terms drive which parts of a ROCA network: gradient norms per loss group.

For each group of loss terms (the weighted terms of ``RocaNet.forward_train``) the gradient of
their sum alone is taken, and its L2 norm over the parameters of each part (the depth map's
output layer, the whole depth head, the backbone) is averaged over the batches given. A part
whose gradient is dominated by a loss other than its own is trained mostly for that loss.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

LOSS_GROUPS: dict[str, tuple[str, ...]] = {
    "depth (berHu + ROI depth)": ("depth", "roi_depth"),
    "extents + initial translation": ("points", "translation_init"),
    "NOC": ("noc",),
    "rotation": ("rotation",),
    "translation": ("translation",),
}


def network_parts(net) -> dict[str, list[torch.nn.Parameter]]:
    return {"depth output layer": list(net.depth.to_depth.parameters()),
            "depth head": list(net.depth.parameters()),
            "backbone": list(net.backbone.parameters())}


def loss_gradient_norms(net, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """net: RocaNet (in train mode while this runs, as training sees it); batches from
    ``targets.collate`` -> {loss group: {part: mean gradient L2 norm}} (0.0 where the group does
    not reach the part)."""
    was_training = net.training
    net.train()
    parts = network_parts(net)
    sums = {g: {p: [] for p in parts} for g in LOSS_GROUPS}
    for batch in batches:
        losses = net(batch)
        for group, keys in LOSS_GROUPS.items():
            present = [losses[k] for k in keys if k in losses]
            if not present:
                continue
            net.zero_grad()
            sum(present).backward(retain_graph=True)
            for part, params in parts.items():
                sums[group][part].append(sum(float((p.grad ** 2).sum()) for p in params if p.grad is not None) ** 0.5)
    net.zero_grad()
    net.train(was_training)
    return {g: {p: float(np.mean(v)) if v else 0.0 for p, v in per.items()} for g, per in sums.items()}


def format_gradient_norms(norms: dict[str, dict[str, float]]) -> str:
    parts = list(next(iter(norms.values())))
    lines = ["| loss terms | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
    for group, per in norms.items():
        lines.append(f"| {group} | " + " | ".join(f"{per[p]:.3f}" for p in parts) + " |")
    return "\n".join(lines)
