"""The embedding head's layer 6 (2x2 stride-2 transposed convolution, 16 -> 64 channels): forward + backward of
``nn.ConvTranspose2d`` against :class:`cosegkit.models.siamese_unet.Deconv2x2` (1x1 convolution + pixel_shuffle in
training), as the cpu profile runs it (bf16 autocast, channels-last, 3 pairs = 6 maps), at the U-Net's claim size
(256 px) and its ablation size (192 px). Prints ms per forward + backward and the ratio, measured in one run.

    python benchmarks/bench_deconv.py [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from cosegkit.models.siamese_unet import Deconv2x2


def _time(fn, repeats: int) -> float:
    fn()
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("| input (6 maps) | ConvTranspose2d fwd+bwd ms | Deconv2x2 fwd+bwd ms | ratio | forward identical |")
    print("|---|---|---|---|---|")
    for side in (128, 96):
        old = torch.nn.ConvTranspose2d(16, 64, 2, stride=2).to(memory_format=torch.channels_last)
        new = Deconv2x2(16, 64).to(memory_format=torch.channels_last)
        new.load_state_dict(old.state_dict())
        x = torch.randn(6, 16, side, side).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn(6, 64, 2 * side, 2 * side).to(torch.bfloat16).contiguous(
            memory_format=torch.channels_last)

        def step(module, x=x, grad=grad):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = module(x)
            y.backward(grad)
            return y

        same = bool(torch.equal(step(old), step(new)))
        t_old = _time(lambda module=old: step(module), args.repeats)
        t_new = _time(lambda module=new: step(module), args.repeats)
        print(f"| 16 x {side} x {side} -> 64 x {2 * side} x {2 * side} | {t_old:.1f} | {t_new:.1f} | "
              f"{t_old / t_new:.2f}x | {same} |")


if __name__ == "__main__":
    main()
