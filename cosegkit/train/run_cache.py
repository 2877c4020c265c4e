"""The run cache: registered experiments trained once, in folders keyed by what they train.

A run lives in ``<output_dir>/runs/<profile>/<data tag>/<slug>-s<seed>-<key>``, where ``key`` is a digest of every
setting that changes what is trained (see :func:`run_key`) and ``slug`` says the main ones (its task's
``slug_parts``: family, head, losses, metric layer; then single-image and the epochs). Two experiments with the same
settings (``pixel-dml-none --set epochs=6`` and ``unet-dice-embedding`` at cpu, say) are one run, trained once and
read by every table that needs it, under each experiment's own name. :func:`train_or_reuse` decides: a finished run
is read back from disk, any other is trained (or resumed); it says which, and :func:`run_experiments` records it in
``extra["reused"]``. That is how the notebooks share runs and how ``cosegkit reproduce`` resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from cosegkit.tasks import task_for
from cosegkit.train.engine import aggregate_splits, read_run_result, stored_experiment, train
from cosegkit.train.experiments import build_settings, get_experiment
from cosegkit.train.profiles import get_profile
from cosegkit.train.records import RunResult
from cosegkit.train.settings import (
    ADDED_DATA_FIELDS,
    ADDED_FIELDS,
    ADDED_MODEL_FIELDS,
    RETIRED_FIELDS,
    settings_to_dict,
)

__all__ = ["data_tag", "run_key", "run_slug", "run_dir_for", "train_or_reuse", "run_experiments", "run_splits"]

# Settings that name or describe a run without changing what it trains.
_NOT_IN_KEY = ("experiment", "description", "progress", "deviations")
# Data settings that only the synthetic set reads (cosegkit.train.data.synthetic_sets).
_SYNTHETIC_ONLY = ("synthetic_train_pairs", "synthetic_val_pairs", "synthetic_test_pairs",
                   "synthetic_negative_fraction")


def data_tag(data_root: str | None) -> str:
    """``synthetic`` without a dataset folder, else the folder's name with ``_`` written ``-`` (a run folder such
    as ``runs/cpu/pascal-voc-coseg/`` holds records, and must not look like a copy of the dataset's folder)."""
    return Path(data_root).resolve().name.replace("_", "-") if data_root else "synthetic"


def _as_json(value):
    """A default as settings_to_dict writes it (tuples become lists)."""
    return json.loads(json.dumps(value))


def run_key(settings, on_folder: bool = False) -> str:
    """10 hex digits of a SHA-256 over the settings that decide what a run trains: everything except its name,
    description, progress bars and the deviations text (and settings added later, at the default they were added at:
    ``ADDED_MODEL_FIELDS``, ``ADDED_DATA_FIELDS``, ``ADDED_FIELDS``), with ``data.split_seed=None`` written as the
    seed it stands for (so ``unet-dice`` and ``pixel-dml-none --set data.split_seed=0`` at seed 0 share a key when their
    other settings agree). Retired settings enter with the value they always had, so existing run folders keep
    their names.

    ``on_folder``: the run trains on a dataset folder, so the synthetic set's sizes (``data.synthetic_*``, read only
    by synthetic runs) do not enter its key: a change to the synthetic benchmark neither renames nor retrains the
    runs on real images (it did both to CoSegNet's PASCAL-VOC runs at ``3e4bcff``). Folder runs keyed before this
    rule got new names once."""
    record = {k: v for k, v in settings_to_dict(settings).items() if k not in _NOT_IN_KEY}
    if on_folder:
        record["data"] = {k: v for k, v in record["data"].items() if k not in _SYNTHETIC_ONLY}
    for name, default in ADDED_MODEL_FIELDS.items():
        if record["model"].get(name) == _as_json(default):
            del record["model"][name]
    for name, default in ADDED_DATA_FIELDS.items():
        if record["data"].get(name) == _as_json(default):
            del record["data"][name]
    for name, default in ADDED_FIELDS.items():
        if record.get(name) == _as_json(default):
            del record[name]
    if record["data"].get("split_seed") is None:
        record["data"]["split_seed"] = record["seed"]
    record.update(RETIRED_FIELDS)
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]


def run_slug(settings) -> str:
    """A readable summary of a run's main settings: family, head or metric layer, losses, single-image, epochs
    (``e6``: within a profile the epochs are what most often tells two otherwise alike runs apart, such as the
    claim row ``unet-dice-embedding`` and the cheaper ``pixel-dml-none``)."""
    parts = task_for(settings).slug_parts(settings)
    if settings.model.single_image:
        parts.append("single")
    parts.append(f"e{settings.epochs}")
    return "-".join(parts).lower()


def run_dir_for(output_dir, profile: str, data_root: str | None, experiment: str, seed: int,
                overrides: dict | None = None, dataset: str = "folder") -> Path:
    """Where the run of ``experiment`` at ``seed`` (with ``overrides``) lives: keyed by its settings."""
    settings = build_settings(experiment, profile, seed=seed, overrides=overrides, dataset=dataset)
    name = f"{run_slug(settings)}-s{seed}-{run_key(settings, on_folder=data_root is not None)}"
    return Path(output_dir) / "runs" / profile / data_tag(data_root) / name


def train_or_reuse(experiment: str, profile: str, run_dir: Path, data_root: str | None, seed: int,
                   overrides: dict, dataset: str) -> tuple[RunResult, bool]:
    """(the run in ``run_dir``, whether it was reused): a finished run is read back; otherwise it is trained, or
    resumed under the experiment that began it (this one or another of the same key)."""
    result = read_run_result(run_dir)
    if result is not None:
        return result, True
    owner = stored_experiment(run_dir) or experiment
    return train(owner, profile, out=run_dir, data_root=data_root, seed=seed, resume=True, overrides=overrides,
                 dataset=dataset), False


def run_experiments(experiments: Iterable[str], profile: str, output_dir, data_root: str | None = None,
                    seeds: Iterable[int] = (0,), overrides: dict | None = None, progress: bool = True,
                    dataset: str = "folder") -> list:
    """Train (or reuse) every experiment for every seed; returns the engine's RunResults in that order.

    A finished run with the same settings is read back (``result.extra["reused"]`` is True), whichever experiment
    trained it; the result carries the asking experiment's name. ``dataset`` names the layout of ``data_root``
    (see ``cosegkit.data.load_dataset``).
    """
    data_root = data_root or None
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data_root {data_root!r} is not a directory")
    results = []
    for experiment in experiments:
        for seed in seeds:
            run_overrides = {**(overrides or {}), "progress": progress}
            run_dir = run_dir_for(output_dir, profile, data_root, experiment, seed, run_overrides, dataset)
            started = time.perf_counter()
            result, reused = train_or_reuse(experiment, profile, run_dir, data_root, seed, run_overrides, dataset)
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
    if result.settings.experiment == experiment:
        return result
    settings = replace(result.settings, experiment=experiment, description=get_experiment(experiment).description)
    return replace(result, settings=settings, extra=dict(result.extra))
