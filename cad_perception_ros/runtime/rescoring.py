"""ROCA v2's detection rescoring in the pipeline: each candidate's crop classified again.

A ROCA model directory that holds crop_classifier.safetensors + crop_classifier.yaml (hashed in
meta.json, flagged by "crop_classifier": true) runs the classifier after the detector's decode:
the decode keeps candidates down to the classifier's candidate_score (at most max_candidates,
the highest peaks), each candidate's square box (enlarge x max(w, h)) is cut from the
FULL-resolution image, and its score becomes the fusion of its peak and the crop's probability
of its class (model/roca/crop_classifier.py). Candidates that overlap a better-scored one of
any class (IoU >= nms_iou) are dropped, then those below the aligner's score threshold. Model
directories without these files behave exactly as before.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from cad_perception_ros.model.checkpoint import attach_files, verified_digests
from cad_perception_ros.model.roca.classifier_training import CLASSIFIER_CONFIG, CLASSIFIER_WEIGHTS, load_classifier
from cad_perception_ros.model.roca.crop_classifier import box_log_side, fused_scores, softmax, suppress_overlaps
from cad_perception_ros.model.roca.crop_sampling import crop_maps, square_boxes
from cad_perception_ros.runtime.onnx_cache import classifier_onnx_session
from cad_perception_ros.types import CadPrediction

CLASSIFIER_FILES = (CLASSIFIER_WEIGHTS, CLASSIFIER_CONFIG)


def has_crop_classifier(model_dir: str | Path | None) -> bool:
    return model_dir is not None and all((Path(model_dir) / name).is_file() for name in CLASSIFIER_FILES)


class Rescorer:
    """(image_rgb (H, W, 3) uint8, predictions, min_score) -> the rescored predictions >= min_score,
    best first. The classifier runs on torch or on an onnxruntime session of its static graph."""

    def __init__(self, *, model, session=None):
        self.model = model.eval()
        self.config = model.config
        self.session = session

    def probabilities(self, crops: torch.Tensor, log_side: torch.Tensor) -> np.ndarray:
        """(N, C + 1) class probabilities of N crops (the graph runs on max_crops, padded, per chunk)."""
        if self.session is None:
            with torch.inference_mode():
                return softmax(self.model(crops, log_side))
        m = self.config.max_crops
        parts = []
        for start in range(0, len(crops), m):
            k = min(m, len(crops) - start)
            feeds = {"crops": np.zeros((m, *crops.shape[1:]), np.float32), "log_side": np.zeros(m, np.float32)}
            feeds["crops"][:k] = crops[start:start + k].numpy()
            feeds["log_side"][:k] = log_side[start:start + k].numpy()
            parts.append(softmax(torch.from_numpy(self.session.run(["logits"], feeds)[0][:k])))
        return np.concatenate(parts)

    def __call__(self, image_rgb: np.ndarray, predictions: list[CadPrediction],
                 min_score: float) -> list[CadPrediction]:
        if not predictions:
            return predictions
        c = self.config
        predictions = sorted(predictions, key=lambda p: -p.score)[:c.max_candidates]
        tight = np.stack([p.box_xyxy for p in predictions]).astype(np.float32)  # (n, 4)
        pixels = np.ascontiguousarray(image_rgb)
        pixels = pixels if pixels.flags.writeable else pixels.copy()
        image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0  # (3, H, W)
        crops = crop_maps(image, square_boxes(torch.from_numpy(tight), c.enlarge), c.crop_size)  # (n, 3, S, S)
        probs = self.probabilities(crops, box_log_side(tight))
        scores = fused_scores(np.array([p.score for p in predictions]), np.array([p.class_id for p in predictions]),
                              probs, c.fusion)
        kept = suppress_overlaps(tight, scores, c.nms_iou)
        return [dataclasses.replace(predictions[i], score=float(scores[i])) for i in kept if scores[i] >= min_score]


def load_rescorer(model_dir: str | Path, backend: str = "torch", verify: bool = True) -> Rescorer:
    """The Rescorer of a model directory (sha256 checked against meta.json when it lists them)."""
    folder = Path(model_dir)
    digests = verified_digests(folder, CLASSIFIER_FILES, verify)
    model = load_classifier(folder)
    if backend not in ("onnxruntime", "tensorrt"):
        return Rescorer(model=model)
    return Rescorer(model=model, session=classifier_onnx_session(model, digests[CLASSIFIER_WEIGHTS]))


def attach_crop_classifier(model_dir: str | Path, classifier_dir: str | Path) -> Path:
    """Copy classifier_dir's CLASSIFIER_FILES into the ROCA model directory, record their sha256."""
    return attach_files(model_dir, classifier_dir, CLASSIFIER_FILES, what="crop classifier",
                        written_by="train-classifier writes RUN_DIR/classifier", flag="crop_classifier")
