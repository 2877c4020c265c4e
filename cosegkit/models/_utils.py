"""Small helpers shared by the model modules."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (shared parameters are counted once).

    ``trainable_only=True`` counts only parameters with ``requires_grad``.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"count_parameters expects an nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_image_batch(x: torch.Tensor, name: str, multiple: int = 32) -> None:
    """Validate a (B, 3, H, W) float image batch whose sides are divisible by ``multiple``.

    The encoders downsample five times by 2 (output stride 32), and the decoders upsample back by exact
    factors of 2, so any other side would need cropping/padding that we refuse to do silently.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a normalised float tensor, got dtype {x.dtype}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(
            f"{name} has spatial size {h}x{w}; both H and W must be positive multiples of {multiple} "
            f"(the encoders have output stride {multiple}), e.g. resize to "
            f"{max(multiple, round(h / multiple) * multiple)}x{max(multiple, round(w / multiple) * multiple)}"
        )


def check_pair(image_a: torch.Tensor, image_b: torch.Tensor) -> None:
    """Validate both images of a pair batch (same batch size; each side a multiple of 32)."""
    check_image_batch(image_a, "image_a")
    check_image_batch(image_b, "image_b")
    if image_a.shape[0] != image_b.shape[0]:
        raise ValueError(
            f"image_a and image_b must have the same batch size, got {image_a.shape[0]} and {image_b.shape[0]}"
        )
