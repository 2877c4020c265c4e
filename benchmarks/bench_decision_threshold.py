"""CoSegNet's decision threshold chosen on few or on many validation pairs: its cost and its spread.

For each trained CoSegNet run on a dataset folder (threshold_selection="val"), on its own validation split:

- cost: seconds to score `val_pairs` positive + as many negative validation pairs the way threshold selection
  does by default (masks and decisions, `select_thresholds`), against the decision alone on `--pairs` positive +
  `--pairs` negative pairs (`decision_probabilities`, one metric embedding per image);
- spread, on validation only: `--repeats` random halvings of the `--pairs` + `--pairs` validation pairs; the
  threshold is chosen on one half, either on `val_pairs` + `val_pairs` of its pairs (today's default) or on all of
  them (`data.decision_val_pairs`), and scored on the other half. Printed: mean and standard deviation over the
  halvings of the held-out accuracy on positive and on negative pairs, and of the balanced accuracy;
- test, for the record (nothing is chosen on it): the decision accuracy on the run's test pairs at the threshold
  the run chose, and at the threshold chosen on all `--pairs` + `--pairs` validation pairs.

    .venv/bin/python benchmarks/bench_decision_threshold.py results/cpu/runs/cosegnet-*/seed0 --pairs 400
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cosegkit.tasks import build_run_data
from cosegkit.train.evaluate import (
    _val_statistics,
    choose_decision_threshold,
    decision_probabilities,
    run_thresholds,
)
from cosegkit.train.modeling import eval_transform, load_trained_model
from cosegkit.train.records import data_root_of_run


def _accuracies(pos, neg, t):
    return float((pos > t).mean()), float((neg <= t).mean())


def measure(run_dir: Path, pairs: int, repeats: int) -> dict:
    settings, model, dev = load_trained_model(run_dir, device="cpu")
    data_root = data_root_of_run(run_dir)
    if data_root is None:
        raise SystemExit(f"{run_dir}: not a run on a dataset folder")
    settings = replace(settings, data=replace(settings.data, decision_val_pairs=pairs))
    data = build_run_data(settings, data_root)
    tf = eval_transform(settings, model)
    family = settings.model.family
    few = settings.data.val_pairs

    t0 = time.perf_counter()
    _val_statistics(model, family, data.val, tf, dev, range(len(data.val)), (0.5,), 8, False, False)
    _val_statistics(model, family, data.val_decision[1], tf, dev, range(few), (0.5,), 8, False, False)
    mask_path_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pos = np.concatenate(decision_probabilities(model, family, data.val_decision[0], tf, dev))
    neg = np.concatenate(decision_probabilities(model, family, data.val_decision[1], tf, dev))
    decision_path_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    held = {"few": [], "all": []}
    for _ in range(repeats):
        # halve by pair (both sides of a pair stay together: decision_probabilities concatenates a then b)
        pp, pn = rng.permutation(pairs), rng.permutation(pairs)
        sel_p, out_p = pp[: pairs // 2], pp[pairs // 2:]
        sel_n, out_n = pn[: pairs // 2], pn[pairs // 2:]
        both = lambda probs, idx: np.concatenate([probs[:pairs][idx], probs[pairs:][idx]])  # noqa: E731
        for name, (ip, in_) in {"few": (sel_p[:few], sel_n[:few]), "all": (sel_p, sel_n)}.items():
            t, _ = choose_decision_threshold(both(pos, ip), both(neg, in_))
            held[name].append(_accuracies(both(pos, out_p), both(neg, out_n), t))

    run_t = run_thresholds(run_dir, settings)[1]
    all_t, _ = choose_decision_threshold(pos, neg)
    test_pos = np.concatenate(decision_probabilities(model, family, data.test_positive, tf, dev))
    test_neg = np.concatenate(decision_probabilities(model, family, data.test_negative, tf, dev))
    return {"run": settings.experiment, "few": few, "mask_path_s": mask_path_s, "decision_path_s": decision_path_s,
            "held": {k: np.asarray(v) for k, v in held.items()},
            "test_run": (run_t, *_accuracies(test_pos, test_neg, run_t)),
            "test_all": (all_t, *_accuracies(test_pos, test_neg, all_t))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--pairs", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| run | val_pairs + as many negative pairs with masks, s | {args.pairs}+{args.pairs} decision alone, s | "
          "ratio | "
          "held-out val acc pos / neg / balanced, chosen on few (mean ± sd) | the same, chosen on all | "
          "test acc pos / neg at the run's threshold | at the all-pairs threshold |")
    print("|---|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        r = measure(run_dir, args.pairs, args.repeats)

        def held(name, r=r):
            a = r["held"][name]
            bal = a.mean(axis=1)
            return (f"{100 * a[:, 0].mean():.0f} ± {100 * a[:, 0].std():.0f} / {100 * a[:, 1].mean():.0f} ± "
                    f"{100 * a[:, 1].std():.0f} / {100 * bal.mean():.1f} ± {100 * bal.std():.1f}")

        tr, ta = r["test_run"], r["test_all"]
        print(f"| {r['run']} | {r['mask_path_s']:.1f} ({r['few']}+{r['few']}) | {r['decision_path_s']:.1f} | "
              f"{r['mask_path_s'] / r['decision_path_s']:.1f}x | {held('few')} | {held('all')} | "
              f"{100 * tr[1]:.0f} / {100 * tr[2]:.0f} (t {tr[0]:.3f}) | {100 * ta[1]:.0f} / {100 * ta[2]:.0f} "
              f"(t {ta[0]:.3f}) |", flush=True)


if __name__ == "__main__":
    main()
