"""The training engine: one loop for SiameseUNet (seg loss +- lambda * pixel DML) and CoSegNet / CoSegNet-base.

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
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from cosegkit.train.checkpoint import (
    CHECKPOINT_NAME,
    RESUME_KEYS,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from cosegkit.train.data import TrainSamples, build_run_data, collate, derive_seed
from cosegkit.train.distributed import Dist
from cosegkit.train.evaluate import score_pairs, select_thresholds
from cosegkit.train.experiments import build_settings, get_experiment
from cosegkit.train.profiles import get_profile
from cosegkit.train.progress import show_bars
from cosegkit.train.records import (
    csv_columns,
    git_commit,
    package_versions,
    read_json,
    write_history_csv,
    write_json,
)
from cosegkit.train.settings import TrainSettings, apply_overrides, settings_from_dict, settings_to_dict

__all__ = ["RunResult", "train", "train_splits", "load_trained_model", "read_run_result", "stored_experiment",
           "aggregate_splits"]

CONFIG_NAME = "config.json"
RESULTS_NAME = "results.json"
CSV_NAME = "metrics.csv"


@dataclass
class RunResult:
    run_dir: Path
    settings: TrainSettings
    history: list[dict]
    test: dict | None
    wall_time_s: float
    resumed: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        return self.settings.experiment

    @property
    def precision(self) -> float:
        return self.test["positive"]["precision"]

    @property
    def jaccard(self) -> float:
        return self.test["positive"]["jaccard"]


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        settings = apply_overrides(replace(settings, fault_sigkill_step=None), overrides)
        stored_root = stored.get("data_root")
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
                     test=res["test"], wall_time_s=res["wall_time_s"], resumed=True)


def train(
    experiment: str,
    profile: str,
    out,
    data_root=None,
    seed: int | None = None,
    resume: bool = False,
    overrides: dict | None = None,
    dataset: str | None = None,
) -> RunResult:
    """Train `experiment` under `profile` into run dir `out` and score it on the test pairs.

    `data_root`: dataset folder (layout `dataset`, default the generic CosegFolder); None -> synthetic pairs.
    `seed`: None means 0 for a new run and the run's own seed under `resume`.
    `resume=True` continues from `out`'s checkpoint (or returns the finished run's result; starts fresh if
    `out` holds nothing); a seed, experiment, profile, dataset or data root other than the run's is a
    ValueError. `overrides`: dotted settings keys, e.g. {"epochs": 2, "optim.lr": 0.01}.
    A dataset folder is checked (every image and mask the run's splits read) before anything is written.
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
            return _train(settings, run_dir, data_root, resume, dist, device)
    finally:
        dist.teardown()


def _train(settings: TrainSettings, run_dir: Path, data_root, resume: bool, dist: Dist,
           device: torch.device) -> RunResult:
    from cosegkit.train.modeling import (
        build_model,
        compute_loss,
        eval_transform,
        make_optimizer,
        make_scheduler,
        set_train_mode,
        train_transform,
    )

    t_start = time.perf_counter()
    ckpt_path = run_dir / CHECKPOINT_NAME
    resuming = resume and ckpt_path.is_file()
    family = settings.model.family
    use_cuda = device.type == "cuda"
    amp = settings.amp and use_cuda
    channels_last = settings.channels_last and use_cuda
    progress = settings.progress and dist.is_main  # one line per epoch
    bars = show_bars(progress)  # and tqdm bars where someone watches them (a terminal or Jupyter)

    _seed_everything(settings.seed)
    data = build_run_data(settings, data_root)
    model = build_model(settings.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, settings.optim)
    steps_per_epoch = math.ceil(math.ceil(_epoch_len(data, 0) / dist.world) / settings.data.batch_size)
    scheduler, step_per_batch = make_scheduler(optimizer, settings.optim, steps_per_epoch, settings.epochs)
    history: list[dict] = []
    start_epoch = 0
    elapsed_before = 0.0
    if resuming:
        ckpt = load_checkpoint(ckpt_path, map_location=device, required=RESUME_KEYS)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng_state(ckpt["rng"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"]) + 1
        elapsed_before = float(ckpt["elapsed_s"])
        if ckpt["sampler"]["seed"] != settings.seed:
            raise ValueError(f"{ckpt_path}: sampler seed {ckpt['sampler']['seed']} != run seed {settings.seed}")
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG_NAME, {
            "experiment": settings.experiment,
            "profile": settings.profile,
            "seed": settings.seed,
            "data_root": data_root,
            "data_source": data.source,
            "settings": settings_to_dict(settings),
            "git": git_commit(),
            "versions": package_versions(),
            "world_size": dist.world,
            "device": str(device),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_time_s": None,
        })
    dist.barrier()

    train_model = model
    if dist.enabled:
        # CoSegNet leaves the decoder tail without gradient on all-negative batches (§3.5), hence unused params.
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None,
            find_unused_parameters=family != "unet",
        )
    t_tf = train_transform(settings, model)
    e_tf = eval_transform(settings, model)
    columns = csv_columns(family)

    for epoch in range(start_epoch, settings.epochs):
        t0 = time.perf_counter()
        lam = settings.loss.lambda0 * settings.loss.lambda_decay ** epoch
        lr = optimizer.param_groups[-1]["lr"]  # the decoder / head group (the encoder may run at a multiple)
        samples = data.epoch_samples(epoch)
        ds = TrainSamples(data, samples, epoch, t_tf)
        sampler = (DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=False)
                   if dist.enabled else None)
        if sampler is not None:
            sampler.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=settings.data.batch_size, shuffle=False, sampler=sampler,
                            num_workers=settings.data.num_workers, collate_fn=collate, drop_last=False,
                            pin_memory=use_cuda)
        set_train_mode(model, settings.model.freeze_bn)
        sums: dict[str, float] = {}
        n_batches = 0
        bar = tqdm(loader, desc=f"{settings.experiment} epoch {epoch + 1}/{settings.epochs}", disable=not bars,
                   leave=False)
        for step, batch in enumerate(bar):
            global_step = epoch * steps_per_epoch + step
            if settings.fault_sigkill_step is not None and global_step == settings.fault_sigkill_step:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection for the exact-resume test
            gen = torch.Generator(device=device).manual_seed(derive_seed(settings.seed, epoch, step, dist.rank))
            batch = _to_device(batch, device, channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss, terms = compute_loss(train_model, family, batch, settings, lam, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.optim.grad_clip)
            optimizer.step()
            if step_per_batch:
                scheduler.step()
            for k, v in {"loss": loss, **terms}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
            if bars:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        if not step_per_batch:
            scheduler.step()
        keys = sorted(sums)
        reduced = dist.sum_floats([sums[k] for k in keys] + [float(n_batches)])
        means = {k: v / reduced[-1] for k, v in zip(keys, reduced[:-1], strict=True)}
        val = score_pairs(model, family, data.val, e_tf, device, dist, desc="val", amp=amp,
                          channels_last=channels_last, threshold=settings.eval_threshold)
        row = {"epoch": epoch + 1, **means, "lr": lr, "lambda": lam if family == "unet" else "",
               "val_precision": val["precision"], "val_jaccard": val["jaccard"],
               "seconds": round(time.perf_counter() - t0, 3)}
        if family == "unet" and settings.loss.dml is None:
            row["lambda"] = ""
        history.append(row)
        if dist.is_main:
            write_history_csv(run_dir / CSV_NAME, history, columns)
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": capture_rng_state(),
                "sampler": {"seed": settings.seed, "epoch": epoch + 1, "world": dist.world},
                "epoch": epoch,
                "history": history,
                "elapsed_s": elapsed_before + time.perf_counter() - t_start,
            })
        dist.barrier()
        if progress:
            tqdm.write(f"[{settings.experiment}] epoch {epoch + 1}: loss {row['loss']:.4f}  "
                       f"val P {100 * row['val_precision']:.1f}  J {row['val_jaccard']:.3f}  "
                       f"({row['seconds']:.0f} s)")

    if settings.threshold_selection == "val":
        thresholds = select_thresholds(model, family, data.val, data.val_negative, e_tf, device, dist, amp=amp,
                                       channels_last=channels_last)
    else:
        thresholds = {"selected_on": "fixed", "mask": settings.eval_threshold,
                      "decision": settings.eval_threshold if family == "cosegnet" else None}
    mask_t = thresholds["mask"]
    decision_t = mask_t if thresholds["decision"] is None else thresholds["decision"]
    test = {
        "positive": score_pairs(model, family, data.test_positive, e_tf, device, dist, desc="test positive",
                                amp=amp, channels_last=channels_last, progress=bars,
                                threshold=mask_t, decision_threshold=decision_t),
        "negative": None,
    }
    if data.test_negative is not None and len(data.test_negative):
        test["negative"] = score_pairs(model, family, data.test_negative, e_tf, device, dist, negative=True,
                                       desc="test negative", amp=amp, channels_last=channels_last,
                                       progress=bars, threshold=mask_t, decision_threshold=decision_t)
    wall = elapsed_before + time.perf_counter() - t_start
    if dist.is_main:
        write_json(run_dir / RESULTS_NAME, {
            "experiment": settings.experiment,
            "profile": settings.profile,
            "seed": settings.seed,
            "test": test,
            "thresholds": thresholds,
            "history": history,
            "wall_time_s": wall,
            "resumed": resuming,
        })
        cfg = read_json(run_dir / CONFIG_NAME)
        cfg["wall_time_s"] = wall
        cfg["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(run_dir / CONFIG_NAME, cfg)
    dist.barrier()
    return RunResult(run_dir=run_dir, settings=settings, history=history, test=test, wall_time_s=wall,
                     resumed=resuming)


def _epoch_len(data, epoch: int) -> int:
    return len(data.epoch_samples(epoch))


def _to_device(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    return batch


def load_trained_model(run_dir, device: str | None = None):
    """(settings, model in eval mode with the final weights, device) of a finished or checkpointed run."""
    from cosegkit.train.modeling import build_model

    run_dir = Path(run_dir)
    cfg = read_json(run_dir / CONFIG_NAME)
    settings = settings_from_dict(cfg["settings"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and settings.device != "cpu" else "cpu"))
    model = build_model(replace(settings.model, pretrained=False))  # weights come from the checkpoint
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=dev, required=("model",))
    model.load_state_dict(ckpt["model"])
    return settings, model.to(dev).eval(), dev


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
