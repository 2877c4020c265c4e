"""Throughput of `SyntheticCoseg`: pairs generated per second on one core (target: >= 200 pairs/s at 128x128).

Run: ``.venv/bin/python benchmarks/bench_synthetic.py [--size 128] [--pairs 1000] [--repeats 3]``.
The photographs are loaded once per process before timing (reported separately). Throughput is reported per
CPU-second of this single-threaded process (``time.process_time``), which other processes on a shared machine
barely affect, and per wall-clock second; the best of ``--repeats`` runs is kept.
"""

from __future__ import annotations

import argparse
import os
import time

# One core: keep BLAS/OpenMP from spreading the small matrix ops over several threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from cosegkit.data.synthetic import SyntheticCoseg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--negative-fraction", type=float, default=0.25)
    args = parser.parse_args()
    ds = SyntheticCoseg(args.pairs, size=args.size, seed=0, negative_fraction=args.negative_fraction)
    t0 = time.perf_counter()
    ds[0]  # loads and caches the photographs
    print(f"first pair (loads photographs once): {time.perf_counter() - t0:.2f} s")
    cpu_rates, wall_rates = [], []
    for r in range(args.repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        cpu_rates.append(len(ds) / (time.process_time() - c0))
        wall_rates.append(len(ds) / (time.perf_counter() - t0))
        print(f"run {r + 1}: {cpu_rates[-1]:.0f} pairs per CPU-second, {wall_rates[-1]:.0f} pairs per wall second")
    print(f"SyntheticCoseg {args.size}x{args.size}: {max(cpu_rates):.0f} pairs/s on one core "
          f"(best of {args.repeats} x {len(ds)} pairs; wall-clock best {max(wall_rates):.0f}; target >= 200)")


if __name__ == "__main__":
    main()
