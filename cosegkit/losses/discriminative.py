"""Discriminative loss (De Brabandere et al. 2017; discriminative_loss.txt, Sec. 2).

For the C ground-truth clusters of an image, with N_c pixels x_i in cluster c and mean embedding mu_c:

    L_var  = 1/C                 sum_c 1/N_c sum_i [ ||mu_c - x_i|| - delta_v ]_+^2
    L_dist = 1/(C (C - 1))       sum_{cA != cB}    [ 2 delta_d - ||mu_cA - mu_cB|| ]_+^2
    L_reg  = 1/C                 sum_c ||mu_c||
    L      = alpha L_var + beta L_dist + gamma L_reg

Choices where the paper leaves room:

* The loss is computed per image (clusters are the instance ids of that image) and averaged over the images of
  the batch that have at least one labelled pixel. An image whose pixels are all ignored has no clusters and
  contributes nothing (neither to the sum nor to the count); a batch without any labelled pixel returns a zero
  connected to the embeddings' graph.
* One cluster (C = 1): the ordered-pair sum of L_dist is empty, so L_dist = 0 (not 0/0).
* L_dist uses ordered pairs (each unordered pair twice), hence the 1/(C(C-1)) normalisation, exactly as written.
* The hinge of L_dist is 2 * delta_d (the text's "further apart than 2 delta_v" is a typo for 2 delta_d, see
  the equation and "all cluster centers are at least 2 delta_d apart").
* Negative label ids are ignored (e.g. -1 for "void"). Ids need not be contiguous.

Vectorised with ``scatter_add`` over a (B, D, C) table of cluster sums: no Python loop over images or clusters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cosegkit.losses._checks import check_positive, check_tensor, euclidean_norm, same_device, zero_like_graph

__all__ = ["DiscriminativeLoss", "discriminative_loss"]

_MAX_DENSE_IDS = 4096  # above this label value, ids are first compacted with torch.unique


def discriminative_loss(
    embeddings: Tensor,
    labels: Tensor,
    delta_v: float = 0.5,
    delta_d: float = 1.5,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
    return_parts: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Discriminative loss of pixel embeddings (discriminative_loss.txt, Sec. 2; see module docstring).

    Args:
        embeddings: (B, D, H, W) float pixel embeddings.
        labels: (B, H, W) integer (or bool) cluster / instance ids; negative ids are ignored.
        delta_v: variance hinge (pull) margin > 0; paper's default bandwidth for mean-shift too.
        delta_d: distance hinge: cluster centres are pushed until 2 * delta_d apart; > 0.
        alpha, beta, gamma: weights of L_var, L_dist, L_reg (>= 0).
        return_parts: also return the unweighted terms.

    Returns:
        The scalar total, or ``(total, parts)`` with ``parts = {"var", "dist", "reg"}`` (each averaged over
        the images with at least one cluster, like the total).
    """
    embeddings = check_tensor(embeddings, "embeddings", 4, floating=True)
    labels = check_tensor(labels, "labels", 3)
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be an integer (or bool) tensor of cluster ids, got {labels.dtype}")
    b, d, h, w = embeddings.shape
    if labels.shape != (b, h, w):
        raise ValueError(f"labels must have shape (B, H, W) = {(b, h, w)} to match embeddings, "
                         f"got {tuple(labels.shape)}")
    same_device(embeddings, labels, names=("embeddings", "labels"))
    delta_v = check_positive(delta_v, "delta_v")
    delta_d = check_positive(delta_d, "delta_d")
    alpha = check_positive(alpha, "alpha", allow_zero=True)
    beta = check_positive(beta, "beta", allow_zero=True)
    gamma = check_positive(gamma, "gamma", allow_zero=True)

    n = h * w
    lab = labels.reshape(b, n).long()
    valid = lab >= 0
    if not bool(valid.any()):
        zero = zero_like_graph(embeddings)
        return (zero, {"var": zero.detach(), "dist": zero.detach(), "reg": zero.detach()}) if return_parts else zero
    n_ids = int(lab.max()) + 1
    if n_ids > _MAX_DENSE_IDS:  # sparse, large ids: map to 0..U-1 first
        uniq = torch.unique(lab[valid])
        lab = torch.where(valid, torch.searchsorted(uniq, lab.clamp_min(0)), -1)
        n_ids = uniq.numel()
    ids = torch.where(valid, lab, n_ids)  # ignored pixels go to a trash column that is dropped below

    x = embeddings.reshape(b, d, n)
    idx = ids[:, None, :].expand(b, d, n)
    sums = x.new_zeros(b, d, n_ids + 1).scatter_add_(2, idx, x)
    counts = x.new_zeros(b, n_ids + 1).scatter_add_(1, ids, x.new_ones(()).expand(b, n))
    mu = sums / counts.clamp_min(1.0)[:, None, :]  # (B, D, ids + 1)

    # L_var: per-pixel hinge, summed per cluster with the same scatter, divided by N_c
    dist_to_mean = euclidean_norm(mu.gather(2, idx) - x, dim=1)  # (B, N)
    hinge_var = F.relu(dist_to_mean - delta_v).pow(2)
    per_cluster = x.new_zeros(b, n_ids + 1).scatter_add_(1, ids, hinge_var)[:, :n_ids]
    counts = counts[:, :n_ids]
    present = counts > 0  # (B, ids)
    keep = present.any(0)  # ids present somewhere in the batch
    if not bool(keep.all()):
        present, per_cluster, counts = present[:, keep], per_cluster[:, keep], counts[:, keep]
        centres = mu[:, :, :n_ids][:, :, keep].transpose(1, 2)
    else:
        centres = mu[:, :, :n_ids].transpose(1, 2)  # (B, C, D)
    n_clusters = present.sum(1).to(x.dtype)  # (B,)
    l_var = torch.where(present, per_cluster / counts.clamp_min(1.0), 0.0).sum(1) / n_clusters.clamp_min(1.0)

    # L_dist over ordered pairs of distinct clusters of the same image
    c = centres.shape[1]
    pair_dist = euclidean_norm(centres[:, :, None, :] - centres[:, None, :, :], dim=-1)  # (B, C, C)
    pairs = present[:, :, None] & present[:, None, :] & ~torch.eye(c, dtype=torch.bool, device=x.device)
    hinge_dist = torch.where(pairs, F.relu(2.0 * delta_d - pair_dist).pow(2), 0.0).sum((1, 2))
    l_dist = hinge_dist / (n_clusters * (n_clusters - 1.0)).clamp_min(1.0)  # C = 1 -> empty sum -> 0

    # L_reg
    l_reg = torch.where(present, euclidean_norm(centres, dim=-1), 0.0).sum(1) / n_clusters.clamp_min(1.0)

    n_images = (n_clusters > 0).sum()
    total = (alpha * l_var + beta * l_dist + gamma * l_reg).sum() / n_images
    if not return_parts:
        return total
    parts = {"var": l_var.sum().detach() / n_images, "dist": l_dist.sum().detach() / n_images,
             "reg": l_reg.sum().detach() / n_images}
    return total, parts


class DiscriminativeLoss(nn.Module):
    """Module form of :func:`discriminative_loss`; ``forward(embeddings, labels)`` returns the total."""

    def __init__(
        self, delta_v: float = 0.5, delta_d: float = 1.5, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.001
    ) -> None:
        super().__init__()
        self.delta_v = check_positive(delta_v, "delta_v")
        self.delta_d = check_positive(delta_d, "delta_d")
        self.alpha = check_positive(alpha, "alpha", allow_zero=True)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.gamma = check_positive(gamma, "gamma", allow_zero=True)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return discriminative_loss(embeddings, labels, self.delta_v, self.delta_d, self.alpha, self.beta, self.gamma)
