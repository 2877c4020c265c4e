"""cosegkit.figures: the registry of the notebooks' figures and the flag that the withholding step reads."""

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from cosegkit import figures
from cosegkit.reproduce import DATASET_FIGURES

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def test_withholding_reads_the_registry_flag():
    flagged = {name for name, spec in figures.FIGURES.items() if spec.shows_dataset_pixels}
    assert set(DATASET_FIGURES) == flagged == set(figures.dataset_pixel_figures())
    assert flagged == {"00_voc_pairs", "cosegnet_visual_results", "cosegnet_base_outliers", "04_meanshift_clusters"}
    assert all(spec.name == name and spec.regenerates for name, spec in figures.FIGURES.items())


def test_every_figure_a_notebook_saves_is_registered_and_every_registered_figure_is_saved():
    saved = set()
    for source in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"):
        saved |= set(re.findall(r'figures\.save\(\s*"([^"]+)"', source.read_text()))
    assert saved == set(figures.FIGURES)


def test_publish_writes_the_png_and_refuses_an_unregistered_name(tmp_path):
    fig = plt.figure()
    path = figures.publish(fig, tmp_path, "is_triplet_fig4_curves")
    assert path == tmp_path / "figures" / "is_triplet_fig4_curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend must not show it a second time
    with pytest.raises(KeyError, match="unknown figure 'curves'"):
        figures.save("curves", tmp_path)
