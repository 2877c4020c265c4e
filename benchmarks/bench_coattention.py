"""Train-step time of the SiameseUNet with co-attention vs the retired two-scalar correlation gate, in one run.

    .venv/bin/python benchmarks/bench_coattention.py [--experiment unet-dice] [--profile cpu] [--steps 5]

Issue #13 asks the co-attention model to train at no more than 1.5x the old model's time per run at the cpu
profile (EfficientNet-Lite0, 160 px, batch 3 pairs, 2 threads). Each timed step is the engine's: train mode with
the profile's frozen BatchNorm, ``compute_loss`` (forward + the experiment's loss), backward, optimizer step, on
one fixed random batch (no data pipeline). The models are built from the same seed and differ only in the block
between encoder and decoder:

- ``old gate``: the block replaced by issue #13 (reimplemented here from commit 8a3cd9c, for this comparison
  only): per location, the mean of the top 10 % cosine correlations with the partner's deepest features, through
  sigmoid(10 s - 5) with two learnable scalars, multiplies the features and is appended as a channel (C + 1
  channels to the decoder);
- ``co-attention (gong)`` / ``(docs)``: :class:`cosegkit.models.correlation.CoAttention`.

Steps of the models are interleaved (old, gong, docs, old, ...) so that load from other processes hits them
alike; the table gives the median step time of each and its ratio to the old gate. Exit status 1 if a ratio
exceeds 1.5. About 1.5 min on the shared 2-core machine (3-4 s per step there, 18 steps).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from cosegkit.models.siamese_unet import UNetDecoder
from cosegkit.train.experiments import build_settings
from cosegkit.train.modeling import build_model, compute_loss, make_optimizer, set_train_mode


class _OldGate(nn.Module):
    """The retired correlation gate (8a3cd9c), for the timing comparison only."""

    def __init__(self, in_channels: int, topk_fraction: float = 0.1):
        super().__init__()
        self.in_channels = in_channels
        self.topk_fraction = topk_fraction
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.shift = nn.Parameter(torch.tensor(-5.0))

    def forward(self, feat_a, feat_b):
        n = feat_a.shape[0]
        corr = F.normalize(feat_a.flatten(2), dim=1).transpose(1, 2) @ F.normalize(feat_b.flatten(2), dim=1)
        s_a = corr.topk(math.ceil(self.topk_fraction * corr.shape[2]), dim=2).values.mean(dim=2)
        s_b = corr.topk(math.ceil(self.topk_fraction * corr.shape[1]), dim=1).values.mean(dim=1)
        g_a = torch.sigmoid(self.scale * s_a.view(n, 1, *feat_a.shape[2:]) + self.shift)
        g_b = torch.sigmoid(self.scale * s_b.view(n, 1, *feat_b.shape[2:]) + self.shift)
        return torch.cat([feat_a * g_a, g_a], dim=1), torch.cat([feat_b * g_b, g_b], dim=1)


def _old_model(model_settings) -> nn.Module:
    """Today's SiameseUNet with the co-attention swapped for the old gate (decoder rebuilt for C + 1 channels)."""
    model = build_model(model_settings)
    deep = model.encoder.out_channels[-1]
    model.coattention = _OldGate(deep)
    model.decoder = UNetDecoder(model.encoder.out_channels, deep + 1, model.decoder_channels, model.head,
                                model_settings.embedding_dim)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="unet-dice")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args(argv)

    settings = build_settings(args.experiment, args.profile, seed=0)
    if settings.model.family != "unet":
        raise SystemExit(f"{args.experiment} is not a SiameseUNet experiment")
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    size, bs = settings.data.image_size, settings.data.batch_size
    builders = {
        "old gate": lambda: _old_model(settings.model),
        "co-attention (gong)": lambda: build_model(replace(settings.model, coattention="gong")),
        "co-attention (docs)": lambda: build_model(replace(settings.model, coattention="docs")),
    }
    models, optims = {}, {}
    for name, build in builders.items():
        torch.manual_seed(0)
        models[name] = build()
        optims[name] = make_optimizer(models[name], settings.optim)
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2).long()
    batch = {"image_a": torch.randn(bs, 3, size, size, generator=g), "image_b": torch.randn(bs, 3, size, size,
             generator=g), "mask_a": mask.expand(bs, -1, -1).clone(), "mask_b": mask.expand(bs, -1, -1).clone()}

    def step(name: str) -> float:
        model, opt = models[name], optims[name]
        t0 = time.perf_counter()
        set_train_mode(model, settings.model.freeze_bn)
        loss, _ = compute_loss(model, "unet", batch, settings, settings.loss.lambda0, torch.Generator().manual_seed(0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times = {name: [] for name in models}
    for i in range(args.warmup + args.steps):
        for name in models:
            t = step(name)
            if i >= args.warmup:
                times[name].append(t)
    base = statistics.median(times["old gate"])
    print(f"{args.experiment} / {args.profile}: {size} px, batch {bs} pairs, {torch.get_num_threads()} threads, "
          f"encoder {settings.model.encoder}, head {settings.model.head}, median of {args.steps} train steps")
    print("| block | params | step (s) | ratio to old gate |\n|---|---|---|---|")
    worst = 0.0
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = med / base
        worst = max(worst, ratio)
        n_params = sum(p.numel() for p in models[name].coattention.parameters())
        print(f"| {name} | {n_params:,} | {med:.3f} | {ratio:.2f} |")
    return 1 if worst > 1.5 else 0


if __name__ == "__main__":
    sys.exit(main())
