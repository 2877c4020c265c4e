"""The decision gate's chance test (`decision_chance_test`) against scikit-learn's ROC curve, in one run.

The best balanced accuracy over every threshold is 0.5 + max(TPR - FPR) / 2 (Youden's J), which
`sklearn.metrics.roc_curve` gives per label vector. The permutation test needs it for `--permutations` shuffled
label vectors; ours sorts the probabilities once and takes cumulative sums for all shuffles at once. Both are run
on the same shuffles (synthetic probabilities of `--pairs` positive + `--pairs` negative pairs, two decision
networks: one at chance, one informative), the maxima are checked equal, and the time ratio is printed.

    .venv/bin/python benchmarks/bench_chance_test.py [--pairs 600] [--permutations 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_curve

from cosegkit.train.evaluate import _best_balanced_accuracy


def sklearn_best(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = []
    for row in labels:
        fpr, tpr, _ = roc_curve(row, values)
        out.append(0.5 + 0.5 * max(float((tpr - fpr).max()), 0.0))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--permutations", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for name, shift in (("at chance", 0.0), ("informative", 0.05)):
        values = np.round(np.r_[rng.normal(0.4 + shift, 0.05, args.pairs), rng.normal(0.4, 0.05, args.pairs)], 6)
        labels = np.r_[np.ones(args.pairs, bool), np.zeros(args.pairs, bool)]
        shuffled = np.stack([rng.permutation(labels) for _ in range(args.permutations)])
        t0 = time.perf_counter()
        ours = np.concatenate([_best_balanced_accuracy(values, part) for part in np.array_split(shuffled, 10)])
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = sklearn_best(values, shuffled)
        t_ref = time.perf_counter() - t0
        assert np.allclose(ours, ref, atol=1e-12), np.abs(ours - ref).max()
        print(f"{name:12s}: {args.permutations} shuffles of {args.pairs} + {args.pairs} pairs; ours {t_ours:.3f} s, "
              f"sklearn roc_curve {t_ref:.3f} s: {t_ref / t_ours:.1f}x; maxima equal (max |diff| "
              f"{np.abs(ours - ref).max():.1e}); observed {_best_balanced_accuracy(values, labels)[0]:.3f}")


if __name__ == "__main__":
    main()
