"""Small argument checks shared by the loss modules (ValueError naming the argument)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def check_tensor(x: object, name: str, ndim: int | tuple[int, ...] | None = None, floating: bool = False) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and x.ndim not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def check_positive(value: object, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


def check_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def zero_like_graph(x: Tensor) -> Tensor:
    """A scalar 0 that is still connected to ``x``'s autograd graph (so ``.backward()`` works)."""
    return x.sum() * 0.0


def zero_like_parts(parts: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    """:func:`zero_like_graph` of every tensor in ``parts``, as one ``dtype`` scalar."""
    zero = zero_like_graph(parts[0]).to(dtype)
    for part in parts[1:]:
        zero = zero + zero_like_graph(part)
    return zero


def same_device(*tensors: Tensor, names: tuple[str, ...]) -> None:
    dev = tensors[0].device
    for t, n in zip(tensors[1:], names[1:], strict=True):
        if t.device != dev:
            raise ValueError(f"{n} is on {t.device} but {names[0]} is on {dev}")


__all__ = ["check_embedding_parts", "check_int", "check_positive", "check_tensor", "euclidean_norm", "same_device",
           "zero_like_graph", "zero_like_parts"]


def euclidean_norm(x: Tensor, dim: int) -> Tensor:
    """``||x||_2`` along ``dim`` with gradient 0 at 0 (like ``torch.linalg.vector_norm``).

    ``vector_norm`` is ~4x slower than a sum of squares when ``dim`` is not the innermost dimension of a
    (B, D, N) tensor on the CPU. ``sqrt`` has an infinite derivative at 0, so it is evaluated on 1 there and the
    exact 0 is put back (no clamping of non-zero values).
    """
    sq = (x * x).sum(dim)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, 1.0).sqrt(), 0.0)


def check_embedding_parts(x: object, name: str) -> tuple[list[Tensor], tuple[int, int, int, int], torch.dtype]:
    """A (B, D, H, W) floating tensor, or a non-empty sequence of (B_i, D, H, W) ones on one device that stand for
    their concatenation along the batch axis (a pair model's two maps, not copied).

    Returns the parts, the shape of the concatenation and the dtype the loss maths runs in: float32, or the
    input's dtype when it is wider (a bf16 map under autocast is gathered first and cast after).
    """
    parts = [x] if isinstance(x, Tensor) else list(x) if isinstance(x, list | tuple) else None
    if not parts:
        raise ValueError(f"{name} must be a torch.Tensor or a non-empty list of them, got {type(x).__name__}")
    for i, part in enumerate(parts):
        check_tensor(part, name if len(parts) == 1 else f"{name}[{i}]", 4, floating=True)
    b, d, h, w = parts[0].shape
    for i, part in enumerate(parts[1:], start=1):
        if tuple(part.shape[1:]) != (d, h, w):
            raise ValueError(f"{name}[{i}] has shape {tuple(part.shape)}; every part must be (B_i, {d}, {h}, {w}) "
                             f"like {name}[0]")
        same_device(parts[0], part, names=(f"{name}[0]", f"{name}[{i}]"))
    dtype = parts[0].dtype
    for part in parts[1:]:
        dtype = torch.promote_types(dtype, part.dtype)
    return parts, (sum(int(p.shape[0]) for p in parts), d, h, w), torch.promote_types(dtype, torch.float32)
