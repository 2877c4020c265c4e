"""Deterministic train/val/test splits that keep byte-identical images on one side.

CoSegNet §4.2 splits PASCAL-VOC "randomly in the ratio of 3:1:1" and averages over 100 such splits; it does not
say how. Choices made here:

* Stratified per group, so every group gets (about) 3:1:1 of its images.
* Images with the same bytes (same sha256 ``id``; in the 824-image VOC copy 78 images appear under two classes
  and 6 under three, 174 files in all) form one *unit* that goes entirely to one split; a unit is stratified
  under the alphabetically first of its groups. Otherwise a test image could have been seen, under another
  class's mask, in training.
* Per group, units are shuffled with a generator seeded by ``(seed, group index)`` and cut by the largest-
  remainder rule on unit counts; ``seed`` 0..99 gives the 100 repeats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["split_indices", "SPLITS"]

SPLITS = ("train", "val", "test")


def _check_indices(dataset, indices: Sequence[int] | None) -> list[int]:
    n = len(dataset)
    if indices is None:
        return list(range(n))
    out = [int(i) for i in indices]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"indices out of range for a dataset of {n} items: {bad[:5]}")
    return out


def _largest_remainder(n: int, ratios: np.ndarray) -> list[int]:
    exact = n * ratios / ratios.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    for k in order[: n - counts.sum()]:
        counts[k] += 1
    return counts.tolist()


def split_indices(dataset, ratios: Sequence[float] = (3, 1, 1), seed: int = 0,
                  indices: Sequence[int] | None = None) -> dict[str, list[int]]:
    """Split ``dataset`` (needs ``len``, ``group_of(i)``, ``id_of(i)``) into dict(train, val, test) of sorted
    index lists, deterministically for ``seed``. ``indices`` restricts the split to a subset of the dataset.
    """
    ratios_arr = np.asarray(ratios, dtype=float)
    if ratios_arr.shape != (3,) or np.any(ratios_arr < 0) or ratios_arr.sum() <= 0:
        raise ValueError(f"ratios must be three non-negative numbers with a positive sum, got {ratios!r}")
    idx = _check_indices(dataset, indices)
    members: dict[str, list[int]] = defaultdict(list)
    groups_of_id: dict[str, set[str]] = defaultdict(set)
    for i in idx:
        h = dataset.id_of(i)
        members[h].append(i)
        groups_of_id[h].add(dataset.group_of(i))
    units_by_group: dict[str, list[str]] = defaultdict(list)
    for h in members:  # insertion order follows idx, so this is deterministic
        units_by_group[min(groups_of_id[h])].append(h)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for k, group in enumerate(sorted(units_by_group)):
        units = sorted(units_by_group[group])
        rng = np.random.default_rng([seed, k])
        order = rng.permutation(len(units))
        counts = _largest_remainder(len(units), ratios_arr)
        start = 0
        for split, c in zip(SPLITS, counts, strict=True):
            for u in order[start:start + c]:
                out[split] += members[units[u]]
            start += c
    return {s: sorted(v) for s, v in out.items()}
