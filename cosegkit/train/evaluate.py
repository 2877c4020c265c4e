"""Evaluation protocol of both papers.

- Every image of every evaluated pair is scored once per pair (cosegnet §4: "co-segmentation on all such pairs
  ... average Precision and Jaccard computed over all such pairs"; is_triplet_coseg §4.1.3: results resized back
  to the original resolution). Predictions are probabilities, mapped back with `resize_to_original` (bilinear,
  then threshold 0.5) and scored with `cosegkit.metrics.PairScores` (overall and per group).
- CoSegNet's masks are gated by its decision network (§3.5: mask x thresholded decision), as its task's
  prediction says (cosegkit.tasks: every family's prediction comes from its task).
- Negative (outlier) pairs: the ground truth is empty for both images; we report the fraction of empty
  predicted masks for every model and the decision accuracy for models with a decision network. Precision /
  Jaccard on negative pairs follow metrics.py's empty-ground-truth convention.
- Under torchrun every rank predicts a strided share of the pairs; the (bit-packed) predicted masks are gathered
  and every rank scores all of them in pair order, so the numbers equal a single-process evaluation exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cosegkit.data import load_dataset
from cosegkit.data.pairs import RealPairs, count_negative_pairs
from cosegkit.data.pairs import negative_pairs as draw_negative
from cosegkit.data.pairs import positive_pairs as draw_positive
from cosegkit.data.transforms import resize_to_original
from cosegkit.metrics import PairScores
from cosegkit.models.cosegnet import decision_gate
from cosegkit.tasks import build_run_data, task_for
from cosegkit.train.data import CachedDataset, check_run_items, single_thread
from cosegkit.train.distributed import Dist
from cosegkit.train.modeling import eval_transform, load_trained_model
from cosegkit.train.progress import show_bars
from cosegkit.train.records import CONFIG_NAME, read_json, write_json

__all__ = ["predict_pairs", "score_pairs", "evaluate_run"]


def _pack(mask: np.ndarray) -> tuple:
    return mask.shape, np.packbits(mask, axis=None)


def _unpack(packed: tuple) -> np.ndarray:
    shape, bits = packed
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


@torch.no_grad()
def predict_pairs(model, family: str, pairs: Sequence, transform, device, indices: Sequence[int],
                  batch_size: int = 8, threshold: float = 0.5, progress: bool = False, desc: str = "eval",
                  amp: bool = False, channels_last: bool = False) -> list[tuple]:
    """Predict the pairs `indices` of `pairs`.

    Returns (k, packed pred_a, packed pred_b, (decision prob a, decision prob b) | None, ungated packed masks |
    None) per pair; the decision of the two sides differs only for a single-image CoSegNet.
    """
    task = task_for(family)
    model.eval()
    out = []
    indices = list(indices)
    for start in tqdm(range(0, len(indices), batch_size), desc=desc, disable=not show_bars(progress),
                      leave=False):
        ks = indices[start:start + batch_size]
        with single_thread():
            items = [transform(pairs[k]) for k in ks]
        a = torch.stack([it["image_a"] for it in items]).to(device)
        b = torch.stack([it["image_b"] for it in items]).to(device)
        if channels_last:
            a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = task.predict(model, a, b, threshold=threshold)
        with single_thread():
            out += _finish_batch(ks, items, pred, threshold)
    return out


def _finish_batch(ks, items, pred, threshold: float) -> list[tuple]:
    prob_a, prob_b = pred.prob_a.float().cpu(), pred.prob_b.float().cpu()
    out = []
    for j, (k, it) in enumerate(zip(ks, items, strict=True)):
        pa = resize_to_original(prob_a[j], it["orig_size_a"], threshold=threshold)
        pb = resize_to_original(prob_b[j], it["orig_size_b"], threshold=threshold)
        if not pred.has_decision:
            out.append((k, _pack(pa), _pack(pb), None, None))
            continue
        # cosegnet §3.5: masks gated by the thresholded decision; the ungated masks are kept for diagnostics
        dps = (float(pred.decision_a[j]), float(pred.decision_b[j]))
        ga = pa if decision_gate(dps[0], threshold) else np.zeros_like(pa)
        gb = pb if decision_gate(dps[1], threshold) else np.zeros_like(pb)
        out.append((k, _pack(ga), _pack(gb), dps, (_pack(pa), _pack(pb))))
    return out


def score_pairs(model, family: str, pairs: Sequence, transform, device, dist: Dist | None = None,
                negative: bool = False, batch_size: int = 8, threshold: float = 0.5, progress: bool = False,
                desc: str = "eval", amp: bool = False, channels_last: bool = False) -> dict:
    """Score every pair of `pairs` (a PairSample sequence); `negative` pairs have empty ground truth.

    Returns PairScores.summary() plus n_pairs, empty_fraction (predicted masks with no foreground),
    ungated (P and J of CoSegNet's masks before the decision gate; absent without a decision network) and
    decision_accuracy (share of decisions that match the label, one per image side; None without a decision
    network).
    """
    dist = dist or Dist()
    if len(pairs) == 0:
        raise ValueError(f"no pairs to score for {desc}")
    local = predict_pairs(model, family, pairs, transform, device, range(dist.rank, len(pairs), dist.world),
                          batch_size=batch_size, threshold=threshold, progress=progress and dist.is_main,
                          desc=desc, amp=amp, channels_last=channels_last)
    gathered = sorted((p for part in dist.gather_objects(local) for p in part), key=lambda p: p[0])
    scores, ungated = PairScores(), PairScores()
    empty = 0
    correct = 0
    decisions = 0
    for k, packed_a, packed_b, dps, raw in gathered:
        sample = pairs[k]
        for s, (side, packed) in enumerate((("a", packed_a), ("b", packed_b))):
            pred = _unpack(packed)
            gt = np.asarray(sample[f"mask_{side}"], dtype=bool)
            group = str(sample.get(f"group_{side}", "all"))
            scores.add(pred, gt, group)
            empty += int(not pred.any())
            if raw is not None:
                ungated.add(_unpack(raw[s]), gt, group)
        for dp in dps or ():
            decisions += 1
            correct += int(decision_gate(dp, threshold) == (not negative))
    summary = scores.summary()
    summary["n_pairs"] = len(gathered)
    summary["empty_fraction"] = empty / (2 * len(gathered))
    summary["decision_accuracy"] = correct / decisions if decisions else None
    if len(ungated):  # what the mask decoder alone achieves, before the decision gate
        u = ungated.summary()
        summary["ungated"] = {"precision": u["precision"], "jaccard": u["jaccard"]}
    return summary


def evaluate_run(run_dir, data_root=None, dataset: str | None = None, max_pairs_per_group: int | None = None,
                 negative_pairs: int | None = None, seed: int = 0, batch_size: int = 8,
                 progress: bool = True, device: str | None = None) -> dict:
    """Score a trained run on every image of a dataset folder (by default the folder the run was trained on, as
    recorded in its config.json; the run's synthetic test set for a synthetic run).

    Positive pairs: every pair within every group (capped by `max_pairs_per_group`); negative pairs (as many as
    positive pairs, at most 1000 and at most as many as exist, unless `negative_pairs` says otherwise) for every
    model, so that the empty-mask fraction is comparable; decision accuracy for models with a decision network.
    A folder with one group has no negative pair: the report's `negative` is None and `negative_note` says why.
    Every image and mask is checked before the first prediction. Writes `evaluation_<name>.json` in the run dir
    and returns the report (with its `path`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    if negative_pairs is not None and negative_pairs < 0:
        raise ValueError(f"--negative-pairs must be >= 0, got {negative_pairs}")
    run_dir = Path(run_dir)
    if data_root is None and (run_dir / CONFIG_NAME).is_file():
        # a run trained on a folder is scored on that folder, not on the synthetic set
        data_root = read_json(run_dir / CONFIG_NAME).get("data_root")
        if data_root is not None and not Path(data_root).is_dir():
            raise FileNotFoundError(f"{run_dir} was trained on {data_root}, which no longer exists; pass the "
                                    "dataset's new location with --data-root")
    settings, model, dev = load_trained_model(run_dir, device=device)
    family = settings.model.family
    transform = eval_transform(settings, model)
    if data_root is None:
        data = build_run_data(settings, None)
        pos, neg, name, note = data.test_positive, data.test_negative, "synthetic", None
    else:
        pos, neg, name, note = _folder_pairs(dataset or settings.data.dataset, data_root, seed,
                                             max_pairs_per_group, negative_pairs)
    if len(pos) == 0:
        raise ValueError(f"{data_root or 'the synthetic test set'}: no positive pair to score (every group needs "
                         "at least 2 distinct images)")
    report = {
        "run_dir": str(run_dir),
        "experiment": settings.experiment,
        "data": name if data_root is None else str(Path(data_root).resolve()),
        "positive": score_pairs(model, family, pos, transform, dev, batch_size=batch_size, progress=progress,
                                desc="positive pairs"),
        "negative": None,
    }
    if neg is not None and len(neg):
        report["negative"] = score_pairs(model, family, neg, transform, dev, negative=True,
                                         batch_size=batch_size, progress=progress, desc="negative pairs")
    if note is not None:
        report["negative_note"] = note
    path = run_dir / f"evaluation_{name}.json"
    write_json(path, report)
    report["path"] = str(path)
    return json.loads(json.dumps(report))


def _folder_pairs(dataset: str, data_root, seed: int, max_pairs_per_group: int | None,
                  negative_pairs: int | None) -> tuple:
    """(positive pairs, negative pairs or None, the folder's name, a note when no negative pair exists) over every
    image of a dataset folder, every image and mask checked first."""
    note = None
    ds = CachedDataset(load_dataset(dataset, data_root))
    check_run_items(ds, range(len(ds)), data_root)
    pos = RealPairs(ds, draw_positive(ds, None, seed=seed, max_pairs_per_group=max_pairs_per_group))
    available = count_negative_pairs(ds)
    if negative_pairs is None:
        n_neg = min(len(pos), 1000, available)
    elif negative_pairs > available:
        raise ValueError(f"--negative-pairs {negative_pairs}: only {available} exist among the {len(ds)} "
                         f"images of {data_root}; pass --negative-pairs {available} or fewer")
    else:
        n_neg = negative_pairs
    if available == 0:
        n_groups = len({ds.group_of(i) for i in range(len(ds))})
        note = ("no negative pair can be formed: " +
                ("one group" if n_groups == 1 else "every image shares a group with every other"))
    neg = RealPairs(ds, draw_negative(ds, None, n=n_neg, seed=seed), negative=True) if n_neg else None
    return pos, neg, Path(data_root).resolve().name, note
