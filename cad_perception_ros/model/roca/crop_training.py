"""Train the zoom-in crop network on crops of jittered ground-truth boxes (CPU, resumable).

Object patches of the training views are cached once per data root (RUN_DIR/patches/), then every
step draws `batch_size` objects, jitters their boxes and resamples the crops (crop_targets).
RUN_DIR holds checkpoint/ (model, AdamW state, step, CPU seconds), metrics.jsonl (losses, crops/s,
validation pose accuracy on held-out objects every checkpoint) and crop/ (crop_model.safetensors,
crop_config.yaml): the files a ROCA model directory takes (``runtime/crop_stage.py``).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from cad_perception_ros.config import from_mapping, load_yaml, to_mapping
from cad_perception_ros.data.dataset import SyntheticDataset
from cad_perception_ros.geometry.rotations import symmetric_rotation_error
from cad_perception_ros.model.checkpoint import ModelDirError, load_checkpoint, save_checkpoint
from cad_perception_ros.model.roca.crop_config import CropExperiment, CropTrainConfig
from cad_perception_ros.model.roca.crop_decode import crop_poses, heading_pose
from cad_perception_ros.model.roca.crop_losses import crop_losses
from cad_perception_ros.model.roca.crop_network import CropNet
from cad_perception_ros.model.roca.crop_targets import ObjectPatches, build_patches, sample_crops

CROP_WEIGHTS, CROP_CONFIG = "crop_model.safetensors", "crop_config.yaml"
VAL_FRACTION = 0.05


def patch_cache_path(folder: Path, root: str, split: str, tc: CropTrainConfig) -> Path:
    """The cache file of one data root's patches: named by the root's absolute path and the patch settings."""
    key = json.dumps([str(Path(root).resolve()), split, tc.patch_size, tc.min_visible_pixels, tc.max_views])
    return folder / f"{Path(root).name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.safetensors"


def load_or_build_patches(folder: Path, data_root: str, split: str, tc: CropTrainConfig) -> ObjectPatches:
    """The patches of data_root/split (several roots: comma-separated), each root cached once in
    folder (``patch_cache_path``), so a resumed run with one more root builds only that one."""
    parts = []
    for root in (r for r in data_root.split(",") if r):
        path = patch_cache_path(folder, root, split, tc)
        if path.is_file():
            t = load_file(str(path))
            parts.append(ObjectPatches(**{k: t[k] for k in ObjectPatches._fields}))
            continue
        part = build_patches(SyntheticDataset(root, split), tc.patch_size, tc.min_visible_pixels, tc.max_views)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: getattr(part, k).contiguous() for k in ObjectPatches._fields}, str(path))
        parts.append(part)
    if not parts:
        raise ValueError(f"no data root in {data_root!r}")
    return ObjectPatches(*(torch.cat(tensors) for tensors in zip(*parts)))


def learning_rate(step: int, tc: CropTrainConfig) -> float:
    lr = tc.base_lr * tc.lr_decay ** sum(step >= s for s in tc.lr_decay_steps)
    return lr * min(1.0, (step + 1) / max(tc.warmup_steps, 1))


def save_crop_model(folder: str | Path, model: CropNet) -> Path:
    """Write crop_model.safetensors + crop_config.yaml (section ``crop:``) into folder."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / CROP_WEIGHTS))
    (folder / CROP_CONFIG).write_text(yaml.safe_dump({"crop": to_mapping(model.config)}, sort_keys=False),
                                      encoding="utf-8")
    return folder


def load_crop_model(folder: str | Path) -> CropNet:
    """CropNet in eval mode from crop_model.safetensors + crop_config.yaml (strict keys)."""


    folder = Path(folder)
    config = from_mapping(CropExperiment, load_yaml(folder / CROP_CONFIG), where=CROP_CONFIG).crop
    model = CropNet.from_config(config)
    model.load_state_dict(load_file(str(folder / CROP_WEIGHTS)), strict=True)
    return model.eval()


def init_crop_weights(model: CropNet, folder: str | Path) -> None:
    """Every tensor of `model` from folder/crop_model.safetensors (a fine-tune: the optimizer starts
    afresh). Raises ModelDirError when the file is missing or its tensors do not fit the config."""
    path = Path(folder) / CROP_WEIGHTS
    if not path.is_file():
        raise ModelDirError(f"crop_train.init_from: {path} not found (a RUN_DIR/crop or a model dir with a crop network)")
    tensors = load_file(str(path))
    target = model.state_dict()
    wrong = sorted(k for k in target if k not in tensors or tensors[k].shape != target[k].shape)
    extra = sorted(set(tensors) - set(target))
    if wrong or extra:
        raise ModelDirError(f"crop_train.init_from: {path} does not fit this crop config: missing or other shape "
                            f"{wrong[:5]}, unknown {extra[:5]}")
    model.load_state_dict(tensors, strict=True)


@torch.no_grad()
def validate(model: CropNet, patches: ObjectPatches, index: torch.Tensor, tc: CropTrainConfig) -> dict[str, float]:
    """Pose accuracy on held-out objects, each crop from its tight box enlarged by config.enlarge
    (no jitter): R <= 20 deg (symmetry-aware), t <= 20 cm, median errors; the same for the
    rotation of the heading bins alone (val_heading_*)."""
    c = model.config
    model.eval()
    g = torch.Generator().manual_seed(12345)
    rows = []
    for part in index.split(128):
        b = sample_crops(patches, part, crop_size=c.crop_size, generator=g, shift=0.0,
                         enlarge=(c.enlarge, c.enlarge))
        out = model(b["crops"], b["rays"], b["classes"])
        pose = crop_poses(out, b["boxes"], b["K"], **c.decode_options())
        rows.append((rotation_errors(pose.rotation, b["rotation"].double(), b["folds"]),
                     (pose.translation - b["translation"].double()).norm(dim=1),
                     rotation_errors(heading_pose(out, b["boxes"], b["K"]), b["rotation"].double(), b["folds"])))
    model.train()
    err_r, err_t, err_h = (torch.cat(e) for e in zip(*rows))
    return {"val_r_ok": float((err_r <= 20).double().mean()), "val_t_ok": float((err_t <= 0.2).double().mean()),
            "val_median_r": float(err_r.median()), "val_median_t": float(err_t.median()),
            "val_heading_r_ok": float((err_h <= 20).double().mean()), "val_heading_median_r": float(err_h.median())}


def rotation_errors(r_pred: torch.Tensor, r_gt: torch.Tensor, folds: torch.Tensor) -> torch.Tensor:
    """Scan2CAD's symmetry-aware rotation error (N,) degrees of r_pred, r_gt (N, 3, 3), folds (N,)."""

    names = {1: "none", 2: "2fold", 4: "4fold", 12: "inf"}
    err = torch.zeros(len(folds), dtype=torch.float64)
    for f, name in names.items():
        rows = folds == f
        if rows.any():
            err[rows] = symmetric_rotation_error(r_pred[rows].double(), r_gt[rows].double(), name)
    return err


def train_crops(exp: CropExperiment, out_dir: str | Path, *, data_root: str | None = None, resume: bool = False,
                max_steps: int | None = None, max_seconds: float | None = None, patches: ObjectPatches | None = None,
                progress: bool = True) -> list[dict[str, Any]]:
    """Train a CropNet; writes out_dir/checkpoint, metrics.jsonl, crop/. Returns the logged rows."""


    c, tc = exp.crop, exp.crop_train
    torch.set_num_threads(max(tc.threads, 1))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if patches is None:
        patches = load_or_build_patches(out_dir / "patches", data_root or tc.data_root, tc.train_split, tc)
    n = len(patches)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(tc.seed))
    n_val = min(max(int(n * VAL_FRACTION), 1), 512) if n > 20 else 0
    val_index, train_index = order[:n_val], order[n_val:]
    torch.manual_seed(tc.seed)
    model = CropNet.from_config(c, load_pretrained=not resume).to(memory_format=torch.channels_last)  # 2x faster on CPU
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.base_lr, weight_decay=tc.weight_decay)
    step, cpu_before = 0, 0.0
    if resume and (out_dir / "checkpoint" / "state.json").is_file():
        step, extra = load_checkpoint(out_dir / "checkpoint", model, optimizer)
        cpu_before = float(extra.get("cpu_seconds", 0.0))
    elif tc.init_from:
        init_crop_weights(model, tc.init_from)
    (out_dir / "experiment.json").write_text(json.dumps(to_mapping(exp), indent=1), encoding="utf-8")
    total = tc.max_steps if max_steps is None else max_steps
    cpu0, wall0, deadline = time.process_time(), time.perf_counter(), None
    if max_seconds is not None:
        deadline = wall0 + max_seconds
    rows: list[dict[str, Any]] = []
    window_t, window_crops = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc="train crops", unit="step", disable=not progress)
    model.train()
    while step < total:
        g = torch.Generator().manual_seed(tc.seed * 1000003 + step)
        index = train_index[torch.randint(len(train_index), (tc.batch_size,), generator=g)]
        batch = sample_crops(patches, index, crop_size=c.crop_size, generator=g, shift=tc.jitter_shift,
                             enlarge=tuple(tc.jitter_enlarge), color_jitter=tc.color_jitter)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, tc)
        out = model(batch["crops"].contiguous(memory_format=torch.channels_last), batch["rays"], batch["classes"])
        losses = crop_losses(out, batch, c, with_rotation=step >= tc.rotation_loss_after)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(losses["total"]))
        if finite:
            losses["total"].backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            finite = bool(torch.isfinite(norm))
            if finite:
                optimizer.step()
        step += 1
        window_crops += tc.batch_size
        bar.update(1)
        out_of_time = deadline is not None and time.perf_counter() > deadline
        last = step == total or out_of_time
        if step % tc.log_every == 0 or last or step == 1:
            now = time.perf_counter()
            row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "skipped": not finite,
                   "crops_per_s": window_crops / max(now - window_t, 1e-9),
                   "cpu_seconds": cpu_before + time.process_time() - cpu0,
                   **{k: float(v.detach()) for k, v in losses.items()}}
            window_t, window_crops = now, 0
            if step % tc.checkpoint_every == 0 or last:
                if n_val:
                    row.update(validate(model, patches, val_index, tc))
                save_checkpoint(out_dir / "checkpoint", model, optimizer, step, {"cpu_seconds": row["cpu_seconds"]})
                save_crop_model(out_dir / "crop", model)
            rows.append(row)
            bar.set_postfix(loss=f"{row['total']:.3f}", crops_s=f"{row['crops_per_s']:.0f}")
            with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        if out_of_time:
            print(f"train-crop: stopped at step {step} of {total}: the time limit passed")
            break
    bar.close()
    return rows


def with_overrides(exp: CropExperiment, **train_overrides) -> CropExperiment:
    """The experiment with crop_train fields replaced (None values ignored)."""
    values = {k: v for k, v in train_overrides.items() if v is not None}
    return replace(exp, crop_train=replace(exp.crop_train, **values)) if values else exp


def cpu_hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} CPU h" if math.isfinite(seconds) else "?"
