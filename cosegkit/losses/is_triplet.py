"""IS-Triplet loss: a triplet loss on pixels (is_triplet_coseg.txt, Sec. 3.2, eqs. 2-5).

Per image, K foreground pixels are drawn twice (F1, F2) and K background pixels twice (B1, B2); row i of the
four sets forms two triplets (eqs. 2-3), combined by eq. 4:

    loss_IS = 1/2 ([d(F1, F2) - d(F1, B1) + m]_+ + [d(B1, B2) - d(B1, F2) + m]_+)

Choices where the paper is ambiguous:

* Distance: eqs. 2-3 write d^2 but eq. 4 (the loss actually used) writes d. Default ``squared=False`` is the
  plain Euclidean distance of eq. 4; ``squared=True`` gives d^2 of eqs. 1-3. With m = 3.0 (Sec. 4.1.3) the
  two scales differ, so the choice matters.
* Reduction: the per-row losses are averaged over the rows of each image, then over the images that have both
  foreground and background pixels (an image with one class only has no triplets and contributes nothing).
* Set sizes: one K per image, ``k_b = min(K, n_fg, n_bg)`` (see :func:`cosegkit.samplers.sample_fg_bg_pixels`).
* Training objective (eq. 5): ``loss_seg + lambda * loss_IS`` with lambda = 1.0 decayed by 0.85 after every
  epoch (Sec. 4.1.3): :class:`LambdaSchedule`, :func:`combined_is_triplet_objective`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosegkit.losses._checks import (
    check_embedding_parts,
    check_positive,
    euclidean_norm,
    same_device,
    zero_like_parts,
)
from cosegkit.samplers import as_binary_masks, gather_pixels, sample_fg_bg_pixels

__all__ = [
    "ISTripletLoss",
    "LambdaSchedule",
    "combined_is_triplet_objective",
    "is_triplet_from_sets",
    "is_triplet_loss",
]

_SAMPLE_KEYS = ("f1", "f2", "b1", "b2", "counts")


def _distance(a: Tensor, b: Tensor, dim: int, squared: bool) -> Tensor:
    diff = a - b
    if squared:
        return diff.pow(2).sum(dim)
    # gradient 0 at distance 0 (F1 and F2 may share a pixel), never NaN
    return euclidean_norm(diff, dim)


def is_triplet_from_sets(
    f1: Tensor, f2: Tensor, b1: Tensor, b2: Tensor, margin: float = 3.0, squared: bool = False, dim: int = -1
) -> Tensor:
    """Per-row IS-Triplet loss (eq. 4) of four aligned embedding sets; the vector dimension is ``dim``.

    Returns ``0.5 * (relu(d(f1,f2) - d(f1,b1) + m) + relu(d(b1,b2) - d(b1,f2) + m))`` with ``dim`` reduced.
    Equal to ``0.5 * (F.triplet_margin_loss(f1, f2, b1) + F.triplet_margin_loss(b1, b2, f2))`` per row with
    ``eps=0`` and ``reduction="none"`` when ``squared=False``.
    """
    d_ff = _distance(f1, f2, dim, squared)
    d_fb = _distance(f1, b1, dim, squared)
    d_bb = _distance(b1, b2, dim, squared)
    d_bf = _distance(b1, f2, dim, squared)
    return 0.5 * (F.relu(d_ff - d_fb + margin) + F.relu(d_bb - d_bf + margin))


def is_triplet_loss(
    embeddings: Tensor | Sequence[Tensor],
    masks: Tensor,
    k: int = 5000,
    margin: float = 3.0,
    squared: bool = False,
    generator: torch.Generator | None = None,
    *,
    samples: dict[str, Tensor] | None = None,
) -> Tensor:
    """IS-Triplet loss (is_triplet_coseg.txt, Sec. 3.2, eq. 4) of pixel embeddings.

    Args:
        embeddings: (B, D, H, W) float pixel embeddings (paper: D = 64, the input size), or a list of
            (B_i, D, H, W) maps that stand for their concatenation along the batch (a pair's two maps, not
            copied). The maths runs in float32 (float64 for float64 input); a bf16 map under autocast is
            gathered first and cast after, with the same values and gradients as casting it first.
        masks: (B, H, W) bool or {0, 1}; foreground = True.
        k: pixels per set and image (paper: K = 5000); per image ``min(k, n_fg, n_bg)`` are used.
        margin: m > 0 (paper: 3.0).
        squared: False = Euclidean distance as in eq. 4 (default); True = squared distance as in eqs. 2-3.
        generator: ``torch.Generator`` on the masks' device for reproducible sampling.
        samples: optional output of :func:`cosegkit.samplers.sample_fg_bg_pixels` to reuse fixed pixel sets
            (then ``k`` and ``generator`` are not used).

    Returns:
        Scalar loss: mean over rows per image, then mean over images that have both classes. If no image has
        both classes, a zero that is connected to ``embeddings`` (``backward()`` works, gradients are 0).

    Vectorised over the batch; memory O(B * K * D) besides the inputs (no pixel-by-pixel distance matrix).
    """
    parts, (b, d, h, w), dtype = check_embedding_parts(embeddings, "embeddings")
    masks = as_binary_masks(masks, "masks")
    if masks.shape != (b, h, w):
        raise ValueError(f"masks must have shape (B, H, W) = {(b, h, w)} to match embeddings, "
                         f"got {tuple(masks.shape)}")
    same_device(parts[0], masks, names=("embeddings", "masks"))
    margin = check_positive(margin, "margin")
    if samples is None:
        samples = sample_fg_bg_pixels(masks, k, generator)
    else:
        missing = [key for key in _SAMPLE_KEYS if key not in samples]
        if missing:
            raise ValueError(f"samples is missing keys {missing}; pass the dict from sample_fg_bg_pixels")
    counts = samples["counts"]
    kmax = samples["f1"].shape[1]
    if kmax == 0 or not bool((counts > 0).any()):
        return zero_like_parts(parts, dtype)
    idx = torch.cat([samples["f1"], samples["f2"], samples["b1"], samples["b2"]], dim=1)
    f1, f2, b1, b2 = gather_pixels(parts, idx, dtype).split(kmax, dim=2)
    per_row = is_triplet_from_sets(f1, f2, b1, b2, margin, squared, dim=1)  # (B, kmax)
    valid = torch.arange(kmax, device=counts.device) < counts[:, None]
    per_image = torch.where(valid, per_row, 0.0).sum(1) / counts.clamp_min(1)
    has_both = counts > 0
    return per_image.sum() / has_both.sum()


class ISTripletLoss(nn.Module):
    """Module form of :func:`is_triplet_loss` (is_triplet_coseg.txt, eq. 4); ``forward(embeddings, masks)``."""

    def __init__(
        self,
        k: int = 5000,
        margin: float = 3.0,
        squared: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_positive(margin, "margin")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        self.k = k
        self.margin = float(margin)
        self.squared = squared
        self.generator = generator

    def forward(self, embeddings: Tensor, masks: Tensor) -> Tensor:
        return is_triplet_loss(embeddings, masks, self.k, self.margin, self.squared, self.generator)

    def extra_repr(self) -> str:
        return f"k={self.k}, margin={self.margin}, squared={self.squared}"


@dataclass(frozen=True)
class LambdaSchedule:
    """Trade-off weight of eq. 5: ``value(epoch) = lambda0 * decay ** epoch`` (Sec. 4.1.3: lambda starts at 1.0
    and is multiplied by 0.85 after each epoch; epoch 0 is the first epoch)."""

    lambda0: float = 1.0
    decay: float = 0.85

    def __post_init__(self) -> None:
        check_positive(self.lambda0, "lambda0", allow_zero=True)
        check_positive(self.decay, "decay")

    def value(self, epoch: int) -> float:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        return self.lambda0 * self.decay**epoch


def combined_is_triplet_objective(
    seg_loss: Tensor, is_loss: Tensor, epoch: int, schedule: LambdaSchedule | None = None
) -> Tensor:
    """Eq. 5: ``loss = loss_seg + lambda(epoch) * loss_IS`` with ``schedule`` (default ``LambdaSchedule()``)."""
    schedule = LambdaSchedule() if schedule is None else schedule
    return seg_loss + schedule.value(epoch) * is_loss
