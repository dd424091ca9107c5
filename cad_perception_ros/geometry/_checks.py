"""Shape checks shared by the geometry functions (raise ValueError naming the argument)."""
from __future__ import annotations

import torch


def check_shape(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise ValueError unless `tensor` has len(shape) dims and matches every non-None size."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(shape) and all(e is None or s == e for s, e in zip(tensor.shape, shape))
    if not ok:
        wanted = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(tensor.shape)}")


def check_last(name: str, tensor: torch.Tensor, size: int, min_dims: int = 1) -> None:
    """Raise ValueError unless tensor.shape[-1] == size and tensor has at least `min_dims` dims."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < min_dims or tensor.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {tuple(tensor.shape)}")
