"""The training engine: `train` (settings, resume checks, device, runtime) runs a `Trainer` (trainer.py), the one
loop for SiameseUNet (seg loss +- lambda * pixel DML) and CoSegNet / CoSegNet-base; `train_splits` (cosegnet §4.2).

A run directory holds
- `config.json`: settings, experiment, profile, seed, data root, git commit, package versions, start time;
  updated at the end with the wall time;
- `metrics.csv`: one row per epoch (every loss term, lr, lambda, validation P and J, seconds);
- `checkpoint.pt`: written atomically after every epoch (model, optimizer, scheduler, RNG, sampler, history);
- `results.json`: final test report, history and wall time.

Exact resume: the data of epoch e is a pure function of (seed, e) (see data.py), every RNG is restored from the
checkpoint, the thread count is fixed and deterministic algorithms are on, so a run killed at any point and
resumed ends with the same metrics as an uninterrupted run (on the same machine / device type).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cosegkit.train.checkpoint import CHECKPOINT_NAME
from cosegkit.train.distributed import Dist
from cosegkit.train.experiments import build_settings, get_experiment
from cosegkit.train.modeling import load_trained_model
from cosegkit.train.profiles import get_profile
from cosegkit.train.records import (
    CONFIG_NAME,
    CSV_NAME,
    RESULTS_NAME,
    RunResult,
    data_root_of_run,
    read_json,
    write_json,
)
from cosegkit.train.settings import TrainSettings, apply_overrides, settings_from_dict
from cosegkit.train.trainer import Trainer

# RunResult, load_trained_model and the file names live in records.py / modeling.py; callers name them from here.
__all__ = ["RunResult", "train", "train_splits", "load_trained_model", "read_run_result", "stored_experiment",
           "aggregate_splits", "CONFIG_NAME", "RESULTS_NAME", "CSV_NAME"]

def _resolve_device(settings: TrainSettings, dist: Dist | None = None) -> torch.device:
    want = settings.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device='cuda' but CUDA is not available")
        return torch.device("cuda", dist.local_rank if dist else 0)
    return torch.device("cpu")


@contextlib.contextmanager
def _runtime(settings: TrainSettings, device: torch.device):
    """Fixed thread count and deterministic algorithms for the run; the previous global state is restored."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    try:
        if settings.num_threads:
            torch.set_num_threads(settings.num_threads)
        if settings.deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)
        elif device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench


def _resolve_settings(experiment, profile, run_dir: Path, data_root, seed, resume, overrides, dataset):
    """Fresh run: settings from the registry. Resume: the stored settings (+ this call's overrides)."""
    cfg = run_dir / CONFIG_NAME
    if resume and cfg.is_file():
        stored = read_json(cfg)
        settings = settings_from_dict(stored["settings"])
        # Anything given that differs from the run is an error: silently keeping the run's value would train
        # something other than what the command line says.
        fix = "drop it to continue the run, or train into a new folder"
        if experiment is not None and experiment != settings.experiment:
            raise ValueError(f"--resume: {run_dir} holds experiment {settings.experiment!r}, not {experiment!r}; "
                             f"{fix}")
        if profile is not None and profile != settings.profile:
            raise ValueError(f"--resume: {run_dir} holds profile {settings.profile!r}, not {profile!r}; {fix}")
        if seed is not None and int(seed) != settings.seed:
            raise ValueError(f"--resume: {run_dir} was trained with --seed {settings.seed}, not {seed}; {fix}")
        if dataset is not None and dataset != settings.data.dataset:
            raise ValueError(f"--resume: {run_dir} was trained with --dataset {settings.data.dataset}, not "
                             f"{dataset}; {fix}")
        settings = apply_overrides(settings, overrides)
        stored_root = data_root_of_run(run_dir, stored)
        if data_root is None:
            data_root = stored_root
        elif stored_root is None:
            raise ValueError(f"--resume: {run_dir} was trained on the synthetic set, not --data-root {data_root}; "
                             f"{fix}")
        elif Path(data_root).resolve() != Path(stored_root):
            raise ValueError(f"--resume: {run_dir} was trained on {stored_root}, not --data-root {data_root}; {fix}")
        return settings, data_root
    get_experiment(experiment)  # unknown names fail before touching the disk
    get_profile(profile)
    if (run_dir / CHECKPOINT_NAME).exists() or (run_dir / RESULTS_NAME).exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass resume=True (--resume) or another out dir")
    settings = build_settings(experiment, profile, seed=0 if seed is None else seed, overrides=overrides,
                              dataset=dataset or "folder")
    return settings, data_root


def read_run_result(run_dir) -> RunResult | None:
    """The finished run in ``run_dir`` (None when it has no results.json yet)."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS_NAME).is_file():
        return None
    return _result_from_disk(run_dir)


def stored_experiment(run_dir) -> str | None:
    """The experiment that started the run in ``run_dir`` (None when it holds no config.json)."""
    cfg = Path(run_dir) / CONFIG_NAME
    return read_json(cfg)["experiment"] if cfg.is_file() else None


def _result_from_disk(run_dir: Path) -> RunResult:
    res = read_json(run_dir / RESULTS_NAME)
    cfg = read_json(run_dir / CONFIG_NAME)
    return RunResult(run_dir=run_dir, settings=settings_from_dict(cfg["settings"]), history=res["history"],
                     test=res["test"], wall_time_s=res["wall_time_s"], resumed=True,
                     thresholds=res.get("thresholds"))


def train(
    experiment: str,
    profile: str,
    out,
    data_root=None,
    seed: int | None = None,
    resume: bool = False,
    overrides: dict | None = None,
    dataset: str | None = None,
    on_step: Callable[[int], None] | None = None,
) -> RunResult:
    """Train `experiment` under `profile` into run dir `out` and score it on the test pairs.

    `data_root`: dataset folder (layout `dataset`, default the generic CosegFolder); None -> synthetic pairs.
    `seed`: None means 0 for a new run and the run's own seed under `resume`.
    `resume=True` continues from `out`'s checkpoint (or returns the finished run's result; starts fresh if
    `out` holds nothing); a seed, experiment, profile, dataset or data root other than the run's is a
    ValueError. `overrides`: dotted settings keys, e.g. {"epochs": 2, "optim.lr": 0.01}.
    A dataset folder is checked (every image and mask the run's splits read) before anything is written.
    `on_step(global_step)` is called before every training step (tests use it to inject faults).
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    run_dir = Path(out)
    if data_root is not None:
        data_root = str(Path(data_root).resolve())
    settings, data_root = _resolve_settings(experiment, profile, run_dir, data_root, seed, resume, overrides,
                                            dataset)
    if resume and (run_dir / RESULTS_NAME).is_file():
        done = _result_from_disk(run_dir)
        if replace(done.settings, progress=settings.progress) == settings:
            return done  # finished with these settings: nothing to do
    dist = Dist.setup("cuda" if settings.device != "cpu" and torch.cuda.is_available() else "cpu")
    try:
        device = _resolve_device(settings, dist)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        with _runtime(settings, device):
            return Trainer(settings, run_dir, data_root, dist, device, on_step=on_step).run(resume)
    finally:
        dist.teardown()


def train_splits(experiment: str, profile: str, out, n_splits: int | None = None, data_root=None,
                 seed: int | None = None, resume: bool = False, overrides: dict | None = None,
                 dataset: str | None = None) -> dict:
    """CoSegNet §4.2 protocol: train on `n_splits` random 3:1:1 splits (default: the profile's, paper 100) and
    report mean +- std of the test Precision / Jaccard. Split i uses split seed `seed + i`; run dirs
    OUT/split_000, ... ; the aggregate goes to OUT/splits.json."""
    seed = 0 if seed is None else seed
    n = get_profile(profile).n_splits if n_splits is None else int(n_splits)
    if n < 1:
        raise ValueError(f"n_splits must be >= 1, got {n}")
    out = Path(out)
    results = []
    for i in range(n):
        ov = {**(overrides or {}), "data.split_seed": seed + i}
        results.append(train(experiment, profile, out / f"split_{i:03d}", data_root=data_root, seed=seed + i,
                             resume=resume, overrides=ov, dataset=dataset))
    agg = aggregate_splits(experiment, profile, results)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "splits.json", agg)
    return agg


def aggregate_splits(experiment: str, profile: str, results) -> dict:
    """Mean +- std (ddof 1) of the test Precision / Jaccard over the runs of several splits (cosegnet §4.2)."""
    n = len(results)
    if n < 1:
        raise ValueError("aggregate_splits() needs at least one run")
    rows = []
    for i, res in enumerate(results):
        neg = res.test.get("negative") or {}
        rows.append({"split": i, "precision": res.precision, "jaccard": res.jaccard,
                     "decision_accuracy": neg.get("decision_accuracy"), "wall_time_s": res.wall_time_s})
    p = np.array([r["precision"] for r in rows])
    j = np.array([r["jaccard"] for r in rows])
    agg = {
        "experiment": experiment, "profile": profile, "n_splits": n,
        "precision_mean": float(p.mean()), "precision_std": float(p.std(ddof=1)) if n > 1 else 0.0,
        "jaccard_mean": float(j.mean()), "jaccard_std": float(j.std(ddof=1)) if n > 1 else 0.0,
        "splits": rows,
    }
    return agg
