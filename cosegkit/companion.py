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

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from cosegkit.report import Provenance, mean_ci95

# The run cache and the inference helpers moved to cosegkit.train.run_cache and cosegkit.tasks.inference; they are
# re-exported here while the notebooks import them from this module.
from cosegkit.tasks.inference import pixel_embeddings, predict_samples, test_samples
from cosegkit.train.run_cache import (
    _as_experiment,  # noqa: F401 (moved; re-exported while the notebooks import from here)
    data_tag,
    run_dir_for,
    run_experiments,
    run_key,
    run_slug,
    run_splits,
)

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


def data_label(data_root: str | None) -> str:
    """How a report names the data: the dataset folder's name, never its absolute path on this machine."""
    return f"dataset folder `{Path(data_root).name}`" if data_root else "SyntheticCoseg (embedded)"


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
