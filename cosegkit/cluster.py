"""Mean-shift clustering of pixel embeddings in torch (discriminative_loss.txt, Sec. 2: "we apply a fast variant
of the mean-shift algorithm ... threshold with bandwidth b = delta_v").

:func:`mean_shift` follows ``sklearn.cluster.MeanShift`` (flat kernel, ``bin_seeding``, ``cluster_all=True``)
step by step, but updates all seeds together as tensors (on the points' device, e.g. CUDA):

1. Seeds: points are binned on a grid of spacing ``bandwidth`` (``round(x / bandwidth)``); every bin with at
   least ``min_bin_freq`` points gives a seed at its grid position (sklearn's ``get_bin_seeds``). If every point
   has its own bin, the points themselves are the seeds (as sklearn does, without its warning).
2. Each seed moves to the mean of the points within distance ``<= bandwidth`` until it moves by at most
   ``tol * bandwidth`` (sklearn: 1e-3 * bandwidth) or after ``max_iter`` further updates. A seed whose ball is
   empty stops and is dropped. All active seeds are updated in one batched step; the (seeds x points) distance
   computation is done in blocks of at most ``chunk_size`` entries to bound memory.
3. Converged modes are sorted by intensity (points in their last ball), descending; a mode within
   ``bandwidth`` of a kept, stronger mode is suppressed (sklearn's duplicate removal). Ties in intensity keep
   seed order (sklearn breaks them by the centre coordinates), which only matters for exactly equal counts.
4. Every point gets the label of its nearest kept mode; label ids follow the sorted order (0 = strongest).

Distances use ``|a|^2 + |b|^2 - 2 a.b`` (matrix products), so ball membership can differ from sklearn's exact
distances for points within float rounding of the ball's border.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["bin_seeds", "mean_shift", "cluster_pixel_embedding"]


def _check_number(value: object, name: str, minimum: float, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be {'an int' if integer else 'a finite number'} >= {minimum}, got {value!r}")


def bin_seeds(points: Tensor, bin_size: float, min_bin_freq: int = 1) -> Tensor:
    """Grid-bin seeds like ``sklearn.cluster.get_bin_seeds``: (S, D) grid positions of bins with at least
    ``min_bin_freq`` points; the points themselves if every point is alone in its bin."""
    binned = torch.round(points / bin_size)
    bins, freq = torch.unique(binned, dim=0, return_counts=True)
    kept = bins[freq >= min_bin_freq]
    if kept.shape[0] == points.shape[0]:
        return points.clone()
    return kept * bin_size


def _sq_dist(a: Tensor, a_sq: Tensor, b: Tensor, b_sq: Tensor) -> Tensor:
    return (a_sq[:, None] + b_sq[None, :]).addmm_(a, b.T, alpha=-2.0)


class _SortedPoints:
    """Points sorted by their projection on the first principal axis, for exact 1-D pruning of ball queries:
    ``|<x - m, u>| <= ||x - m||`` for a unit vector u, so a ball of radius r around m only contains points whose
    projection is within r of m's projection (a contiguous range of the sorted points)."""

    def __init__(self, points: Tensor) -> None:
        centred = points - points.mean(0)
        cov = centred.T @ centred
        self.axis = torch.linalg.eigh(cov.double())[1][:, -1].to(points.dtype)
        proj = points @ self.axis
        self.proj, order = proj.sort()
        pts = points[order]
        ones = torch.ones_like(pts[:, :1])
        # [x, 1]: one matrix product gives both the sums and the counts of the points in a ball
        self.points_aug_t = torch.cat([pts, ones], dim=1).T.contiguous()  # (D + 1, N): faster BLAS layout
        # [x, |x|^2, 1] . [-2m, 1, |m|^2] = |x - m|^2: one matrix product gives all squared distances
        self.points_ext = torch.cat([pts, (pts * pts).sum(1, keepdim=True), ones], dim=1)
        self.slack = 1e-5 * (float(proj.abs().max()) + 1.0)  # float rounding of the projections


def _ball_means(means: Tensor, sp: _SortedPoints, radius: float, chunk_size: int) -> tuple[Tensor, Tensor]:
    """Sum and count of the points within ``radius`` of each mean, blockwise over seeds and points."""
    s, d = means.shape
    sums = torch.zeros(s, d, dtype=means.dtype, device=means.device)
    counts = torch.zeros(s, dtype=torch.long, device=means.device)
    proj = means @ sp.axis
    order = proj.argsort()
    radius_sq = radius * radius
    rows = min(128, chunk_size)
    for i in range(0, s, rows):
        blk = order[i:i + rows]
        m = means[blk]
        m_ext = torch.cat([-2.0 * m, torch.ones_like(m[:, :1]), (m * m).sum(1, keepdim=True)], dim=1)
        p = proj[blk]
        bounds = torch.stack([p.min() - radius - sp.slack, p.max() + radius + sp.slack])
        lo, hi = torch.searchsorted(sp.proj, bounds).tolist()
        cols = max(1, chunk_size // blk.numel())
        acc = torch.zeros(blk.numel(), d + 1, dtype=means.dtype, device=means.device)
        cnt = torch.zeros(blk.numel(), dtype=torch.long, device=means.device)
        for j in range(lo, hi, cols):
            k = min(j + cols, hi)
            w = (m_ext @ sp.points_ext[j:k].T).le_(radius_sq)  # 1.0 inside the ball, else 0.0
            part = (sp.points_aug_t[:, j:k] @ w.T).T
            acc[:, :d] += part[:, :d]
            cnt += part[:, d].round().long()  # exact: at most chunk_size < 2**24 ones per product
        sums[blk] = acc[:, :d]
        counts[blk] = cnt
    return sums, counts


def mean_shift(
    points: Tensor,
    bandwidth: float = 0.5,
    bin_seeding: bool = True,
    min_bin_freq: int = 1,
    max_iter: int = 300,
    tol: float = 1e-3,
    *,
    return_centers: bool = False,
    chunk_size: int = 2**22,
    seeds: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Flat-kernel mean-shift of (N, D) points (see module docstring); agrees with
    ``sklearn.cluster.MeanShift(bandwidth=bandwidth, bin_seeding=True)``.

    Args:
        points: (N, D) floating-point tensor (any device).
        bandwidth: kernel radius (default 0.5 = delta_v of the discriminative loss).
        bin_seeding: seeds from grid bins (True) or every point (False, slow: N seeds).
        min_bin_freq: minimum points per bin for a seed.
        max_iter: maximum number of mean updates after the first (sklearn semantics).
        tol: convergence threshold relative to the bandwidth (sklearn uses 1e-3).
        return_centers: also return the (K, D) cluster centres.
        chunk_size: maximum number of entries of one (seeds x points) distance block.
        seeds: (S, D) explicit starting points (sklearn's ``MeanShift(seeds=...)``); overrides ``bin_seeding``.
            In high dimensions a grid bin's centre can lie farther than the bandwidth from all of its points
            (up to ``sqrt(D) * bandwidth / 2``), so bin seeding may find nothing; seeding from a random subset
            of the points always starts inside the data.

    Returns:
        labels (N,) ``long`` in [0, K), or ``(labels, centers)``.
    """
    if not isinstance(points, Tensor):
        raise ValueError(f"points must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"points must have shape (N, D) with N >= 1, got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"points must be a floating-point tensor, got {points.dtype}")
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points must be finite (found NaN or inf)")
    _check_number(bandwidth, "bandwidth", 0.0)
    if bandwidth == 0:
        raise ValueError("bandwidth must be > 0, got 0")
    _check_number(min_bin_freq, "min_bin_freq", 1, integer=True)
    _check_number(max_iter, "max_iter", 0, integer=True)
    _check_number(tol, "tol", 0.0)
    _check_number(chunk_size, "chunk_size", 1, integer=True)
    if chunk_size > 2**24:
        raise ValueError(f"chunk_size must be <= 2**24 (exact float32 counts), got {chunk_size}")

    points = points.detach()
    if seeds is not None:
        if not isinstance(seeds, Tensor) or seeds.ndim != 2 or seeds.shape[0] == 0 or seeds.shape[1] != points.shape[1]:
            raise ValueError(f"seeds must be a (S, {points.shape[1]}) tensor with S >= 1, got "
                             f"{tuple(seeds.shape) if isinstance(seeds, Tensor) else type(seeds).__name__}")
        if not bool(torch.isfinite(seeds).all()):
            raise ValueError("seeds must be finite (found NaN or inf)")
        seeds = seeds.detach().to(points.device, points.dtype).clone()
    elif bin_seeding:
        seeds = bin_seeds(points, bandwidth, min_bin_freq)
    else:
        seeds = points.clone()
    if seeds.shape[0] == 0:
        raise ValueError(f"no bin has min_bin_freq={min_bin_freq} points; lower min_bin_freq or raise bandwidth")
    sp = _SortedPoints(points)
    radius_sq = float(bandwidth) ** 2
    stop = tol * bandwidth

    means = seeds
    intensity = torch.zeros(seeds.shape[0], dtype=torch.long, device=points.device)
    active = torch.arange(seeds.shape[0], device=points.device)
    for it in range(max_iter + 1):
        old = means[active]
        sums, counts = _ball_means(old, sp, float(bandwidth), chunk_size)
        empty = counts == 0
        new = torch.where(empty[:, None], old, sums / counts.clamp_min(1)[:, None].to(sums.dtype))
        means[active] = new
        intensity[active] = counts
        done = empty | (torch.linalg.vector_norm(new - old, dim=1) <= stop)
        if it == max_iter:
            break
        active = active[~done]
        if active.numel() == 0:
            break

    found = intensity > 0
    if not bool(found.any()):
        raise ValueError(f"no point was within bandwidth={bandwidth} of any seed; increase the bandwidth")
    order = torch.argsort(intensity[found], descending=True, stable=True)
    centers = means[found][order]

    # greedy duplicate removal: keep a centre unless a stronger kept centre is within the bandwidth
    suppressed = np.zeros(centers.shape[0], dtype=bool)
    kept: list[int] = []
    centers_sq = (centers * centers).sum(1)
    for i in range(centers.shape[0]):
        if suppressed[i]:
            continue
        kept.append(i)
        near = _sq_dist(centers[i:i + 1], centers_sq[i:i + 1], centers, centers_sq)[0] <= radius_sq
        suppressed |= near.cpu().numpy()
    centers = centers[torch.tensor(kept, device=centers.device)]

    centers_sq = (centers * centers).sum(1)
    points_sq = (points * points).sum(1)
    labels = torch.empty(points.shape[0], dtype=torch.long, device=points.device)
    step = max(1, chunk_size // centers.shape[0])
    for j in range(0, points.shape[0], step):
        labels[j:j + step] = _sq_dist(points[j:j + step], points_sq[j:j + step], centers, centers_sq).argmin(1)
    return (labels, centers) if return_centers else labels


def cluster_pixel_embedding(embedding: np.ndarray, bandwidth: float, generator: torch.Generator,
                            n_seeds: int = 256) -> np.ndarray:
    """Mean-shift clusters of an (H, W, D) pixel embedding as an (H, W) label map (0 = strongest mode).

    Seeds are ``n_seeds`` random pixels drawn with ``generator`` (sklearn's ``seeds=``): grid-bin seeding can
    find no seed at all in 64 dimensions, where a bin centre may lie farther than the bandwidth from every point
    in its bin. The embedding is not normalised.
    """
    h, w, d = embedding.shape
    pixels = torch.from_numpy(embedding.reshape(-1, d))
    start = pixels[torch.randperm(len(pixels), generator=generator)[:n_seeds]]
    return mean_shift(pixels, bandwidth=bandwidth, seeds=start).numpy().reshape(h, w)
