"""Seeds 0-2 of the cpu profile's claim rows on PASCAL-VOC: per-seed test numbers and 3-seed means.

Seed 0 is the run of the committed reproduction (results/cpu); seeds 1 and 2 were trained one at a time, outside
the reproduction, with `cosegkit train --experiment E --profile cpu --data-root ../shared/datasets/pascal_voc_coseg
--seed S` (their records are under runs/ here; checkpoints are not committed), on the 2-core AMD EPYC of the
reproduction with nothing else training, at `ed1dc28`, whose cosegkit code is that of `4bc6258` ("+dirty": the
working tree differed from `ed1dc28` only in README.md). Each seed draws its own 3:1:1 split, so the seeds differ
in their test images as well as in their training.

    .venv/bin/python results/cpu-seeds/summarize.py > results/cpu-seeds/SUMMARY.md
"""

from pathlib import Path

from cosegkit.report import mean_ci95
from cosegkit.tables import add_gain_over_baseline, pair_resampled_ci95, runs_frame
from cosegkit.train.engine import read_run_result
from cosegkit.train.records import format_commit, read_json

HERE = Path(__file__).resolve().parent
RUNS = sorted(HERE.glob("runs/cpu/*/*/config.json")) + sorted(
    (HERE.parent / "cpu").glob("runs/cpu/pascal-voc-coseg/*/config.json"))
CLAIMS = ("unet-dice", "unet-single-image", "cosegnet")


def main() -> None:
    results = [read_run_result(cfg.parent) for cfg in RUNS if read_json(cfg)["experiment"] in CLAIMS]
    results = [r for r in results if r is not None and r.settings.seed in (0, 1, 2)]
    runs = runs_frame(results)
    print("# Claim rows at seeds 0-2 (cpu profile, PASCAL-VOC co-seg)\n")
    print(__doc__.split("\n\n")[1].replace("\n", " ") + "\n")
    print("| experiment | seed | train px | test images | P | J | J after the gate: decision accuracy on positive / "
          "negative pairs | train s | commit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, row in sorted(zip(results, runs.itertuples(), strict=True), key=lambda x: (x[1].experiment, x[1].seed)):
        positive, negative = r.test["positive"], r.test.get("negative") or {}
        gate = (f"{100 * positive['decision_accuracy']:.1f} / {100 * negative['decision_accuracy']:.1f} % "
                f"(J before the gate {positive['ungated']['jaccard']:.3f})"
                if r.settings.model.family == "cosegnet" else "–")
        config = read_json(r.run_dir / "config.json")
        print(f"| {row.experiment} | {row.seed} | {row.image_size} | {positive['n_images']} | {row.test_P:.1f} | "
              f"{row.test_J:.3f} | {gate} | {r.wall_time_s:.0f} | {format_commit(config.get('git'))} |")
    print("\n| over seeds 0-2 | mean ± 95 % CI (Student t over seeds) | per seed |")
    print("|---|---|---|")

    def line(name, values, mean_half=None):
        mean, half = mean_ci95(values) if mean_half is None else mean_half
        print(f"| {name} | {mean:.3f} ± {half:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")

    by = {e: runs[runs.experiment == e].set_index("seed").sort_index() for e in CLAIMS}
    line("`unet-dice` test J", by["unet-dice"].test_J.to_numpy())
    line("`unet-single-image` test J", by["unet-single-image"].test_J.to_numpy())
    unet = runs[runs.experiment.isin(["unet-dice", "unet-single-image"])]
    gain = add_gain_over_baseline(unet, "unet-single-image").set_index("experiment").loc["unet-dice"]
    per_seed = (by["unet-dice"].test_J - by["unet-single-image"].test_J).dropna()  # paired by seed
    line("pair gain, `unet-dice` − `unet-single-image` (same seed and split)", per_seed.to_numpy(),
         (gain.gain_test_J, gain.gain_test_J_ci95))
    line("`cosegnet` test J after the gate", by["cosegnet"].test_J.to_numpy())
    line("`cosegnet` decision accuracy, positive pairs", by["cosegnet"].positive_decision_accuracy.to_numpy())
    line("`cosegnet` decision accuracy, negative pairs", by["cosegnet"].decision_accuracy.to_numpy())
    print("\nPair gain per seed with its 95 % interval over test pairs (bootstrap within groups): "
          + "; ".join(f"seed {s}: {pair_resampled_ci95(runs[runs.seed == s], 'unet-dice', 'unet-single-image')}"
                      for s in sorted(runs.seed.unique())) + ".")


if __name__ == "__main__":
    main()
