"""Where the crop network's errors come from: its NOCs or its depth (oracle solves on ground-truth boxes).

  cad-perception crop-diagnose --model-dir MODEL_DIR --data DIR [--split val] [--limit N]

For every object of the split (visible pixels >= 64), the crop of its ground-truth box (enlarged by
the config's factor, no jitter) goes through the crop network of MODEL_DIR (or a run's crop/
folder); the pose is then solved with the weighted Procrustes four ways: NOCs predicted or
rendered, depth predicted or rendered (rendered depth: true centre, true scale and the true
relative depth; with it the mask is the true one). Reports R <= 20 deg, t <= 20 cm and medians,
and the SITE translation alone (also with the true metric size, the true depth ratio, or both, to
show which input its error comes from), in the layout of `cad-perception diagnose`. The rotation column names
the source (CropConfig.rotation): the Procrustes solve, the heading bins, or the two gated.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.model.roca.crop_decode import crop_poses, decode_nocs, site_translation
from cad_perception_ros.model.roca.crop_targets import build_patches, sample_crops
from cad_perception_ros.model.roca.crop_training import load_crop_model, rotation_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, type=Path, help="model directory with a crop network, or RUN_DIR/crop")
    parser.add_argument("--data", required=True, type=Path, help="data root")
    parser.add_argument("--split", default="val", help="split (default: val)")
    parser.add_argument("--limit", type=int, default=0, help="first N views only (default: all)")


VARIANTS = [(n, d, "procrustes") for n in ("predicted", "ground truth") for d in ("predicted", "ground truth")] + [
    ("predicted", "predicted", "heading"), ("predicted", "predicted", "gated"), ("predicted", "ground truth", "gated"),
    ("predicted", "predicted", "gated, SITE t")]
# decode options of each rotation label (a label ending in ", SITE t" keeps the SITE translation)
OPTIONS = {"procrustes": {"rotation": "procrustes"}, "heading": {"rotation": "heading"}, "gated": {"rotation": "gated"},
           "gated, SITE t": {"rotation": "gated", "refine_translation": False}}


# SITE translation rows: predicted inputs, with the named ones replaced by the truth. The depth is
# fx |s| / side * exp(depth_ratio): a wrong metric size |s| moves it as much as a wrong ratio.
SITE_ROWS = {("SITE", "-", "-"): (), ("SITE", "true scale", "-"): ("log_scale",),
             ("SITE", "true depth ratio", "-"): ("depth_ratio",), ("SITE", "true scale + ratio", "-"): ("log_scale", "depth_ratio")}


def oracle_rows(model, patches, batch: int = 64) -> list[dict]:
    """Per solve variant: dict(nocs, depth, rotation, count, r_ok, t_ok, median_r, median_t) over all patches."""
    c = model.config
    errors: dict = {v: ([], []) for v in [*VARIANTS, *SITE_ROWS]}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for index in torch.arange(len(patches)).split(batch):
            b = sample_crops(patches, index, crop_size=c.crop_size, generator=g, shift=0.0, enlarge=(c.enlarge, c.enlarge))
            out = model(b["crops"], b["rays"], b["classes"])
            nocs_pred = decode_nocs(out["noc_logits"], c.noc_window)
            truth = {"depth": b["depth"], "mask_logits": (b["mask"] * 2 - 1) * 20, "log_scale": b["log_scale"],
                     "offset": b["offset"], "depth_ratio": b["depth_ratio"]}
            for variant in VARIANTS:
                nocs_kind, depth_kind, rotation = variant
                o = dict(out) if depth_kind == "predicted" else {**out, **truth}
                nocs = nocs_pred if nocs_kind == "predicted" else b["noc"].permute(0, 3, 1, 2)
                pose = crop_poses(o, b["boxes"], b["K"], **c.decode_options(**OPTIONS[rotation]), nocs=nocs)
                errors[variant][0].append(rotation_errors(pose.rotation, b["rotation"], b["folds"]))
                errors[variant][1].append((pose.translation - b["translation"].double()).norm(dim=1))
            for row, source in SITE_ROWS.items():  # which of the SITE inputs the translation error comes from
                site = {**out, **{k: truth[k] for k in source}}
                t_site = site_translation(site["offset"].double(), site["depth_ratio"].double(),
                                          torch.exp(site["log_scale"].double()), b["boxes"].double(), b["K"].double())
                errors[row][1].append((t_site - b["translation"].double()).norm(dim=1))
                errors[row][0].append(torch.full((len(index),), float("nan"), dtype=torch.float64))
    rows = []
    for (nocs_kind, depth_kind, rotation), (r, t) in errors.items():
        r, t = torch.cat(r), torch.cat(t)
        rows.append({"nocs": nocs_kind, "depth": depth_kind, "rotation": rotation, "count": len(t),
                     "r_ok": float((r <= 20).double().mean() * 100), "t_ok": float((t <= 0.2).double().mean() * 100),
                     "median_r": float(r.median()), "median_t": float(t.median())})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| NOCs | depth | rotation | objects | R <= 20 deg | t <= 20 cm | median R | median t |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nocs']} | {r['depth']} | {r['rotation']} | {r['count']} | {r['r_ok']:.1f} % | {r['t_ok']:.1f} % | "
                     f"{r['median_r']:.1f} deg | {r['median_t']:.3f} m |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:


    torch.set_num_threads(1)
    model = load_crop_model(args.model_dir)
    dataset = SyntheticDataset(args.data, args.split)
    patches = build_patches(dataset, patch_size=128, min_visible_pixels=64, max_views=args.limit)
    print(format_rows(oracle_rows(model, patches)))
    return 0
