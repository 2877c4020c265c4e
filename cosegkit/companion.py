"""What the notebooks share: run (or reuse) registered experiments, collect their numbers, compare with baselines.

Runs are keyed by what they are, not by the name of the experiment that asked for them: a run lives in
``<output_dir>/runs/<profile>/<data tag>/<slug>-s<seed>-<key>``, where ``key`` is a digest of every setting that
changes what is trained (see :func:`run_key`) and ``slug`` says the main ones (family, head, losses, metric layer,
single-image). Two experiments with the same settings (``pixel-dml-none`` and ``unet-dice-embedding``, say) are
one run, trained once and read by every table that needs it, under each experiment's own name.
`run_experiments` resumes each run, so a finished run is read back from disk instead of trained again. That is
how notebooks 02-05 share runs and how ``cosegkit reproduce`` resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cosegkit.report import Provenance, mean_ci95

__all__ = [
    "SINGLE_IMAGE_LABEL",
    "data_tag",
    "data_label",
    "run_dir_for",
    "run_key",
    "run_slug",
    "run_splits",
    "run_experiments",
    "runs_frame",
    "history_frame",
    "aggregate_seeds",
    "add_gain_over_baseline",
    "provenance_for",
    "overrides_from",
    "test_samples",
    "predict_samples",
    "pixel_embeddings",
    "REPO_ROOT",
    "repo_path",
    "check_profile",
]

# The checkout this package is imported from (the notebooks' relative paths are taken from here).
REPO_ROOT = Path(__file__).resolve().parents[1]

SINGLE_IMAGE_LABEL = "single-image (no pair information)"


def repo_path(path) -> Path:
    """`path` as given if absolute (after ~ expansion), else relative to the repository (REPO_ROOT), so that a
    notebook's parameters mean the same folder whatever directory papermill or Jupyter was started from."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def check_profile(profile: str) -> str:
    """`profile` if it names a profile; ValueError listing the valid ones otherwise."""
    from cosegkit.train.profiles import get_profile

    get_profile(profile)
    return profile


def data_tag(data_root: str | None) -> str:
    """``synthetic`` without a dataset folder, else the folder's name with ``_`` written ``-`` (a run folder such
    as ``runs/cpu/pascal-voc-coseg/`` holds records, and must not look like a copy of the dataset's folder)."""
    return Path(data_root).resolve().name.replace("_", "-") if data_root else "synthetic"


# Settings that name or describe a run without changing what it trains.
_NOT_IN_KEY = ("experiment", "description", "progress", "deviations")


def data_label(data_root: str | None) -> str:
    """How a report names the data: the dataset folder's name, never its absolute path on this machine."""
    return f"dataset folder `{Path(data_root).name}`" if data_root else "SyntheticCoseg (embedded)"


def run_key(settings) -> str:
    """10 hex digits of a SHA-256 over the settings that decide what a run trains: everything except its name,
    description, progress bars and the deviations text, with ``data.split_seed=None`` written as the seed it
    stands for (so ``unet-dice`` and ``pixel-dml-none --set data.split_seed=0`` at seed 0 share a key when their
    other settings agree)."""
    from cosegkit.train.settings import settings_to_dict

    record = {k: v for k, v in settings_to_dict(settings).items() if k not in _NOT_IN_KEY}
    if record["data"].get("split_seed") is None:
        record["data"]["split_seed"] = record["seed"]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]


def run_slug(settings) -> str:
    """A readable summary of a run's main settings: family, head or metric layer, losses, single-image."""
    model, loss = settings.model, settings.loss
    if model.family == "unet":
        parts = ["unet", model.head, loss.seg] + ([loss.dml] if loss.dml else [])
    elif model.family == "cosegnet":
        parts = ["cosegnet", model.metric_layer]
    else:
        parts = [model.family]
    if model.single_image:
        parts.append("single")
    return "-".join(parts).lower()


def run_dir_for(output_dir, profile: str, data_root: str | None, experiment: str, seed: int,
                overrides: dict | None = None, dataset: str = "folder") -> Path:
    """Where the run of ``experiment`` at ``seed`` (with ``overrides``) lives: keyed by its settings."""
    from cosegkit.train.experiments import build_settings

    settings = build_settings(experiment, profile, seed=seed, overrides=overrides, dataset=dataset)
    name = f"{run_slug(settings)}-s{seed}-{run_key(settings)}"
    return Path(output_dir) / "runs" / profile / data_tag(data_root) / name


def run_experiments(experiments: Iterable[str], profile: str, output_dir, data_root: str | None = None,
                    seeds: Iterable[int] = (0,), overrides: dict | None = None, progress: bool = True,
                    dataset: str = "folder") -> list:
    """Train (or reuse) every experiment for every seed; returns the engine's RunResults in that order.

    A finished run with the same settings is read back (``result.extra["reused"]`` is True), whichever experiment
    trained it; the result carries the asking experiment's name. ``dataset`` names the layout of ``data_root``
    (see ``cosegkit.data.load_dataset``).
    """
    from cosegkit.train import train
    from cosegkit.train.engine import read_run_result, stored_experiment

    data_root = data_root or None
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data_root {data_root!r} is not a directory")
    results = []
    for experiment in experiments:
        for seed in seeds:
            run_overrides = {**(overrides or {}), "progress": progress}
            run_dir = run_dir_for(output_dir, profile, data_root, experiment, seed, run_overrides, dataset)
            started = time.perf_counter()
            result = read_run_result(run_dir)
            reused = result is not None
            if result is None:  # train, or resume a run that this or another experiment of the same key began
                owner = stored_experiment(run_dir) or experiment
                result = train(owner, profile, out=run_dir, data_root=data_root, seed=seed, resume=True,
                               overrides=run_overrides, dataset=dataset)
            result = _as_experiment(result, experiment)
            result.extra["reused"] = reused
            if progress:
                how = "reused" if reused else "trained"
                print(f"{experiment} seed {seed}: {how} ({run_dir.name}) in {time.perf_counter() - started:.0f} s; "
                      f"test P {100 * result.precision:.1f} J {result.jaccard:.3f}")
            results.append(result)
    return results


def run_splits(experiment: str, profile: str, output_dir, n_splits: int | None = None, data_root: str | None = None,
               seed: int = 0, overrides: dict | None = None, progress: bool = True, dataset: str = "folder") -> dict:
    """CoSegNet §4.2: ``experiment`` on ``n_splits`` random 3:1:1 splits (None: the profile's), split i with seed
    and split seed ``seed + i``, through the keyed run cache (split 0 is the run that ``run_experiments`` trains for
    that seed, so it is never trained twice). Returns the mean +- std aggregate of :func:`aggregate_splits`."""
    from cosegkit.train.engine import aggregate_splits
    from cosegkit.train.profiles import get_profile

    n = get_profile(profile).n_splits if n_splits is None else int(n_splits)
    if n < 1:
        raise ValueError(f"n_splits must be >= 1, got {n}")
    results = []
    for i in range(n):
        split_overrides = {**(overrides or {}), "data.split_seed": seed + i}
        results += run_experiments([experiment], profile, output_dir, data_root=data_root, seeds=[seed + i],
                                   overrides=split_overrides, progress=progress, dataset=dataset)
    return aggregate_splits(experiment, profile, results)


def _as_experiment(result, experiment: str):
    """The same run labelled as ``experiment`` (its registered description too)."""
    from cosegkit.train.experiments import get_experiment

    if result.settings.experiment == experiment:
        return result
    settings = replace(result.settings, experiment=experiment, description=get_experiment(experiment).description)
    return replace(result, settings=settings, extra=dict(result.extra))


def runs_frame(results) -> pd.DataFrame:
    """One row per run: test Precision (%) / Jaccard on positive pairs, outlier behaviour, time, settings."""
    rows = []
    for result in results:
        negative = (result.test or {}).get("negative") or {}
        last = result.history[-1] if result.history else {}
        rows.append({
            "experiment": result.experiment,
            "seed": result.settings.seed,
            "test_P": 100 * result.precision,
            "test_J": result.jaccard,
            "val_P": 100 * float(last.get("val_precision", math.nan)),
            "val_J": float(last.get("val_jaccard", math.nan)),
            "neg_empty_fraction": negative.get("empty_fraction", math.nan),
            "decision_accuracy": negative.get("decision_accuracy") if negative.get("decision_accuracy")
            is not None else math.nan,
            "epochs": len(result.history),
            "image_size": result.settings.data.image_size,
            "wall_time_s": result.wall_time_s,
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
    the per-seed differences, so it is nan with one seed.
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
        mean, half = mean_ci95(diffs)
        rows.append({"experiment": experiment, f"gain_{column}": mean, f"gain_{column}_ci95": half})
    return pd.DataFrame(rows)


def _run_commit(result) -> str:
    record = json.loads((result.run_dir / "config.json").read_text()).get("git", {})
    commit = record.get("commit", "unknown")
    return commit if commit == "unknown" else commit[:10] + ("+dirty" if record.get("dirty") else "")


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
    return Provenance(profile=profile, dataset=dataset, image_size=sizes[0] if len(sizes) == 1 else sizes[-1],
                      seeds=seeds, commit=", ".join(commits), wall_time_s=wall)


def test_samples(result, n_positive: int = 4, n_negative: int = 2) -> tuple[list[dict], list[dict]]:
    """The first test pairs of a run (positive, negative) as PairSample dicts, for the visual-result figures."""
    from cosegkit.train.data import build_run_data

    data_root = json.loads((result.run_dir / "config.json").read_text()).get("data_root")
    data = build_run_data(result.settings, data_root)
    positive = [data.test_positive[i] for i in range(min(n_positive, len(data.test_positive)))]
    negatives = data.test_negative if data.test_negative is not None else []
    negative = [negatives[i] for i in range(min(n_negative, len(negatives)))]
    return positive, negative


def predict_samples(result, samples, threshold: float | None = None) -> list[dict]:
    """Predicted masks at each image's original size (CoSegNet's gated by its decision), per PairSample; at the
    run's own thresholds (`evaluate.run_thresholds`) unless `threshold` is given (then for masks and decisions)."""
    from cosegkit.data.transforms import resize_to_original
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.evaluate import run_thresholds
    from cosegkit.train.modeling import eval_transform, predict_probabilities

    settings, model, device = load_trained_model(result.run_dir)
    threshold, decision_threshold = ((threshold, threshold) if threshold is not None
                                     else run_thresholds(result.run_dir, settings))
    transform = eval_transform(settings, model)
    outputs = []
    for sample in samples:
        item = transform(sample)
        prob_a, prob_b, decision = predict_probabilities(
            model, settings.model.family, item["image_a"][None].to(device), item["image_b"][None].to(device)
        )
        pred_a = resize_to_original(prob_a[0].cpu(), item["orig_size_a"], threshold=threshold)
        pred_b = resize_to_original(prob_b[0].cpu(), item["orig_size_b"], threshold=threshold)
        decision_probs = None
        if decision is not None:
            decision_probs = (float(decision[0][0]), float(decision[1][0]))
            pred_a = pred_a & (decision_probs[0] > decision_threshold)
            pred_b = pred_b & (decision_probs[1] > decision_threshold)
        outputs.append({"pred_a": np.asarray(pred_a, dtype=bool), "pred_b": np.asarray(pred_b, dtype=bool),
                        "decision": decision_probs})
    return outputs


def pixel_embeddings(result, samples) -> list[dict]:
    """Per PairSample image A: the model-resolution image, its mask and the (H, W, D) pixel embedding."""
    import torch
    from PIL import Image

    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.modeling import eval_transform

    settings, model, device = load_trained_model(result.run_dir)
    if settings.model.family != "unet":
        raise ValueError(f"{result.experiment} is a {settings.model.family} run; pixel embeddings need a SiameseUNet")
    transform = eval_transform(settings, model)
    outputs = []
    with torch.no_grad():
        for sample in samples:
            item = transform(sample)
            out = model(item["image_a"][None].to(device), item["image_b"][None].to(device))
            if out["embeddings_a"] is None:
                raise ValueError(f"{result.experiment} uses the original head, which has no pixel embedding")
            height, width = item["image_a"].shape[-2:]
            image = np.asarray(Image.fromarray(sample["image_a"]).resize((width, height), Image.BILINEAR))
            outputs.append({
                "image": image,
                "mask": item["mask_a"].numpy() > 0.5,
                "embedding": out["embeddings_a"][0].permute(1, 2, 0).cpu().numpy(),
            })
    return outputs


def overrides_from(image_size: int | None = None, epochs: int | None = None, device: str = "auto") -> dict:
    """Engine overrides from a notebook's parameters cell (None keeps the profile's value)."""
    overrides = {}
    if image_size is not None:
        overrides["data.image_size"] = int(image_size)
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if device and device != "auto":
        overrides["device"] = device
    return overrides
