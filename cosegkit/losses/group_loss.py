"""Group Loss (Elezi et al., ECCV 2020; group_loss.txt): label propagation by replicator dynamics, then CE.

1. Similarity: W = Pearson correlation between the samples' embeddings, negative values set to 0 (ReLU),
   zero diagonal.
2. Initialisation: X = softmax(logits), except a few "anchors" per class whose rows are one-hot labels.
3. Refinement, T steps of replicator dynamics: ``X <- X * (W X)``, each row renormalised to sum 1.
4. Loss: negative log-likelihood of the refined X, ``NLL(log(X + eps), labels)``.

Choices where the summary paper leaves room (documented here and in the functions):

* Anchors: ``n_anchors`` per class (default 2), drawn uniformly at random among that class's samples with
  ``generator`` (or the global torch RNG when ``generator`` is None); pass ``anchors`` to fix them. A class with
  at most ``n_anchors`` samples has all of them as anchors.
* The NLL is averaged over all samples, anchors included (as the authors' code does).
* Numerics without clamping: ``eps = 1e-12`` is added inside the log (as the authors' code does). A row whose
  payoff ``sum(X * W X)`` is exactly 0 (no positively correlated neighbour, or a constant embedding, which has
  zero correlation with everything) keeps its current X instead of becoming 0/0.
* Pixel level (:func:`pixel_group_loss`): per image, K foreground and K background pixels are drawn with
  :func:`cosegkit.samplers.sample_fg_bg_pixels` (sets F1 and B1); the two groups are background (class 0) and
  foreground (class 1), matching the (B, 2, H, W) head. W is built per image only (no cross-image edges); the
  first ``n_anchors`` rows of each sampled set are the anchors (the sampled order is uniformly random, so this
  is a uniform random choice). Per image NLL mean, then mean over images with both classes. Memory is
  O(B (2K)^2) for W, hence a default K of 256 rather than IS-Triplet's 5000.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosegkit.losses._checks import (
    check_embedding_parts,
    check_int,
    check_tensor,
    same_device,
    zero_like_graph,
    zero_like_parts,
)
from cosegkit.samplers import as_binary_masks, gather_pixels, sample_fg_bg_pixels

__all__ = [
    "GroupLoss",
    "PixelGroupLoss",
    "correlation_similarity",
    "group_loss",
    "pixel_group_loss",
    "replicator_dynamics",
]

_NORM_FLOOR = 1e-12  # centred norm floor: only reached by constant embeddings, whose W row is then 0


def correlation_similarity(embeddings: Tensor) -> Tensor:
    """W for (..., N, D) embeddings: Pearson correlation between samples, ReLU'd, zero diagonal -> (..., N, N)."""
    z = embeddings - embeddings.mean(-1, keepdim=True)
    z = z / torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
    w = F.relu(z @ z.transpose(-1, -2))
    eye = torch.eye(w.shape[-1], dtype=torch.bool, device=w.device)
    return w.masked_fill(eye, 0.0)


def replicator_dynamics(x: Tensor, w: Tensor, steps: int = 3) -> Tensor:
    """``steps`` iterations of ``X <- X * (W X) / rowsum`` for X (..., N, C) and W (..., N, N).

    Rows with zero payoff keep their current value (see module docstring).
    """
    for _ in range(steps):
        new = x * (w @ x)
        total = new.sum(-1, keepdim=True)
        ok = total > 0
        x = torch.where(ok, new / torch.where(ok, total, 1.0), x)
    return x


def _random_anchors(labels: Tensor, n_anchors: int, generator: torch.Generator | None) -> Tensor:
    """Bool (N,): ``n_anchors`` uniformly random samples of each class (all of a smaller class)."""
    if n_anchors == 0:
        return torch.zeros_like(labels, dtype=torch.bool)
    keys = torch.rand(labels.shape, generator=generator, device=labels.device, dtype=torch.float64)
    order = torch.argsort(labels.double() + keys)  # grouped by class, random order inside each class
    sorted_labels = labels[order]
    class_start = torch.searchsorted(sorted_labels, sorted_labels)  # first position of each sample's class
    rank = torch.arange(labels.numel(), device=labels.device) - class_start
    anchors = torch.zeros_like(labels, dtype=torch.bool)
    anchors[order] = rank < n_anchors
    return anchors


def group_loss(
    embeddings: Tensor,
    logits: Tensor,
    labels: Tensor,
    n_anchors: int = 2,
    steps: int = 3,
    generator: torch.Generator | None = None,
    *,
    anchors: Tensor | None = None,
    eps: float = 1e-12,
) -> Tensor:
    """Group Loss at sample (image) level (group_loss.txt; see module docstring).

    Args:
        embeddings: (N, D) float embeddings of the mini-batch.
        logits: (N, C) float class logits (softmax initialisation of X).
        labels: (N,) integer class ids in [0, C).
        n_anchors: one-hot anchors per class (>= 0).
        steps: replicator-dynamics iterations T (>= 1; the paper finds 1-3 best).
        generator: ``torch.Generator`` for the anchor draw (ignored when ``anchors`` is given).
        anchors: optional (N,) bool mask or 1-D index tensor of anchor samples.
        eps: added inside the log.

    Returns:
        Scalar NLL of the refined assignments, mean over the N samples.
    """
    embeddings = check_tensor(embeddings, "embeddings", 2, floating=True)
    logits = check_tensor(logits, "logits", 2, floating=True)
    labels = check_tensor(labels, "labels", 1)
    n = embeddings.shape[0]
    if logits.shape[0] != n or labels.shape[0] != n:
        raise ValueError(f"embeddings (N, D), logits (N, C) and labels (N,) must share N, got "
                         f"{tuple(embeddings.shape)}, {tuple(logits.shape)}, {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got {labels.dtype}")
    same_device(embeddings, logits, labels, names=("embeddings", "logits", "labels"))
    n_classes = logits.shape[1]
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}) (C = logits.shape[1]), got range "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    n_anchors = check_int(n_anchors, "n_anchors", minimum=0)
    steps = check_int(steps, "steps", minimum=1)
    if n == 0:
        raise ValueError("embeddings is empty: group_loss needs at least one sample")
    labels = labels.long()
    if anchors is None:
        anchor_mask = _random_anchors(labels, n_anchors, generator)
    else:
        anchors = check_tensor(anchors, "anchors", 1)
        if anchors.dtype == torch.bool:
            if anchors.shape[0] != n:
                raise ValueError(f"anchors as a bool mask must have shape ({n},), got {tuple(anchors.shape)}")
            anchor_mask = anchors
        else:
            anchor_mask = torch.zeros(n, dtype=torch.bool, device=labels.device)
            anchor_mask[anchors.long()] = True
    x = torch.where(anchor_mask[:, None], F.one_hot(labels, n_classes).to(logits.dtype), logits.softmax(-1))
    x = replicator_dynamics(x, correlation_similarity(embeddings), steps)
    return F.nll_loss(torch.log(x + eps), labels)


def pixel_group_loss(
    embeddings: Tensor | Sequence[Tensor],
    logits: Tensor,
    masks: Tensor,
    k: int = 256,
    n_anchors: int = 2,
    steps: int = 3,
    generator: torch.Generator | None = None,
    *,
    eps: float = 1e-12,
    samples: dict[str, Tensor] | None = None,
) -> Tensor:
    """Group Loss on pixels: per image, K foreground and K background pixels are the two groups.

    Args:
        embeddings: (B, D, H, W) float pixel embeddings, or a list of (B_i, D, H, W) maps that stand for their
            concatenation along the batch (not copied); the maths runs in float32 (float64 for float64 input),
            as in :func:`~cosegkit.losses.is_triplet.is_triplet_loss`.
        logits: (B, 2, H, W) float logits of the 2-class head (channel 1 = foreground).
        masks: (B, H, W) bool or {0, 1} foreground masks.
        k: pixels per class and image (``min(k, n_fg, n_bg)`` per image).
        n_anchors: one-hot anchors per class and image (>= 0).
        steps: replicator-dynamics iterations (>= 1).
        generator: ``torch.Generator`` for the pixel draw.
        eps: added inside the log.
        samples: optional output of :func:`~cosegkit.samplers.sample_fg_bg_pixels` (uses its ``f1``/``b1``).

    Returns:
        Scalar: per-image NLL mean over the 2 k_b sampled pixels, averaged over images that have both classes;
        a zero connected to the inputs' graph if none has.
    """
    parts, (b, d, h, w), dtype = check_embedding_parts(embeddings, "embeddings")
    logits = check_tensor(logits, "logits", 4, floating=True)
    masks = as_binary_masks(masks, "masks")
    if logits.shape != (b, 2, h, w):
        raise ValueError(f"logits must have shape (B, 2, H, W) = {(b, 2, h, w)}, got {tuple(logits.shape)}")
    if masks.shape != (b, h, w):
        raise ValueError(f"masks must have shape (B, H, W) = {(b, h, w)}, got {tuple(masks.shape)}")
    same_device(parts[0], logits, masks, names=("embeddings", "logits", "masks"))
    n_anchors = check_int(n_anchors, "n_anchors", minimum=0)
    steps = check_int(steps, "steps", minimum=1)
    if samples is None:
        samples = sample_fg_bg_pixels(masks, k, generator)
    counts = samples["counts"]
    kmax = samples["f1"].shape[1]
    if kmax == 0:
        return zero_like_parts(parts, dtype) + zero_like_graph(logits)
    idx = torch.cat([samples["f1"], samples["b1"]], dim=1)  # (B, 2 kmax): foreground rows, then background
    e = gather_pixels(parts, idx, dtype).transpose(1, 2)  # (B, 2 kmax, D)
    z = gather_pixels(logits, idx).transpose(1, 2)  # (B, 2 kmax, 2)
    j = torch.arange(kmax, device=counts.device)
    valid = (j < counts[:, None]).repeat(1, 2)
    target = torch.cat([torch.ones(kmax, dtype=torch.long), torch.zeros(kmax, dtype=torch.long)]).to(counts.device)
    anchor = (j < n_anchors).repeat(2)[None, :] & valid
    x = torch.where(anchor[..., None], F.one_hot(target, 2).to(z.dtype), z.softmax(-1))
    wmat = correlation_similarity(e) * (valid[:, :, None] & valid[:, None, :])  # no edges to padding rows
    x = replicator_dynamics(x, wmat, steps)
    nll = -torch.log(x.gather(2, target.expand(b, -1)[..., None])[..., 0] + eps)
    per_image = torch.where(valid, nll, 0.0).sum(1) / (2 * counts).clamp_min(1)
    return per_image.sum() / (counts > 0).sum()


class GroupLoss(nn.Module):
    """Module form of :func:`group_loss`; ``forward(embeddings, logits, labels)``."""

    def __init__(self, n_anchors: int = 2, steps: int = 3, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_anchors = check_int(n_anchors, "n_anchors", minimum=0)
        self.steps = check_int(steps, "steps", minimum=1)
        self.generator = generator

    def forward(self, embeddings: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
        return group_loss(embeddings, logits, labels, self.n_anchors, self.steps, self.generator)


class PixelGroupLoss(nn.Module):
    """Module form of :func:`pixel_group_loss`; ``forward(embeddings, logits, masks)``."""

    def __init__(
        self, k: int = 256, n_anchors: int = 2, steps: int = 3, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.k = check_int(k, "k")
        self.n_anchors = check_int(n_anchors, "n_anchors", minimum=0)
        self.steps = check_int(steps, "steps", minimum=1)
        self.generator = generator

    def forward(self, embeddings: Tensor, logits: Tensor, masks: Tensor) -> Tensor:
        return pixel_group_loss(embeddings, logits, masks, self.k, self.n_anchors, self.steps, self.generator)
