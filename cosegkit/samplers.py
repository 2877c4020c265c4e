"""Pixel samplers for pixel-level metric losses.

The main entry point is :func:`sample_fg_bg_pixels`, the triple-sampling strategy of the IS-Triplet paper
(is_triplet_coseg.txt, Sec. 3.2, Fig. 2): per image, two independent sets of foreground pixels (F1, F2) and two
independent sets of background pixels (B1, B2), each drawn uniformly *without replacement* within the set.

The sampler is fully vectorised over the batch (no Python loop over images or pixels). It draws ranks with
O(K) random numbers per set instead of O(H*W) random sort keys, which matters on the CPU where random-number
generation dominates (see ``benchmarks/README.md``):

* sparse sets (population n > 2K): K uniform integers in [0, n) per row, positions that repeat an earlier
  position's value are redrawn until all K values are distinct (few rounds, each round only redraws duplicates);
* dense sets (n <= 2K): random float64 keys over [0, n) and the K smallest.

Both give *exactly* a uniformly random ordered K-tuple of distinct ranks: the procedure treats all n values
symmetrically (it only compares values for equality), so every ordered tuple of distinct values is equally
likely. Ranks are then mapped to flat pixel indices through the sorted list of foreground (or background) pixel
positions of the batch (``torch.nonzero``). Scratch memory is O(B * H * W) integers (the position lists and the
duplicate table), independent of the embedding dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["as_binary_masks", "gather_pixels", "sample_fg_bg_pixels", "sample_ranks_without_replacement"]

_INT62 = 2**62  # randint upper bound: modulo bias n / 2**62 is negligible for any image size


def as_binary_masks(masks: Tensor, name: str = "masks", ndim: int = 3) -> Tensor:
    """Validate a binary mask tensor and return it as ``bool``.

    Accepts ``bool`` tensors or numeric tensors whose values are all 0 or 1. Raises ``ValueError`` naming
    ``name`` for a non-tensor, a wrong number of dimensions, or any other value (never silently thresholds).
    """
    if not isinstance(masks, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(masks).__name__}")
    if masks.ndim != ndim:
        shape = "(B, H, W)" if ndim == 3 else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(masks.shape)}")
    if masks.dtype == torch.bool:
        return masks
    if masks.is_complex():
        raise ValueError(f"{name} must be bool or real-valued with values in {{0, 1}}, got {masks.dtype}")
    if masks.numel() and not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError(f"{name} must be binary (bool, or values in {{0, 1}}); found other values")
    return masks != 0


def _check_k(k: object, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{name} must be an int >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    return k


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but the tensors are on {device}")


def sample_ranks_without_replacement(
    population: Tensor, k: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Per row r, draw ``k[r]`` distinct integers uniformly from ``[0, population[r])`` in random order.

    Args:
        population: (R,) integer tensor of population sizes n_r >= 0.
        k: (R,) integer tensor with 0 <= k_r <= n_r.
        generator: optional ``torch.Generator`` (same device) for reproducible draws.

    Returns:
        (R, max(k)) ``long`` tensor; entries ``[r, j]`` with ``j >= k[r]`` are padding and hold 0.
    """
    population = population.long()
    k = k.long()
    if population.shape != k.shape or population.ndim != 1:
        raise ValueError(f"population and k must be 1-D of the same shape, got {tuple(population.shape)} "
                         f"and {tuple(k.shape)}")
    if bool((k < 0).any()) or bool((k > population).any()):
        raise ValueError("k must satisfy 0 <= k <= population for every row")
    device = population.device
    n_rows = population.numel()
    kmax = int(k.max()) if n_rows else 0
    out = torch.zeros(n_rows, kmax, dtype=torch.long, device=device)
    if kmax == 0:
        return out
    cols = torch.arange(kmax, device=device)
    active = k > 0
    dense = active & (population <= 2 * k)
    sparse = active & ~dense

    if bool(dense.any()):
        rows = dense.nonzero().squeeze(1)
        n_d = population[rows]
        width = int(n_d.max())
        # float64 keys: ties (which would bias the order) are practically impossible
        keys = torch.rand(rows.numel(), width, generator=generator, device=device, dtype=torch.float64)
        keys.masked_fill_(torch.arange(width, device=device) >= n_d[:, None], 2.0)
        take = min(kmax, width)
        out[rows, :take] = keys.topk(take, dim=1, largest=False).indices

    if bool(sparse.any()):
        rows = sparse.nonzero().squeeze(1)
        n_s = population[rows]
        offsets = torch.cumsum(n_s, 0) - n_s
        # owner[offsets[row] + value] = priority of the position holding `value` in `row`; earlier rounds, then
        # earlier positions, win; a position that loses its value is redrawn in the next round
        owner = torch.full((int(n_s.sum()),), torch.iinfo(torch.int64).max, dtype=torch.long, device=device)
        r_idx, c_idx = (cols < k[rows, None]).nonzero(as_tuple=True)
        vals = torch.zeros(rows.numel(), kmax, dtype=torch.long, device=device)
        round_ = 0
        while r_idx.numel():
            draws = torch.randint(0, _INT62, (r_idx.numel(),), generator=generator, device=device) % n_s[r_idx]
            vals[r_idx, c_idx] = draws
            slot = offsets[r_idx] + draws
            prio = round_ * kmax + c_idx
            owner.scatter_reduce_(0, slot, prio, "amin")
            lost = owner[slot] != prio
            r_idx, c_idx = r_idx[lost], c_idx[lost]
            round_ += 1
        out[rows] = vals
    return torch.where(cols < k[:, None], out, 0)


def sample_fg_bg_pixels(masks: Tensor, k: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """IS-Triplet pixel sampling (is_triplet_coseg.txt, Sec. 3.2): F1, F2 from the foreground, B1, B2 from the
    background of every image.

    Per image b the four sets all have length ``k_b = min(k, n_fg[b], n_bg[b])``. The paper says "if the number
    of foreground points or background points ... is smaller than K, K takes the smaller value"; we read this
    as one K per image, so that row i of F1, F2, B1 and B2 form the 2K triplets of eqs. 2-3 (eq. 2 pairs F1
    with F2 and B1, eq. 3 pairs B1 with B2 and F2, hence all four sets must have equal length). An image
    without foreground or without background gets ``k_b = 0``.

    Every set is drawn uniformly without replacement; F1 and F2 (and B1 and B2) are drawn independently, so
    they may share pixels, as the paper allows ("some common pixels are allowed in F1 and F2").

    Args:
        masks: (B, H, W) bool, or numeric with values in {0, 1}; True/1 = foreground.
        k: maximum number of pixels per set (paper: K = 5000), an int >= 1.
        generator: optional ``torch.Generator`` on the masks' device; makes the draws deterministic.

    Returns:
        dict with
        ``f1, f2, b1, b2``: (B, kmax) ``long`` flat pixel indices into ``H * W`` (row-major), where
        ``kmax = max_b k_b``; entries ``[b, j]`` with ``j >= counts[b]`` are padding (index 0) and must be ignored;
        ``counts``: (B,) ``long``, k_b;
        ``valid``: (B, kmax) ``bool``, ``j < counts[b]``;
        ``n_fg``, ``n_bg``: (B,) ``long`` foreground / background pixel counts.
    """
    masks = as_binary_masks(masks, "masks")
    k = _check_k(k)
    _check_generator(generator, masks.device)
    b, h, w = masks.shape
    n_pix = h * w
    flat = masks.reshape(b, n_pix)
    n_fg = flat.sum(1)
    n_bg = n_pix - n_fg
    counts = torch.minimum(torch.minimum(n_fg, n_bg), torch.full_like(n_fg, k))

    # rows: F1 (images 0..B-1), F2, B1, B2
    population = torch.cat([n_fg, n_fg, n_bg, n_bg])
    ranks = sample_ranks_without_replacement(population, counts.repeat(4), generator)
    kmax = ranks.shape[1]
    valid = torch.arange(kmax, device=masks.device) < counts[:, None]
    out: dict[str, Tensor] = {}
    if kmax > 0:
        ranks = ranks.view(4, b, kmax)
        for name, cls_mask, n_cls, rank in (
            ("f1", flat, n_fg, ranks[0]),
            ("f2", flat, n_fg, ranks[1]),
            ("b1", ~flat, n_bg, ranks[2]),
            ("b2", ~flat, n_bg, ranks[3]),
        ):
            if name in ("f1", "b1"):  # positions of all fg (bg) pixels of the batch, grouped by image
                positions = cls_mask.reshape(-1).nonzero().squeeze(1)
                offsets = torch.cumsum(n_cls, 0) - n_cls
            # padding rows may belong to an image without this class: point them at entry 0
            pos = positions[torch.where(valid, offsets[:, None] + rank, 0)]
            pix = pos - torch.arange(b, device=masks.device)[:, None] * n_pix
            out[name] = torch.where(valid, pix, 0)
    else:
        for name in ("f1", "f2", "b1", "b2"):
            out[name] = torch.zeros(b, 0, dtype=torch.long, device=masks.device)
    out.update(counts=counts, valid=valid, n_fg=n_fg, n_bg=n_bg)
    return out


def gather_pixels(embeddings: Tensor | Sequence[Tensor], index: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Gather per-pixel embedding vectors: (B, D, H, W) and (B, M) flat pixel indices -> (B, D, M).

    ``embeddings`` may also be a sequence of (B_i, D, H, W) tensors, read as their concatenation along the batch
    axis (sum B_i = B) without building it: a pair model's two embedding maps go in as they are. ``dtype`` casts
    the gathered vectors (None: keep the input's dtype).

    A contiguous input of the output dtype takes one ``torch.gather`` along the pixel axis; memory O(B * D * M),
    no copy of the map. Any other input (channels-last, or bf16 under autocast that the loss wants in float32)
    is read through its (H * W, D) rows: only the distinct gathered pixels are cast, and the gradient of a
    pixel drawn more than once (IS-Triplet's F1 and F2 may share pixels) is summed in ``dtype`` before the cast
    back. The values are bit for bit those of ``gather_pixels(torch.cat(embeddings).to(dtype), index)``, at a
    fraction of its memory traffic (``benchmarks/bench_pixel_gather.py``): that path copies and casts the whole
    (B, D, H, W) map and scatters its gradient back into a full-size buffer. So are the gradients wherever no pixel
    is gathered more than twice with a non-zero gradient, as with the sets of :func:`sample_fg_bg_pixels` (each
    drawn without replacement); otherwise they agree up to the order of a float sum.
    """
    parts = [embeddings] if isinstance(embeddings, Tensor) else list(embeddings)
    if not parts:
        raise ValueError("gather_pixels() needs at least one embedding tensor")
    n_images = sum(int(part.shape[0]) for part in parts)
    if index.ndim != 2 or index.shape[0] != n_images:
        raise ValueError(f"index has {index.shape[0] if index.ndim else 0} rows but the embeddings hold {n_images} "
                         f"images; it must be (B, M) flat pixel indices")
    m = index.shape[1]
    out, start = [], 0
    for part in parts:
        b, d, h, w = part.shape
        idx = index[start:start + b]
        start += b
        want = part.dtype if dtype is None else dtype
        if part.dtype == want and part.is_contiguous():
            out.append(part.reshape(b, d, -1).gather(2, idx[:, None, :].expand(b, d, m)))
            continue
        rows = part.permute(0, 2, 3, 1).reshape(b * h * w, d)  # a view for channels-last input
        flat = idx + torch.arange(b, device=idx.device)[:, None] * (h * w)
        uniq, inverse = torch.unique(flat, return_inverse=True)
        vectors = rows.index_select(0, uniq).to(want)  # (U, D), each distinct pixel cast once
        out.append(vectors[inverse].permute(0, 2, 1).contiguous())  # (b, D, M), the layout of the gather path
    return out[0] if len(out) == 1 else torch.cat(out)
