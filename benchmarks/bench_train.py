"""The cpu profile's training path against the old one, and training against the data pipeline alone.

    .venv/bin/python benchmarks/bench_train.py [--experiment unet-dice] [--profile cpu] [--data-root DIR]
        [--steps 20] [--budget-s 0] [--precision] [--cosegnet-tail]

Measured in one run, on the same epoch samples, model and image size:
1. the data pipeline alone (the engine's DataLoader with TrainSamples + collate, decoded-image cache warm), with
   PairTransform's view cache warm (as after a run's first epochs: flip-only augmentation gives each image two
   views) and without it (the v2 pipeline on every call; the same tensors);
2. training steps (forward + loss + backward + optimizer step, the engine's compute_loss) on two paths:
   - old: the encoder is fine-tuned (at ``optim.encoder_lr_mult``) on colour-jittered inputs, as the cpu profile
     did before the feature cache (``model.freeze_encoder=false``, ``data.augment="flip_jitter"``);
   - new: the profile's own settings: the frozen encoder's features come from the feature cache
     (``model.freeze_encoder=true``, ``data.augment="flip"``). Its first pass over the samples fills the cache;
     that pass is timed separately and then the same steps are timed warm, as every later epoch and every
     other run of the same encoder and size sees them;
3. with ``--budget-s T``: each path trains from the same initial weights for T seconds of wall time (the new
   path's cache filling included) and is then scored on the validation pairs (P, J), so the ratio of learning
   per CPU-second is measured, not only the step rate.
4. with ``--precision``: the new path's warm steps again in float32 (what sections 2-3 compute), with the model
   channels-last, under bf16 autocast, and both (``channels_last_on_cpu`` / ``amp_on_cpu``, which the cpu profile
   turns on), each from the same initial weights on the same batches, as ratios to float32, with the loss after
   those steps beside it.
5. with ``--cosegnet-tail`` (a CoSegNet experiment): the new path's warm steps with the whole decoder run on every
   pair and the negative pairs' mask logits detached (CoSegNet before ``positive_mask`` skipped them) against the
   model's own path, which runs the layers after the metric layer on the positive pairs only; both from the same
   weights on the same batches, with the loss after those steps beside them (equal up to rounding: the two paths
   have the same loss and gradients, tests/test_models_cosegnet.py).
Pairs: SiameseUNet counts image pairs; CoSegNet counts triplets x 2 (a positive and a negative pair each).
Exit status 1 when the data pipeline is not at least 3x faster than the new path's training.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from cosegkit.models import feature_cache
from cosegkit.tasks import build_run_data
from cosegkit.train.data import TrainSamples, collate
from cosegkit.train.evaluate import score_pairs
from cosegkit.train.experiments import build_settings
from cosegkit.train.modeling import (
    build_model,
    compute_loss,
    eval_transform,
    make_optimizer,
    set_train_mode,
    train_transform,
)
from cosegkit.train.trainer import to_device

OLD_PATH = {"model.freeze_encoder": False, "data.augment": "flip_jitter"}


def _loader(data, settings, model, epoch: int, transform=None) -> DataLoader:
    transform = transform or train_transform(settings, model)
    ds = TrainSamples(data, data.epoch_samples(epoch), epoch, transform)
    return DataLoader(ds, batch_size=settings.data.batch_size, shuffle=False, num_workers=0, collate_fn=collate)


def _data_rate(data, settings, model, transform) -> float:
    """Pairs per second of one epoch of the data pipeline through `transform`."""
    t0, n = time.perf_counter(), 0
    for batch in _loader(data, settings, model, 0, transform):
        n += _pairs_in(batch)
    return n / (time.perf_counter() - t0)


def _pairs_in(batch: dict) -> int:
    return 2 * batch["pos"]["image_a"].shape[0] if "pos" in batch else batch["image_a"].shape[0]


class Path_:
    """One training path: settings, model, optimizer, and a step function."""

    def __init__(self, name: str, settings, initial_state: dict | None, bf16: bool = False,
                 channels_last: bool = False):
        self.name, self.settings, self.bf16, self.channels_last = name, settings, bf16, channels_last
        torch.manual_seed(0)
        self.model = build_model(settings.model)
        if initial_state is not None:  # same starting weights for both paths
            self.model.load_state_dict(initial_state)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = make_optimizer(self.model, settings.optim)
        self.gen = torch.Generator().manual_seed(0)
        self.last_loss = float("nan")

    def step(self, batch) -> int:
        set_train_mode(self.model, self.settings.model.freeze_bn)
        batch = to_device(batch, torch.device("cpu"), self.channels_last)  # what the trainer does
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss, _ = compute_loss(self.model, self.settings.model.family, batch, self.settings, 1.0, self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.last_loss = float(loss.detach())
        return _pairs_in(batch)


def _timed_steps(path: Path_, batches) -> tuple[float, int]:
    t0, n = time.perf_counter(), 0
    for batch in batches:
        n += path.step(batch)
    return time.perf_counter() - t0, n


def _train_for(path: Path_, data, seconds: float) -> int:
    """Train epoch after epoch until `seconds` of wall time have passed; returns the steps taken."""
    t0, steps, epoch = time.perf_counter(), 0, 0
    while True:
        for batch in _loader(data, path.settings, path.model, epoch):
            path.step(batch)
            steps += 1
            if time.perf_counter() - t0 >= seconds:
                return steps
        epoch += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="unet-dice")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--data-root", default=None, help="dataset folder (default: synthetic pairs)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per path")
    ap.add_argument("--budget-s", type=float, default=0.0, help="also train each path this long and score val J")
    ap.add_argument("--precision", action="store_true",
                    help="also time the new path with channels-last and bf16 autocast (amp_on_cpu)")
    ap.add_argument("--cosegnet-tail", action="store_true",
                    help="CoSegNet: also time the decoder on every pair (before positive_mask) against the mask "
                         "tail on positive pairs only")
    args = ap.parse_args(argv)

    new = build_settings(args.experiment, args.profile, seed=0, overrides={"progress": False})
    if not new.model.freeze_encoder:
        print(f"note: {args.profile}'s {args.experiment} does not freeze its encoder; 'new' is forced to freeze it")
    new = build_settings(args.experiment, args.profile, seed=0,
                         overrides={"progress": False, "model.freeze_encoder": True, "data.augment": "flip",
                                    "data.pairs_per_epoch": args.steps * new.data.batch_size})
    old = build_settings(args.experiment, args.profile, seed=0,
                         overrides={"progress": False, "data.pairs_per_epoch": new.data.pairs_per_epoch,
                                    **OLD_PATH})
    if new.num_threads:
        torch.set_num_threads(new.num_threads)
    feature_cache._MEMORY.clear()  # a cold cache: the fill is part of what is measured
    data = build_run_data(new, args.data_root)
    old_path = Path_("old", old, None)
    initial = copy.deepcopy(old_path.model.state_dict())
    new_path = Path_("new", new, initial)
    print(f"{args.experiment} @ {args.profile}: {new.data.image_size}px, batch {new.data.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.steps} steps per path, data {data.source}; {_cpu_name()}")

    views = train_transform(new, new_path.model)  # one transform: its view cache lives as long as a run's
    for _ in _loader(data, new, new_path.model, 0, views):  # decode every image once, fill the view cache
        pass
    data_rate = _data_rate(data, new, new_path.model, views)
    no_views = train_transform(new, new_path.model, cache_views=False)  # v2 on every call: the same tensors
    no_views_rate = _data_rate(data, new, new_path.model, no_views)

    old_batches = list(_loader(data, old, old_path.model, 0))
    new_batches = list(_loader(data, new, new_path.model, 0))
    old_path.step(old_batches[0])  # warm-up (allocator, first-call overheads) for both
    fill_s, _ = _timed_steps(new_path, new_batches)  # cold: fills the feature cache
    old_s, n_old = _timed_steps(old_path, old_batches)
    new_s, n_new = _timed_steps(new_path, new_batches)  # warm cache
    old_rate, new_rate, fill_rate = n_old / old_s, n_new / new_s, n_new / fill_s
    print(f"data pipeline        : {data_rate:8.1f} pairs/s  (view cache warm)   {no_views_rate:.1f} pairs/s "
          f"without it: {data_rate / no_views_rate:.2f}x")
    print(f"old path             : {old_rate:8.2f} pairs/s  ({1000 * old_s / len(old_batches):.0f} ms/step)")
    print(f"new path, cold cache : {fill_rate:8.2f} pairs/s  ({1000 * fill_s / len(new_batches):.0f} ms/step, "
          "first pass only)")
    print(f"new path, warm cache : {new_rate:8.2f} pairs/s  ({1000 * new_s / len(new_batches):.0f} ms/step)")
    print(f"ratio new/old        : {new_rate / old_rate:8.2f}x  (warm)   {fill_rate / old_rate:.2f}x (cold)")
    print(f"data / new training  : {data_rate / new_rate:8.1f}x  (required >= 3x)")

    if args.precision:
        _precision(new, initial, new_batches)
    if args.cosegnet_tail:
        _cosegnet_tail(new, initial, new_batches)

    if args.budget_s > 0:
        feature_cache._MEMORY.clear()
        e_tf = eval_transform(new, new_path.model)
        scores = {}
        for path in (Path_("old", old, initial), Path_("new", new, initial)):
            steps = _train_for(path, data, args.budget_s)
            path.model.eval()
            val = score_pairs(path.model, new.model.family, data.val, e_tf, torch.device("cpu"), desc="val",
                              progress=False, threshold=new.eval_threshold)
            scores[path.name] = val
            print(f"{path.name} path after {args.budget_s:.0f} s: {steps} steps, val P {100 * val['precision']:.1f} "
                  f"J {val['jaccard']:.3f}")
        print(f"val J new - old      : {scores['new']['jaccard'] - scores['old']['jaccard']:+.3f}")
    return 0 if data_rate >= 3 * new_rate else 1


def _cpu_name() -> str:
    """The CPU model and whether it has AMX (bf16 matrix tiles), which decides whether bf16 pays on a CPU."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return f"{model}, {'with' if 'amx_bf16' in info else 'no'} AMX"


def _precision(settings, initial: dict, batches: list) -> None:
    """Warm-cache steps of the new path in each arithmetic and layout, as ratios to float32 (section 4)."""
    variants = {"float32": (False, False), "channels-last": (False, True), "bf16 autocast": (True, False),
                "bf16 + channels-last": (True, True)}
    times = {}
    for name, (bf16, channels_last) in variants.items():
        path = Path_(name, settings, initial, bf16=bf16, channels_last=channels_last)
        _timed_steps(path, batches)  # fills this layout's cache keys (and warms its kernels)
        path = Path_(name, settings, initial, bf16=bf16, channels_last=channels_last)
        times[name], _ = _timed_steps(path, batches)
        print(f"{name:21s}: {1000 * times[name] / len(batches):6.0f} ms/step  {times['float32'] / times[name]:5.2f}x"
              f"  (loss after {len(batches)} steps {path.last_loss:.4f})")


def _decoder_on_every_pair(model: torch.nn.Module) -> torch.nn.Module:
    """`model` (a CoSegNet) as it ran before ``positive_mask`` skipped the negative pairs' mask tail: the whole
    decoder on every pair, the negative pairs' mask logits detached (same loss and gradients). The instance's class
    is swapped for a subclass, so everything else about it (frozen encoder, feature cache, attributes the task
    reads) stays as it is."""
    base = type(model)

    class DecoderOnEveryPair(base):
        def forward(self, image_a, image_b, positive_mask=None):
            out = base.forward(self, image_a, image_b)
            if positive_mask is not None:
                keep = torch.as_tensor(positive_mask).bool().view(-1, 1, 1, 1)
                out = dataclasses.replace(out, logits_a=torch.where(keep, out.logits_a, out.logits_a.detach()),
                                          logits_b=torch.where(keep, out.logits_b, out.logits_b.detach()))
            return out

    model.__class__ = DecoderOnEveryPair
    return model


def _cosegnet_tail(settings, initial: dict, batches: list) -> None:
    """Warm-cache steps with the decoder on every pair against the model's own path (section 5)."""
    if settings.model.family != "cosegnet":
        print(f"--cosegnet-tail: {settings.experiment} is not a CoSegNet experiment; skipped")
        return
    times, losses = {}, {}
    for name in ("every pair", "positive pairs only"):
        path = Path_(name, settings, initial)
        if name == "every pair":
            _decoder_on_every_pair(path.model)
        path.step(batches[0])  # warm-up (first-call overheads); the timed steps start from the same weights
        path.model.load_state_dict(initial)
        path.opt = make_optimizer(path.model, settings.optim)
        times[name], _ = _timed_steps(path, batches)
        losses[name] = path.last_loss
    every, own = times["every pair"], times["positive pairs only"]
    print(f"CoSegNet mask tail ({settings.model.metric_layer} metric layer, {len(batches)} warm steps, same weights "
          "and batches):")
    print(f"  decoder on every pair, negatives detached: {1000 * every / len(batches):6.0f} ms/step  "
          f"loss after {losses['every pair']:.4f}")
    print(f"  tail on positive pairs only (the model's): {1000 * own / len(batches):6.0f} ms/step  "
          f"loss after {losses['positive pairs only']:.4f}  -> {every / own:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
