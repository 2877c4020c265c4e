"""How far can a pair decision read from the frozen encoder go? CoSegNet's decision network against simpler
readouts of the same frozen features, each thresholded on validation and scored on the run's test pairs.

For one trained CoSegNet run on a dataset folder (the cpu profile: frozen EfficientNet-Lite2, the metric network
fed from the GAP of the encoder output f), four pair scores:

- **decision network** D(fs_a, fs_b) (cosegnet §3.3) as the run scores it; the check column is the largest
  difference from ``decision_probabilities`` (the path threshold selection takes) on the validation pairs;
- **cosine of fs**: the trained metric embeddings (§3.2) alone, without the decision network;
- **cosine of fu**: the frozen encoder's GAP vectors, nothing trained;
- **class probe**: a logistic regression (scikit-learn, default C = 1) fitted on the training split's fu to
  predict each image's group; the pair's score is p_a · p_b, the probability that both are of the same class. It
  is told the groups, which the decision network never is (it sees only same / not same), so it is a generous
  linear ceiling of these features, not a rival method.

Each score's threshold is the one with the best balanced accuracy on the run's validation decision pairs
(``choose_decision_threshold``; cosines are mapped to (0, 1) by (c + 1) / 2 first); printed: accuracy on positive
and negative pairs, on validation and on the run's test pairs. Nothing is chosen on the test pairs.

    .venv/bin/python benchmarks/bench_decision_ceiling.py results/cpu/runs/cpu/pascal-voc-coseg/cosegnet-f-head16-*
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from cosegkit.data.pairs import RealPairs
from cosegkit.tasks import build_run_data, task_for
from cosegkit.train.evaluate import choose_decision_threshold, decision_probabilities
from cosegkit.train.modeling import eval_transform, load_trained_model, run_precision
from cosegkit.train.records import data_root_of_run


@torch.no_grad()
def image_features(model, task, dataset, images: list[int], transform, amp: bool, batch: int = 16):
    """{image: (fu, fs)}: the GAP of the frozen encoder output and the metric embedding of each image."""
    singles = RealPairs(dataset, [(i, i) for i in images])
    out = {}
    for start in range(0, len(images), batch):
        ks = range(start, min(start + batch, len(images)))
        x = torch.stack([transform(singles[k])["image_a"] for k in ks])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            fu = model.encoder(x)[-1].float().mean(dim=(2, 3))
            fs = task.decision_codes(model, x).float()
        out.update({images[k]: (fu[j], fs[j]) for j, k in enumerate(ks)})
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings, model, device = load_trained_model(args.run_dir, device="cpu")
    task = task_for(settings.model.family)
    if not task.has_decision or settings.data.decision_val_pairs is None:
        raise SystemExit(f"{args.run_dir}: needs a CoSegNet run with data.decision_val_pairs set")
    data_root = data_root_of_run(args.run_dir)
    if data_root is None:
        raise SystemExit(f"{args.run_dir}: not a run on a dataset folder")
    data = build_run_data(settings, data_root)
    transform = eval_transform(settings, model)
    amp, _ = run_precision(settings, device)
    val_pos, val_neg = data.val_decision
    sets = {"val": (val_pos, val_neg), "test": (data.test_positive, data.test_negative)}
    dataset = val_pos.dataset
    train_images = sorted(data.split["train"])
    images = sorted({i for pos, neg in sets.values() for p in (pos, neg) for pair in p.pairs for i in pair}
                    | set(train_images))
    t0 = time.perf_counter()
    feats = image_features(model, task, dataset, images, transform, amp)
    seconds = time.perf_counter() - t0

    probe = LogisticRegression(max_iter=2000).fit(
        torch.stack([feats[i][0] for i in train_images]).numpy(), [dataset.group_of(i) for i in train_images])
    class_probs = {i: probe.predict_proba(f[0][None].numpy())[0] for i, f in feats.items()}

    def side(pairs, which):
        a = torch.stack([feats[i][which] for i, _ in pairs.pairs])
        b = torch.stack([feats[j][which] for _, j in pairs.pairs])
        return a, b

    def decision_network(pairs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):  # as decision_probabilities scores it
            return task.decide(model, *side(pairs, 1))[0].numpy()

    scores = {
        "decision network": decision_network,
        "cosine of fs": lambda p: ((F.cosine_similarity(*side(p, 1)) + 1) / 2).numpy(),
        "cosine of fu (frozen)": lambda p: ((F.cosine_similarity(*side(p, 0)) + 1) / 2).numpy(),
        "class probe on fu": lambda p: np.array([class_probs[i] @ class_probs[j] for i, j in p.pairs]),
    }
    check = float(np.abs(scores["decision network"](val_pos) - decision_probabilities(
        model, settings.model.family, val_pos, transform, device, amp=amp)[0]).max())
    val_images = data.split["val"]
    probe_accuracy = probe.score(torch.stack([feats[i][0] for i in val_images]).numpy(),
                                 [dataset.group_of(i) for i in val_images])
    print(f"{args.run_dir.name}: {len(val_pos)} + {len(val_neg)} validation, {len(data.test_positive)} + "
          f"{len(data.test_negative)} test pairs; features of {len(images)} images in {seconds:.1f} s; the class "
          f"probe names the group of {probe_accuracy:.3f} of the validation images")
    print("| pair score | threshold | val positive | val negative | test positive | test negative |")
    print("|---|---|---|---|---|---|")
    for name, score in scores.items():
        threshold, _ = choose_decision_threshold(score(val_pos), score(val_neg))
        row = [name, f"{threshold:.4f}"]
        for pos, neg in sets.values():
            row += [f"{(score(pos) > threshold).mean():.3f}", f"{(score(neg) <= threshold).mean():.3f}"]
        print("| " + " | ".join(row) + " |")
    print(f"check: decision network vs decision_probabilities, max |difference| {check:.2e}")


if __name__ == "__main__":
    main()
