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
from cosegkit.metrics import PairScores, jaccard, precision
from cosegkit.models.cosegnet import decision_gate
from cosegkit.tasks import build_run_data, task_for
from cosegkit.train.data import CachedDataset, check_run_items, single_thread
from cosegkit.train.distributed import Dist
from cosegkit.train.modeling import eval_transform, load_trained_model, run_precision
from cosegkit.train.progress import show_bars
from cosegkit.train.records import CONFIG_NAME, data_root_of_run, read_json, write_json

__all__ = ["predict_pairs", "score_pairs", "evaluate_run", "select_thresholds", "decision_threshold_candidates",
           "decision_probabilities", "choose_decision_threshold",
           "THRESHOLD_GRID", "run_thresholds", "eval_views"]

# candidate thresholds for threshold_selection="val": 0.05, 0.10, ..., 0.95
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _pack(mask: np.ndarray) -> tuple:
    return mask.shape, np.packbits(mask, axis=None)


def _unpack(packed: tuple) -> np.ndarray:
    shape, bits = packed
    return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)


@torch.no_grad()
def predict_pairs(model, family: str, pairs: Sequence, transform, device, indices: Sequence[int],
                  batch_size: int = 8, threshold: float = 0.5, progress: bool = False, desc: str = "eval",
                  amp: bool = False, channels_last: bool = False,
                  decision_threshold: float | None = None, views: dict | None = None) -> list[tuple]:
    """Predict the pairs `indices` of `pairs`: masks thresholded at `threshold`, decisions at
    `decision_threshold` (None: `threshold`); `views`: the test-time views (:func:`eval_views`), None: the pair as
    it is.

    Returns (k, packed pred_a, packed pred_b, (decision prob a, decision prob b) | None, ungated packed masks |
    None) per pair; the decision of the two sides differs only for a single-image CoSegNet.
    """
    decision_threshold = threshold if decision_threshold is None else decision_threshold
    out = []
    batches = _predicted_batches(model, family, pairs, transform, device, indices, batch_size, amp, channels_last,
                                 decision_threshold, tqdm_args={"desc": desc, "disable": not show_bars(progress)},
                                 views=views)
    for ks, items, pred in batches:
        with single_thread():
            out += _finish_batch(ks, items, pred, threshold, decision_threshold)
    return out


@torch.no_grad()
def _predicted_batches(model, family: str, pairs: Sequence, transform, device, indices: Sequence[int],
                       batch_size: int, amp: bool, channels_last: bool, decision_threshold: float = 0.5,
                       tqdm_args: dict | None = None, views: dict | None = None):
    """Yields (pair indices, transformed items, the task's prediction over `views`, Task.predict_views) per batch of
    the pairs `indices`."""
    task = task_for(family)
    model.eval()
    indices = list(indices)
    tqdm_args = tqdm_args or {"disable": True}
    for start in tqdm(range(0, len(indices), batch_size), leave=False, **tqdm_args):
        ks = indices[start:start + batch_size]
        with single_thread():
            items = [transform(pairs[k]) for k in ks]
        a = torch.stack([it["image_a"] for it in items]).to(device)
        b = torch.stack([it["image_b"] for it in items]).to(device)
        if channels_last:
            a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = task.predict_views(model, a, b, threshold=decision_threshold, **(views or {}))
        yield ks, items, pred


def _finish_batch(ks, items, pred, threshold: float, decision_threshold: float) -> list[tuple]:
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
        ga = pa if decision_gate(dps[0], decision_threshold) else np.zeros_like(pa)
        gb = pb if decision_gate(dps[1], decision_threshold) else np.zeros_like(pb)
        out.append((k, _pack(ga), _pack(gb), dps, (_pack(pa), _pack(pb))))
    return out


def score_pairs(model, family: str, pairs: Sequence, transform, device, dist: Dist | None = None,
                negative: bool = False, batch_size: int = 8, threshold: float = 0.5, progress: bool = False,
                desc: str = "eval", amp: bool = False, channels_last: bool = False,
                decision_threshold: float | None = None, views: dict | None = None) -> dict:
    """Score every pair of `pairs` (a PairSample sequence); `negative` pairs have empty ground truth. Masks are
    thresholded at `threshold`, a decision network's decisions at `decision_threshold` (None: `threshold`), each
    pair predicted over `views` (:func:`eval_views`; None: the pair as it is).

    Returns PairScores.summary() plus n_pairs, empty_fraction (predicted masks with no foreground),
    ungated (P and J of CoSegNet's masks before the decision gate; absent without a decision network) and
    decision_accuracy (share of decisions that match the label, one per image side; None without a decision
    network).
    """
    dist = dist or Dist()
    if len(pairs) == 0:
        raise ValueError(f"no pairs to score for {desc}")
    decision_threshold = threshold if decision_threshold is None else decision_threshold
    local = predict_pairs(model, family, pairs, transform, device, range(dist.rank, len(pairs), dist.world),
                          batch_size=batch_size, threshold=threshold, progress=progress and dist.is_main,
                          desc=desc, amp=amp, channels_last=channels_last, decision_threshold=decision_threshold,
                          views=views)
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
            correct += int(decision_gate(dp, decision_threshold) == (not negative))
    summary = scores.summary()
    summary["n_pairs"] = len(gathered)
    summary["empty_fraction"] = empty / (2 * len(gathered))
    summary["decision_accuracy"] = correct / decisions if decisions else None
    if len(ungated):  # what the mask decoder alone achieves, before the decision gate
        u = ungated.summary()
        summary["ungated"] = {"precision": u["precision"], "jaccard": u["jaccard"]}
    return summary


def _upsample(prob: torch.Tensor, size) -> np.ndarray:
    """The bilinear map that `resize_to_original` thresholds (same interpolation), as float numpy: `up > t`
    equals `resize_to_original(prob, size, threshold=t)` (tested)."""
    h, w = (int(v) for v in size)
    return torch.nn.functional.interpolate(prob.float()[None, None], size=(h, w), mode="bilinear",
                                           align_corners=False)[0, 0].numpy()


def _closest_to_half_argmax(values: np.ndarray, grid: Sequence[float]) -> int:
    """Index of the largest value; among ties (within 1e-12) the grid point closest to 0.5 (the usual default)."""
    best = values.max()
    ties = [k for k, v in enumerate(values) if v >= best - 1e-12]
    return min(ties, key=lambda k: (abs(grid[k] - 0.5), grid[k]))


def _decision_argmax(acc_pos: np.ndarray, acc_neg: np.ndarray, candidates: Sequence[float]) -> int:
    """Index of the decision threshold with the highest balanced accuracy; among ties (within 1e-12) the one
    with the highest accuracy on positive pairs, then the one closest to 0.5. Why positive pairs first: a
    decision network that cannot tell the classes apart (a single-image model, or one trained too briefly)
    ties "yes to every pair" with "no to every pair" at 0.5, and "no" would blank every mask (measured: the
    synthetic single-image CoSegNet at 0891ccc, gated J 0.000 against 0.180 before the gate)."""
    balanced = (acc_pos + acc_neg) / 2
    ties = [k for k, v in enumerate(balanced) if v >= balanced.max() - 1e-12]
    return min(ties, key=lambda k: (-acc_pos[k], abs(candidates[k] - 0.5), candidates[k]))


@torch.no_grad()
def _val_statistics(model, family: str, pairs: Sequence, transform, device, indices, grid, batch_size: int,
                    amp: bool, channels_last: bool, views: dict | None = None
                    ) -> tuple[list[list[tuple[float, float]]], list[float]]:
    """Per image of the pairs `indices`: its (Jaccard, Precision) at every grid threshold (ungated masks, mapped
    back to the original size as evaluation does); and every decision probability (both sides of each pair)."""
    per_image, decisions = [], []
    for ks, items, pred in _predicted_batches(model, family, pairs, transform, device, indices, batch_size, amp,
                                              channels_last, views=views):
        prob_a, prob_b = pred.prob_a.float().cpu(), pred.prob_b.float().cpu()
        with single_thread():
            for j, (k, it) in enumerate(zip(ks, items, strict=True)):
                for side, prob in (("a", prob_a[j]), ("b", prob_b[j])):
                    gt = np.asarray(pairs[k][f"mask_{side}"], dtype=bool)
                    up = _upsample(prob, it[f"orig_size_{side}"])  # resized once, thresholded per grid point
                    per_image.append([(jaccard(up > t, gt), precision(up > t, gt)) for t in grid])
                if pred.has_decision:
                    decisions += [float(pred.decision_a[j]), float(pred.decision_b[j])]
    return per_image, decisions


@torch.no_grad()
def decision_probabilities(model, family: str, pairs: Sequence, transform, device, batch_size: int = 8,
                           amp: bool = False, channels_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The decision probabilities (decision_a, decision_b), one per pair each, of a model with a decision network,
    computed from the decision alone: each image's code (CoSegNet: its metric embedding fs, cosegnet §3.2) once,
    then the decision network (§3.3) on every pair's two codes; no mask decoder runs after the metric layer. The
    numbers are those of the task's ``predict`` on the pairs (tested). Pairs of a dataset (:class:`RealPairs`)
    share the codes of their images, so N pairs over M images cost M encoder passes; other pair sets cost two
    per pair (one transform). Under torchrun every rank scores every pair (cheap), so all ranks agree."""
    task = task_for(family)
    if not task.has_decision:
        raise ValueError(f"a {family} model has no decision network")
    model.eval()
    if isinstance(pairs, RealPairs):
        images = sorted({i for pair in pairs.pairs for i in pair})
        slot = {i: n for n, i in enumerate(images)}
        singles = RealPairs(pairs.dataset, [(i, i) for i in images])
        index_a = [slot[a] for a, _ in pairs.pairs]
        index_b = [slot[b] for _, b in pairs.pairs]
        n_images, items = len(images), (transform(singles[n]) for n in range(len(images)))
        sides = ("image_a",)
    else:  # each pair transformed once, both its images encoded
        index_a, index_b = list(range(0, 2 * len(pairs), 2)), list(range(1, 2 * len(pairs), 2))
        n_images, items = 2 * len(pairs), (transform(pairs[k]) for k in range(len(pairs)))
        sides = ("image_a", "image_b")
    if not len(index_a):
        return np.zeros(0), np.zeros(0)
    per_item = batch_size // len(sides) or 1
    codes, done = [], 0
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        while done < n_images:
            with single_thread():
                batch = [it[side] for _, it in zip(range(per_item), items, strict=False) for side in sides]
            x = torch.stack(batch).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            codes.append(task.decision_codes(model, x))
            done += len(x)
        codes = torch.cat(codes)
        prob_a, prob_b = task.decide(model, codes[index_a], codes[index_b])
    return prob_a.float().numpy(), prob_b.float().numpy()


def decision_threshold_candidates(positive_probs, negative_probs, grid: Sequence[float] = THRESHOLD_GRID
                                  ) -> list[float]:
    """Decision thresholds to try: the grid and every midpoint between consecutive distinct validation
    probabilities (rounded to 1e-6), i.e. every distinct way of splitting the validation pairs, as an ROC curve
    does. Why not the grid alone: a briefly trained decision network puts every pair within a few hundredths of
    its prior, so no 0.05-grid point falls between its positive and negative pairs and the best grid point is
    "all yes" or "all no" (measured on PASCAL-VOC, cpu profile, Table 6 rows: balanced accuracy 0.5, every
    mask gated off)."""
    probs = np.unique(np.concatenate([np.asarray(positive_probs, float), np.asarray(negative_probs, float)]))
    mids = np.round((probs[1:] + probs[:-1]) / 2, 6)
    return sorted({float(t) for t in grid} | {float(t) for t in mids if 0.0 < t < 1.0})


def choose_decision_threshold(positive_probs, negative_probs, grid: Sequence[float] = THRESHOLD_GRID
                              ) -> tuple[float, dict]:
    """(threshold, {"positive", "negative"} accuracies there): the candidate
    (:func:`decision_threshold_candidates`) with the highest balanced accuracy on these decision probabilities of
    positive and negative pairs, ties as :func:`_decision_argmax` breaks them."""
    p, n = np.asarray(positive_probs, float), np.asarray(negative_probs, float)
    candidates = decision_threshold_candidates(p, n, grid)
    acc_pos = np.array([(p > t).mean() for t in candidates])
    acc_neg = np.array([(n <= t).mean() for t in candidates])
    d = _decision_argmax(acc_pos, acc_neg, candidates)
    return candidates[d], {"positive": float(acc_pos[d]), "negative": float(acc_neg[d])}


def _best_balanced_accuracy(values: np.ndarray, is_positive: np.ndarray) -> np.ndarray:
    """The highest balanced accuracy any threshold reaches, per row of `is_positive` (labels, (R, N) or (N,)) on
    the decision probabilities `values` (N,): every split of the sorted distinct values is tried, "all yes" and
    "all no" (balanced accuracy 0.5) included, as :func:`decision_threshold_candidates` does."""
    order = np.argsort(-values, kind="stable")
    v = values[order]
    y = np.atleast_2d(is_positive)[:, order].astype(float)
    n_pos = y.sum(axis=1, keepdims=True)
    n_neg = y.shape[1] - n_pos
    tp, fp = np.cumsum(y, axis=1), np.cumsum(1.0 - y, axis=1)
    boundary = np.r_[v[1:] < v[:-1], True]  # accept the values above a split only where the next value differs
    balanced = 0.5 + 0.5 * (tp / n_pos - fp / n_neg)
    return np.maximum(balanced[:, boundary].max(axis=1), 0.5)


def decision_chance_test(positive_probs, negative_probs, n_permutations: int = 1000, seed: int = 0) -> dict:
    """Is the decision better than chance on these validation pairs? A max-statistic permutation test: the best
    balanced accuracy over every threshold (what :func:`choose_decision_threshold` maximises) against the best that
    the same search finds when the positive / negative labels are shuffled among the same probabilities
    (`n_permutations` times, numpy seed `seed`). Searching ~1000 thresholds finds a balanced accuracy above 0.5
    even for a decision network that cannot tell the classes apart (a single-image CoSegNet, whose decision does
    not see the partner); this says how far above 0.5 chance reaches. Returns dict(balanced_accuracy (observed),
    chance_95 (95th percentile of the shuffled maxima), p_value ((1 + shuffles at least as good) / (1 + n)),
    permutations)."""
    p, n = np.asarray(positive_probs, float), np.asarray(negative_probs, float)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    values = np.concatenate([p, n])
    labels = np.r_[np.ones(len(p), bool), np.zeros(len(n), bool)]
    observed = float(_best_balanced_accuracy(values, labels)[0])
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(labels) for _ in range(n_permutations)])
    chance = np.concatenate([_best_balanced_accuracy(values, part) for part in np.array_split(shuffled, 10)])
    return {"balanced_accuracy": observed, "chance_95": float(np.quantile(chance, 0.95)),
            "p_value": float((1 + np.sum(chance >= observed - 1e-12)) / (1 + n_permutations)),
            "permutations": int(n_permutations)}


# The gate's decision threshold when validation cannot tell the decision from chance: every pair accepted
# (decision_gate is "probability > threshold").
OPEN_GATE = 0.0


def apply_chance_test(p, n, threshold: float, accuracies: dict, n_permutations: int, alpha: float = 0.05
                      ) -> tuple[float, dict, dict]:
    """(threshold, {"positive", "negative"} accuracies, test report) after :func:`decision_chance_test`: when
    the best validation balanced accuracy is not above what shuffled labels reach (p-value > `alpha`), the gate is
    opened (``OPEN_GATE``: every pair accepted, the masks left alone), since a threshold fitted to chance would
    blank masks at random; otherwise the chosen threshold stands. The report keeps the threshold the search chose
    (``fitted_threshold``) and whether the gate was opened (``gate_opened``)."""
    test = decision_chance_test(p, n, n_permutations)
    test.update(alpha=alpha, fitted_threshold=threshold, gate_opened=test["p_value"] > alpha)
    if not test["gate_opened"]:
        return threshold, accuracies, test
    p, n = np.asarray(p, float), np.asarray(n, float)
    return OPEN_GATE, {"positive": float((p > OPEN_GATE).mean()), "negative": float((n <= OPEN_GATE).mean())}, test


def _checked_selection_inputs(grid, positive, decision_pairs) -> list[float]:
    """The grid as floats, after checking `select_thresholds`' inputs (before any pair is scored)."""
    grid = [float(t) for t in grid]
    if not grid or min(grid) <= 0.0 or max(grid) >= 1.0:
        raise ValueError(f"threshold grid must hold values in (0, 1), got {grid}")
    if len(positive) == 0:
        raise ValueError("no validation pair to choose thresholds on")
    if decision_pairs is not None and (not len(decision_pairs[0]) or not len(decision_pairs[1])):
        raise ValueError(f"decision_pairs needs positive and negative pairs, got {len(decision_pairs[0])} and "
                         f"{len(decision_pairs[1])}")
    return grid


def _decision_choice(p, n, grid: Sequence[float], chance_permutations: int) -> dict:
    """select_thresholds' decision keys: the threshold (:func:`choose_decision_threshold`), its accuracies, and with
    ``chance_permutations`` > 0 the chance test's report (:func:`apply_chance_test`, which may open the gate)."""
    threshold, accuracies = choose_decision_threshold(p, n, grid)
    if chance_permutations <= 0:
        return {"decision": threshold, "val_decision_accuracy": accuracies}
    threshold, accuracies, report = apply_chance_test(p, n, threshold, accuracies, chance_permutations)
    return {"decision": threshold, "val_decision_accuracy": accuracies, "decision_chance": report}


def select_thresholds(model, family: str, positive: Sequence, negative: Sequence | None, transform, device,
                      dist: Dist | None = None, grid: Sequence[float] = THRESHOLD_GRID, batch_size: int = 8,
                      amp: bool = False, channels_last: bool = False,
                      decision_pairs: tuple[Sequence, Sequence] | None = None,
                      chance_permutations: int = 0, views: dict | None = None) -> dict:
    """Thresholds chosen on the validation split (``threshold_selection="val"``).

    Neither paper states its thresholds: IS-Triplet (§4.1.3) and CoSegNet (§4) threshold probability maps, and
    CoSegNet §3.3 says only "we threshold the probability" of the decision network. Choosing 0.5 leaves a model
    whose foreground probabilities sit below 0.5 (a Focal loss with alpha = 0.25 weighting the foreground, or
    CoSegNet-base trained on null masks for half its pairs) with empty masks, so we choose both on validation:

    * mask: the grid threshold with the highest mean Jaccard over the images of the positive pairs `positive`
      (before any decision gate);
    * decision (models with a decision network, when `negative` pairs are given): the threshold, among the grid
      and the midpoints of the validation probabilities (:func:`decision_threshold_candidates`), with the
      highest balanced accuracy, the mean of the accuracies on positive and on negative pairs (the two classes
      that CoSegNet's Table 1 and its negative-pair column score separately). With ``decision_pairs`` (positive,
      negative), the decision is chosen on those pairs instead, scored by the decision alone
      (:func:`decision_probabilities`, ``data.decision_val_pairs``), and ``negative`` is not needed.
    * ``chance_permutations`` > 0: the gate opens unless that threshold beats chance (:func:`apply_chance_test`).
    * masks are predicted over ``views`` (:func:`eval_views`; None: the pair as it is), as the test predicts them.

    Ties go to the grid point closest to 0.5; decision ties first to the higher accuracy on positive pairs (an
    uninformative decision network then says "yes" and leaves the masks alone). Returns dict(selected_on="val",
    mask, decision (None without a decision network), val_jaccard and val_precision (at the chosen mask threshold),
    val_jaccard_at_0.5, val_decision_accuracy ({"positive", "negative"} at the chosen decision threshold, or None),
    decision_pairs ({"positive", "negative"}: how many validation pairs the decision was chosen on, or None)).
    Under torchrun each rank scores a strided share and the per-image numbers are gathered, so every rank returns
    the same thresholds.
    """
    dist = dist or Dist()
    grid = _checked_selection_inputs(grid, positive, decision_pairs)

    def gather(pairs):
        local = _val_statistics(model, family, pairs, transform, device, range(dist.rank, len(pairs), dist.world),
                                grid, batch_size, amp, channels_last, views)
        parts = dist.gather_objects(local)
        return [r for p in parts for r in p[0]], [d for p in parts for d in p[1]]

    pos_scores, pos_dec = gather(positive)
    mean_j, mean_p = np.asarray(pos_scores, dtype=float).mean(axis=0).T  # (grid,) each
    k = _closest_to_half_argmax(mean_j, grid)
    half = min(range(len(grid)), key=lambda i: abs(grid[i] - 0.5))
    out = {"selected_on": "val", "mask": grid[k], "decision": None, "val_jaccard": float(mean_j[k]),
           "val_precision": float(mean_p[k]),
           "val_jaccard_at_0.5": float(mean_j[half]) if abs(grid[half] - 0.5) < 1e-9 else None,
           "val_decision_accuracy": None, "decision_pairs": None}
    if pos_dec and decision_pairs is not None:
        p, n = (np.concatenate(decision_probabilities(model, family, pairs, transform, device, batch_size, amp,
                                                      channels_last)) for pairs in decision_pairs)
        counted = decision_pairs
    elif pos_dec and negative is not None and len(negative):
        p, n = np.asarray(pos_dec), np.asarray(gather(negative)[1])
        counted = (positive, negative)
    else:
        return out
    out["decision_pairs"] = {"positive": len(counted[0]), "negative": len(counted[1])}
    return {**out, **_decision_choice(p, n, grid, chance_permutations)}


def eval_views(settings) -> dict:
    """The test-time views of a run's settings, as Task.predict_views takes them (``eval_scales``, ``eval_hflip``):
    the chosen thresholds, the test, ``evaluate``, ``predict`` and the notebooks' inference use them."""
    return {"scales": tuple(settings.eval_scales), "hflip": bool(settings.eval_hflip)}


def run_thresholds(run_dir, settings) -> tuple[float, float]:
    """(mask threshold, decision threshold) a finished run's predictions use: the ones its training chose on
    validation (results.json "thresholds" with selected_on "val"), else the settings' eval_threshold for both."""
    path = Path(run_dir) / "results.json"
    chosen = read_json(path).get("thresholds") if path.is_file() else None
    if not chosen or chosen.get("selected_on") != "val":
        return float(settings.eval_threshold), float(settings.eval_threshold)
    mask = float(chosen["mask"])
    decision = chosen.get("decision")
    return mask, float(mask if decision is None else decision)


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
        data_root = data_root_of_run(run_dir)
        if data_root is not None and not Path(data_root).is_dir():
            raise FileNotFoundError(f"{run_dir} was trained on {data_root}, which no longer exists; pass the "
                                    "dataset's new location with --data-root")
    settings, model, dev = load_trained_model(run_dir, device=device)
    family = settings.model.family
    mask_t, decision_t = run_thresholds(run_dir, settings)
    amp, channels_last = run_precision(settings, dev)  # the arithmetic the run was tested in
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
        "thresholds": {"mask": mask_t, "decision": decision_t},
        "positive": score_pairs(model, family, pos, transform, dev, batch_size=batch_size, progress=progress,
                                desc="positive pairs", threshold=mask_t, decision_threshold=decision_t,
                                amp=amp, channels_last=channels_last, views=eval_views(settings)),
        "negative": None,
    }
    if neg is not None and len(neg):
        report["negative"] = score_pairs(model, family, neg, transform, dev, negative=True,
                                         batch_size=batch_size, progress=progress, desc="negative pairs",
                                         threshold=mask_t, decision_threshold=decision_t,
                                         amp=amp, channels_last=channels_last, views=eval_views(settings))
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
