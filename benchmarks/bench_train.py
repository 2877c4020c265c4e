"""Training throughput vs data-pipeline throughput (pairs/s), at a profile's settings (default: cpu).

    .venv/bin/python benchmarks/bench_train.py [--experiment unet-dice-istriplet] [--profile cpu]
        [--data-root DIR] [--steps 20] [--num-workers N]

Measures, in one run and on the same epoch samples:
1. data pipeline alone: the engine's DataLoader (TrainSamples + collate, decoded-image cache warmed by one pass),
   iterated without a model;
2. training: the same loader + forward + loss + backward + SGD step (the engine's compute_loss);
3. with CUDA: the step time against a pure forward+backward+step on one batch already on the GPU (so the gap is
   the input pipeline and host-device transfer), with bf16 autocast and channels_last as in the engine.
The data pipeline must be at least 3x faster than training (exit status 1 otherwise). Pairs: SiameseUNet counts
image pairs; CoSegNet counts triplets x 2 (a positive and a negative pair per triplet).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.data import DataLoader

from cosegkit.train.data import TrainSamples, build_run_data, collate
from cosegkit.train.experiments import build_settings
from cosegkit.train.modeling import build_model, compute_loss, make_optimizer, set_train_mode, train_transform


def _loader(data, settings, model, epoch: int, num_workers: int) -> DataLoader:
    samples = data.epoch_samples(epoch)
    ds = TrainSamples(data, samples, epoch, train_transform(settings, model))
    return DataLoader(ds, batch_size=settings.data.batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate, pin_memory=torch.cuda.is_available())


def _pairs_in(batch: dict) -> int:
    if "pos" in batch:
        return 2 * batch["pos"]["image_a"].shape[0]
    return batch["image_a"].shape[0]


def _to(batch, device, channels_last: bool):
    if isinstance(batch, dict):
        return {k: _to(v, device, channels_last) for k, v in batch.items()}
    batch = batch.to(device, non_blocking=True)
    if channels_last and batch.ndim == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="unet-dice-istriplet")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--data-root", default=None, help="dataset folder (default: synthetic pairs)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the profile's)")
    args = ap.parse_args(argv)

    n_batches = args.steps + args.warmup
    settings = build_settings(args.experiment, args.profile, seed=0)
    bs = settings.data.batch_size
    overrides = {"data.pairs_per_epoch": n_batches * bs, "progress": False}
    if args.num_workers is not None:
        overrides["data.num_workers"] = args.num_workers
    settings = build_settings(args.experiment, args.profile, seed=0, overrides=overrides)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = channels_last = device.type == "cuda"
    torch.manual_seed(0)
    data = build_run_data(settings, args.data_root)
    model = build_model(settings.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, settings.optim)
    nw = settings.data.num_workers
    print(f"{args.experiment} @ {args.profile}: {settings.data.image_size}px, batch {bs}, {nw} workers, "
          f"{torch.get_num_threads()} threads, device {device}, data {data.source}")

    # 1. data pipeline alone (one warm-up pass fills the decoded-image cache; then the same pass is timed)
    for _ in _loader(data, settings, model, 0, 0):
        pass
    t0 = time.perf_counter()
    n_data = 0
    for batch in _loader(data, settings, model, 0, nw):
        n_data += _pairs_in(batch)
    data_rate = n_data / (time.perf_counter() - t0)

    # 2. training steps through the same loader
    set_train_mode(model, settings.model.freeze_bn)
    n_train, t_train = 0, 0.0
    gen = torch.Generator(device=device).manual_seed(0)
    t_last = time.perf_counter()
    for i, batch in enumerate(_loader(data, settings, model, 0, nw)):
        batch = _to(batch, device, channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = compute_loss(model, settings.model.family, batch, settings, 1.0, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        if i >= args.warmup:
            n_train += _pairs_in(batch)
            t_train += now - t_last
        t_last = now
    train_rate = n_train / t_train
    ratio = data_rate / train_rate
    print(f"data pipeline : {data_rate:8.1f} pairs/s")
    print(f"training      : {train_rate:8.1f} pairs/s  ({1000 * t_train / args.steps:.0f} ms/step)")
    print(f"ratio         : {ratio:8.1f}x  (required >= 3x)")

    # 3. GPU: full step vs pure forward+backward on a resident batch
    if device.type == "cuda":
        batch = _to(next(iter(_loader(data, settings, model, 0, 0))), device, channels_last)
        for _ in range(args.warmup):
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss, _ = compute_loss(model, settings.model.family, batch, settings, 1.0, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss, _ = compute_loss(model, settings.model.family, batch, settings, 1.0, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        pure = (time.perf_counter() - t0) / args.steps
        print(f"GPU step time : {1000 * t_train / args.steps:.1f} ms  vs pure forward+backward "
              f"{1000 * pure:.1f} ms  ({torch.cuda.get_device_name()})")
    return 0 if ratio >= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
