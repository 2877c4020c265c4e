"""What a run trains and is scored on: splits, per-epoch training samples, validation and test pairs.

Determinism (needed for exact --resume and for data-parallel equivalence):
- the training samples of epoch e are a pure function of (seed, e): pairs / triplets are drawn with generators
  seeded by (seed, e), never from global state;
- the random augmentation of training sample i of epoch e runs under torch.random.fork_rng seeded by
  (seed, e, i), so it does not depend on the worker process, the rank, or what ran before;
- CoSegNet with `data.triplet_mining="semihard"`: the candidate negatives of triplet i are its random negative
  followed by `data.mining_pool - 1` more, drawn the same way with a generator seeded by (seed, e, i); the pick
  among them (cosegkit.train.modeling) depends on the model weights, which a checkpoint restores.

Real data: a dataset folder split 3:1:1 (cosegnet §4.2) with `split_indices` (seeded by `split_seed`, default
the run seed). SiameseUNet trains on positive pairs within groups (is_triplet_coseg §4.1.1); CoSegNet on
(anchor, positive, negative) triplets (cosegnet §3.4). Without a data root, the synthetic set
(`SyntheticCoseg`) stands in, with independent seeds for train / val / test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from cosegkit.train.settings import TrainSettings

__all__ = ["RunData", "build_run_data", "check_run_items", "CachedDataset", "derive_seed", "TrainSamples", "collate",
           "single_thread"]


@contextlib.contextmanager
def single_thread():
    """Run per-sample tensor work on one intra-op thread: these ops are tiny, and with 2 threads on a 2-core
    machine whose other core is busy each op waits for a descheduled thread (measured: 6 ms -> 500 ms per pair).
    DataLoader workers already run single-threaded; this covers num_workers=0 and evaluation."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that is a pure function of the integers `parts`."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class CachedDataset(Sequence):
    """Wraps a CosegDataset and keeps decoded items in memory (decoding a JPEG costs more than a train step's
    data work otherwise). Each DataLoader worker holds its own cache (persistent workers keep it)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self._cache: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        i = int(i)
        item = self._cache.get(i)
        if item is None:
            item = self._cache[i] = self.dataset[i]
        return item

    def __getattr__(self, name):  # group_of, id_of, path_of, groups, records, root ...
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


@dataclass
class RunData:
    """Everything a run needs from the data, built from the settings (and a data root, if any)."""

    family: str
    source: str  # "synthetic" or the data root
    train_pool: Sequence  # PairSample sequence (SiameseUNet / synthetic) or the image dataset (CoSegNet real)
    val: Sequence  # PairSample sequence of positive pairs
    test_positive: Sequence
    test_negative: Sequence | None
    split: dict | None  # index lists for real data
    seed: int
    pairs_per_epoch: int | None
    dataset: object | None = None  # the (cached) image dataset for real data
    train_idx: list | None = None
    synthetic_negatives: list | None = None  # per synthetic positive pair: candidate negatives (k2, side)
    triplet_mining: str = "random"  # data.triplet_mining
    mining_pool: int = 1  # data.mining_pool (candidate negatives per triplet under "semihard")
    # negative validation pairs, built only where a decision threshold is chosen on validation
    # (threshold_selection="val" with a decision network)
    val_negative: Sequence | None = None
    _labels: dict | None = field(default=None, repr=False)  # image bytes id -> its classes (real data, lazily)
    _negatives: dict = field(default_factory=dict, repr=False)  # forbidden classes -> negative indices

    def epoch_samples(self, epoch: int) -> list:
        """Training samples of `epoch`: pair indices into train_pool, or (a, p, n) triplets. Pure in (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        if self.family == "unet":
            return _take(rng, len(self.train_pool), self.pairs_per_epoch)
        if self.dataset is not None:  # CoSegNet / base on real data: fresh triplets each epoch
            from cosegkit.data.pairs import cosegnet_triplets

            n = self.pairs_per_epoch or len(self.train_pool)
            return [tuple(t) for t in cosegnet_triplets(self.dataset, self.train_idx, n=n,
                                                        seed=derive_seed(self.seed, epoch, 2))]
        # synthetic: anchor / positive = a positive pair, negative = an image sharing no category with them
        out = []
        for k in _take(rng, len(self.train_pool), self.pairs_per_epoch):
            cand = self.synthetic_negatives[k]
            k2, side = cand[int(rng.integers(len(cand)))]
            out.append((k, k2, side))
        return out

    def negative_candidates(self, spec, epoch: int, i: int) -> list:
        """The `mining_pool` candidate negatives of triplet `spec` (sample i of `epoch`): the triplet's own (random)
        negative first, then `mining_pool - 1` others negative to anchor and positive, drawn without replacement
        while there are enough (then with replacement). Pure in (seed, epoch, i). Real data: dataset indices;
        synthetic: (k2, side)."""
        if self.dataset is not None:
            a, p, first = spec
            cand = [int(n) for n in self._negatives_of(a, p) if int(n) != first]
        else:
            k, k2, side = spec
            first = (k2, side)
            cand = [c for c in self.synthetic_negatives[k] if c != first]
        extra = self.mining_pool - 1
        if extra == 0:
            return [first]
        if not cand:
            return [first] * self.mining_pool
        rng = np.random.default_rng([self.seed, epoch, i, 4])
        if len(cand) >= extra:
            pick = rng.choice(len(cand), size=extra, replace=False).tolist()
        else:
            pick = rng.permutation(len(cand)).tolist() + rng.integers(len(cand), size=extra - len(cand)).tolist()
        return [first] + [cand[j] for j in pick]

    def _negatives_of(self, a: int, p: int) -> np.ndarray:
        """Training images sharing no class with a or p (as `cosegnet_triplets` draws its negatives)."""
        ds = self.dataset
        if self._labels is None:
            labels: dict[str, set[str]] = {}
            for k in self.train_idx:
                labels.setdefault(ds.id_of(k), set()).add(ds.group_of(k))
            self._labels = {h: frozenset(g) for h, g in labels.items()}
        forbidden = self._labels[ds.id_of(a)] | self._labels[ds.id_of(p)]
        if forbidden not in self._negatives:
            self._negatives[forbidden] = np.array(
                [k for k in self.train_idx if not self._labels[ds.id_of(k)] & forbidden], dtype=np.int64)
        return self._negatives[forbidden]


def _take(rng: np.random.Generator, n: int, k: int | None) -> list[int]:
    """k indices of range(n) in random order: permutations concatenated (every item once before repeats)."""
    if n == 0:
        raise ValueError("no training pairs: the training split is empty")
    k = n if k is None else k
    out: list[int] = []
    while len(out) < k:
        out += rng.permutation(n).tolist()
    return out[:k]


class TrainSamples(Dataset):
    """torch Dataset over one epoch's samples; item i -> transformed tensors under a (seed, epoch, i) RNG."""

    def __init__(self, data: RunData, samples: list, epoch: int, transform):
        self.data, self.samples, self.epoch, self.transform = data, samples, epoch, transform

    def __len__(self) -> int:
        return len(self.samples)

    def _seeded(self, i: int, sample: dict, which: int) -> dict:
        with single_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.data.seed, self.epoch, i, which))
            return self.transform(sample)

    def __getitem__(self, i: int) -> dict:
        spec = self.samples[i]
        if self.data.family == "unet":
            return _tensors(self._seeded(i, _pair_only(self.data.train_pool[spec]), 0))
        pos, neg = self.data_triplet(spec)
        out = {"pos": _tensors(self._seeded(i, pos, 0))}
        if self.data.triplet_mining != "semihard":
            out["neg"] = _tensors(self._seeded(i, neg, 1))
            return out
        # candidate j is transformed under (seed, epoch, i, 1 + j): candidate 0 is exactly the random mode's "neg"
        pool = [_tensors(self._seeded(i, self._negative_pair(spec, pos, c), 1 + j))
                for j, c in enumerate(self.data.negative_candidates(spec, self.epoch, i))]
        out["pool"] = {k: torch.stack([c[k] for c in pool]) for k in _KEEP}
        return out

    def data_triplet(self, spec) -> tuple[dict, dict]:
        if self.data.dataset is not None:
            a, p, n = spec
            ds = self.data.dataset
            ia, ip = ds[a], ds[p]
            pos = {"image_a": ia.image, "image_b": ip.image, "mask_a": ia.mask, "mask_b": ip.mask, "label": 1,
                   "group_a": ia.group, "group_b": ip.group}
            return pos, self._negative_pair(spec, pos, n)
        k, k2, side = spec
        pos = _pair_only(self.data.train_pool[k])
        return pos, self._negative_pair(spec, pos, (k2, side))

    def _negative_pair(self, spec, pos: dict, candidate) -> dict:
        """The negative pair (anchor of `pos`, candidate negative), with null masks."""
        if self.data.dataset is not None:
            neg = self.data.dataset[candidate]
            image, mask, group = neg.image, neg.mask, neg.group
        else:
            k2, side = candidate
            other = self.data.train_pool[k2]
            image, mask, group = other[f"image_{side}"], other[f"mask_{side}"], other[f"group_{side}"]
        return {"image_a": pos["image_a"], "image_b": image, "mask_a": np.zeros_like(pos["mask_a"]),
                "mask_b": np.zeros_like(mask), "label": 0, "group_a": pos.get("group_a"), "group_b": group}


_KEEP = ("image_a", "image_b", "mask_a", "mask_b", "label")


def _pair_only(sample: dict) -> dict:
    return {k: sample[k] for k in (*_KEEP, "group_a", "group_b") if k in sample}


def _tensors(out: dict) -> dict:
    return {k: out[k] for k in _KEEP}


def collate(batch: list[dict]) -> dict:
    """Stack a list of items; CoSegNet items {"pos", "neg"} or {"pos", "pool"} are collated part by part (the
    pool's tensors become (B, pool, ...))."""
    if "pos" in batch[0]:
        return {part: collate([b[part] for b in batch]) for part in batch[0]}
    return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}


def _check_mining(settings: TrainSettings) -> None:
    mining, family = settings.data.triplet_mining, settings.model.family
    if mining == "semihard" and family != "cosegnet":
        what = ("SiameseUNet trains on pairs, not triplets" if family == "unet"
                else "cosegnet-base has no metric network")
        raise ValueError(f"data.triplet_mining='semihard' needs CoSegNet's triplets and metric embeddings; {what}: "
                         "use data.triplet_mining='random'")


def build_run_data(settings: TrainSettings, data_root=None) -> RunData:
    d = settings.data
    family = settings.model.family
    split_seed = settings.seed if d.split_seed is None else d.split_seed
    _check_mining(settings)
    if data_root is None:
        return _synthetic(settings, split_seed)
    from cosegkit.data import load_dataset
    from cosegkit.data.pairs import RealPairs, count_negative_pairs, negative_pairs, positive_pairs
    from cosegkit.data.splits import split_indices

    ds = load_dataset(d.dataset, data_root)
    if d.cache_images:
        ds = CachedDataset(ds)
    split = split_indices(ds, ratios=d.split, seed=split_seed)
    check_run_items(ds, [i for part in split.values() for i in part], data_root)
    if family != "unet":
        groups = sorted({ds.group_of(i) for i in split["train"]})
        if len(groups) < 2:
            raise ValueError(
                f"{settings.experiment} trains on triplets whose negative image comes from another group, so the "
                f"training split needs at least 2 groups; the one of {data_root} has {len(groups)} group "
                f"({', '.join(groups)}): pass a --data-root with 2 or more groups, or train a SiameseUNet "
                "experiment (unet-*), which needs positive pairs only")
    n_neg = count_negative_pairs(ds, split["test"])
    if d.test_negative_pairs > n_neg:
        raise ValueError(
            f"{data_root}: the test split has only {n_neg} negative pairs but data.test_negative_pairs asks for "
            f"{d.test_negative_pairs}: pass --set data.test_negative_pairs={n_neg} (or a dataset with more groups)")
    train_pos = positive_pairs(ds, split["train"], seed=split_seed)
    val_pos = positive_pairs(ds, split["val"], seed=split_seed)
    if d.val_pairs is not None and len(val_pos) > d.val_pairs:
        pick = np.random.default_rng([split_seed, 3]).choice(len(val_pos), size=d.val_pairs, replace=False)
        val_pos = [val_pos[k] for k in sorted(pick)]
    test_pos = positive_pairs(ds, split["test"], seed=split_seed, max_pairs_per_group=d.test_max_pairs_per_group)
    test_neg = negative_pairs(ds, split["test"], n=d.test_negative_pairs, seed=split_seed)
    if not train_pos:
        raise ValueError(f"{data_root}: the training split has no positive pair (groups need >= 2 images)")
    if not val_pos:  # found here, not after the first epoch
        raise ValueError(f"{data_root}: the validation split has no positive pair (with data.split {d.split} a "
                         "group needs more images to put 2 of them in the validation split)")
    val_neg = None
    if _needs_val_negatives(settings):
        n_val_neg = min(len(val_pos), count_negative_pairs(ds, split["val"]))
        if n_val_neg == 0:
            raise ValueError(f"{data_root}: threshold_selection='val' chooses the decision threshold on negative "
                             "validation pairs, and the validation split has none (it needs 2 or more groups); "
                             "pass --set threshold_selection=fixed")
        val_neg = RealPairs(ds, negative_pairs(ds, split["val"], n=n_val_neg, seed=derive_seed(split_seed, 4)),
                            negative=True)
    return RunData(
        val_negative=val_neg,
        family=family,
        source=str(data_root),
        train_pool=RealPairs(ds, train_pos),
        val=RealPairs(ds, val_pos),
        test_positive=RealPairs(ds, test_pos),
        test_negative=RealPairs(ds, test_neg, negative=True) if test_neg else None,
        split=split,
        seed=settings.seed,
        pairs_per_epoch=d.pairs_per_epoch,
        dataset=ds,
        train_idx=split["train"],
        triplet_mining=d.triplet_mining,
        mining_pool=d.mining_pool,
    )


def check_run_items(dataset, indices, data_root) -> None:
    """Run `cosegkit data check`'s checks on every item a run will read; ValueError naming the first bad file
    (and how many more), so that a bad file stops the run before its first step, not after its last epoch."""
    from cosegkit.data.check import check_items

    problems = check_items(dataset, indices)
    if problems:
        path, msg = problems[0]
        more = (f"; and {len(problems) - 1} more bad file(s) (`cosegkit data check {data_root}` lists all)"
                if len(problems) > 1 else "")
        raise ValueError(f"bad file in {data_root}: {path}: {msg}{more}")


class _CachedPairs(Sequence):
    """Memoises a generated PairSample sequence (the synthetic generator costs more than a training step's
    data work)."""

    def __init__(self, pairs: Sequence, enabled: bool = True):
        self.pairs, self.enabled, self._cache = pairs, enabled, {}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k):
        k = int(k)
        if not self.enabled:
            return self.pairs[k]
        item = self._cache.get(k)
        if item is None:
            item = self._cache[k] = self.pairs[k]
        return item


def _needs_val_negatives(settings: TrainSettings) -> bool:
    return settings.threshold_selection == "val" and settings.model.family == "cosegnet"


def _synthetic_negatives(pool: Sequence, seed: int) -> list[list[tuple[int, str]]]:
    """For each positive synthetic pair k, the images (k2, side) sharing no category with either image of k:
    the negative of a CoSegNet triplet must be negative to both anchor and positive (as cosegnet_triplets)."""
    cats = [(set(pool[k]["categories_a"]), set(pool[k]["categories_b"])) for k in range(len(pool))]
    out = []
    for k, (ca, cb) in enumerate(cats):
        forbidden = ca | cb
        cand = [(k2, side) for k2 in range(len(pool)) if k2 != k
                for side, c in (("a", cats[k2][0]), ("b", cats[k2][1])) if not c & forbidden]
        if not cand:
            raise ValueError(f"synthetic pair {k}: no image in the training set shares no category with it")
        out.append(cand)
    return out


def _synthetic(settings: TrainSettings, split_seed: int) -> RunData:
    from cosegkit.data.synthetic import SyntheticCoseg

    d = settings.data
    size = d.image_size
    train = _CachedPairs(SyntheticCoseg(d.synthetic_train_pairs, size, seed=derive_seed(split_seed, 10)),
                         d.cache_images)
    val = _CachedPairs(SyntheticCoseg(d.synthetic_val_pairs, size, seed=derive_seed(split_seed, 11)))
    test_pos = _CachedPairs(SyntheticCoseg(d.synthetic_test_pairs, size, seed=derive_seed(split_seed, 12)))
    n_neg = round(d.synthetic_test_pairs * d.synthetic_negative_fraction)
    test_neg = (_CachedPairs(SyntheticCoseg(n_neg, size, seed=derive_seed(split_seed, 13), negative_fraction=1.0))
                if n_neg else None)
    val_neg = (_CachedPairs(SyntheticCoseg(d.synthetic_val_pairs, size, seed=derive_seed(split_seed, 14),
                                           negative_fraction=1.0))
               if _needs_val_negatives(settings) else None)
    data = RunData(
        val_negative=val_neg,
        family=settings.model.family,
        source="synthetic",
        train_pool=train,
        val=val,
        test_positive=test_pos,
        test_negative=test_neg,
        split=None,
        seed=settings.seed,
        pairs_per_epoch=d.pairs_per_epoch,
        triplet_mining=d.triplet_mining,
        mining_pool=d.mining_pool,
    )
    if data.family != "unet":
        data.synthetic_negatives = _synthetic_negatives(train, split_seed)
    return data
