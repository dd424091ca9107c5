"""The training loop of both methods (ROCA and Points2Objects, by model.kind): optimiser, learning-rate
schedule, per-rank batches, checkpoints, metrics.jsonl and the loss-curve plot (see cli/train.py)."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from cad_perception_ros.data.transforms import color_jitter
from cad_perception_ros.model.checkpoint import (
    init_from_weights,
    load_checkpoint,
    save_checkpoint,
)
from cad_perception_ros.model.config import RocaTrainConfig
from cad_perception_ros.model.points2objects.exemplars import ExemplarSet
from cad_perception_ros.model.points2objects.network import P2ONet
from cad_perception_ros.model.points2objects.training import build_table, extend_batch
from cad_perception_ros.model.roca.network import RocaNet
from cad_perception_ros.model.roca.targets import class_frequency_weights, collate


def make_optimizer(params, cfg):
    """The TrainConfig's optimiser: momentum SGD (paper) or AdamW, both with decoupled-style weight decay."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.base_lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def learning_rate(step: int, cfg) -> float:
    """Linear warm-up from warmup_factor x base_lr, then x lr_decay at each of lr_decay_steps."""
    lr = cfg.base_lr * (cfg.lr_decay ** sum(step >= s for s in cfg.lr_decay_steps))
    if step < cfg.warmup_steps:
        alpha = step / max(cfg.warmup_steps, 1)
        lr *= cfg.warmup_factor * (1 - alpha) + alpha
    return lr


def batch_indices(step: int, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Indices of `step`'s batch on `rank`: DistributedSampler order per epoch, resumable by step."""
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
    per_epoch = max(len(sampler) // batch_size, 1)
    sampler.set_epoch(step // per_epoch)
    order = list(sampler)
    start = (step % per_epoch) * batch_size
    return [order[(start + i) % len(order)] for i in range(batch_size)]


def train_loop(model, dataset: Sequence, cads, exp, out_dir: str | Path, *, resume: bool = False,
               max_steps: int | None = None, progress: bool = True, device: str = "cpu",
               extend_batch=None, max_seconds: float | None = None) -> list[dict[str, Any]]:
    """Train `model` (RocaNet or P2ONet) on `dataset` (Sequence[SceneSample]) with CAD grids `cads` (CadTable).

    extend_batch: optional batch -> batch adding model-specific targets (Points2Objects:
    ``points2objects.training.extend_batch`` with its table). A model with ``uses_step`` gets the
    optimiser step (collision warm-up). Writes out_dir/checkpoint, metrics.jsonl, loss_curves.png.
    max_seconds: stop after the first step that ends past this wall time (checkpoint written).
    Returns the logged metric rows.
    """
    tc, mc = exp.train, exp.model
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if tc.init_from and not resume:
        copied = set(init_from_weights(model, tc.init_from, tc.init_modules))
        fresh = [k for k in model.state_dict() if k.split(".", 1)[0] in tc.init_modules and k not in copied]
        if fresh and rank == 0:  # layers the source does not have (e.g. a new option's): say so
            print(f"train.init_from: {tc.init_from} lacks {len(fresh)} tensor(s) of {list(tc.init_modules)}, "
                  f"kept at their initialisation: {fresh[:5]}")
    modules = dict(model.named_children())
    unknown = [name for name in tc.freeze if name not in modules]
    if unknown:
        raise ValueError(f"train.freeze: the model has no module(s) {unknown}; its modules: {sorted(modules)}")
    frozen = [modules[name] for name in tc.freeze]
    for module in frozen:
        module.requires_grad_(False)
    net = _distributed(model, device, world)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, tc)
    step = 0
    if resume:
        step, _ = load_checkpoint(out_dir / "checkpoint", model, optimizer)
    class_w = class_frequency_weights([o.class_id for s in _annotations(dataset) for o in s], mc.num_classes)
    total = tc.max_steps if max_steps is None else max_steps
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=total, initial=step, disable=not progress or rank != 0, desc="train", unit="step")
    model.train()
    for module in frozen:
        module.eval()  # fixed batch-norm statistics too
    batches = _step_batches(dataset, cads, exp, class_w, step, total, rank, world, pin=device.startswith("cuda"))
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    while step < total:
        t0 = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        batch = extend_batch(batch) if extend_batch is not None else batch
        data_seconds = time.perf_counter() - t0  # building (or, with workers, awaiting) the batch
        torch.manual_seed(tc.seed * 100003 + step * 101 + rank)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, tc)
        options = {"step": step} if getattr(model, "uses_step", False) else {}
        if isinstance(tc, RocaTrainConfig):  # the ROI heads' training options
            options["box_jitter"] = tc.box_jitter
            if tc.gt_depth_points > 0:
                options["gt_depth_points"] = tc.gt_depth_points
        losses = net(batch, class_weighting=tc.class_weighting, **options)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(losses["total"]))
        if finite:
            losses["total"].backward()
            norm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            finite = bool(torch.isfinite(norm))
            if finite:
                optimizer.step()
        step += 1
        bar.update(1)
        row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "skipped": not finite,
               "seconds": time.perf_counter() - t0, "data_seconds": data_seconds,
               **{k: float(v.detach()) for k, v in losses.items()}}
        rows.append(row)
        out_of_time = deadline is not None and time.perf_counter() > deadline
        if world > 1 and deadline is not None:  # every rank stops at the same step
            flag = torch.tensor([float(out_of_time)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            out_of_time = bool(flag.item())
        if rank == 0 and (step % tc.log_every == 0 or step == total or out_of_time):
            bar.set_postfix(loss=f"{row['total']:.3f}")
            with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        if rank == 0 and (step % tc.checkpoint_every == 0 or step == total or out_of_time):
            save_checkpoint(out_dir / "checkpoint", model, optimizer, step)
            plot_losses(out_dir / "metrics.jsonl", out_dir / "loss_curves.png")
        if out_of_time:
            if rank == 0:
                print(f"train: stopped at step {step} of {total}: the time limit ({max_seconds / 60:g} min) passed")
            break
    bar.close()
    return rows


def _annotations(dataset) -> list:
    """Objects per sample, reading annotations only when the data set offers it (``objects_of``)."""
    getter = getattr(dataset, "objects_of", None)
    return [getter(i) if getter else dataset[i].objects for i in range(len(dataset))]


class _StepBatches:
    """Map-style data set whose item i is the batch of step first + i: what a DataLoader's worker
    processes build ahead of the training step. Each batch depends on (seed, step, rank) alone, so
    it is the same whichever process builds it."""

    def __init__(self, dataset, cads, exp, class_w, first: int, total: int, rank: int, world: int) -> None:
        self.args = (dataset, cads, exp, class_w)
        self.first, self.total, self.rank, self.world = first, total, rank, world

    def __len__(self) -> int:
        return self.total - self.first

    def __getitem__(self, i: int) -> dict:
        return _make_batch(*self.args, self.first + i, self.rank, self.world)


def _step_batches(dataset, cads, exp, class_w, first, total, rank, world, pin=False):
    """Iterator over the CPU batches of steps first..total-1: built here (train.num_workers 0) or
    by that many worker processes, a few steps ahead."""
    source = _StepBatches(dataset, cads, exp, class_w, first, total, rank, world)
    workers = exp.train.num_workers
    if workers == 0:
        return (source[i] for i in range(len(source)))
    return iter(torch.utils.data.DataLoader(source, batch_size=None, shuffle=False, num_workers=workers,
                                            prefetch_factor=4, pin_memory=pin))


def _make_batch(dataset, cads, exp, class_w, step, rank, world):
    """The batch of `step` on `rank` (dict of CPU tensors): samples, colour jitter, targets."""
    tc, mc = exp.train, exp.model
    rng = np.random.default_rng([tc.seed, step, rank])
    samples = [dataset[i] for i in batch_indices(step, len(dataset), tc.batch_size, tc.seed, rank, world)]
    if tc.augment:
        x = tc.color_jitter
        samples = [_with_image(s, color_jitter(s.image, rng, brightness=x, contrast=x, saturation=x)) for s in samples]
    batch = collate(samples, num_classes=mc.num_classes, input_size=mc.input_size, cads=cads,
                    class_weights=class_w, gaussian_alpha=mc.gaussian_alpha, rng=rng)
    return batch


def _with_image(sample, image):
    return dataclasses.replace(sample, image=image)


def _distributed(model, device: str, world: int):
    model.to(device)
    if world <= 1:
        return model
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def plot_losses(metrics_path: Path, png_path: Path) -> None:
    """One small panel per loss term of metrics.jsonl (log y): raw values faint, a moving
    average over about 1/50 of the run on top, so slow trends show through step-to-step noise."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():  # a checkpoint before the first logged step
        return
    rows = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        return
    skip = {"step", "lr", "skipped", "seconds", "data_seconds"}
    keys = [k for k in rows[-1] if k not in skip]
    steps = np.array([r["step"] for r in rows])
    cols = 4
    nrows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.2 * nrows), squeeze=False, sharex=True)
    window = max(1, len(rows) // 50)
    for ax, k in zip(axes.flat, keys):
        vals = np.array([r.get(k, math.nan) for r in rows], dtype=float)
        ax.plot(steps, vals, color="0.75", linewidth=0.6)
        ax.plot(steps, moving_average(vals, window), color="C0" if k != "total" else "C3", linewidth=1.6)
        ax.set_title(k, fontsize=9)
        if np.nanmin(vals, initial=np.inf) > 0:
            ax.set_yscale("log")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(f"weighted losses (grey: logged values, line: moving average of {window})", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` values (NaNs ignored), same length as `values`."""
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)
    lo = np.maximum(np.arange(len(values)) - window, -1)
    prev_sums = np.where(lo >= 0, sums[np.clip(lo, 0, None)], 0.0)
    prev_counts = np.where(lo >= 0, counts[np.clip(lo, 0, None)], 0)
    n = counts - prev_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums - prev_sums) / np.maximum(n, 1), np.nan)


def build_model(exp, database, cads):
    """(model, extend_batch or None) for exp.model.kind: RocaNet, or P2ONet with its shape-exemplar
    set built from `database` (k-means++ over SDFs, exp.points2objects) and its per-CAD table.
    With model.pretrained the backbone starts from the ImageNet weights (a --resume replaces them)."""
    if exp.model.kind != "points2objects":
        return RocaNet.from_config(exp.model, load_pretrained=True), None
    exemplars = ExemplarSet.from_database(database, exp.points2objects)
    model = P2ONet.from_config(exp.model, exp.points2objects, exemplars,
                               load_pretrained=True)  # model.exemplars: saved after training
    points = np.asarray(database.points)[[database.index_of(c) for c in cads.cad_ids]]
    table = build_table(list(cads.cad_ids), points, exemplars, exp.points2objects)
    return model, functools.partial(extend_batch, table=table)
