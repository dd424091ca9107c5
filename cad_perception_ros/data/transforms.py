"""Per-view transforms of ``SceneSample``: resizing with exact intrinsics, colour jitter."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from cad_perception_ros.data.sample import ObjectAnnotation, SceneSample
from cad_perception_ros.geometry.camera import scale_intrinsics


def _nearest_indices(old: int, new: int) -> np.ndarray:
    """Source index of each output pixel: the source pixel containing its centre."""
    centres = (np.arange(new) + 0.5) * old / new
    return np.clip(np.floor(centres).astype(np.int64), 0, old - 1)


def resize_sample(sample: SceneSample, size: tuple[int, int]) -> SceneSample:
    """sample at size (H, W): image bilinear; depth, instance map and NOCs nearest-neighbour;
    K scaled; boxes scaled; objects that vanish keep their annotation with visible_pixels 0."""
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"resize_sample: bad size {size}")
    old_h, old_w = sample.size
    sx, sy = width / old_w, height / old_h
    rows, cols = _nearest_indices(old_h, height), _nearest_indices(old_w, width)
    image = np.asarray(Image.fromarray(sample.image).resize((width, height), Image.BILINEAR))
    instance_map = sample.instance_map[rows][:, cols]
    objects = []
    for index, obj in enumerate(sample.objects):
        box = np.asarray(obj.box_xyxy, dtype=np.float64) * [sx, sy, sx, sy]
        objects.append(ObjectAnnotation(class_id=obj.class_id, cad_id=obj.cad_id, alignment=obj.alignment,
                                        box_xyxy=box, symmetry=obj.symmetry,
                                        visible_pixels=int((instance_map == index).sum())))
    return replace(sample, image=image, depth=sample.depth[rows][:, cols], K=scale_intrinsics(sample.K, sx, sy),
                   instance_map=instance_map, noc=sample.noc[rows][:, cols], objects=objects)


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2) -> np.ndarray:
    """(H, W, 3) uint8 with random brightness, contrast and saturation in [1 - x, 1 + x] (ROCA's
    augmentations use 0.8..1.25), applied in random order."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"color_jitter: expected (H, W, 3), got {image.shape}")
    out = image.astype(np.float32)
    for op in rng.permutation(3):
        if op == 0:
            out = out * rng.uniform(1 - brightness, 1 + brightness)
        elif op == 1:
            out = (out - out.mean()) * rng.uniform(1 - contrast, 1 + contrast) + out.mean()
        else:
            grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            out = (out - grey[..., None]) * rng.uniform(1 - saturation, 1 + saturation) + grey[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
