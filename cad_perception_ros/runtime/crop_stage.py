"""ROCA v2's second stage in the pipeline: each detection's zoom-in crop -> its 9-DoF alignment.

A ROCA model directory that holds crop_model.safetensors + crop_config.yaml (hashed in meta.json
under "sha256", flagged by "crop_network": true) runs them after the detector's decode: for each
prediction (box in original-image pixels) the square box of side enlarge x max(w, h) is cut from
the FULL-resolution image, resized to crop_size (bilinear grid_sample), fed with its rays and
class to the crop network (torch, or onnxruntime with a static batch of max_crops, padded), and
the weighted Procrustes solve (float64, outside the graph) replaces rotation, translation and
scale (with detector_depth_weight w > 0 and no sensor depth, the depth is the weighted geometric
mean of the crop's and the detector's, along the crop's ray). Class, score, box, mask and retrieved
CAD stay the detector's. Directories without these files load and behave exactly as before. A
registered sensor depth map (metres, 0 = hole) is resampled (nearest, holes stay holes) onto each
crop's output grid for ``crop_poses(sensor_z=)``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from cad_perception_ros.geometry.camera import crop_intrinsics
from cad_perception_ros.model.checkpoint import attach_files, verified_digests
from cad_perception_ros.model.roca.crop_decode import crop_poses
from cad_perception_ros.model.roca.crop_export import run_session
from cad_perception_ros.model.roca.crop_sampling import crop_maps, crop_rays, square_boxes
from cad_perception_ros.model.roca.crop_training import load_crop_model
from cad_perception_ros.runtime.onnx_cache import crop_onnx_session
from cad_perception_ros.types import Alignment9D, CadPrediction

CROP_FILES = ("crop_model.safetensors", "crop_config.yaml")


def has_crop_network(model_dir: str | Path | None) -> bool:
    return model_dir is not None and all((Path(model_dir) / name).is_file() for name in CROP_FILES)


class CropStage:
    """(image_rgb (H, W, 3) uint8, K (3, 3), predictions) -> predictions with the crop network's alignment.

    The network runs on a CropNet (torch) or on onnxruntime sessions of ``export_crop_onnx``'s
    graphs: session (every output) and global_session (without the decoder, for the decode that
    needs no dense output: CropConfig.needs_dense)."""

    def __init__(self, *, model, session=None, global_session=None, config=None):
        self.model = model.eval()
        self.config = model.config if config is None else config  # a decode variant of the same network
        self.session = session
        self.global_session = global_session

    def network(self, crops: torch.Tensor, rays: torch.Tensor, classes: torch.Tensor,
                dense: bool = True) -> dict[str, torch.Tensor]:
        """Crop network outputs for n crops (the ONNX graph runs on max_crops, padded, per chunk)."""
        if self.session is None:
            with torch.inference_mode():
                return self.model(crops, rays, classes, dense=dense)
        session = self.session if dense or self.global_session is None else self.global_session
        return run_session(session, crops, rays, classes, self.config.max_crops)

    def __call__(self, image_rgb: np.ndarray, K: np.ndarray, predictions: list[CadPrediction],
                 depth: np.ndarray | None = None) -> list[CadPrediction]:
        """depth: (H, W) float metres registered to image_rgb, 0 = hole, or None (RGB alone)."""
        if not predictions:
            return predictions

        c = self.config
        boxes = square_boxes(torch.tensor(np.stack([p.box_xyxy for p in predictions]), dtype=torch.float32), c.enlarge)
        pixels = np.ascontiguousarray(image_rgb)
        pixels = pixels if pixels.flags.writeable else pixels.copy()  # torch warns on read-only arrays (cv_bridge, mmap)
        image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255.0  # (3, H, W)
        crops = crop_maps(image, boxes, c.crop_size)  # (n, 3, S, S)
        K_t = torch.as_tensor(np.asarray(K, dtype=np.float64))
        rays = crop_rays(crop_intrinsics(K_t.float(), boxes, (c.crop_size, c.crop_size)), c.crop_size)
        classes = torch.tensor([p.class_id for p in predictions], dtype=torch.long)
        out = self.network(crops, rays, classes, dense=c.needs_dense(with_depth=depth is not None))
        nocs = out.pop("nocs", None)
        sensor_z = None
        if depth is not None:
            size = out["depth"].shape[-1]  # the output grid
            sensor_z = crop_maps(torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None], boxes, size,
                                 mode="nearest")[:, 0]  # (n, R, R)
        pose = crop_poses(out, boxes, K_t, **c.decode_options(), nocs=nocs, sensor_z=sensor_z)
        translation = pose.translation
        if c.detector_depth_weight > 0 and depth is None:
            detector_z = torch.tensor([float(p.alignment.translation[2]) for p in predictions], dtype=torch.float64)
            translation = blend_depth(translation, detector_z, c.detector_depth_weight)
        return [dataclasses.replace(p, alignment=Alignment9D(pose.rotation[i].numpy(), translation[i].numpy(),
                                                             pose.scale[i].numpy()))
                for i, p in enumerate(predictions)]


def blend_depth(translation: torch.Tensor, other_z: torch.Tensor, weight: float) -> torch.Tensor:
    """Centres (N, 3) moved along their own rays to the depth exp((1 - w) log z + w log z_other),
    other_z (N,) metres (the detector's depth; ignored where not positive) -> (N, 3)."""
    z = translation[:, 2].clamp_min(1e-6)
    valid = other_z > 0
    target = torch.where(valid, torch.exp((1 - weight) * torch.log(z) + weight * torch.log(other_z.clamp_min(1e-6))), z)
    return translation * (target / z)[:, None]


def load_crop_stage(model_dir: str | Path, backend: str = "torch", verify: bool = True) -> CropStage:
    """The CropStage of a model directory (sha256 checked against meta.json when it lists them)."""

    folder = Path(model_dir)
    digests = verified_digests(folder, CROP_FILES, verify)  # each file read once: checks, cache names
    model = load_crop_model(folder)
    if backend not in ("onnxruntime", "tensorrt"):
        return CropStage(model=model)
    weights = digests[CROP_FILES[0]]  # the cached graphs are named by it
    # the global graph only where RGB alone skips the decoder (with depth the full one runs)
    global_session = None if model.config.needs_dense() else crop_onnx_session(model, weights, dense=False)
    return CropStage(model=model, session=crop_onnx_session(model, weights), global_session=global_session)


def attach_crop_network(model_dir: str | Path, crop_dir: str | Path) -> Path:
    """Copy crop_dir's CROP_FILES into the ROCA model directory and record their sha256 in meta.json."""
    return attach_files(model_dir, crop_dir, CROP_FILES, what="crop network",
                        written_by="train-crop writes RUN_DIR/crop", flag="crop_network")
