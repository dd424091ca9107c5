"""Train the crop classifier on the detector's own candidates (CPU, resumable).

1. Mining (once per run, cached in RUN_DIR/candidates.safetensors): the ROCA model's detector runs
   on the training views with its score threshold at config.candidate_score (the crop stage off).
   Each candidate is labelled by the ground-truth object its box covers best: that object's class
   where the IoU is >= 0.5, background below 0.3, ignored between. Every ground-truth object
   (>= 64 visible pixels) is added as a candidate of its own class. A square patch of 2 x the box
   side is cached at 96 x 96 (uint8).
2. Training: cross entropy over C + 1 classes on jittered crops of the patches (the zoom-in jitter
   of the crop network, colour jitter, horizontal flips), from the views before the last
   fusion_fraction of them.
3. Fusion: on the candidates of the last views (never trained on), the logistic fusion of peak and
   crop probability (crop_classifier.fit_fusion) against "right" = same-class IoU >= 0.5.

RUN_DIR holds checkpoint/, metrics.jsonl and classifier/ (crop_classifier.safetensors +
crop_classifier.yaml): the files a ROCA model directory takes (runtime/rescoring.py).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from cad_perception_ros.config import from_mapping, load_yaml, to_mapping
from cad_perception_ros.data.sample import objects_in_model_classes
from cad_perception_ros.geometry.boxes import box_iou
from cad_perception_ros.model.checkpoint import load_checkpoint, save_checkpoint
from cad_perception_ros.model.roca.crop_classifier import (
    ClassifierConfig,
    CropClassifier,
    fit_fusion,
    fused_scores,
    softmax,
)
from cad_perception_ros.model.roca.crop_sampling import crop_maps, jitter_square_boxes, square_boxes
from cad_perception_ros.model.roca.crop_targets import PATCH_ENLARGE, crop_batch, jitter_colours

CLASSIFIER_WEIGHTS, CLASSIFIER_CONFIG = "crop_classifier.safetensors", "crop_classifier.yaml"
PATCH = 96


@dataclass(frozen=True)
class ClassifierTrainConfig:
    max_views: int = 0           # 0: every view of the split
    fusion_fraction: float = 0.2  # the last views: fusion fit and held-out accuracy, never trained on
    batch_size: int = 64
    max_steps: int = 3000
    base_lr: float = 1e-3
    warmup_steps: int = 100
    lr_decay_steps: tuple[int, ...] = (2400,)
    lr_decay: float = 0.1
    weight_decay: float = 1e-4
    background_weight: float = 0.5
    jitter_shift: float = 0.08
    jitter_enlarge: tuple[float, float] = (1.25, 1.55)
    color_jitter: float = 0.2
    threads: int = 2
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0


@dataclass(frozen=True)
class ClassifierExperiment:
    classifier: ClassifierConfig = ClassifierConfig()
    classifier_train: ClassifierTrainConfig = ClassifierTrainConfig()


def load_classifier_experiment(path: str | Path) -> ClassifierExperiment:
    """Read a YAML file with ``classifier:`` and ``classifier_train:`` sections (strict)."""
    return from_mapping(ClassifierExperiment, load_yaml(path), where=Path(path).name)


class Candidates(NamedTuple):
    """N mined candidates. patch (N, 3, P, P) uint8; box (N, 4) float32 in patch pixels; side (N,)
    box side in image pixels; label (N,) int64 (class, C = background, -1 ignored); claimed (N,)
    the detector's class (-1 for ground-truth boxes); peak (N,) (NaN for ground-truth boxes);
    right (N,) 1 where a same-class object has IoU >= 0.5; view (N,) view index."""

    patch: torch.Tensor
    box: torch.Tensor
    side: torch.Tensor
    label: torch.Tensor
    claimed: torch.Tensor
    peak: torch.Tensor
    right: torch.Tensor
    view: torch.Tensor


def view_candidates(aligner, sample, num_classes: int) -> list[dict[str, torch.Tensor]]:
    """One view -> a row per detector candidate and per ground-truth object (see Candidates)."""
    predictions = aligner(sample.image, sample.K)
    objects = [o for o in objects_in_model_classes(sample.objects, aligner.class_names) if o.visible_pixels >= 64]
    gt_boxes = np.stack([o.box_xyxy for o in objects]).astype(np.float64) if objects else np.zeros((0, 4))
    gt_classes = np.array([o.class_id for o in objects], int)
    rows = []
    for p in predictions:
        iou = box_iou(p.box_xyxy[None], gt_boxes)[0] if objects else np.zeros(0)
        best = int(np.argmax(iou)) if objects else -1
        top = iou[best] if objects else 0.0
        label = gt_classes[best] if top >= 0.5 else (num_classes if top < 0.3 else -1)
        same = iou[gt_classes == p.class_id].max() if (gt_classes == p.class_id).any() else 0.0
        rows.append((p.box_xyxy, label, p.class_id, p.score, float(same >= 0.5)))
    rows += [(o.box_xyxy, o.class_id, -1, float("nan"), 1.0) for o in objects]
    if not rows:
        return []
    tight = torch.tensor(np.stack([r[0] for r in rows]), dtype=torch.float32)
    patches = square_boxes(tight, PATCH_ENLARGE)
    image = torch.from_numpy(np.array(sample.image)).permute(2, 0, 1).float()
    pixels = crop_maps(image, patches, PATCH).round().clamp(0, 255).to(torch.uint8)
    side = (patches[:, 2] - patches[:, 0])[:, None]
    box_patch = (tight - patches[:, :2].repeat(1, 2)) * PATCH / side
    return [{"patch": pixels[i], "box": box_patch[i], "side": (tight[i, 2:] - tight[i, :2]).amax(),
             "label": torch.tensor(r[1]), "claimed": torch.tensor(r[2]), "peak": torch.tensor(r[3], dtype=torch.float32),
             "right": torch.tensor(r[4], dtype=torch.float32)} for i, r in enumerate(rows)]


def mine_candidates(aligner, dataset, max_views: int = 0, progress: bool = True) -> Candidates:
    """Candidates of the first max_views views (0: all); aligner: a CadAligner without crop stage."""
    n = len(dataset) if max_views <= 0 else min(max_views, len(dataset))
    rows = []
    for v in tqdm(range(n), desc="mining candidates", disable=not progress):
        rows += [{**r, "view": torch.tensor(v)} for r in view_candidates(aligner, dataset[v], len(aligner.class_names))]
    if not rows:
        raise ValueError("mine_candidates: no candidate and no object in the data set")
    return Candidates(**{name: torch.stack([r[name] for r in rows]) for name in Candidates._fields})


def sample_batch(c: Candidates, index: torch.Tensor, config: ClassifierConfig, tc: ClassifierTrainConfig | None,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops (N, 3, S, S), log_side (N,)): jittered with tc, at config.enlarge without."""
    boxes = c.box[index]
    if tc is None:
        crop_boxes = square_boxes(boxes, config.enlarge)
    else:
        crop_boxes = jitter_square_boxes(boxes, generator, shift=tc.jitter_shift, enlarge=tuple(tc.jitter_enlarge))
    crops = crop_batch(c.patch[index].float() / 255.0, crop_boxes, config.crop_size)
    if tc is not None:
        if tc.color_jitter > 0:
            crops = jitter_colours(crops, tc.color_jitter, generator)
        flip = torch.rand(len(index), generator=generator) < 0.5
        crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
    return crops, torch.log(c.side[index].clamp_min(1.0) / 100.0)


def save_classifier(folder: str | Path, model: CropClassifier) -> Path:
    """Write crop_classifier.safetensors + crop_classifier.yaml (section ``classifier:``) into folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / CLASSIFIER_WEIGHTS))
    (folder / CLASSIFIER_CONFIG).write_text(yaml.safe_dump({"classifier": to_mapping(model.config)}, sort_keys=False),
                                            encoding="utf-8")
    return folder


def load_classifier(folder: str | Path) -> CropClassifier:
    """CropClassifier in eval mode from crop_classifier.safetensors + crop_classifier.yaml (strict keys)."""
    folder = Path(folder)
    config = from_mapping(ClassifierExperiment, load_yaml(folder / CLASSIFIER_CONFIG), where=CLASSIFIER_CONFIG).classifier
    model = CropClassifier(config=config)
    model.load_state_dict(load_file(str(folder / CLASSIFIER_WEIGHTS)), strict=True)
    return model.eval()


def init_encoder(model: CropClassifier, crop_model_file: str | Path) -> None:
    """The encoder from a crop network's crop_model.safetensors (trained on the same renders)."""
    tensors = load_file(str(crop_model_file))
    model.encoder.load_state_dict({k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")},
                                  strict=True)


@torch.no_grad()
def probabilities(model: CropClassifier, c: Candidates, index: torch.Tensor) -> np.ndarray:
    """(len(index), C + 1) class probabilities of un-jittered crops."""
    model.eval()
    parts = []
    for part in index.split(256):
        crops, log_side = sample_batch(c, part, model.config, None, torch.Generator())
        parts.append(softmax(model(crops, log_side)))
    model.train()
    return np.concatenate(parts) if parts else np.zeros((0, model.config.num_classes + 1))


def held_out_report(model: CropClassifier, c: Candidates, index: torch.Tensor) -> dict[str, Any]:
    """Accuracy of the held-out candidates and the fitted fusion (with the AUC of peak vs fused)."""
    probs = probabilities(model, c, index)
    labels = c.label[index].numpy()
    known = labels >= 0
    detector = c.claimed[index].numpy() >= 0
    peaks, claimed, right = c.peak[index].numpy(), c.claimed[index].numpy(), c.right[index].numpy()
    fusion = fit_fusion(peaks[detector], claimed[detector], probs[detector], right[detector])
    fused = fused_scores(peaks[detector], claimed[detector], probs[detector], fusion)
    return {"val_accuracy": float((probs[known].argmax(1) == labels[known]).mean()) if known.any() else float("nan"),
            "val_auc_peak": ranking_auc(peaks[detector], right[detector]),
            "val_auc_fused": ranking_auc(fused, right[detector]), "fusion": list(fusion)}


def ranking_auc(scores: np.ndarray, right: np.ndarray) -> float:
    """Probability that a right candidate outranks a wrong one (ties count half)."""
    pos, neg = scores[right > 0.5], scores[right <= 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def learning_rate(step: int, tc: ClassifierTrainConfig) -> float:
    lr = tc.base_lr * tc.lr_decay ** sum(step >= s for s in tc.lr_decay_steps)
    return lr * min(1.0, (step + 1) / max(tc.warmup_steps, 1))


def train_classifier(exp: ClassifierExperiment, out_dir: str | Path, candidates: Candidates, *,
                     init_from: str | Path | None = None, resume: bool = False, max_steps: int | None = None,
                     max_seconds: float | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Train a CropClassifier on mined candidates; writes out_dir/checkpoint, metrics.jsonl and
    classifier/ (with the fusion fitted on the held-out views). Returns the logged rows."""
    config, tc = exp.classifier, exp.classifier_train
    torch.set_num_threads(max(tc.threads, 1))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    views = int(candidates.view.max()) + 1
    first_held = int(round(views * (1 - tc.fusion_fraction)))
    train_index = torch.nonzero((candidates.view < first_held) & (candidates.label >= 0))[:, 0]
    held_index = torch.nonzero(candidates.view >= first_held)[:, 0]
    if not len(train_index) or not len(held_index):
        raise ValueError(f"train-classifier: {views} views give no training or no held-out candidates")
    torch.manual_seed(tc.seed)
    model = CropClassifier(config=config, load_pretrained=init_from is None and not resume)
    if init_from is not None and not resume:
        init_encoder(model, init_from)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.base_lr, weight_decay=tc.weight_decay)
    step, cpu_before = 0, 0.0
    if resume and (out_dir / "checkpoint" / "state.json").is_file():
        step, extra = load_checkpoint(out_dir / "checkpoint", model, optimizer)
        cpu_before = float(extra.get("cpu_seconds", 0.0))
    weight = torch.ones(config.num_classes + 1)
    weight[-1] = tc.background_weight
    total = tc.max_steps if max_steps is None else max_steps
    cpu0, deadline = time.process_time(), None if max_seconds is None else time.perf_counter() + max_seconds
    rows: list[dict[str, Any]] = []
    window_t, window_n = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc="train classifier", unit="step", disable=not progress)
    model.train()
    while step < total:
        g = torch.Generator().manual_seed(tc.seed * 1000003 + step)
        index = train_index[torch.randint(len(train_index), (tc.batch_size,), generator=g)]
        crops, log_side = sample_batch(candidates, index, config, tc, g)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, tc)
        loss = F.cross_entropy(model(crops, log_side), candidates.label[index], weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window_n += tc.batch_size
        bar.update(1)
        out_of_time = deadline is not None and time.perf_counter() > deadline
        last = step == total or out_of_time
        if step % tc.log_every == 0 or last or step == 1:
            now = time.perf_counter()
            row = {"step": step, "lr": optimizer.param_groups[0]["lr"], "loss": float(loss.detach()),
                   "crops_per_s": window_n / max(now - window_t, 1e-9),
                   "cpu_seconds": cpu_before + time.process_time() - cpu0}
            window_t, window_n = now, 0
            if step % tc.checkpoint_every == 0 or last:
                report = held_out_report(model, candidates, held_index)
                row.update({k: v for k, v in report.items() if k != "fusion"})
                save_checkpoint(out_dir / "checkpoint", model, optimizer, step, {"cpu_seconds": row["cpu_seconds"]})
                save_classifier(out_dir / "classifier",
                                with_config(model, replace(config, fusion=tuple(report["fusion"]))))
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", crops_s=f"{row['crops_per_s']:.0f}")
            with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        if out_of_time:
            print(f"train-classifier: stopped at step {step} of {total}: the time limit passed")
            break
    bar.close()
    return rows


def with_config(model: CropClassifier, config: ClassifierConfig) -> CropClassifier:
    """The same weights under another config (the fitted fusion): shares the tensors, no copy."""
    clone = CropClassifier(config=config)
    clone.load_state_dict(model.state_dict(), strict=True)
    return clone


def load_or_mine(out_dir: Path, aligner, dataset, max_views: int) -> Candidates:
    path = out_dir / "candidates.safetensors"
    if path.is_file():
        t = load_file(str(path))
        return Candidates(**{k: t[k] for k in Candidates._fields})
    c = mine_candidates(aligner, dataset, max_views)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: getattr(c, k).contiguous() for k in Candidates._fields}, str(path))
    return c
