"""The pixel-DML term of a training step, read from the pair's bf16 maps (new) vs their float32 copy (old), one run.

    .venv/bin/python benchmarks/bench_pixel_gather.py [--repeats 7] [--threads 2]

Under the cpu profile the Siamese U-Net's embedding head returns two bf16, channels-last (3, 64, H, W) maps. Until
this change the task concatenated them and cast the whole batch to float32 before IS-Triplet or the Group Loss
gathered their few thousand sampled pixels (``old``: ``torch.cat(maps).float()``, which the one-gather path then
copied to a contiguous layout, and whose gradient was scattered back into a full-size float32 buffer). The
losses now take the list of maps and read only the sampled pixels (``new``: ``gather_pixels(maps, index,
torch.float32)``, see :func:`cosegkit.samplers.gather_pixels`).

Each row times forward + backward of the loss from the two maps (leaf tensors standing for the model's output)
with the profile's settings: IS-Triplet K = 2000, margin 3; Group Loss K = 256, 2 anchors, 3 steps; 3 pairs;
an elliptic object of 15-45 % of each image. Old and new alternate, and the table gives the median of
``--repeats`` after one warm-up each. ``check`` compares the loss and both maps' gradients bit for bit.
"""

from __future__ import annotations

import statistics
import time

import torch
from _timing import print_header, timing_args  # benchmarks/_timing.py (scripts run from benchmarks/)

from cosegkit.losses.group_loss import pixel_group_loss
from cosegkit.losses.is_triplet import is_triplet_loss


def _masks(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    radii = 0.45 + 0.3 * torch.rand(n, 2, generator=generator)
    return (yy / radii[:, :1, None]) ** 2 + (xx / radii[:, 1:, None]) ** 2 < 1


def _maps(size: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 64, size, size, generator=g).to(torch.bfloat16)
            .contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2)]


def _step(loss_name: str, size: int, masks: torch.Tensor, logits: torch.Tensor, old: bool):
    maps = _maps(size, seed=1)
    start = time.perf_counter()
    emb = torch.cat(maps).float() if old else maps
    if old:
        emb = emb.contiguous()  # what the one-gather path did to the channels-last copy
    gen = torch.Generator().manual_seed(2)
    if loss_name == "IS-Triplet":
        loss = is_triplet_loss(emb, masks, k=2000, margin=3.0, generator=gen)
    else:
        loss = pixel_group_loss(emb, logits, masks, k=256, n_anchors=2, steps=3, generator=gen)
    loss.backward()
    return time.perf_counter() - start, loss.detach(), [m.grad for m in maps]


def main() -> None:
    args = timing_args(__doc__)
    print_header("bench_pixel_gather", args)
    print("| loss | maps | old ms | new ms | speed-up | check |")
    print("|---|---|---:|---:|---:|---|")
    for loss_name, size in (("IS-Triplet", 256), ("IS-Triplet", 192), ("Group Loss", 192)):
        g = torch.Generator().manual_seed(0)
        masks = _masks(6, size, g)
        logits = torch.randn(6, 2, size, size, generator=g)
        times = {True: [], False: []}
        results = {}
        for i in range(args.repeats + 1):
            for old in (True, False):
                seconds, loss, grads = _step(loss_name, size, masks, logits, old)
                results[old] = (loss, grads)
                if i:  # the first round warms up
                    times[old].append(seconds)
        (loss_old, grads_old), (loss_new, grads_new) = results[True], results[False]
        same = torch.equal(loss_old, loss_new) and all(
            torch.equal(a, b) for a, b in zip(grads_old, grads_new, strict=True))
        t_old, t_new = statistics.median(times[True]) * 1e3, statistics.median(times[False]) * 1e3
        print(f"| {loss_name} | 2 x 3x64x{size}x{size} bf16 | {t_old:.1f} | {t_new:.1f} | {t_old / t_new:.1f}x | "
              f"{'loss and gradients bit-identical' if same else 'DIFFERENT'} |")


if __name__ == "__main__":
    main()
