"""The notebooks' tables: runs' numbers collected into frames, aggregated over seeds, compared with a baseline,
and assembled beside the papers' numbers into the tables that ``results/<profile>/tables/`` holds.

``report.py`` writes a frame (CSV + Markdown with its provenance caption); this module says what goes in each
table. Every ``write_*`` function builds one named table, writes it under ``<out>/tables/`` and returns a
:class:`WrittenTable`. No function here trains or evaluates a model: the notebooks pass in the runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import adjusted_rand_score

from cosegkit import paper_numbers
from cosegkit.cluster import mean_shift
from cosegkit.metrics import jaccard
from cosegkit.report import Provenance, mean_ci95, not_run_message, pair_bootstrap_ci95, write_table
from cosegkit.toy import class_gap
from cosegkit.train.records import format_commit

__all__ = [
    "SINGLE_IMAGE_LABEL",
    "WrittenTable",
    "runs_frame",
    "history_frame",
    "aggregate_seeds",
    "add_gain_over_baseline",
    "image_size_of",
    "pair_resampled_ci95",
    "size_mix_note",
    "provenance_for",
    "every_object_saliency",
    "write_toy_losses_table",
    "write_is_triplet_table1",
    "write_is_triplet_table2",
    "write_cosegnet_table1",
    "write_cosegnet_table2",
    "write_cosegnet_cross_dataset_table",
    "write_cosegnet_table5",
    "write_cosegnet_table6",
    "write_cluster_quality",
    "write_pixel_dml_comparison",
    "is_triplet_effect_line",
    "write_synthetic_pair_benchmark",
]

SINGLE_IMAGE_LABEL = "single-image (no pair information)"
_NAN = float("nan")


class WrittenTable(NamedTuple):
    """A table as written: its frame (the CSV) and the path of its Markdown (title, table, provenance, notes)."""

    frame: pd.DataFrame
    markdown: Path


def _write(frame: pd.DataFrame, out, name: str, title: str, provenance: Provenance | None,
           notes: str = "") -> WrittenTable:
    return WrittenTable(frame, write_table(frame, out, name, title, provenance, notes=notes))


PAIRS_CI_NOTE = ("The 95% CIs marked (pairs) resample the test pairs within each group (2000 bootstrap draws, "
                 "paired with the single-image run for ΔJ): they say how much another draw of test pairs could "
                 "move a number, not another seed or split.")

# --- statistics over runs ---------------------------------------------------------------------------------------


def _validation_scores(result) -> tuple[float, float]:
    """(val P in %, val J) at the mask threshold the test used: the one chosen on validation where it was chosen
    there, else the last epoch's validation scores (at the fixed threshold, metrics.csv)."""
    chosen = result.thresholds or {}
    if chosen.get("selected_on") == "val" and chosen.get("val_precision") is not None:
        return 100 * float(chosen["val_precision"]), float(chosen["val_jaccard"])
    last = result.history[-1] if result.history else {}
    return 100 * float(last.get("val_precision", math.nan)), float(last.get("val_jaccard", math.nan))


def _jaccard_per_image(positive: dict) -> dict | None:
    """{group: Jaccard of each test image, as scored} of a run's positive pairs; None for a run recorded before
    results.json kept them."""
    groups = positive.get("per_group") or {}
    if not groups or any("jaccard_per_image" not in g for g in groups.values()):
        return None
    return {name: g["jaccard_per_image"] for name, g in groups.items()}


def pair_resampled_ci95(runs: pd.DataFrame, experiment: str, baseline: str | None = None) -> str | float:
    """"low–high": the 95 % interval of `experiment`'s test J over its test pairs (:func:`pair_bootstrap_ci95`),
    or of its paired gain over `baseline` on the same pairs; nan (printed "–") unless each experiment has exactly
    one run with per-image scores (with several seeds, the seed CI is the one to read)."""
    def one(name):
        rows = runs[runs.experiment == name]
        if "test_J_per_group" not in rows or len(rows) != 1 or rows.test_J_per_group.iloc[0] is None:
            return None
        return rows.test_J_per_group.iloc[0]

    scores, base = one(experiment), one(baseline) if baseline is not None else None
    if scores is None or (baseline is not None and base is None):
        return math.nan
    low, high = pair_bootstrap_ci95(scores, base)
    return f"{low:+.3f} to {high:+.3f}" if baseline is not None else f"{low:.3f}–{high:.3f}"


def runs_frame(results) -> pd.DataFrame:
    """One row per run: test Precision (%) / Jaccard on positive pairs, validation scores at the test's mask
    threshold, outlier behaviour, time, settings, and the test Jaccard of each image by group
    (``test_J_per_group``, None for older runs)."""
    rows = []
    for result in results:
        negative = (result.test or {}).get("negative") or {}
        positive = (result.test or {}).get("positive") or {}
        val_p, val_j = _validation_scores(result)
        rows.append({
            "experiment": result.experiment,
            "seed": result.settings.seed,
            "test_P": 100 * result.precision,
            "test_J": result.jaccard,
            "val_P": val_p,
            "val_J": val_j,
            "neg_empty_fraction": negative.get("empty_fraction", math.nan),
            "decision_accuracy": negative.get("decision_accuracy") if negative.get("decision_accuracy")
            is not None else math.nan,
            "positive_decision_accuracy": positive.get("decision_accuracy") if positive.get("decision_accuracy")
            is not None else math.nan,
            "epochs": len(result.history),
            "image_size": result.settings.data.image_size,
            "wall_time_s": result.wall_time_s,
            "test_J_per_group": _jaccard_per_image(positive),
        })
    return pd.DataFrame(rows)


def history_frame(result) -> pd.DataFrame:
    """The run's per-epoch records (the metrics.csv columns) as a DataFrame."""
    frame = pd.DataFrame(result.history)
    return frame.rename(columns={"loss": "train_loss"})


def aggregate_seeds(runs: pd.DataFrame, columns=("test_P", "test_J", "val_P", "val_J")) -> pd.DataFrame:
    """Per experiment: mean and 95% CI half-width of each column over seeds, seed count and mean time."""
    rows = []
    for experiment, group in runs.groupby("experiment", sort=False):
        row = {"experiment": experiment, "n_seeds": len(group), "train_min": group.wall_time_s.mean() / 60}
        for column in columns:
            mean, half = mean_ci95(group[column])
            row[column] = mean
            row[f"{column}_ci95"] = half
        rows.append(row)
    return pd.DataFrame(rows)


def add_gain_over_baseline(runs: pd.DataFrame, baseline: str, column: str = "test_J") -> pd.DataFrame:
    """Per experiment: mean gain of ``column`` over ``baseline`` and its 95% CI, paired by seed.

    Seeds present in both are paired (same seed, same split and data order); the CI is the Student-t interval of
    the per-seed differences, so it is nan with one seed. The baseline's own row is nan too (shown as "–"): it
    is the reference, not a comparison, and a printed 0.000 would read as a collapsed score.
    """
    base = runs[runs.experiment == baseline].set_index("seed")[column]
    if base.empty:
        raise ValueError(f"baseline experiment {baseline!r} has no runs; experiments: {sorted(runs.experiment)}")
    rows = []
    for experiment, group in runs.groupby("experiment", sort=False):
        paired = group.set_index("seed")[column].reindex(base.index).dropna()
        if paired.empty:
            raise ValueError(f"{experiment!r} shares no seed with baseline {baseline!r}")
        diffs = (paired - base.loc[paired.index]).to_numpy()
        mean, half = (math.nan, math.nan) if experiment == baseline else mean_ci95(diffs)
        rows.append({"experiment": experiment, f"gain_{column}": mean, f"gain_{column}_ci95": half})
    return pd.DataFrame(rows)


def _by_experiment(runs: pd.DataFrame, baseline: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed aggregates and gains over ``baseline``, both indexed by experiment."""
    agg = aggregate_seeds(runs).set_index("experiment")
    gain = add_gain_over_baseline(runs, baseline).set_index("experiment")
    return agg, gain


def image_size_of(runs: pd.DataFrame, experiment: str) -> int:
    """The image side (px) the runs of `experiment` trained at; ValueError if its seeds disagree."""
    sizes = sorted(set(runs.loc[runs.experiment == experiment, "image_size"]))
    if len(sizes) != 1:
        raise ValueError(f"{experiment!r}: expected its runs at one image size, found {sizes or 'no run'}")
    return int(sizes[0])


def size_mix_note(runs: pd.DataFrame, experiments, baseline: str) -> str:
    """A sentence naming the rows whose ΔJ over `baseline` also includes a change of image size ('' if none):
    a profile may train rows at different sizes (the `cpu` profile does, for its budget)."""
    base = image_size_of(runs, baseline)
    other = {}
    for name in experiments:
        size = image_size_of(runs, name)
        if size != base:
            other.setdefault(size, []).append(name)
    if not other:
        return ""
    listed = "; ".join(f"{', '.join(names)} at {size} px" for size, names in sorted(other.items()))
    return (f" The single-image baseline ({baseline}) trained at {base} px and {listed}: their ΔJ also includes "
            "the change of image size (column 'ours px').")


def _run_commit(result) -> str:
    return format_commit(json.loads((result.run_dir / "config.json").read_text()).get("git"))


def provenance_for(results, dataset: str, profile: str) -> Provenance:
    """Provenance of a set of runs: profile, dataset, image size, seeds, the commit(s) that trained them and
    their summed wall time."""
    results = list(results)
    if not results:
        raise ValueError("provenance_for() needs at least one run")
    commits = sorted({_run_commit(r) for r in results})
    sizes = sorted({r.settings.data.image_size for r in results})
    seeds = tuple(sorted({r.settings.seed for r in results}))
    wall = float(np.sum([r.wall_time_s for r in results])) if results else None
    return Provenance(profile=profile, dataset=dataset, image_size=sizes[0] if len(sizes) == 1 else tuple(sizes),
                      seeds=seeds, commit=", ".join(commits), wall_time_s=wall)


# --- notebook 00: the data -------------------------------------------------------------------------------------


def every_object_saliency(synthetic) -> pd.DataFrame:
    """Jaccard of predicting every object of an image on the positive images of a SyntheticCoseg set: what
    single-image saliency would score (low, since only the object shared with the partner is foreground)."""
    rows = []
    for i in range(len(synthetic)):
        sample = synthetic[i]
        if sample["label"] == 1:
            for side in ("a", "b"):
                rows.append(jaccard(sample[f"objects_{side}"], sample[f"mask_{side}"]))
    return pd.DataFrame({"statistic": ["positive images", "mean Jaccard of 'every object'", "max"],
                         "value": [len(rows), sum(rows) / len(rows), max(rows)]})


# --- notebook 01: toy losses -----------------------------------------------------------------------------------


def write_toy_losses_table(histories: dict, points: np.ndarray, labels: np.ndarray, out, seed: int) -> WrittenTable:
    """Each toy loss's effect on 2-D points (``histories``: loss -> [(step, points, loss)] from
    ``cosegkit.toy.optimise_points``): loss, class-mean distance and mean-shift ARI before and after."""
    summary = pd.DataFrame([
        {"loss": name, "first loss": h[0][2], "last loss": h[-1][2],
         "class-mean distance before": class_gap(points, labels),
         "class-mean distance after": class_gap(h[-1][1], labels),
         "mean-shift ARI after": adjusted_rand_score(labels, mean_shift(torch.tensor(h[-1][1]), bandwidth=0.5).numpy())}
        for name, h in histories.items()
    ])
    return _write(summary, out, "01_toy_losses", "Toy 2-D embeddings: each loss's effect (gradient descent on points)",
                  None, notes=f"Deterministic toy problem (seed {seed}); no dataset.")


# --- notebook 02: IS-Triplet -----------------------------------------------------------------------------------

_SEG_NAMES = {"dice": "Dice", "ce": "CE", "focal": "Focal"}


def write_is_triplet_table2(runs: pd.DataFrame, out, dataset_name: str, provenance: Provenance) -> WrittenTable:
    """IS-Triplet Table 2: Dice, CE and Focal, each with the original head, with the embedding head + IS-Triplet
    (the paper's two networks) and with the embedding head alone (ours), beside the paper's numbers."""
    agg, gain = _by_experiment(runs, "unet-single-image")
    paper2 = paper_numbers.is_triplet_table2()
    # (suffix, network label, paper row: with IS-Triplet or not, None = not in the paper)
    variants = (("", "Gong et al. (Fig. 1a, original head)", False),
                ("-istriplet", "modified framework (Fig. 1b, embedding head)", True),
                ("-embedding", "ours: embedding head (Fig. 1b), no IS-Triplet", None))
    rows = []
    for seg in ("dice", "ce", "focal"):
        for suffix, network, with_is in variants:
            name = f"unet-{seg}{suffix}"
            paper_row = (paper2[(paper2.seg_loss == _SEG_NAMES[seg]) & (paper2.is_triplet == with_is)].iloc[0]
                         if with_is is not None else None)
            rows.append({
                "network": network, "loss": _SEG_NAMES[seg] + (" + IS-Triplet" if with_is else ""),
                "ours px": image_size_of(runs, name),
                "ours val P": agg.loc[name, "val_P"], "ours val J": agg.loc[name, "val_J"],
                "ours test P": agg.loc[name, "test_P"], "ours test J": agg.loc[name, "test_J"],
                "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
                "ΔJ 95% CI": gain.loc[name, "gain_test_J_ci95"],
                "paper val P": _NAN if paper_row is None else paper_row.val_P,
                "paper val J": _NAN if paper_row is None else paper_row.val_J,
                "paper test P": _NAN if paper_row is None else paper_row.test_P,
                "paper test J": _NAN if paper_row is None else paper_row.test_J,
            })
    rows.append({"network": "original head (Fig. 1a)", "loss": SINGLE_IMAGE_LABEL,
                 "ours px": image_size_of(runs, "unet-single-image"),
                 "ours val P": agg.loc["unet-single-image", "val_P"],
                 "ours val J": agg.loc["unet-single-image", "val_J"],
                 "ours test P": agg.loc["unet-single-image", "test_P"],
                 "ours test J": agg.loc["unet-single-image", "test_J"], "ΔJ vs single-image": _NAN,
                 "ΔJ 95% CI": _NAN, "paper val P": _NAN, "paper val J": _NAN, "paper test P": _NAN,
                 "paper test J": _NAN})
    where = (f"ours: train/val/test on {dataset_name}; paper: train/val on Collection (VOC 2012 + MSRC), "
             "test on Internet")
    heads = ("Rows 'ours: embedding head, no IS-Triplet' are not in the paper: with the IS-Triplet row just above "
             "each, they compare the same head with and without IS-Triplet. The single-image baseline has the "
             "original head (that of unet-dice), so ΔJ of an embedding-head row also includes the change of head."
             + size_mix_note(runs, [f"unet-{seg}{suffix}" for seg in _SEG_NAMES for suffix, _, _ in variants],
                             "unet-single-image"))
    return _write(pd.DataFrame(rows), out, "is_triplet_table2",
                  "IS-Triplet Table 2: Dice, CE, Focal with and without IS-Triplet", provenance,
                  notes=where + ". Precision in %, Jaccard as a fraction; ΔJ is paired by seed. " + heads)


def write_is_triplet_table1(runs: pd.DataFrame, out, dataset_name: str, provenance: Provenance,
                            sbcoseg_root: str = "", internet_root: str = "") -> WrittenTable:
    """IS-Triplet Table 1: Dice with and without IS-Triplet, ours beside the paper's; an absent dataset
    (SBCoseg, Internet) gets a row that says how to fetch it."""
    agg, gain = _by_experiment(runs, "unet-single-image")
    rows = []
    for name, method, loss in (
            ("unet-dice", "ours: Gong et al. network (original head)", "Dice"),
            ("unet-dice-istriplet", "ours: modified framework (embedding head)", "Dice + IS-Triplet"),
            ("unet-dice-embedding", "ours, not in the paper: embedding head", "Dice"),
            ("unet-single-image", "ours: original head", SINGLE_IMAGE_LABEL)):
        rows.append({"method": method, "loss": loss, "train/val": dataset_name, "test": dataset_name,
                     "ours px": image_size_of(runs, name),
                     "val P": agg.loc[name, "val_P"], "val J": agg.loc[name, "val_J"],
                     "test P": agg.loc[name, "test_P"], "test J": agg.loc[name, "test_J"],
                     "test J 95% CI (pairs)": pair_resampled_ci95(runs, name),
                     "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
                     "ΔJ 95% CI (pairs)": (pair_resampled_ci95(runs, name, "unet-single-image")
                                           if name != "unet-single-image" else math.nan)})
    for dataset, root, fetch in (("SBCoseg", sbcoseg_root, "sbcoseg"), ("Internet", internet_root, "internet")):
        if not root:
            rows.append({"method": "ours", "loss": "Dice ± IS-Triplet", "train/val": dataset, "test": dataset,
                         "val P": not_run_message(dataset, root, fetch, parameter=f"{fetch}_root")})
    for row in paper_numbers.is_triplet_table1().itertuples():
        rows.append({"method": f"paper: {row.method}", "loss": row.loss, "train/val": row.train_val_dataset,
                     "test": row.test_dataset, "val P": row.val_P, "val J": row.val_J, "test P": row.test_P,
                     "test J": row.test_J})
    frame = pd.DataFrame(rows)
    # The not-run and paper rows have no size; a float column would print our sizes as "256.0".
    frame["ours px"] = frame["ours px"].astype("Int64")
    return _write(frame, out, "is_triplet_table1", "IS-Triplet Table 1: Dice with and without IS-Triplet",
                  provenance,
                  notes="Rows marked 'paper:' are the published numbers (448x448, ResNet-50, 30 epochs). Gong et al. = "
                        "the original network (Fig. 1a: 2-channel logits at half size); modified framework = Fig. 1b "
                        "(64-channel embedding, 1x1 conv to logits). The embedding-head Dice row is ours: the same "
                        "head as the IS-Triplet row, without IS-Triplet. " + PAIRS_CI_NOTE
                        + size_mix_note(runs, ["unet-dice", "unet-dice-istriplet", "unet-dice-embedding"],
                                        "unet-single-image"))


# --- notebook 03: CoSegNet -------------------------------------------------------------------------------------


def write_cosegnet_table1(runs: pd.DataFrame, splits: dict, out, dataset_name: str, provenance: Provenance,
                          data_root: str | None) -> WrittenTable:
    """CoSegNet Table 1: the published methods on PASCAL-VOC, then ours over ``splits`` (from ``run_splits``:
    mean ± std over several splits, the plain scores for one, whose std is undefined rather than 0) and the
    single-image baseline."""
    agg = aggregate_seeds(runs).set_index("experiment")
    single = agg.loc["cosegnet-single-image"]
    paper = paper_numbers.cosegnet_table1()[["method", "P", "J"]].assign(source="paper")
    if splits["n_splits"] > 1:
        ours_scores = {"method": f"CoSegNet (ours, {splits['n_splits']} splits, mean ± std)",
                       "P": f"{100 * splits['precision_mean']:.1f} ± {100 * splits['precision_std']:.1f}",
                       "J": f"{splits['jaccard_mean']:.3f} ± {splits['jaccard_std']:.3f}"}
    else:
        ours_scores = {"method": "CoSegNet (ours, 1 split)", "P": 100 * splits["precision_mean"],
                       "J": splits["jaccard_mean"]}
    ours = pd.DataFrame([
        {**ours_scores,
         "J 95% CI (pairs)": pair_resampled_ci95(runs, "cosegnet"),
         "ΔJ vs single-image": agg.loc["cosegnet", "test_J"] - single.test_J,
         "ΔJ 95% CI (pairs)": pair_resampled_ci95(runs, "cosegnet", "cosegnet-single-image"),
         "source": f"ours, {dataset_name}"},
        {"method": SINGLE_IMAGE_LABEL, "P": single.test_P, "J": single.test_J,
         "J 95% CI (pairs)": pair_resampled_ci95(runs, "cosegnet-single-image"), "ΔJ vs single-image": _NAN,
         "source": f"ours, {dataset_name}"},
    ])
    return _write(pd.concat([paper, ours], ignore_index=True), out, "cosegnet_table1",
                  "CoSegNet Table 1: PASCAL-VOC co-segmentation", provenance,
                  notes=("ΔJ compares split 0 of CoSegNet with the single-image run on the same split. "
                         + PAIRS_CI_NOTE + " " +
                         ("" if data_root else "No data_root: ours is on the synthetic set, not PASCAL-VOC.")))


def write_cosegnet_table2(internet_results, internet_root: str, out) -> WrittenTable:
    """CoSegNet Table 2 (Internet per class): the paper's rows, then ours from ``internet_results`` (runs trained
    on the Internet set) or, without ``internet_root``, a row that says how to fetch it."""
    if internet_root:
        ours = runs_frame(internet_results)[["experiment", "test_P", "test_J"]]
    else:
        ours = pd.DataFrame([{"experiment": "CoSegNet (ours)",
                              "test_P": not_run_message("Internet", internet_root, "internet", "internet_root")}])
    return _write(pd.concat([paper_numbers.cosegnet_table2(), ours], ignore_index=True), out, "cosegnet_table2",
                  "CoSegNet Table 2: Internet dataset per class", None)


def write_cosegnet_cross_dataset_table(number: int, name: str, root: str, layout: str, scores: dict | None,
                                       out, dataset_name: str, provenance: Provenance) -> WrittenTable:
    """CoSegNet Table 3 (tested on Internet) or 4 (MSRC) for a model trained on VOC: the paper's rows, then ours
    from ``scores`` (the positive-pair scores of evaluating it on ``root``) or a row that says how to fetch it."""
    paper = getattr(paper_numbers, f"cosegnet_table{number}")()
    if root:
        ours = pd.DataFrame([{"method": f"CoSegNet (ours, trained on {dataset_name})",
                              "P": 100 * scores["precision"], "J": scores["jaccard"]}])
    else:
        ours = pd.DataFrame([{"method": "CoSegNet (ours)", "P": not_run_message(name, root, layout, f"{layout}_root")}])
    return _write(pd.concat([paper, ours], ignore_index=True), out, f"cosegnet_table{number}",
                  f"CoSegNet Table {number}: trained on VOC, tested on {name}", provenance if root else None)


def write_cosegnet_table5(runs: pd.DataFrame, out, provenance: Provenance) -> WrittenTable:
    """CoSegNet Table 5: CoSegNet against CoSegNet-base (and the single-image baseline), with outlier behaviour."""
    agg, gain = _by_experiment(runs, "cosegnet-single-image")
    per_run = runs.set_index("experiment")
    rows = []
    for name, label in (("cosegnet-base", "CoSegNet-base"), ("cosegnet", "CoSegNet"),
                        ("cosegnet-single-image", SINGLE_IMAGE_LABEL)):
        rows.append({"architecture": label, "J (ours)": agg.loc[name, "test_J"],
                     "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
                     "outlier pairs: empty masks": per_run.loc[name, "neg_empty_fraction"],
                     "outlier pairs: decision accuracy": per_run.loc[name, "decision_accuracy"]})
    table5 = pd.DataFrame(rows)
    paper5 = paper_numbers.cosegnet_table5()
    table5["J (paper, Pascal-VOC)"] = [paper5.iloc[0]["CoSegNet-base_J"], paper5.iloc[0]["CoSegNet_J"], _NAN]
    return _write(table5, out, "cosegnet_table5", "CoSegNet Table 5: CoSegNet against CoSegNet-base", provenance,
                  notes="Internet and MSRC columns of the paper's Table 5 are not run here (datasets absent).")


def write_cosegnet_table6(runs: pd.DataFrame, out, provenance: Provenance) -> WrittenTable:
    """CoSegNet Table 6: which decoder layer feeds the metric network, ours beside the paper's."""
    agg, gain = _by_experiment(runs, "cosegnet-single-image")
    per_run = runs.groupby("experiment")[["positive_decision_accuracy", "decision_accuracy"]].mean()
    layers = {"f": "cosegnet-f", "cT3": "cosegnet-ct3", "cT6": "cosegnet-ct6", "cT9": "cosegnet-ct9",
              "cT11": "cosegnet-ct11"}
    paper6 = paper_numbers.cosegnet_table6().set_index("dataset")
    table6 = pd.DataFrame([
        {"metric-network input": layer, "J (ours)": agg.loc[name, "test_J"],
         "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
         "decision accuracy, positive pairs": per_run.loc[name, "positive_decision_accuracy"],
         "decision accuracy, negative pairs": per_run.loc[name, "decision_accuracy"],
         "J (paper, Pascal-VOC)": paper6.loc["Pascal-VOC", layer],
         "J (paper, Internet)": paper6.loc["Internet", layer]}
        for layer, name in layers.items()
    ])
    return _write(table6, out, "cosegnet_table6", "CoSegNet Table 6: which decoder layer feeds the metric network",
                  provenance, notes=paper_numbers.TABLE6_NOTE + " J is scored after the decision gate (§3.5) on "
                  "positive pairs; the decision accuracies (ours, test) show whether the gate, not the masks, "
                  "decided a row.")


# --- notebook 04: mean-shift clusters --------------------------------------------------------------------------


def write_cluster_quality(embedded: dict, cluster_maps: dict, out, provenance: Provenance) -> WrittenTable:
    """Per pixel loss: images, mean cluster count and mean adjusted Rand index of the mean-shift clusters
    (``cluster_maps``: loss -> one (H, W) map per image of ``embedded``) against the ground-truth mask."""
    rows = []
    for loss, items in embedded.items():
        for index, (item, clusters) in enumerate(zip(items, cluster_maps[loss], strict=True)):
            rows.append({"loss": loss, "image": index, "clusters": int(clusters.max()) + 1,
                         "ARI": adjusted_rand_score(item["mask"].ravel(), clusters.ravel())})
    quality = pd.DataFrame(rows).groupby("loss", as_index=False).agg(images=("image", "count"),
                                                                      mean_clusters=("clusters", "mean"),
                                                                      mean_ARI=("ARI", "mean"))
    return _write(quality, out, "04_cluster_quality",
                  "Mean-shift cluster quality per pixel loss (ARI vs ground truth)", provenance)


# --- notebook 05: pixel-DML comparison -------------------------------------------------------------------------


def write_pixel_dml_comparison(runs: pd.DataFrame, out, provenance: Provenance) -> WrittenTable:
    """No pixel-DML term against IS-Triplet, the discriminative loss and Group Loss: mean ± 95% CI over seeds and
    the gain over the single-image baseline, paired by seed."""
    table = aggregate_seeds(runs).merge(add_gain_over_baseline(runs, "pixel-dml-single-image"), on="experiment")
    table["experiment"] = table["experiment"].replace({"pixel-dml-single-image": SINGLE_IMAGE_LABEL})
    table = table[["experiment", "n_seeds", "test_P", "test_P_ci95", "test_J", "test_J_ci95", "gain_test_J",
                   "gain_test_J_ci95", "train_min"]]
    return _write(table, out, "pixel_dml_comparison", "Pixel-DML comparison (one split, several seeds)", provenance,
                  notes="Values are means over seeds with 95% Student-t CI half-widths; the gain is paired by seed. "
                        "Every row, the single-image baseline included, uses the embedding head (Fig. 1b) and the "
                        "same lr.")


def is_triplet_effect_line(runs: pd.DataFrame, n_seeds: int) -> str:
    """One line: Dice + IS-Triplet minus Dice alone (same head), paired by seed, with its 95% CI."""
    effect = add_gain_over_baseline(runs, "pixel-dml-none").set_index("experiment").loc["pixel-dml-istriplet"]
    return (f"IS-Triplet effect (Dice + IS-Triplet - Dice, paired by seed, {n_seeds} seed(s)): "
            f"ΔJ {effect.gain_test_J:+.3f} ± {effect.gain_test_J_ci95:.3f} (95% CI)")


def write_synthetic_pair_benchmark(results, out, provenance: Provenance, sources_results=None,
                                   sources_label: str = "Gong et al.'s co-attention") -> WrittenTable:
    """Single-image baseline against the Siamese U-Net and CoSegNet on SyntheticCoseg (does the model use the
    partner image?), with how often each blanks an outlier pair. ``sources_results``: the two U-Net runs
    (``unet-single-image``, ``unet-dice``) again with another co-attention (the sources', where the profile uses
    ours), shown as two more rows labelled ``sources_label``."""
    srun = runs_frame(results).set_index("experiment")
    blocks = [(srun, "SiameseUNet", "unet-single-image", "unet-dice"),
              (srun, "CoSegNet", "cosegnet-single-image", "cosegnet")]
    if sources_results is not None:
        blocks.insert(1, (runs_frame(sources_results).set_index("experiment"), f"SiameseUNet, {sources_label}",
                          "unet-single-image", "unet-dice"))
    rows = []
    for frame, family, single, pair in blocks:
        for name, label in ((single, SINGLE_IMAGE_LABEL), (pair, "co-segmentation")):
            rows.append({"family": family, "model": label, "test P": frame.loc[name, "test_P"],
                         "test J": frame.loc[name, "test_J"],
                         # the reference's own row is "–", as in add_gain_over_baseline
                         "ΔJ vs single-image": (_NAN if name == single
                                                else frame.loc[name, "test_J"] - frame.loc[single, "test_J"]),
                         "outlier pairs: empty masks": frame.loc[name, "neg_empty_fraction"],
                         "outlier pairs: decision accuracy": frame.loc[name, "decision_accuracy"]})
    return _write(pd.DataFrame(rows), out, "synthetic_pair_benchmark",
                  "Synthetic benchmark: does the model use the partner image?", provenance)
