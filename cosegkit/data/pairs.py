"""Positive/negative pairs, CoSegNet training triplets and `RealPairs` over a loaded dataset.

CoSegNet §3.4 trains on triplets {(I_a, I_p), (I_a, I_n)}: a positive pair (anchor and positive share the class)
and a negative pair (anchor and negative do not). Choices where the paper is silent:

* A pair is *negative* only if the two images' byte-sets share no group: image bytes that appear under several
  groups (VOC has Bicycle/img_1012 == Person/img_1040) are labelled with all of them, so that image is never
  the negative partner of a Person image although its Bicycle copy is a different item. This also implies
  different groups and different bytes.
* A pair is *positive* when both images are in the same group and their bytes differ (an image is never paired
  with a copy of itself).
* Positive pairs are unordered (i < j). Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from cosegkit.data.splits import _check_indices

__all__ = ["positive_pairs", "spread_over_groups", "negative_pairs", "count_negative_pairs", "cosegnet_triplets",
           "RealPairs"]

# Above this many candidate indices, negative pairs are drawn by rejection instead of enumerated.
_ENUMERATE_LIMIT = 4096


def _labels(dataset, idx: list[int]) -> tuple[list[str], list[str], dict[str, frozenset[str]]]:
    groups = [dataset.group_of(i) for i in idx]
    ids = [dataset.id_of(i) for i in idx]
    by_id: dict[str, set[str]] = defaultdict(set)
    for g, h in zip(groups, ids, strict=True):
        by_id[h].add(g)
    return groups, ids, {h: frozenset(s) for h, s in by_id.items()}


def positive_pairs(dataset, indices: Sequence[int] | None = None, seed: int = 0,
                   max_pairs_per_group: int | None = None) -> list[tuple[int, int]]:
    """All same-group pairs (i < j, different bytes) among ``indices``, shuffled per group with ``seed``;
    ``max_pairs_per_group`` keeps the first k of each group's shuffled list. Groups come in sorted order.
    """
    if max_pairs_per_group is not None and max_pairs_per_group < 1:
        raise ValueError(f"max_pairs_per_group must be >= 1 or None, got {max_pairs_per_group}")
    idx = sorted(set(_check_indices(dataset, indices)))
    groups, ids, _ = _labels(dataset, idx)
    by_group: dict[str, list[int]] = defaultdict(list)
    for k, g in enumerate(groups):
        by_group[g].append(k)
    out: list[tuple[int, int]] = []
    for gi, g in enumerate(sorted(by_group)):
        cand = [(idx[a], idx[b]) for a, b in combinations(by_group[g], 2) if ids[a] != ids[b]]
        order = np.random.default_rng([seed, gi]).permutation(len(cand))
        if max_pairs_per_group is not None:
            order = order[:max_pairs_per_group]
        out += [cand[k] for k in order]
    return out


def spread_over_groups(pairs: Sequence[tuple[int, int]], groups: Sequence[str], n: int, seed: int
                       ) -> list[tuple[int, int]]:
    """``n`` of ``pairs`` spread as evenly as they can be over their ``groups`` (one label per pair), the way
    ``positive_pairs(max_pairs_per_group=k)`` spreads a test set: round r takes the r-th pair of every group that
    still has one (each group's pairs in the given order, already shuffled by :func:`positive_pairs`), and the last,
    partial round takes its groups in an order drawn with ``seed``. The pairs come back in their input order.

    Why: drawn uniformly, a sample of pairs weights a group by its number of pairs, which grows with the square of
    its size (PASCAL-VOC validation, seed 0: Person 112 of 600 positive pairs, Table 1), while the test set holds
    at most k pairs of each group; a threshold chosen on the uniform sample is chosen for the large groups."""
    if len(groups) != len(pairs):
        raise ValueError(f"spread_over_groups needs one group per pair; got {len(pairs)} pairs, {len(groups)} groups")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(pairs):
        raise ValueError(f"n must be an int in [0, {len(pairs)}] (the number of pairs), got {n!r}")
    by_group: dict[str, list[int]] = defaultdict(list)
    for k, g in enumerate(groups):
        by_group[g].append(k)
    names = sorted(by_group)
    rng = np.random.default_rng([seed, 6])
    picked: list[int] = []
    for r in range(max(len(v) for v in by_group.values()) if by_group else 0):
        this_round = [by_group[g][r] for g in names if r < len(by_group[g])]
        if len(picked) + len(this_round) >= n:
            take = rng.permutation(len(this_round))[: n - len(picked)]
            picked += [this_round[k] for k in take]
            break
        picked += this_round
    return [pairs[k] for k in sorted(picked)]


def negative_pairs(dataset, indices: Sequence[int] | None = None, n: int = 1000,
                   seed: int = 0) -> list[tuple[int, int]]:
    """``n`` distinct unordered negative pairs (i < j) drawn without replacement from ``indices``.

    Raises ValueError if fewer than ``n`` negative pairs exist.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    idx = sorted(set(_check_indices(dataset, indices)))
    groups, ids, by_id = _labels(dataset, idx)
    rng = np.random.default_rng(seed)
    names = sorted({g for s in by_id.values() for g in s})
    col = {g: k for k, g in enumerate(names)}
    member = np.zeros((len(idx), len(names)), dtype=bool)  # member[k, g]: image k's bytes are labelled g
    for k, h in enumerate(ids):
        member[k, [col[g] for g in by_id[h]]] = True
    if len(idx) <= _ENUMERATE_LIMIT:
        a, b = np.triu_indices(len(idx), k=1)
        ok = ~np.any(member[a] & member[b], axis=1)
        a, b = a[ok], b[ok]
        if n > len(a):
            raise ValueError(f"asked for {n} negative pairs but only {len(a)} exist among {len(idx)} images")
        pick = np.sort(rng.choice(len(a), size=n, replace=False))
        chosen = [(idx[a[k]], idx[b[k]]) for k in pick]
        return [chosen[k] for k in rng.permutation(n)]
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 10_000:
            raise ValueError(f"could only find {len(out)} of {n} distinct negative pairs among {len(idx)} images")
        a, b = (int(v) for v in rng.integers(0, len(idx), size=2))
        a, b = min(a, b), max(a, b)
        if a == b or (a, b) in seen or np.any(member[a] & member[b]):
            continue
        seen.add((a, b))
        out.append((idx[a], idx[b]))
    return out


def count_negative_pairs(dataset, indices: Sequence[int] | None = None) -> int:
    """How many distinct negative pairs ``negative_pairs`` can draw from ``indices`` (0 for a single group)."""
    idx = sorted(set(_check_indices(dataset, indices)))
    _, ids, by_id = _labels(dataset, idx)
    # images with the same label set are interchangeable here: count pairs of disjoint label sets
    sizes: dict[frozenset[str], int] = defaultdict(int)
    for h in ids:
        sizes[by_id[h]] += 1
    kinds = list(sizes)
    return sum(sizes[s] * sizes[t] for s, t in combinations(kinds, 2) if not s & t)


def cosegnet_triplets(dataset, indices: Sequence[int] | None = None, n: int = 1000,
                      seed: int = 0) -> list[tuple[int, int, int]]:
    """``n`` CoSegNet training triplets (anchor, positive, negative), sampled with replacement: a group is drawn
    uniformly among groups with two distinct images, then anchor and positive uniformly in it (different bytes),
    then a negative uniformly among images negative with respect to both anchor and positive.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    idx = sorted(set(_check_indices(dataset, indices)))
    groups, ids, by_id = _labels(dataset, idx)
    by_group: dict[str, list[int]] = defaultdict(list)
    for k, g in enumerate(groups):
        by_group[g].append(k)
    usable = [g for g in sorted(by_group) if len({ids[k] for k in by_group[g]}) >= 2]
    if n > 0 and not usable:
        raise ValueError("no group has two distinct images: cannot form a positive pair")
    label_sets = [by_id[h] for h in ids]
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int, int]] = []
    negatives_cache: dict[frozenset[str], np.ndarray] = {}
    while len(out) < n:
        members = by_group[usable[int(rng.integers(len(usable)))]]
        a, p = (members[int(v)] for v in rng.choice(len(members), size=2, replace=False))
        if ids[a] == ids[p]:
            continue
        forbidden = label_sets[a] | label_sets[p]
        if forbidden not in negatives_cache:
            negatives_cache[forbidden] = np.array([k for k, s in enumerate(label_sets) if not s & forbidden])
        negs = negatives_cache[forbidden]
        if len(negs) == 0:
            raise ValueError(f"no negative image exists for groups {sorted(forbidden)}")
        out.append((idx[a], idx[p], idx[int(negs[rng.integers(len(negs))])]))
    return out


class RealPairs(Sequence):
    """Pairs of a `CosegDataset` as `PairSample` dicts (see `cosegkit.data.PairSample`).

    ``negative`` is one bool for all pairs or one per pair. For a positive pair both masks are the items' masks
    (the group's class, i.e. the common object); for a negative pair both masks are all-False. Positive pairs
    must be same-group, negative pairs different-group (ValueError otherwise).
    ``.pairs`` lists the index pairs and ``.sizes`` the original ((H_a, W_a), (H_b, W_b)) of each pair (read from
    image headers when the dataset has ``path_of``, else by decoding).
    """

    def __init__(self, dataset, pairs: Sequence[tuple[int, int]], negative: bool | Sequence[bool] = False):
        self.dataset = dataset
        self.pairs = [(int(a), int(b)) for a, b in pairs]
        if isinstance(negative, bool | np.bool_):
            self.negative = [bool(negative)] * len(self.pairs)
        else:
            self.negative = [bool(v) for v in negative]
            if len(self.negative) != len(self.pairs):
                raise ValueError(f"negative has {len(self.negative)} flags for {len(self.pairs)} pairs")
        for (a, b), neg in zip(self.pairs, self.negative, strict=True):
            ga, gb = dataset.group_of(a), dataset.group_of(b)
            if neg and ga == gb:
                raise ValueError(f"pair ({a}, {b}) is marked negative but both images are in group {ga!r}")
            if not neg and ga != gb:
                raise ValueError(f"pair ({a}, {b}) is marked positive but its groups differ ({ga!r}, {gb!r})")
        self._sizes: list | None = None

    @property
    def sizes(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        if self._sizes is None:
            from PIL import Image

            def hw(i: int) -> tuple[int, int]:
                if not hasattr(self.dataset, "path_of"):  # not file-backed: decode
                    return tuple(self.dataset[i].image.shape[:2])
                with Image.open(self.dataset.path_of(i)) as im:
                    return im.height, im.width

            self._sizes = [(hw(a), hw(b)) for a, b in self.pairs]
        return self._sizes

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        if not -len(self) <= k < len(self):
            raise IndexError(f"pair index {k} out of range for {len(self)} pairs")
        (a, b), neg = self.pairs[k], self.negative[k]
        ia, ib = self.dataset[a], self.dataset[b]
        ma = np.zeros_like(ia.mask) if neg else ia.mask
        mb = np.zeros_like(ib.mask) if neg else ib.mask
        return {
            "image_a": ia.image, "image_b": ib.image, "mask_a": ma, "mask_b": mb,
            "label": 0 if neg else 1, "group_a": ia.group, "group_b": ib.group,
        }
