"""What a run trains and is scored on: splits, per-epoch training samples, validation and test pairs.

Determinism (needed for exact --resume and for data-parallel equivalence):
- the training samples of epoch e are a pure function of (seed, e): pairs / triplets are drawn with generators
  seeded by (seed, e), never from global state;
- the random augmentation of training sample i of epoch e runs under torch.random.fork_rng seeded by
  (seed, e, i), so it does not depend on the worker process, the rank, or what ran before;
- CoSegNet with `data.triplet_mining="semihard"`: the candidate negatives of triplet i are its random negative
  followed by `data.mining_pool - 1` more, drawn the same way with a generator seeded by (seed, e, i); the pick
  among them (cosegkit.tasks.cosegnet) depends on the model weights, which a checkpoint restores.

Real data: a dataset folder split 3:1:1 (cosegnet §4.2) with `split_indices` (seeded by `split_seed`, default
the run seed). Without a data root, the synthetic set (`SyntheticCoseg`) stands in, with independent seeds for
train / val / test. What a family draws from them each epoch (SiameseUNet: positive pairs, is_triplet_coseg
§4.1.1; CoSegNet: (anchor, positive, negative) triplets, cosegnet §3.4) is its task's data object
(cosegkit.tasks), a subclass of :class:`RunData`; :func:`cosegkit.tasks.build_run_data` builds it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cosegkit.data import load_dataset
from cosegkit.data.check import check_items
from cosegkit.data.pairs import RealPairs, count_negative_pairs, negative_pairs, positive_pairs, spread_over_groups
from cosegkit.data.splits import split_indices
from cosegkit.data.synthetic import SyntheticCoseg
from cosegkit.train.settings import TrainSettings

__all__ = ["RunData", "check_run_items", "CachedDataset", "derive_seed", "TrainSamples", "collate",
           "single_thread", "real_sets", "synthetic_sets", "take", "pair_only", "tensors", "Seeded"]


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


def _read_only(item):
    """`item` (a CosegItem or a dict of arrays) with its numpy arrays made read-only, in place."""
    fields = item.values() if isinstance(item, dict) else vars(item).values() if hasattr(item, "__dict__") else ()
    for value in fields:
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return item


class CachedDataset(Sequence):
    """Memoises the items of a sequence (a CosegDataset, whose JPEG decoding costs more than a train step's data
    work, or a generated synthetic pair set); attributes are the wrapped sequence's (group_of, id_of, ...).
    ``enabled=False`` passes every read through. Each DataLoader worker holds its own cache.

    A memoised item is shared by every later read, so its arrays are made read-only: a write would change what
    the next read returns (and the transformed views that `PairTransform` caches for read-only arrays)."""

    def __init__(self, dataset, enabled: bool = True):
        self.dataset, self.enabled = dataset, enabled
        self._cache: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        i = int(i)
        if not self.enabled:
            return self.dataset[i]
        item = self._cache.get(i)
        if item is None:
            item = self._cache[i] = _read_only(self.dataset[i])
        return item

    def __getattr__(self, name):  # group_of, id_of, path_of, groups, records, root ...
        if name in ("dataset", "enabled", "_cache"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


# (sample, which) -> the transformed sample, under the RNG of (seed, epoch, item, which): see TrainSamples.
Seeded = Callable[[dict, int], dict]


@dataclass
class RunData:
    """What every run needs from the data, built from the settings (and a data root, if any). A task's subclass
    adds what its family draws each epoch: :meth:`epoch_samples` and :meth:`train_item`."""

    source: str  # "synthetic" or the data root
    train_pool: Sequence  # PairSample sequence of the training split's positive pairs
    val: Sequence  # PairSample sequence of positive pairs
    test_positive: Sequence
    test_negative: Sequence | None
    split: dict | None  # index lists for real data
    seed: int
    pairs_per_epoch: int | None
    # negative validation pairs: built only for a decision network whose threshold is chosen on validation
    # (threshold_selection="val"; the task asks for them) and data.decision_val_pairs is None
    val_negative: Sequence | None = None
    # (positive, negative) validation pairs the decision threshold is chosen on, scored by the decision alone:
    # built instead of val_negative when data.decision_val_pairs is set
    val_decision: tuple[Sequence, Sequence] | None = None

    def epoch_samples(self, epoch: int) -> list:
        """Training samples of `epoch` (pure in (seed, epoch))."""
        raise NotImplementedError

    def train_item(self, spec, epoch: int, i: int, seeded: Seeded) -> dict:
        """The tensors of training sample `spec` (item i of `epoch`); `seeded` applies the train transform."""
        raise NotImplementedError


def take(rng: np.random.Generator, n: int, k: int | None) -> list[int]:
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
            # the CPU generator only (what the transforms draw from): torch.manual_seed would also reseed every
            # CUDA device, outside what fork_rng restores, and costs 60x more
            torch.default_generator.manual_seed(derive_seed(self.data.seed, self.epoch, i, which))
            return self.transform(sample)

    def __getitem__(self, i: int) -> dict:
        return self.data.train_item(self.samples[i], self.epoch, i, lambda s, which: self._seeded(i, s, which))


KEEP = ("image_a", "image_b", "mask_a", "mask_b", "label")


def pair_only(sample: dict) -> dict:
    return {k: sample[k] for k in (*KEEP, "group_a", "group_b") if k in sample}


def tensors(out: dict) -> dict:
    return {k: out[k] for k in KEEP}


def collate(batch: list[dict]) -> dict:
    """Stack a list of items; CoSegNet items {"pos", "neg"} or {"pos", "pool"} are collated part by part (the
    pool's tensors become (B, pool, ...))."""
    if "pos" in batch[0]:
        return {part: collate([b[part] for b in batch]) for part in batch[0]}
    return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}


def split_seed_of(settings: TrainSettings) -> int:
    return settings.seed if settings.data.split_seed is None else settings.data.split_seed


def _draw_val_positives(ds, pairs: list, n: int, draw: str, seed: list[int]) -> list:
    """`n` of the validation split's positive `pairs`: uniformly (data.val_draw="uniform", the draw of runs before
    the setting existed) or spread over the groups (data.val_draw="by_group")."""
    if draw == "by_group":
        return spread_over_groups(pairs, [ds.group_of(a) for a, _ in pairs], n, seed=derive_seed(*seed))
    pick = np.random.default_rng(seed).choice(len(pairs), size=n, replace=False)
    return [pairs[k] for k in sorted(pick)]


def real_sets(settings: TrainSettings, data_root, check_train_split: Callable | None = None,
              val_negatives: bool = False) -> tuple[dict, object]:
    """The fields of a :class:`RunData` on a dataset folder, and the (cached) dataset. Every item the splits read
    is checked first; `check_train_split(dataset, train_indices)` adds a family's own check of the training split.
    `val_negatives`: also draw negative validation pairs (as many as positive ones, if the split has them)."""
    d = settings.data
    split_seed = split_seed_of(settings)
    ds = load_dataset(d.dataset, data_root)
    if d.cache_images:
        ds = CachedDataset(ds)
    split = split_indices(ds, ratios=d.split, seed=split_seed)
    check_run_items(ds, [i for part in split.values() for i in part], data_root)
    if check_train_split is not None:
        check_train_split(ds, split["train"])
    n_neg = count_negative_pairs(ds, split["test"])
    if d.test_negative_pairs > n_neg:
        raise ValueError(
            f"{data_root}: the test split has only {n_neg} negative pairs but data.test_negative_pairs asks for "
            f"{d.test_negative_pairs}: pass --set data.test_negative_pairs={n_neg} (or a dataset with more groups)")
    train_pos = positive_pairs(ds, split["train"], seed=split_seed)
    val_pos = all_val_pos = positive_pairs(ds, split["val"], seed=split_seed)
    if d.val_pairs is not None and len(val_pos) > d.val_pairs:
        val_pos = _draw_val_positives(ds, all_val_pos, d.val_pairs, d.val_draw, [split_seed, 3])
    test_pos = positive_pairs(ds, split["test"], seed=split_seed, max_pairs_per_group=d.test_max_pairs_per_group)
    test_neg = negative_pairs(ds, split["test"], n=d.test_negative_pairs, seed=split_seed)
    if not train_pos:
        raise ValueError(f"{data_root}: the training split has no positive pair (groups need >= 2 images)")
    if not val_pos:  # found here, not after the first epoch
        raise ValueError(f"{data_root}: the validation split has no positive pair (with data.split {d.split} a "
                         "group needs more images to put 2 of them in the validation split)")
    val_neg = val_decision = None
    if val_negatives:
        n_val_neg = count_negative_pairs(ds, split["val"])
        if n_val_neg == 0:
            raise ValueError(f"{data_root}: threshold_selection='val' chooses the decision threshold on negative "
                             "validation pairs, and the validation split has none (it needs 2 or more groups); "
                             "pass --set threshold_selection=fixed")
        n = d.decision_val_pairs
        if n is None:
            n_val_neg = min(len(val_pos), n_val_neg)
            val_neg = RealPairs(ds, negative_pairs(ds, split["val"], n=n_val_neg, seed=derive_seed(split_seed, 4)),
                                negative=True)
        else:
            most = min(len(all_val_pos), n_val_neg)
            if n > most:
                raise ValueError(f"{data_root}: data.decision_val_pairs={n} asks for {n} positive and {n} negative "
                                 f"validation pairs, and the validation split has {len(all_val_pos)} positive and "
                                 f"{n_val_neg} negative ones: pass --set data.decision_val_pairs={most} or less")
            val_decision = (RealPairs(ds, _draw_val_positives(ds, all_val_pos, n, d.val_draw, [split_seed, 5])),
                            RealPairs(ds, negative_pairs(ds, split["val"], n=n, seed=derive_seed(split_seed, 5)),
                                      negative=True))
    fields = dict(source=str(data_root), train_pool=RealPairs(ds, train_pos), val=RealPairs(ds, val_pos),
                  val_negative=val_neg, val_decision=val_decision,
                  test_positive=RealPairs(ds, test_pos),
                  test_negative=RealPairs(ds, test_neg, negative=True) if test_neg else None,
                  split=split, seed=settings.seed, pairs_per_epoch=d.pairs_per_epoch)
    return fields, ds


def synthetic_sets(settings: TrainSettings, val_negatives: bool = False) -> dict:
    """The fields of a :class:`RunData` on the synthetic set (train / val / test seeded apart); `val_negatives`:
    also negative validation pairs (as many as positive ones)."""
    d = settings.data
    split_seed = split_seed_of(settings)
    size = d.image_size
    train = CachedDataset(SyntheticCoseg(d.synthetic_train_pairs, size, seed=derive_seed(split_seed, 10)),
                          d.cache_images)
    val = CachedDataset(SyntheticCoseg(d.synthetic_val_pairs, size, seed=derive_seed(split_seed, 11)))
    test_pos = CachedDataset(SyntheticCoseg(d.synthetic_test_pairs, size, seed=derive_seed(split_seed, 12)))
    n_neg = round(d.synthetic_test_pairs * d.synthetic_negative_fraction)
    test_neg = (CachedDataset(SyntheticCoseg(n_neg, size, seed=derive_seed(split_seed, 13), negative_fraction=1.0))
                if n_neg else None)
    val_neg = val_decision = None
    if val_negatives and d.decision_val_pairs is None:
        val_neg = CachedDataset(SyntheticCoseg(d.synthetic_val_pairs, size, seed=derive_seed(split_seed, 14),
                                               negative_fraction=1.0))
    elif val_negatives:
        n = d.decision_val_pairs
        val_decision = (CachedDataset(SyntheticCoseg(n, size, seed=derive_seed(split_seed, 15))),
                        CachedDataset(SyntheticCoseg(n, size, seed=derive_seed(split_seed, 16), negative_fraction=1.0)))
    return dict(source="synthetic", train_pool=train, val=val, test_positive=test_pos, test_negative=test_neg,
                split=None, seed=settings.seed, pairs_per_epoch=d.pairs_per_epoch, val_negative=val_neg,
                val_decision=val_decision)


def check_run_items(dataset, indices, data_root) -> None:
    """Run `cosegkit data check`'s checks on every item a run will read; ValueError naming the first bad file
    (and how many more), so that a bad file stops the run before its first step, not after its last epoch."""
    problems = check_items(dataset, indices)
    if problems:
        path, msg = problems[0]
        more = (f"; and {len(problems) - 1} more bad file(s) (`cosegkit data check {data_root}` lists all)"
                if len(problems) > 1 else "")
        raise ValueError(f"bad file in {data_root}: {path}: {msg}{more}")
