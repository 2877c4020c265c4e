"""The embedding head's layer 6 (a 2x2 stride-2 transposed convolution, 16 -> 64 channels): forward + backward of
``nn.ConvTranspose2d`` against :class:`cosegkit.models.siamese_unet.Deconv2x2`, which trains as a 1x1 convolution +
``pixel_shuffle``, as the cpu profile runs it (bf16 autocast, channels-last, 3 pairs = 6 maps), at the U-Net's
claim size (256 px) and its ablation size (192 px); and the forward without gradient (evaluation), where
``Deconv2x2`` is the transposed convolution. Old and new alternate; the table gives the median of ``--repeats``
rounds after one warm-up round, measured in one run, and whether the forward outputs are identical.

    .venv/bin/python benchmarks/bench_deconv.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import statistics
import time

import torch
from _timing import print_header, timing_args  # benchmarks/_timing.py (scripts run from benchmarks/)

from cosegkit.models.siamese_unet import Deconv2x2


def _train_step(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[float, torch.Tensor]:
    x = x.detach().requires_grad_()
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
    y.backward(grad)
    return time.perf_counter() - t, y.detach()


def main() -> None:
    args = timing_args(__doc__)
    print_header("bench_deconv", args)
    print("| layer 6, 6 maps, bf16 channels-last | ConvTranspose2d ms | Deconv2x2 ms | speed-up | forward |")
    print("|---|---:|---:|---:|---|")
    for side in (128, 96):
        g = torch.Generator().manual_seed(0)
        old = torch.nn.ConvTranspose2d(16, 64, 2, stride=2)
        new = Deconv2x2(16, 64)
        new.load_state_dict(old.state_dict())
        old, new = old.to(memory_format=torch.channels_last), new.to(memory_format=torch.channels_last)
        x = torch.randn(6, 16, side, side, generator=g).contiguous(memory_format=torch.channels_last)
        grad = torch.randn(6, 64, 2 * side, 2 * side, generator=g).to(torch.bfloat16).contiguous(
            memory_format=torch.channels_last)
        times: dict[str, list[float]] = {"old": [], "new": []}
        outputs = {}
        for i in range(args.repeats + 1):
            for name, module in (("old", old), ("new", new)):
                seconds, outputs[name] = _train_step(module, x, grad)
                if i:  # the first round warms up
                    times[name].append(seconds)
        t_old, t_new = (statistics.median(times[k]) * 1e3 for k in ("old", "new"))
        same = "identical" if torch.equal(outputs["old"], outputs["new"]) else "DIFFERENT"
        print(f"| forward + backward, 16x{side}x{side} -> 64x{2 * side}x{2 * side} | {t_old:.1f} | {t_new:.1f} | "
              f"{t_old / t_new:.2f}x | {same} |")
        # the forward alone in both forms (gradient on, no backward: Deconv2x2 takes its 1x1 path), and without
        # gradient, where Deconv2x2 runs the transposed convolution
        for label, grad_mode in (("forward only, 1x1 form", True), ("forward without gradient", False)):
            evals: dict[str, list[float]] = {"old": [], "new": []}
            with torch.set_grad_enabled(grad_mode), torch.autocast("cpu", dtype=torch.bfloat16):
                for i in range(args.repeats + 1):
                    for name, module in (("old", old), ("new", new)):
                        t = time.perf_counter()
                        outputs[name] = module(x).detach()
                        if i:
                            evals[name].append(time.perf_counter() - t)
            e_old, e_new = (statistics.median(evals[k]) * 1e3 for k in ("old", "new"))
            same = "identical" if torch.equal(outputs["old"], outputs["new"]) else "DIFFERENT"
            print(f"| {label}, 16x{side}x{side} | {e_old:.1f} | {e_new:.1f} | {e_old / e_new:.2f}x | {same} |")


if __name__ == "__main__":
    main()
