"""Test-set intervals: cosegkit.report.pair_bootstrap_ci95 (pairs resampled within groups, paired differences),
the per-image scores results.json keeps for it, and the tables' CI columns."""

import math

import numpy as np
import pandas as pd
import pytest

from cosegkit.metrics import PairScores
from cosegkit.report import pair_bootstrap_ci95
from cosegkit.tables import pair_resampled_ci95, write_is_triplet_table1


def _random_groups(n_pairs: int, seed: int = 0, groups: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    return {f"g{g}": rng.uniform(0, 1, size=2 * n_pairs).tolist() for g in range(groups)}


def test_groups_keep_their_weights():
    # every resample takes 2 pairs of A (all 0) and 4 of B (all 1): the mean is always 8 / 12
    low, high = pair_bootstrap_ci95({"A": [0.0] * 4, "B": [1.0] * 8})
    assert low == pytest.approx(2 / 3) and high == pytest.approx(2 / 3)


def test_the_two_images_of_a_pair_are_resampled_together():
    # every pair sums to 1, so any resample of pairs has mean 0.5; resampling images alone would not
    low, high = pair_bootstrap_ci95({"A": [0.0, 1.0] * 6, "B": [1.0, 0.0] * 6})
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)


def test_paired_difference_uses_the_same_pairs_for_both_runs():
    base = _random_groups(6)
    better = {g: [v + 0.1 for v in values] for g, values in base.items()}
    low, high = pair_bootstrap_ci95(better, base)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    low, high = pair_bootstrap_ci95(base, better)  # the other way round: the sign follows
    assert low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    unpaired = pair_bootstrap_ci95(better)
    assert unpaired[1] - unpaired[0] > 0.05  # the runs alone vary far more than their difference


def test_interval_covers_the_mean_and_narrows_with_more_pairs():
    small, large = _random_groups(4), _random_groups(64, seed=1)
    for scores in (small, large):
        mean = np.mean([v for values in scores.values() for v in values])
        low, high = pair_bootstrap_ci95(scores)
        assert low < mean < high
    width = [np.subtract(*pair_bootstrap_ci95(s)[::-1]) for s in (small, large)]
    assert width[1] < 0.5 * width[0]  # 16x the pairs: about a quarter of the width
    assert pair_bootstrap_ci95(small, seed=3) == pair_bootstrap_ci95(small, seed=3)


@pytest.mark.parametrize(("scores", "baseline", "kwargs", "message"), [
    ({}, None, {}, "at least one group"),
    ({"A": [0.1, 0.2]}, {"B": [0.1, 0.2]}, {}, "baseline groups \\['B'\\] differ"),
    ({"A": [0.1, 0.2]}, {"A": [0.1, 0.2, 0.3, 0.4]}, {}, "group 'A': 2 scores against 4 in the baseline"),
    ({"A": [0.1, 0.2, 0.3]}, None, {}, "group 'A': expected two scores per pair .* got 3"),
    ({"A": [0.1, 0.2]}, None, {"n_resamples": 0}, "n_resamples must be an int >= 1"),
])
def test_bad_input_is_refused_by_name(scores, baseline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pair_bootstrap_ci95(scores, baseline, **kwargs)


def test_summary_keeps_each_groups_jaccard_per_image_in_the_order_scored():
    scores = PairScores()
    full, empty = np.ones((2, 2), bool), np.zeros((2, 2), bool)
    half = np.array([[True, False], [False, False]])
    scores.add(full, full, "cat")
    scores.add(empty, full, "dog")
    scores.add(half, np.array([[True, True], [False, False]]), "cat")
    groups = scores.summary()["per_group"]
    assert groups["cat"]["jaccard_per_image"] == [1.0, 0.5]
    assert groups["dog"]["jaccard_per_image"] == [0.0]


def _frame(per_group: dict) -> pd.DataFrame:
    names = ["unet-dice", "unet-dice-istriplet", "unet-dice-embedding", "unet-single-image"]
    return pd.DataFrame({"experiment": names, "seed": [0] * 4, "test_P": [90.0] * 4,
                         "test_J": [0.5, 0.6, 0.55, 0.4], "val_P": [90.0] * 4, "val_J": [0.5] * 4,
                         "wall_time_s": [60.0] * 4, "image_size": [256] * 4,
                         "test_J_per_group": [per_group.get(n) for n in names]})


def test_tables_show_the_interval_only_where_one_run_has_per_image_scores(tmp_path):
    base = _random_groups(6)
    runs = _frame({"unet-dice": {g: [v + 0.1 for v in vs] for g, vs in base.items()}, "unet-single-image": base})
    assert pair_resampled_ci95(runs, "unet-dice", "unet-single-image") == "+0.100 to +0.100"
    low, high = map(float, pair_resampled_ci95(runs, "unet-dice").split("–"))
    assert low < 0.1 + np.mean([v for vs in base.values() for v in vs]) < high
    assert math.isnan(pair_resampled_ci95(runs, "unet-dice-istriplet"))  # a run recorded without them
    two_seeds = pd.concat([runs, runs.assign(seed=1)])
    assert math.isnan(pair_resampled_ci95(two_seeds, "unet-dice"))  # seeds: read the seed CI instead
    markdown = write_is_triplet_table1(runs, tmp_path, "PASCAL-VOC co-seg", None).markdown.read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]
    column = rows[0].index("ΔJ 95% CI (pairs)")
    assert [row[column] for row in rows[1:5]] == ["+0.100 to +0.100", "–", "–", "–"]
    assert "resample the test pairs within each group" in markdown
