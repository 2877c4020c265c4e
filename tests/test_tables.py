"""cosegkit.tables: statistics over runs (seed aggregates, gains paired by seed) that every table is built from."""

import math

import pandas as pd
import pytest

from cosegkit.tables import (
    add_gain_over_baseline,
    aggregate_seeds,
    image_size_of,
    size_mix_note,
    write_is_triplet_table1,
)


def _runs() -> pd.DataFrame:
    return pd.DataFrame({
        "experiment": ["pair", "pair", "pair", "single", "single", "single"],
        "seed": [0, 1, 2, 0, 1, 2],
        "test_P": [90.0, 92.0, 94.0, 80.0, 80.0, 80.0],
        "test_J": [0.5, 0.6, 0.7, 0.4, 0.5, 0.4],
        "val_P": [1.0] * 6,
        "val_J": [0.1] * 6,
        "wall_time_s": [60.0, 120.0, 180.0, 60.0, 60.0, 60.0],
    })


def test_aggregate_seeds_gives_mean_ci_seed_count_and_minutes():
    agg = aggregate_seeds(_runs()).set_index("experiment")
    assert list(agg.index) == ["pair", "single"]
    assert agg.loc["pair", "n_seeds"] == 3 and agg.loc["pair", "train_min"] == pytest.approx(2.0)
    assert agg.loc["pair", "test_J"] == pytest.approx(0.6)
    # Student-t 95% half-width of (0.5, 0.6, 0.7): t(0.975, 2) * 0.1 / sqrt(3)
    assert agg.loc["pair", "test_J_ci95"] == pytest.approx(4.302652729911275 * 0.1 / math.sqrt(3))
    assert agg.loc["single", "test_P_ci95"] == pytest.approx(0.0)


def test_gain_over_baseline_is_paired_by_seed():
    runs = _runs()
    gain = add_gain_over_baseline(runs, "single").set_index("experiment")
    assert gain.loc["pair", "gain_test_J"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert math.isnan(gain.loc["single", "gain_test_J"])  # the reference itself: shown as "–", not 0.000
    one_seed = add_gain_over_baseline(runs[runs.seed == 0], "single").set_index("experiment")
    assert math.isnan(one_seed.loc["pair", "gain_test_J_ci95"])
    with pytest.raises(ValueError, match="baseline experiment 'none' has no runs"):
        add_gain_over_baseline(runs, "none")
    with pytest.raises(ValueError, match="shares no seed"):
        add_gain_over_baseline(pd.concat([runs[runs.experiment == "single"].assign(seed=[5, 6, 7]),
                                          runs[runs.experiment == "pair"]]), "single")


def test_size_mix_note_names_rows_trained_at_another_size_than_the_baseline():
    runs = _runs().assign(image_size=[192, 192, 192, 256, 256, 256])
    assert image_size_of(runs, "pair") == 192 and image_size_of(runs, "single") == 256
    note = size_mix_note(runs, ["pair"], "single")
    assert "(single) trained at 256 px" in note and "pair at 192 px" in note
    assert size_mix_note(runs.assign(image_size=224), ["pair"], "single") == ""
    with pytest.raises(ValueError, match="'pair': expected its runs at one image size, found \\[192, 224\\]"):
        image_size_of(runs.assign(image_size=[192, 224, 192, 256, 256, 256]), "pair")


def test_is_triplet_table1_prints_image_sizes_as_integers_and_a_dash_where_a_row_has_none(tmp_path):
    names = ["unet-dice", "unet-dice-istriplet", "unet-dice-embedding", "unet-single-image"]
    runs = pd.DataFrame({"experiment": names, "seed": [0] * 4, "test_P": [90.0] * 4, "test_J": [0.5, 0.6, 0.55, 0.4],
                         "val_P": [90.0] * 4, "val_J": [0.5] * 4, "wall_time_s": [60.0] * 4,
                         "image_size": [256, 192, 192, 256]})
    markdown = write_is_triplet_table1(runs, tmp_path, "PASCAL-VOC co-seg", None).markdown.read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("| ")]
    column = rows[0].index("ours px")
    sizes = [row[column] for row in rows[1:]]
    assert sizes[:4] == ["256", "192", "192", "256"]
    assert set(sizes[4:]) == {"–"}  # the not-run datasets and the paper's rows
