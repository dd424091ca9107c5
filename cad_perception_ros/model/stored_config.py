"""The ``model:`` section of a model directory's config.yaml, including directories written before
the configuration clean-up of 2026-12-02 (issue 23).

Such a directory stores every field of the old single ModelConfig. Reading it:
- DROPPED_SWITCHES (switches tried and dropped) are accepted with the value the code always had
  since and ignored; any other value is refused (that model needs code that is gone).
- The ablation switches written at the top level (ABLATION_KEYS) move into ``ablation:``.
- A Points2Objects section loses the ROCA-only fields (RocaConfig's own fields, ROCA's loss
  weights and the ablation switches), which P2ONet never read, whatever their value.
Everything else is read strictly, as any configuration (unknown keys are errors).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from cad_perception_ros.config import ConfigError, from_mapping
from cad_perception_ros.model.config import (
    MODEL_CONFIGS,
    AblationSwitches,
    DetectionLossWeights,
    LossWeights,
    ModelConfig,
    RocaConfig,
    mapping_kind,
)

# Switch -> the only value accepted (the behaviour every model since has had).
DROPPED_SWITCHES: dict[str, Any] = {
    "noc_pixel_features": False,     # NOC MLP also fed each pixel's ROI feature (no effect in a 1,500-step A/B)
    "procrustes_zero_center": True,  # False: ROCA's code, Procrustes about t_init instead of the centroids
}
ABLATION_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AblationSwitches))
_SHARED = {f.name for f in dataclasses.fields(ModelConfig)}
ROCA_ONLY_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RocaConfig) if f.name not in _SHARED)
_DETECTION_WEIGHTS = {f.name for f in dataclasses.fields(DetectionLossWeights)}
ROCA_ONLY_LOSS_WEIGHTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LossWeights)
                                                if f.name not in _DETECTION_WEIGHTS)


def upgrade_model_section(section: Any, where: str = "config.yaml:model") -> dict[str, Any]:
    """A stored ``model:`` mapping in today's layout (see the module docstring); ConfigError on a
    dropped switch with another value than DROPPED_SWITCHES gives, or on an ablation switch
    written both at the top level and in ``ablation:``."""
    if not isinstance(section, dict):
        return section
    data = dict(section)
    for key, accepted in DROPPED_SWITCHES.items():
        if key in data:
            value = data.pop(key)
            if value != accepted:
                raise ConfigError(f"{where}.{key}: {value!r} is no longer supported (the switch was removed "
                                  f"2026-12-02; only {accepted!r} loads)")
    if mapping_kind(data, where) == "points2objects":
        for key in (*ROCA_ONLY_KEYS, *ABLATION_KEYS):
            data.pop(key, None)
        if isinstance(data.get("loss_weights"), dict):
            data["loss_weights"] = {k: v for k, v in data["loss_weights"].items() if k not in ROCA_ONLY_LOSS_WEIGHTS}
        return data
    flat = {key: data.pop(key) for key in ABLATION_KEYS if key in data}
    if flat:
        nested = data.get("ablation") if isinstance(data.get("ablation"), dict) else {}
        both = sorted(set(flat) & set(nested))
        if both:
            raise ConfigError(f"{where}: {both} written both at the top level and in ablation:")
        data["ablation"] = {**nested, **flat}
    return data


def read_model_section(section: Any, where: str = "config.yaml:model") -> ModelConfig:
    """RocaConfig or P2OModelConfig (by kind) from a stored ``model:`` mapping, old layouts included."""
    data = upgrade_model_section(section or {}, where)
    return from_mapping(MODEL_CONFIGS[mapping_kind(data, where)], data, where=where)
