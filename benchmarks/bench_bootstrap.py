"""cosegkit.report.pair_bootstrap_ci95 against the library way to draw the same resamples:
``sklearn.utils.resample(..., stratify=groups)``, one call per resample.

Both resample the test pairs within each group (as many pairs per group as it has, with replacement) and take
the 2.5 / 97.5 % quantiles of the resampled means; they use different random streams, so their intervals agree
to Monte-Carlo error, not digit for digit. The scores are random, shaped like the cpu profile's PASCAL-VOC test
(20 groups of 6 pairs) and a paper-scale one (20 groups of 200 pairs). A reproduction computes about 15 such
intervals.

Usage: ``python benchmarks/bench_bootstrap.py [--resamples 2000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.utils import resample

from cosegkit.report import pair_bootstrap_ci95


def sklearn_ci95(per_group: dict, n_resamples: int, seed: int = 0) -> tuple[float, float]:
    """The same interval with scikit-learn's stratified resample, one call per resample."""
    pair_sums = np.concatenate([np.asarray(v, float).reshape(-1, 2).sum(1) for v in per_group.values()])
    groups = np.concatenate([[g] * (len(v) // 2) for g, v in per_group.items()])
    n_images = 2 * pair_sums.size
    means = [resample(pair_sums, stratify=groups, random_state=seed + i).sum() / n_images
             for i in range(n_resamples)]
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print("| test set | resamples | sklearn resample loop | pair_bootstrap_ci95 | ratio | sklearn CI | ours CI |")
    print("|---|---|---|---|---|---|---|")
    for pairs_per_group in (6, 200):
        scores = {f"g{g:02d}": rng.beta(2, 2, size=2 * pairs_per_group).tolist() for g in range(20)}
        t0 = time.perf_counter()
        theirs = sklearn_ci95(scores, args.resamples)
        t1 = time.perf_counter()
        ours = pair_bootstrap_ci95(scores, n_resamples=args.resamples)
        t2 = time.perf_counter()
        print(f"| 20 groups x {pairs_per_group} pairs | {args.resamples} | {1000 * (t1 - t0):.0f} ms | "
              f"{1000 * (t2 - t1):.1f} ms | {(t1 - t0) / (t2 - t1):.0f}x | {theirs[0]:.3f}-{theirs[1]:.3f} | "
              f"{ours[0]:.3f}-{ours[1]:.3f} |")


if __name__ == "__main__":
    main()
