"""The training loop of every model family: `Trainer.run` = resume or start, epochs, test, finalise.

What differs between families (model, epoch samples, collating, loss, prediction) is the run's task
(cosegkit.tasks); the trainer owns what they share. Per epoch: `train_epoch` (the steps), `validate` (P and J on
the validation pairs), `checkpoint` (metrics.csv and checkpoint.pt, atomically); at the end `test` (positive and
negative test pairs) and `finalise` (results.json, the wall time in config.json). The order of the random draws
is fixed (seed, data, model, ... as listed in `_build`), so a resumed run draws what an uninterrupted one does.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from cosegkit.tasks import task_for
from cosegkit.train.checkpoint import (
    CHECKPOINT_NAME,
    RESUME_KEYS,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from cosegkit.train.data import TrainSamples, derive_seed
from cosegkit.train.distributed import Dist
from cosegkit.train.evaluate import eval_views, score_pairs, select_thresholds
from cosegkit.train.modeling import (
    eval_transform,
    make_optimizer,
    make_scheduler,
    run_precision,
    set_train_mode,
    train_transform,
)
from cosegkit.train.progress import show_bars
from cosegkit.train.records import (
    CONFIG_NAME,
    CSV_NAME,
    RESULTS_NAME,
    RunResult,
    csv_columns,
    data_root_for_config,
    git_commit,
    package_versions,
    read_json,
    write_history_csv,
    write_json,
)
from cosegkit.train.settings import TrainSettings, settings_to_dict

__all__ = ["Trainer", "seed_everything", "to_device"]

StepHook = Callable[[int], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    return batch


class Trainer:
    """One run of `settings` into `run_dir`. `on_step(global_step)`, if given, is called before every training
    step (the exact-resume tests inject their SIGKILL there)."""

    def __init__(self, settings: TrainSettings, run_dir: Path, data_root, dist: Dist, device: torch.device,
                 on_step: StepHook | None = None):
        self.settings, self.run_dir, self.data_root = settings, run_dir, data_root
        self.dist, self.device, self.on_step = dist, device, on_step
        self.task = task_for(settings)
        self.amp, self.channels_last = run_precision(settings, device)
        self.progress = settings.progress and dist.is_main  # one line per epoch
        self.bars = show_bars(self.progress)  # and tqdm bars where someone watches them (a terminal or Jupyter)
        self.ckpt_path = run_dir / CHECKPOINT_NAME
        self.history: list[dict] = []
        self.start_epoch = 0
        self.elapsed_before = 0.0
        self.resumed = False

    def run(self, resume: bool) -> RunResult:
        self.t_start = time.perf_counter()
        self._build()
        self.resumed = resume and self.ckpt_path.is_file()
        if self.resumed:
            self.resume()
        elif self.dist.is_main:
            self.write_config()
        self.dist.barrier()
        self._parallel()
        for epoch in range(self.start_epoch, self.settings.epochs):
            t0 = time.perf_counter()
            row = self.train_epoch(epoch)
            val = self.validate()
            row.update(val_precision=val["precision"], val_jaccard=val["jaccard"],
                       seconds=round(time.perf_counter() - t0, 3))
            self.history.append(row)
            self.checkpoint(epoch)
            if self.progress:
                tqdm.write(f"[{self.settings.experiment}] epoch {epoch + 1}: loss {row['loss']:.4f}  "
                           f"val P {100 * row['val_precision']:.1f}  J {row['val_jaccard']:.3f}  "
                           f"({row['seconds']:.0f} s)")
        return self.finalise(self.test())

    def _build(self) -> None:
        """Seed, data, model, optimizer and lr schedule, in this order (it fixes every random draw)."""
        s = self.settings
        seed_everything(s.seed)
        self.data = self.task.build_data(s, self.data_root)
        self.model = self.task.build_model(s.model).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, s.optim)
        epoch_len = len(self.data.epoch_samples(0))
        self.steps_per_epoch = math.ceil(math.ceil(epoch_len / self.dist.world) / s.data.batch_size)
        self.scheduler, self.step_per_batch = make_scheduler(self.optimizer, s.optim, self.steps_per_epoch,
                                                             s.epochs)

    def resume(self) -> None:
        """Model, optimizer, scheduler, RNG states, history and elapsed time from the run's checkpoint."""
        ckpt = load_checkpoint(self.ckpt_path, map_location=self.device, required=RESUME_KEYS)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng_state(ckpt["rng"])
        self.history = list(ckpt["history"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.elapsed_before = float(ckpt["elapsed_s"])
        if ckpt["sampler"]["seed"] != self.settings.seed:
            raise ValueError(f"{self.ckpt_path}: sampler seed {ckpt['sampler']['seed']} != run seed "
                             f"{self.settings.seed}")

    def write_config(self) -> None:
        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.run_dir / CONFIG_NAME, {
            "experiment": s.experiment,
            "profile": s.profile,
            "seed": s.seed,
            "data_root": data_root_for_config(self.data_root, self.run_dir),
            # the folder's name, not its path: a committed run names no absolute path of the machine
            "data_source": self.data.source if self.data_root is None else f"folder {Path(self.data.source).name}",
            "settings": settings_to_dict(s),
            "git": git_commit(),
            "versions": package_versions(),
            "world_size": self.dist.world,
            "device": str(self.device),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_time_s": None,
        })

    def _parallel(self) -> None:
        """The data-parallel wrapper (under torchrun), the transforms and the metrics.csv columns."""
        self.train_model = self.model
        if self.dist.enabled:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.task.unused_parameters,
            )
        self.train_tf = train_transform(self.settings, self.model)
        self.eval_tf = eval_transform(self.settings, self.model)
        self.columns = csv_columns(self.settings.model.family)

    def _loader(self, epoch: int) -> DataLoader:
        s, dist = self.settings, self.dist
        ds = TrainSamples(self.data, self.data.epoch_samples(epoch), epoch, self.train_tf)
        sampler = (DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=False)
                   if dist.enabled else None)
        if sampler is not None:
            sampler.set_epoch(epoch)
        return DataLoader(ds, batch_size=s.data.batch_size, shuffle=False, sampler=sampler,
                          num_workers=s.data.num_workers, collate_fn=self.task.collate, drop_last=False,
                          pin_memory=self.device.type == "cuda")

    def _step(self, batch: dict, epoch: int, step: int, lam: float | None) -> dict[str, torch.Tensor]:
        """One optimisation step; the loss and its terms."""
        s = self.settings
        gen = torch.Generator(device=self.device).manual_seed(derive_seed(s.seed, epoch, step, self.dist.rank))
        batch = to_device(batch, self.device, self.channels_last)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, terms = self.task.loss(self.train_model, batch, s, lam, gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.optim.grad_clip)
        self.optimizer.step()
        if self.step_per_batch:
            self.scheduler.step()
        return {"loss": loss, **terms}

    def train_epoch(self, epoch: int) -> dict:
        """The steps of `epoch`; its row of metrics.csv so far: epoch, mean loss terms over ranks, lr, lambda."""
        s = self.settings
        lam = self.task.loss_weight(s, epoch)
        lr = self.optimizer.param_groups[-1]["lr"]  # the decoder / head group (the encoder may run at a multiple)
        loader = self._loader(epoch)
        set_train_mode(self.model, s.model.freeze_bn)
        sums: dict[str, float] = {}
        n_batches = 0
        bar = tqdm(loader, desc=f"{s.experiment} epoch {epoch + 1}/{s.epochs}", disable=not self.bars, leave=False)
        for step, batch in enumerate(bar):
            if self.on_step is not None:
                self.on_step(epoch * self.steps_per_epoch + step)
            logged = self._step(batch, epoch, step, lam)
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_batches += 1
            if self.bars:
                bar.set_postfix(loss=f"{float(logged['loss'].detach()):.4f}")
        if not self.step_per_batch:
            self.scheduler.step()
        keys = sorted(sums)
        reduced = self.dist.sum_floats([sums[k] for k in keys] + [float(n_batches)])
        means = {k: v / reduced[-1] for k, v in zip(keys, reduced[:-1], strict=True)}
        return {"epoch": epoch + 1, **means, "lr": lr, "lambda": "" if lam is None else lam}

    def _score(self, pairs, desc: str, negative: bool = False, progress: bool = False,
               thresholds: dict | None = None) -> dict:
        """Scores at `thresholds` (mask, decision) over the settings' test-time views; without `thresholds` (the
        per-epoch validation curve) at the settings' eval_threshold for both, on the pair as it is."""
        mask_t = decision_t = self.settings.eval_threshold
        views = None
        if thresholds is not None:
            views = eval_views(self.settings)
            mask_t = thresholds["mask"]
            decision_t = mask_t if thresholds["decision"] is None else thresholds["decision"]
        return score_pairs(self.model, self.settings.model.family, pairs, self.eval_tf, self.device, self.dist,
                           negative=negative, desc=desc, amp=self.amp, channels_last=self.channels_last,
                           progress=progress, threshold=mask_t, decision_threshold=decision_t, views=views)

    def validate(self) -> dict:
        """P and J on the validation pairs (every rank scores the same numbers)."""
        return self._score(self.data.val, "val")

    def checkpoint(self, epoch: int) -> None:
        """metrics.csv and checkpoint.pt after `epoch` (rank 0; atomic, so a kill leaves the previous ones)."""
        if self.dist.is_main:
            write_history_csv(self.run_dir / CSV_NAME, self.history, self.columns)
            save_checkpoint(self.ckpt_path, {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": capture_rng_state(),
                "sampler": {"seed": self.settings.seed, "epoch": epoch + 1, "world": self.dist.world},
                "epoch": epoch,
                "history": self.history,
                "elapsed_s": self.elapsed_before + time.perf_counter() - self.t_start,
            })
        self.dist.barrier()

    def choose_thresholds(self) -> dict:
        """The mask (and decision) thresholds the test uses: chosen on validation (threshold_selection="val",
        `evaluate.select_thresholds`), or the settings' eval_threshold."""
        s = self.settings
        if s.threshold_selection == "val":
            return select_thresholds(self.model, s.model.family, self.data.val, self.data.val_negative, self.eval_tf,
                                     self.device, self.dist, amp=self.amp, channels_last=self.channels_last,
                                     decision_pairs=self.data.val_decision,
                                     chance_permutations=s.decision_chance_permutations, views=eval_views(s))
        return {"selected_on": "fixed", "mask": s.eval_threshold,
                "decision": s.eval_threshold if self.task.has_decision else None}

    def test(self) -> dict:
        """The test report: positive pairs, and negative (outlier) pairs when the data has them, at the thresholds
        of `choose_thresholds` (kept in the report under "thresholds")."""
        self.thresholds = self.choose_thresholds()
        test = {"positive": self._score(self.data.test_positive, "test positive", progress=self.bars,
                                        thresholds=self.thresholds),
                "negative": None}
        negatives = self.data.test_negative
        if negatives is not None and len(negatives):
            test["negative"] = self._score(negatives, "test negative", negative=True, progress=self.bars,
                                           thresholds=self.thresholds)
        return test

    def finalise(self, test: dict) -> RunResult:
        """results.json, and config.json's wall time and end time (rank 0); the run's result."""
        s = self.settings
        wall = self.elapsed_before + time.perf_counter() - self.t_start
        if self.dist.is_main:
            write_json(self.run_dir / RESULTS_NAME, {
                "experiment": s.experiment,
                "profile": s.profile,
                "seed": s.seed,
                "test": test,
                "thresholds": self.thresholds,
                "history": self.history,
                "wall_time_s": wall,
                "resumed": self.resumed,
            })
            cfg = read_json(self.run_dir / CONFIG_NAME)
            cfg["wall_time_s"] = wall
            cfg["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            write_json(self.run_dir / CONFIG_NAME, cfg)
        self.dist.barrier()
        return RunResult(run_dir=self.run_dir, settings=s, history=self.history, test=test, wall_time_s=wall,
                         resumed=self.resumed, thresholds=self.thresholds)
