#!/usr/bin/env python3
"""The design choices of the RGB-D fusion (docs/rgbd.md), measured.

  scripts/rgbd_variants.py eval DATA SPLIT N   the detector decode of models/roca_v1 (no crop network) on the first N views:
                                               RGB alone / sensor depth, holes rescaled or as predicted,
                                               Eq. 11 or the initial translation (per-criterion table)
  scripts/rgbd_variants.py sensor DATA SPLIT N the simulated sensor depth of the first N views: holes, error
  scripts/rgbd_variants.py crop                the crop decode on a synthetic case: initial t_z from the
                                               sensor median or SITE's kept

The variants are swapped in here (module attributes replaced for one run), not in the library:
the inference path has one behaviour.
"""
from __future__ import annotations

import argparse
import functools

import numpy as np
import torch

import cad_perception_ros.model.roca.crop_decode as crop_decode
import cad_perception_ros.model.roca.decode as roca_decode
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.evaluation.breakdown import format_breakdown
from cad_perception_ros.evaluation.run import evaluate_aligner, view_depth
from cad_perception_ros.geometry.sensor_depth import fuse_depth
from cad_perception_ros.pipeline import CadAligner


def eval_variants(data: str, split: str, limit: int) -> None:
    dataset = SyntheticDataset(data, split)
    aligner = CadAligner.from_model_dir("models/roca_v1", score_threshold=0.05)  # the figures of docs/rgbd.md
    eq11 = roca_decode._alignment

    def t_init(sel, config):
        rotation, _ = eq11(sel, config)
        return rotation, sel["translations_init"].double().numpy()

    for name, depth, align, rescale in (("RGB alone, Eq. 11", None, eq11, True),
                                        ("RGB alone, t_init", None, t_init, True),
                                        ("sensor, holes rescaled, Eq. 11 (the default)", "sensor", eq11, True),
                                        ("sensor, holes as predicted, Eq. 11", "sensor", eq11, False),
                                        ("sensor, holes rescaled, t_init", "sensor", t_init, True),
                                        ("true depth, Eq. 11", "true", eq11, True)):
        roca_decode._alignment = align
        roca_decode.fuse_depth = functools.partial(fuse_depth, rescale_holes=rescale)
        r = evaluate_aligner(aligner, dataset, limit=limit, protocols=("image", "breakdown"), depth=depth,
                             progress=False)
        print(f"\n### {name}: alignment accuracy instance {r['image'].instance_average('alignment_accuracy'):.1f} %"
              f", class {r['image'].class_average('alignment_accuracy'):.1f} %\n")
        print(format_breakdown(r["breakdown"]), flush=True)


def sensor_figures(data: str, split: str, limit: int) -> None:
    dataset = SyntheticDataset(data, split)
    holes, object_holes, errors = [], [], []
    for i in range(min(limit, len(dataset))):
        sample = dataset[i]
        depth, truth = view_depth(sample, i, "sensor"), sample.depth
        holes.append(np.mean(depth == 0))
        object_holes.append(np.mean(depth[sample.instance_map >= 0] == 0))
        valid = (depth > 0) & (truth > 0)
        errors.append(np.abs(depth[valid] - truth[valid]))
    e = np.concatenate(errors)
    print(f"{len(holes)} views: holes {np.mean(holes) * 100:.1f} % of the pixels, {np.mean(object_holes) * 100:.1f} % "
          f"of the object pixels; valid pixels: median |error| {np.median(e) * 100:.2f} cm, "
          f"90th percentile {np.percentile(e, 90) * 100:.2f} cm")


def crop_case(bias: float, holes: float, seed: int):
    """8 objects: crop outputs with SITE's depth biased by `bias`, the predicted relief 30 % too deep
    plus noise; sensor z of the true surface, sigma 0.003 z^2, a fraction `holes` of holes."""
    g = torch.Generator().manual_seed(seed)
    n, r = 8, 16
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]], dtype=torch.float64)
    t = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) * 0.4 - 0.2,
                     2 + 2 * torch.rand(n, generator=g)], 1).double()
    scale = (0.4 + 0.6 * torch.rand(n, 3, generator=g)).double()
    centre = (K @ t[:, :, None])[:, :2, 0] / t[:, 2:]
    side = 500.0 * scale.norm(dim=1) / t[:, 2]
    boxes = torch.cat([centre - side[:, None] / 2, centre + side[:, None] / 2], 1)
    rays = crop_decode.output_rays(boxes, K, r)
    relief = 0.2 * torch.rand(n, r, r, generator=g).double() - 0.1
    z = t[:, 2, None, None] + relief
    nocs = (torch.stack([rays[:, 0] * z, rays[:, 1] * z, z], 1) - t[:, :, None, None]) / scale[:, :, None, None]
    offset, ratio = crop_decode.site_targets(t, scale, boxes, K)
    noise = 0.05 * torch.randn(n, r, r, generator=g, dtype=torch.float64)
    out = {"depth": relief / scale.norm(dim=1)[:, None, None] * 1.3 + noise, "offset": offset,
           "depth_ratio": ratio + np.log(1 + bias), "log_scale": scale.log(),
           "mask_logits": torch.full((n, r, r), 10.0, dtype=torch.float64),
           "weight_logits": torch.zeros(n, r, r, dtype=torch.float64),
           "noc_logits": torch.zeros(n, 3, 2, r, r, dtype=torch.float64)}
    sensor = z + 0.003 * z ** 2 * torch.randn(z.shape, generator=g, dtype=torch.float64)
    sensor = torch.where(torch.rand(n, r, r, generator=g) < holes, torch.zeros_like(z), sensor)
    return out, boxes, K, nocs, sensor, t


def crop_variants() -> None:
    median = crop_decode.sensor_translation
    print("| SITE depth bias | holes | RGB alone | sensor, SITE t_z kept | sensor, median t_z (the default) |")
    print("|---:|---:|---:|---:|---:|")
    for bias in (0.1, 0.2, -0.2):
        for holes in (0.2, 0.5, 0.8):
            cells = []
            for variant in ("rgb", "site", "median"):
                crop_decode.sensor_translation = median if variant == "median" else (lambda t_site, *_: t_site)
                errors = []
                for seed in range(10):
                    out, boxes, K, nocs, sensor, t = crop_case(bias, holes, seed)
                    pose = crop_decode.crop_poses(out, boxes, K, window=1, mask_threshold=0.5, nocs=nocs,
                                                  sensor_z=None if variant == "rgb" else sensor)
                    errors.append((pose.translation - t).norm(dim=1))
                cells.append(f"{torch.cat(errors).median().item() * 100:.1f} cm")
            print(f"| {bias:+.0%} | {holes:.0%} | " + " | ".join(cells) + " |")
    crop_decode.sensor_translation = median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    ev = sub.add_parser("eval")
    ev.add_argument("data")
    ev.add_argument("split")
    ev.add_argument("limit", type=int)
    sensor = sub.add_parser("sensor")
    sensor.add_argument("data")
    sensor.add_argument("split")
    sensor.add_argument("limit", type=int)
    sub.add_parser("crop")
    args = parser.parse_args()
    if args.what == "eval":
        eval_variants(args.data, args.split, args.limit)
    elif args.what == "sensor":
        sensor_figures(args.data, args.split, args.limit)
    else:
        crop_variants()


if __name__ == "__main__":
    main()
