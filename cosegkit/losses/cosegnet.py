"""CoSegNet training objective (cosegnet.txt, Secs. 3.4-3.5 and 4.1): ``L = w1 L1 + w2 L2 + w3 L3``.

* L1 (eq. 2): pixel-wise binary cross-entropy between the predicted masks of *both* images of a pair and their
  ground-truth masks of the common object.
* L2 (eq. 3): image-level triplet loss ``max(0, ||f(a) - f(p)|| - ||f(a) - f(n)|| + alpha)`` on the outputs of
  the siamese metric-learning network, margin alpha = 1 (Sec. 4.1).
* L3 (eq. 4): binary cross-entropy of the decision network ("do the two images share an object?").
* Weights (Sec. 4.1): positive pairs w1 = w2 = w3 = 0.33; negative pairs w1 = 0, w2 = w3 = 0.5 ("L1 is not
  backpropagated" for negative pairs, Sec. 3.5).

Design and choices where the paper is ambiguous:

* Batch layout. Training samples are generated "following Schroff et al." as triplets (anchor, positive,
  negative), which give a positive pair (anchor, positive) and a negative pair (anchor, negative); the paper's
  batch holds 3 such pairs. :func:`cosegnet_loss` works on a batch of P *pairs*: row r is one pair with its
  label y_r (1 positive, 0 negative), its masks and decision logit, and the three metric embeddings of the
  triplet the pair comes from. Each row gets the weighted sum of its three terms with the weights of its label,
  ``loss_r = w1(y_r) L1_r + w2(y_r) L2_r + w3(y_r) L3_r``, and the total is the mean over rows. Both pairs of a
  triplet carry the same triplet term, so L2 is backpropagated for positive and negative pairs, as in
  Sec. 3.5. :func:`cosegnet_triplet_loss` builds these rows from the model outputs of T triplets (2T pairs).
* L1 scale: eq. 2 writes a sum over images l in [a, p, a, n] and pixels and only the ``M log M_hat`` term. We use
  the standard two-term BCE *averaged* over the pixels of each image and over the two images of a pair
  (``L1_r = (BCE(a) + BCE(b)) / 2``), so that L1, L2 and L3 have comparable scales under the 0.33 weights.
  Only the images of positive pairs contribute (w1 = 0 for negative pairs).
* L2 distance: eq. 3 writes ``||.||_2`` without a square (Schroff et al. use squared distances); default
  ``squared=False`` follows eq. 3, ``squared=True`` gives Schroff's squared distances. Eq. 3 names the GAP
  features f_u, but Sec. 3.2 trains the metric network's outputs f_s with the triplet loss; the engine passes
  whichever embeddings the model exposes (``CoSegNet``: ``embedding_a/b`` = f_s).
* L3: ``binary_cross_entropy_with_logits`` on the pre-sigmoid decision logit (numerically stable form of eq. 4).

Which triplets (Sec. 4.1, "we follow [Schroff et al., 2015] for generating samples"). The paper says no more.
The training data (``cosegkit.train.data``) draws anchor and positive uniformly within a group and, with
``data.triplet_mining="random"``, the negative uniformly among the images that share no class with either;
that is uniform random sampling, not Schroff et al.'s. ``data.triplet_mining="semihard"`` (the ``paper``
profile) is FaceNet's online semi-hard negative mining adapted to CoSegNet's small batches: each triplet comes
with ``data.mining_pool`` candidate negatives (the random negative first, the others drawn the same way), the
current network computes their metric embeddings f_s without gradients, and :func:`select_semihard_negatives`
keeps one per triplet; the training step then runs on the kept negative as usual. The embedding of a candidate
n is f_s(n) as L2 sees it for the negative of the pair (anchor, n): in ``CoSegNet`` each image's f_s is computed
by its own branch (encoder and decoder up to the metric layer), so it does not depend on the partner, and the
decoder after the metric layer is never run for candidates. Distances are the ones L2 uses (plain Euclidean,
eq. 3) with the run's margin ``loss.triplet_margin``; the anchor and positive embeddings are those of the
positive pair, so the picked negative's distances are those of the positive row's L2 term at the weights
before the step (exactly so where no layer uses batch statistics: VGG16, or the cpu profile's frozen-BN encoder
and GroupNorm decoder; with training-mode BatchNorm the no-grad pass normalises over its own batch, and it never
updates the running statistics). Cost per step: one forward of B (2 + pool) images through the encoder and the
decoder up to the metric layer, without gradients, next to the training step's forward and backward of 4B
images, plus the data work of transforming B * pool negative pairs (see ``cosegkit.train.profiles`` for the
measured seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosegkit.losses._checks import check_positive, check_tensor, same_device
from cosegkit.samplers import as_binary_masks

__all__ = ["CoSegNetLoss", "cosegnet_loss", "cosegnet_triplet_loss", "select_semihard_negatives"]

POSITIVE_WEIGHTS = (0.33, 0.33, 0.33)
NEGATIVE_WEIGHTS = (0.0, 0.5, 0.5)


def _check_weights(w: Sequence[float], name: str) -> tuple[float, float, float]:
    if not isinstance(w, Sequence) or len(w) != 3:
        raise ValueError(f"{name} must be a sequence of 3 weights (w1, w2, w3), got {w!r}")
    return tuple(check_positive(v, f"{name}[{i}]", allow_zero=True) for i, v in enumerate(w))  # type: ignore


def _mask_logits(x: Tensor, name: str, p: int | None) -> Tensor:
    x = check_tensor(x, name, (3, 4), floating=True)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{name} must be (P, 1, H, W) or (P, H, W), got {tuple(x.shape)}")
        x = x[:, 0]
    if p is not None and x.shape[0] != p:
        raise ValueError(f"{name} must have {p} rows (one per pair), got {x.shape[0]}")
    return x


def cosegnet_loss(
    mask_logits_a: Tensor,
    mask_logits_b: Tensor,
    masks_a: Tensor,
    masks_b: Tensor,
    emb_anchor: Tensor,
    emb_positive: Tensor,
    emb_negative: Tensor,
    decision_logits: Tensor,
    decision_labels: Tensor,
    *,
    margin: float = 1.0,
    squared: bool = False,
    positive_weights: Sequence[float] = POSITIVE_WEIGHTS,
    negative_weights: Sequence[float] = NEGATIVE_WEIGHTS,
) -> tuple[Tensor, dict[str, Tensor]]:
    """CoSegNet objective (cosegnet.txt, eq. 1) over a batch of P image pairs (see the module docstring).

    Args:
        mask_logits_a, mask_logits_b: (P, 1, H, W) or (P, H, W) pre-sigmoid mask logits of the two images.
        masks_a, masks_b: (P, H, W) bool or {0, 1} ground-truth common-object masks (ignored, but still
            validated, for negative pairs).
        emb_anchor, emb_positive, emb_negative: (P, D) metric-network outputs of the triplet of each pair.
        decision_logits: (P,) or (P, 1) pre-sigmoid decision logits.
        decision_labels: (P,) bool or {0, 1}: 1 = positive pair (common object), 0 = negative pair.
        margin: triplet margin alpha > 0 (paper: 1).
        squared: False = plain Euclidean distance as written in eq. 3; True = squared (Schroff et al.).
        positive_weights, negative_weights: (w1, w2, w3) for positive / negative pairs.

    Returns:
        ``(total, parts)``: total is the mean over pairs of the label-weighted per-pair loss; ``parts`` holds
        detached logging values ``l1`` (mean over positive pairs, 0 if none), ``l2`` and ``l3`` (means over
        all pairs) and ``per_pair`` (P,).
    """
    margin = check_positive(margin, "margin")
    w_pos = _check_weights(positive_weights, "positive_weights")
    w_neg = _check_weights(negative_weights, "negative_weights")
    labels = as_binary_masks(check_tensor(decision_labels, "decision_labels", (1, 2)).reshape(-1),
                             "decision_labels", ndim=1)
    p = labels.shape[0]
    if p == 0:
        raise ValueError("decision_labels is empty: the batch needs at least one pair")
    la = _mask_logits(mask_logits_a, "mask_logits_a", p)
    lb = _mask_logits(mask_logits_b, "mask_logits_b", p)
    if la.shape != lb.shape:
        raise ValueError(f"mask_logits_a and mask_logits_b must have the same shape, got {tuple(la.shape)} and "
                         f"{tuple(lb.shape)}")
    ma = as_binary_masks(masks_a, "masks_a")
    mb = as_binary_masks(masks_b, "masks_b")
    for name, m in (("masks_a", ma), ("masks_b", mb)):
        if m.shape != la.shape:
            raise ValueError(f"{name} must have shape {tuple(la.shape)} to match the mask logits, got "
                             f"{tuple(m.shape)}")
    embs = []
    for name, e in (("emb_anchor", emb_anchor), ("emb_positive", emb_positive), ("emb_negative", emb_negative)):
        e = check_tensor(e, name, 2, floating=True)
        if e.shape[0] != p or (embs and e.shape != embs[0].shape):
            raise ValueError(f"{name} must have shape (P, D) with P = {p} and the same D for all three, "
                             f"got {tuple(e.shape)}")
        embs.append(e)
    dec = check_tensor(decision_logits, "decision_logits", (1, 2), floating=True).reshape(-1)
    if dec.shape[0] != p:
        raise ValueError(f"decision_logits must have {p} entries (one per pair), got {tuple(decision_logits.shape)}")
    same_device(la, lb, ma, mb, *embs, dec, labels,
                names=("mask_logits_a", "mask_logits_b", "masks_a", "masks_b", "emb_anchor", "emb_positive",
                       "emb_negative", "decision_logits", "decision_labels"))

    # L1 (eq. 2): BCE averaged over the pixels of each image, then over the two images of the pair
    bce_a = F.binary_cross_entropy_with_logits(la, ma.to(la.dtype), reduction="none").flatten(1).mean(1)
    bce_b = F.binary_cross_entropy_with_logits(lb, mb.to(lb.dtype), reduction="none").flatten(1).mean(1)
    l1 = 0.5 * (bce_a + bce_b)
    # L2 (eq. 3): triplet loss of the pair's triplet
    a, pos, neg = embs
    if squared:
        d_ap, d_an = (a - pos).pow(2).sum(1), (a - neg).pow(2).sum(1)
    else:
        d_ap, d_an = torch.linalg.vector_norm(a - pos, dim=1), torch.linalg.vector_norm(a - neg, dim=1)
    l2 = F.relu(d_ap - d_an + margin)
    # L3 (eq. 4): decision BCE
    l3 = F.binary_cross_entropy_with_logits(dec, labels.to(dec.dtype), reduction="none")

    def weight(i: int) -> Tensor:
        return torch.where(labels, w_pos[i], w_neg[i]).to(l2.dtype)

    per_pair = weight(0) * l1 + weight(1) * l2 + weight(2) * l3
    total = per_pair.mean()
    n_pos = labels.sum()
    parts = {
        "l1": (torch.where(labels, l1, 0.0).sum() / n_pos.clamp_min(1)).detach(),
        "l2": l2.mean().detach(),
        "l3": l3.mean().detach(),
        "per_pair": per_pair.detach(),
    }
    return total, parts


def cosegnet_triplet_loss(
    out_positive: Mapping[str, Tensor],
    out_negative: Mapping[str, Tensor],
    masks_anchor: Tensor,
    masks_positive: Tensor,
    **kwargs,
) -> tuple[Tensor, dict[str, Tensor]]:
    """CoSegNet objective for T triplets (anchor, positive, negative), from two model forward passes.

    Args:
        out_positive: ``CoSegNet`` output dict for the T positive pairs (anchor, positive): keys ``logits_a``,
            ``logits_b`` (T, 1, H, W), ``embedding_a``, ``embedding_b`` (T, D), ``decision_logit`` (T,).
        out_negative: the same for the T negative pairs (anchor, negative).
        masks_anchor, masks_positive: (T, H, W) common-object masks of the positive pairs. Negative pairs
            have no common object: their targets are all-False (and unused, w1 = 0).
        **kwargs: passed to :func:`cosegnet_loss` (margin, squared, weights).

    Rows 0..T-1 are the positive pairs, T..2T-1 the negative pairs. Each row's anchor embedding is the one
    computed in that row's own forward pass; the positive (negative) embedding is ``embedding_b`` of the
    positive (negative) pass.
    """
    keys = ("logits_a", "logits_b", "embedding_a", "embedding_b", "decision_logit")
    for name, out in (("out_positive", out_positive), ("out_negative", out_negative)):
        missing = [k for k in keys if k not in out or out[k] is None]
        if missing:
            raise ValueError(f"{name} is missing {missing} (expected a CoSegNet output dict)")
    ma = as_binary_masks(masks_anchor, "masks_anchor")
    mp = as_binary_masks(masks_positive, "masks_positive")
    null = torch.zeros_like(ma)
    t = ma.shape[0]
    labels = torch.cat([torch.ones(t, dtype=torch.bool, device=ma.device),
                        torch.zeros(out_negative["decision_logit"].reshape(-1).shape[0], dtype=torch.bool,
                                    device=ma.device)])
    positive = out_positive["embedding_b"]
    negative = out_negative["embedding_b"]
    if positive.shape != negative.shape:
        raise ValueError(f"out_positive and out_negative must hold the same number of pairs, got embeddings "
                         f"{tuple(positive.shape)} and {tuple(negative.shape)}")
    return cosegnet_loss(
        torch.cat([out_positive["logits_a"], out_negative["logits_a"]]),
        torch.cat([out_positive["logits_b"], out_negative["logits_b"]]),
        torch.cat([ma, null]),
        torch.cat([mp, null]),
        torch.cat([out_positive["embedding_a"], out_negative["embedding_a"]]),
        torch.cat([positive, positive]),
        torch.cat([negative, negative]),
        torch.cat([out_positive["decision_logit"].reshape(-1), out_negative["decision_logit"].reshape(-1)]),
        labels,
        **kwargs,
    )


def select_semihard_negatives(d_ap: Tensor, d_an_pool: Tensor, margin: float) -> Tensor:
    """FaceNet's semi-hard negative of each triplet (Schroff et al. 2015, Sec. 3.2), among a pool of candidates.

    Args:
        d_ap: (T,) anchor-positive distance of each triplet.
        d_an_pool: (T, P) distance from the anchor to each of the P candidate negatives.
        margin: the triplet margin alpha > 0 (the one the loss uses).

    Returns:
        (T,) int64 indices into the pool.

    A candidate is semi-hard when it is farther from the anchor than the positive but within the margin,
    ``d_ap < d_an < d_ap + margin``: its triplet loss is positive but it does not violate the anchor-positive
    order, which FaceNet found to avoid the collapse that the hardest negatives cause early in training. Among
    several semi-hard candidates the closest to the anchor is kept (the largest loss among them, so the most
    informative one; it is also what TensorFlow's ``triplet_semihard_loss`` picks). When no candidate is
    semi-hard, the hardest one (the closest to the anchor) is kept, as issue #13 asks; TensorFlow keeps the
    farthest instead. Ties go to the lowest index, so candidate 0 (the random negative) wins a tie.
    """
    margin = check_positive(margin, "margin")
    d_ap = check_tensor(d_ap, "d_ap", 1, floating=True)
    d_an = check_tensor(d_an_pool, "d_an_pool", 2, floating=True)
    if d_an.shape[0] != d_ap.shape[0] or d_an.shape[1] < 1:
        raise ValueError(f"d_an_pool must have shape (T, P) with T = {d_ap.shape[0]} and P >= 1, "
                         f"got {tuple(d_an.shape)}")
    same_device(d_ap, d_an, names=("d_ap", "d_an_pool"))
    ap = d_ap[:, None]
    semihard = (d_an > ap) & (d_an < ap + margin)
    closest_semihard = torch.where(semihard, d_an, torch.full_like(d_an, float("inf"))).argmin(1)
    hardest = d_an.argmin(1)
    return torch.where(semihard.any(1), closest_semihard, hardest)


class CoSegNetLoss(nn.Module):
    """Module form of :func:`cosegnet_loss`; ``forward(...)`` takes the same positional tensors and returns
    ``(total, parts)``."""

    def __init__(
        self,
        margin: float = 1.0,
        squared: bool = False,
        positive_weights: Sequence[float] = POSITIVE_WEIGHTS,
        negative_weights: Sequence[float] = NEGATIVE_WEIGHTS,
    ) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin")
        self.squared = squared
        self.positive_weights = _check_weights(positive_weights, "positive_weights")
        self.negative_weights = _check_weights(negative_weights, "negative_weights")

    def forward(self, *tensors: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return cosegnet_loss(*tensors, margin=self.margin, squared=self.squared,
                             positive_weights=self.positive_weights, negative_weights=self.negative_weights)
