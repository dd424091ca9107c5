"""A model directory's config.yaml (``model:`` and, for Points2Objects, ``points2objects:``),
including directories written before the configuration clean-up of 2026-12-02 (issue 23).

Such a directory stores every field of the old single ModelConfig. Reading it:
- DROPPED_SWITCHES (switches tried and dropped) are accepted with the value the code always had
  since and ignored; any other value is refused (that model needs code that is gone).
- ROCA's ablation switches written at the top of ``model:`` (ABLATION_KEYS) move into
  ``model.ablation``; so does Points2Objects' ``points2objects.shape_labels``.
- A Points2Objects ``model:`` loses the ROCA-only fields (RocaConfig's own fields, ROCA's loss
  weights and ablation switches), which P2ONet never read, whatever their value.
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
    P2OAblationSwitches,
    P2OModelConfig,
    RocaConfig,
    mapping_kind,
)
from cad_perception_ros.model.points2objects.config import P2OConfig

# Switch -> the only value accepted (the behaviour every model since has had).
DROPPED_SWITCHES: dict[str, Any] = {
    "noc_pixel_features": False,     # NOC MLP also fed each pixel's ROI feature (no effect in a 1,500-step A/B)
    "procrustes_zero_center": True,  # False: ROCA's code, Procrustes about t_init instead of the centroids
}
ABLATION_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AblationSwitches))
P2O_ABLATION_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(P2OAblationSwitches))
_P2O_MODEL = {f.name for f in dataclasses.fields(P2OModelConfig)}
ROCA_ONLY_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RocaConfig) if f.name not in _P2O_MODEL)
_DETECTION_WEIGHTS = {f.name for f in dataclasses.fields(DetectionLossWeights)}
ROCA_ONLY_LOSS_WEIGHTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(LossWeights)
                                                if f.name not in _DETECTION_WEIGHTS)


def _into_ablation(model: dict[str, Any], flat: dict[str, Any], where: str) -> None:
    """Add switches `flat` (written in an old place) to model["ablation"]; ConfigError if both set one."""
    if not flat:
        return
    nested = model.get("ablation") if isinstance(model.get("ablation"), dict) else {}
    both = sorted(set(flat) & set(nested))
    if both:
        raise ConfigError(f"{where}: {both} written both in the old place and in model.ablation")
    model["ablation"] = {**nested, **flat}


def upgrade_stored_config(data: Any, where: str = "config.yaml") -> dict[str, Any]:
    """A stored config.yaml mapping in today's layout (see the module docstring); ConfigError on a
    dropped switch with another value than DROPPED_SWITCHES gives, or on a switch written both in
    its old place and in ``model.ablation``."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    model = data.get("model") or {}
    if not isinstance(model, dict):
        return data  # from_mapping names the problem
    model = dict(model)
    for key, accepted in DROPPED_SWITCHES.items():
        if key in model:
            value = model.pop(key)
            if value != accepted:
                raise ConfigError(f"{where}:model.{key}: {value!r} is no longer supported (the switch was "
                                  f"removed 2026-12-02; only {accepted!r} loads)")
    if mapping_kind(model, where) == "points2objects":
        for key in (*ROCA_ONLY_KEYS, *ABLATION_KEYS):
            model.pop(key, None)
        if isinstance(model.get("loss_weights"), dict):
            model["loss_weights"] = {k: v for k, v in model["loss_weights"].items() if k not in ROCA_ONLY_LOSS_WEIGHTS}
        if isinstance(data.get("points2objects"), dict):
            p2o = dict(data["points2objects"])
            _into_ablation(model, {k: p2o.pop(k) for k in P2O_ABLATION_KEYS if k in p2o}, where)
            data["points2objects"] = p2o
    else:
        _into_ablation(model, {k: model.pop(k) for k in ABLATION_KEYS if k in model}, where)
    data["model"] = model
    return data


def read_stored_config(data: Any, where: str = "config.yaml") -> tuple[ModelConfig, P2OConfig]:
    """(RocaConfig or P2OModelConfig by kind, P2OConfig) of a stored config.yaml mapping, old
    layouts included (the P2OConfig of a ROCA model is the default one)."""
    data = upgrade_stored_config(data or {}, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a mapping, got {type(data).__name__}")
    model = data.get("model", {})
    config = from_mapping(MODEL_CONFIGS[mapping_kind(model, where)], model, where=f"{where}:model")
    p2o = from_mapping(P2OConfig, data.get("points2objects", {}), where=f"{where}:points2objects")
    return config, p2o
