import math

import numpy as np
import pandas as pd
import pytest

from cosegkit import plots
from cosegkit.report import Provenance, format_mean_ci, mean_ci95, not_run_message, to_markdown, write_table


def test_mean_ci95_matches_student_t_by_hand():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    # std (ddof=1) = 1, t_{0.975, 2} = 4.302653, n = 3.
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_ci95([0.5])[1])
    assert format_mean_ci([0.5]) == "0.500"
    with pytest.raises(ValueError, match="at least one"):
        mean_ci95([])


def test_not_run_message_names_the_path_and_the_fetch_command():
    text = not_run_message("Internet", "/data/internet", "internet")
    assert text.startswith("not run: dataset not found at /data/internet")
    assert "`cosegkit data fetch internet --root DIR`" in text
    assert not_run_message("MSRC", "", "msrc", parameter="msrc_root").startswith(
        "not run: dataset not found (parameter msrc_root is empty)")


def test_write_table_writes_csv_and_markdown_with_provenance(tmp_path):
    frame = pd.DataFrame({"method": ["ours", "paper"], "P": [93.25, 95.4], "J": [0.6234, float("nan")]})
    provenance = Provenance("cpu", "PASCAL-VOC co-seg", 160, (0, 1), "abc123", wall_time_s=120)
    path = write_table(frame, tmp_path, "t1", "Table 1", provenance)
    text = path.read_text()
    assert "| ours | 93.2 | 0.623 |" in text
    assert "| paper | 95.4 | – |" in text
    assert "profile `cpu`" in text and "seed(s) 0,1" in text and "commit abc123" in text and "2.0 min" in text
    assert pd.read_csv(tmp_path / "tables" / "t1.csv").shape == (2, 3)
    assert "160x160 px" in text
    mixed = Provenance("cpu", "PASCAL-VOC co-seg", (128, 192), (0,), "abc123")
    assert "128x128 and 192x192 px" in mixed.caption()  # a table whose runs differ in size names every size


def test_to_markdown_escapes_pipes():
    assert "a\\|b" in to_markdown(pd.DataFrame({"x": ["a|b"]}))


def test_overlay_mask_blends_only_the_masked_pixels():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = plots.overlay_mask(image, mask, color=(200, 0, 0), alpha=0.5)
    assert out[0, 0].tolist() == [100, 0, 0]
    assert out[1, 1].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="does not match"):
        plots.overlay_mask(image, np.zeros((3, 3), dtype=bool))


def test_figures_are_saved_as_png(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2], "loss_seg": [1.0, 0.5], "val_jaccard": [0.2, 0.4],
                            "val_precision": [0.8, 0.9]})
    fig = plots.plot_training_curves({"with": history, "without": history})
    path = plots.save_figure(fig, tmp_path, "curves")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="no column"):
        plots.plot_training_curves({"x": history}, metrics=("missing",))


def test_paint_clusters_gives_each_cluster_a_colour():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    painted = plots.paint_clusters(image, np.array([[0, 0], [1, 1]]))
    assert (painted[0, 0] == painted[0, 1]).all()
    assert not (painted[0, 0] == painted[1, 0]).all()


def test_extract_object_whitens_the_background_and_show_predictions_checks_lengths():
    image = np.full((2, 2, 3), 7, dtype=np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = plots.extract_object(image, mask)
    assert out[0, 0].tolist() == [7, 7, 7] and out[1, 1].tolist() == [255, 255, 255]
    sample = {"image_a": image, "image_b": image, "mask_a": mask, "mask_b": mask}
    fig = plots.show_predictions([sample], [{"pred_a": mask, "pred_b": ~mask}])
    assert len(fig.axes) == 8
    with pytest.raises(ValueError, match="as many predictions"):
        plots.show_predictions([sample], [])


def test_show_predictions_labels_an_empty_predicted_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    sample = {"image_a": image, "image_b": image, "mask_a": mask, "mask_b": mask}
    fig = plots.show_predictions([sample], [{"pred_a": np.zeros((8, 8), bool), "pred_b": mask}])
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert any("empty" in t for t in texts[2])  # predicted A: empty, labelled
    assert any("no object" in t for t in texts[3])  # object A: nothing extracted
    assert not any(texts[6]) and not any(texts[7])  # B predicted something: no label


def test_training_curves_compare_the_segmentation_term_on_integer_epochs():
    import pandas as pd

    from cosegkit import plots

    history = pd.DataFrame({"epoch": [1, 2, 3], "loss_seg": [0.5, 0.4, 0.3], "train_loss": [0.9, 0.7, 0.6],
                            "val_jaccard": [0.2, 0.3, 0.4], "val_precision": [0.8, 0.85, 0.9]})
    fig = plots.plot_training_curves({"a": history, "b": history})
    loss_ax = fig.axes[0]
    assert "segmentation" in loss_ax.get_title()
    assert list(loss_ax.lines[0].get_ydata()) == [0.5, 0.4, 0.3]
    ticks = [t for t in loss_ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_embedding_legend_names_foreground_and_background():
    import numpy as np

    from cosegkit import plots

    fig = plots.plot_embedding_2d(np.random.default_rng(0).normal(size=(20, 2)), np.array([0, 1] * 10),
                                  label_names=plots.FG_BG_NAMES)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["background", "foreground"]


def test_report_gathers_tables_figures_and_notebook_times(tmp_path):
    import json

    from cosegkit.report import STATE_FILE, figure_link, write_report

    write_table(pd.DataFrame({"a": [1.0]}), tmp_path, "t1", "Table one", None)
    plots.save_figure(plots.plot_training_curves({"x": pd.DataFrame({"epoch": [1], "loss_seg": [1.0],
                                                                      "val_jaccard": [0.1],
                                                                      "val_precision": [0.5]})}), tmp_path, "curves")
    (tmp_path / STATE_FILE).write_text(json.dumps({"00_a.ipynb": {"seconds": 90}, "01_b.ipynb": {"seconds": 30}}))
    text = write_report(tmp_path, "smoke", "SyntheticCoseg (embedded)").read_text()
    assert text.startswith("# cosegkit results\n\nProfile `smoke`, data: SyntheticCoseg (embedded).")
    assert "- 00_a.ipynb: 1.5 min\n- 01_b.ipynb: 0.5 min\n- total: 2.0 min" in text
    assert "### Table one" in text and figure_link("curves") == "![curves](figures/curves.png)"
    assert text.endswith("## Figures\n\n![curves](figures/curves.png)\n")
