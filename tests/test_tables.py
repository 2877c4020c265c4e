"""cosegkit.tables: statistics over runs (seed aggregates, gains paired by seed) that every table is built from."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from cosegkit.tables import (
    add_gain_over_baseline,
    aggregate_seeds,
    image_size_of,
    size_mix_note,
    write_cosegnet_table1,
    write_is_triplet_table1,
    write_is_triplet_table2,
    write_synthetic_pair_benchmark,
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


def _markdown_rows(written) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in written.markdown.read_text().splitlines() if line.startswith("| ")]


def _cell(rows, row_label: str, column: str) -> str:
    header = rows[0]
    (row,) = [row for row in rows[1:] if row_label in row]
    return row[header.index(column)]


def _one_seed_runs(names, test_j) -> pd.DataFrame:
    return pd.DataFrame({"experiment": names, "seed": [0] * len(names), "test_P": [90.0] * len(names),
                         "test_J": test_j, "val_P": [90.0] * len(names), "val_J": [0.5] * len(names),
                         "wall_time_s": [60.0] * len(names), "image_size": [224] * len(names)})


@pytest.mark.parametrize("n_splits, p_cell, j_cell", [(1, "88.8", "0.366"), (3, "88.8 ± 1.0", "0.366 ± 0.020")])
def test_cosegnet_table1_prints_no_std_for_one_split_and_no_gain_for_the_reference(tmp_path, n_splits, p_cell,
                                                                                   j_cell):
    runs = _one_seed_runs(["cosegnet", "cosegnet-single-image"], [0.366, 0.194])
    splits = {"n_splits": n_splits, "precision_mean": 0.888, "precision_std": 0.01, "jaccard_mean": 0.366,
              "jaccard_std": 0.02}
    rows = _markdown_rows(write_cosegnet_table1(runs, splits, tmp_path, "PASCAL-VOC co-seg", None, "data"))
    (ours,) = [row for row in rows if row[0].startswith("CoSegNet (ours")]
    assert (ours[1], ours[2]) == (p_cell, j_cell)  # one split has no std: "± 0.000" would read as a collapse
    assert ("mean ± std" in ours[0]) == (n_splits > 1)
    assert _cell(rows, "single-image (no pair information)", "ΔJ vs single-image") == "–"
    assert _cell(rows, ours[0], "ΔJ vs single-image") == "0.172"


def test_is_triplet_table2_prints_no_gain_for_the_reference_row(tmp_path):
    names = [f"unet-{seg}{suffix}" for seg in ("dice", "ce", "focal") for suffix in ("", "-istriplet", "-embedding")]
    runs = _one_seed_runs(names + ["unet-single-image"], [0.6] * len(names) + [0.5])
    rows = _markdown_rows(write_is_triplet_table2(runs, tmp_path, "PASCAL-VOC co-seg", None))
    assert _cell(rows, "single-image (no pair information)", "ΔJ vs single-image") == "–"
    assert {row[rows[0].index("ΔJ vs single-image")] for row in rows[1:-1]} == {"0.100"}


def test_synthetic_benchmark_prints_no_gain_for_the_reference_rows(tmp_path):
    def result(experiment, jaccard):
        return SimpleNamespace(experiment=experiment, settings=SimpleNamespace(seed=0, data=SimpleNamespace(
            image_size=192)), precision=0.9, jaccard=jaccard, test={"positive": {}, "negative": {}}, thresholds={},
            history=[{"val_precision": 0.9, "val_jaccard": 0.5}], wall_time_s=60.0)
    results = [result("unet-single-image", 0.35), result("unet-dice", 0.57), result("cosegnet-single-image", 0.28),
               result("cosegnet", 0.16)]
    rows = _markdown_rows(write_synthetic_pair_benchmark(results, tmp_path, None))
    column = rows[0].index("ΔJ vs single-image")
    assert [row[column] for row in rows[1:]] == ["–", "0.220", "–", "-0.120"]
