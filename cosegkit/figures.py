"""The registry of the notebooks' figures: each name, how it is drawn, what it regenerates, and whether it shows
the pixels of a dataset's images.

A notebook draws a figure with ``figures.save(name, out, *inputs)``: it is written to ``<out>/figures/<name>.png``
and shown in the notebook with its name in the output's metadata (key :data:`FIGURE_METADATA_KEY`). A
reproduction meant for committing (``cosegkit reproduce --withhold-dataset-images``) removes every figure flagged
``shows_dataset_pixels`` and finds its outputs in the executed notebooks by that metadata, since the repository
redistributes no part of a dataset. The flag says what a figure shows when the notebooks run on a real dataset
(``data_root``); on the embedded synthetic set no figure shows dataset pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython import get_ipython
from IPython.display import display
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score

from cosegkit import plots
from cosegkit.tables import history_frame

__all__ = ["FIGURE_METADATA_KEY", "FigureSpec", "FIGURES", "dataset_pixel_figures", "save", "publish"]

# Output metadata that names the figure an executed notebook's output shows.
FIGURE_METADATA_KEY = "cosegkit_figure"


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure: ``draw(*inputs)`` returns it; ``shows_dataset_pixels`` marks a figure that shows
    the images of the dataset under ``data_root`` (withheld from a committed reproduction)."""

    name: str
    regenerates: str
    draw: Callable[..., Figure]
    shows_dataset_pixels: bool


# --- how each figure is drawn ----------------------------------------------------------------------------------


def _synthetic_pairs(samples) -> Figure:
    return plots.show_pairs(samples, titles=[f"{s['category'] or 'negative pair'}" for s in samples])


def _dataset_pairs(samples) -> Figure:
    return plots.show_pairs(samples, titles=[f"{s['group_a']} / {s['group_b']}" for s in samples])


def _toy_losses(histories: dict, labels: np.ndarray) -> Figure:
    """One row per loss, one panel per snapshot of ``cosegkit.toy.optimise_points``."""
    columns = max(len(history) for history in histories.values())
    fig, axes = plt.subplots(len(histories), columns, figsize=(3 * columns, 3 * len(histories)), squeeze=False)
    for row, (name, history) in enumerate(histories.items()):
        for col, (step, xy, loss) in enumerate(history):
            plots.plot_embedding_2d(xy, labels, ax=axes[row, col], title=f"{name}: step {step}, loss {loss:.3f}")
    fig.tight_layout()
    return fig


def _sampler(sample: dict, drawn: dict) -> Figure:
    """Image A of ``sample`` with the two K-fg / K-bg draws of ``cosegkit.samplers.sample_fg_bg_pixels``."""
    n = int(drawn["counts"][0])
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f1"][0, :n], drawn["b1"][0, :n], ax=axes[0],
                              title=f"F1 and B1 (K={n})")
    plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f2"][0, :n], drawn["b2"][0, :n], ax=axes[1],
                              title="F2 and B2: independent draws")
    return fig


def _fig4_curves(first: dict, dataset_name: str, profile: str) -> Figure:
    """``first``: experiment name -> run (the first seed's)."""
    return plots.plot_training_curves(
        {"Dice without IS-Triplet (original head)": history_frame(first["unet-dice"]),
         "Dice without IS-Triplet (embedding head, ours)": history_frame(first["unet-dice-embedding"]),
         "Dice + IS-Triplet (embedding head)": history_frame(first["unet-dice-istriplet"])},
        title=f"Fig. 4 (ours, {dataset_name}, profile {profile})")


def _fig5_curves(first: dict, dataset_name: str, profile: str) -> Figure:
    label = {"dice": "Dice", "ce": "CE", "focal": "Focal"}
    curves = {}
    for seg in ("dice", "ce", "focal"):
        curves[f"{label[seg]} without"] = history_frame(first[f"unet-{seg}"])
        curves[f"{label[seg]} + IS-Triplet"] = history_frame(first[f"unet-{seg}-istriplet"])
    return plots.plot_training_curves(curves, title=f"Fig. 5 (ours, {dataset_name}, profile {profile})")


def _visual_results(samples, predictions, prefix: str = "") -> Figure:
    titles = [f"{prefix}{s['group_a']}/{s['group_b']}" for s in samples]
    return plots.show_predictions(samples, predictions, titles=titles)


def _base_outliers(samples, predictions) -> Figure:
    return _visual_results(samples, predictions, prefix="base: ")


def _meanshift_clusters(embedded: dict, cluster_maps: dict) -> Figure:
    """Per loss, two rows: each image with its ground truth, then painted with its mean-shift clusters."""
    columns = max(len(items) for items in embedded.values())
    fig, axes = plt.subplots(len(embedded) * 2, columns, figsize=(2.6 * columns, 5.2 * len(embedded)), squeeze=False)
    for row, (loss, items) in enumerate(embedded.items()):
        for col, (item, clusters) in enumerate(zip(items, cluster_maps[loss], strict=True)):
            ari = adjusted_rand_score(item["mask"].ravel(), clusters.ravel())
            axes[2 * row, col].imshow(plots.overlay_mask(item["image"], item["mask"]))
            axes[2 * row, col].set_title(f"{loss}: truth", fontsize=8)
            axes[2 * row + 1, col].imshow(plots.paint_clusters(item["image"], clusters))
            axes[2 * row + 1, col].set_title(f"mean-shift: {clusters.max() + 1} clusters, ARI {ari:.2f}", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def _embeddings_projected(embedded: dict, cluster_maps: dict, seed: int) -> Figure:
    """Per loss: 1000 pixels projected with PCA and t-SNE, coloured by ground truth and by mean-shift cluster."""
    fig, axes = plt.subplots(len(embedded), 3, figsize=(12, 4 * len(embedded)), squeeze=False)
    for row, (loss, items) in enumerate(embedded.items()):
        points = np.concatenate([it["embedding"].reshape(-1, it["embedding"].shape[-1]) for it in items])
        truth = np.concatenate([it["mask"].ravel() for it in items]).astype(int)
        found = np.minimum(np.concatenate([c.ravel() for c in cluster_maps[loss]]), 5)
        keep = np.random.default_rng(seed).choice(len(points), min(len(points), 1000), replace=False)
        pca = PCA(n_components=2, random_state=seed).fit_transform(points[keep])
        tsne = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(points[keep])
        plots.plot_embedding_2d(pca, truth[keep], ax=axes[row, 0], title=f"{loss}: PCA, ground truth",
                                label_names=plots.FG_BG_NAMES)
        plots.plot_embedding_2d(tsne, truth[keep], ax=axes[row, 1], title=f"{loss}: t-SNE, ground truth",
                                label_names=plots.FG_BG_NAMES)
        plots.plot_embedding_2d(tsne, found[keep], ax=axes[row, 2],
                                title=f"{loss}: t-SNE, mean-shift cluster (0 = largest, 5 = sixth or later)")
    fig.tight_layout()
    return fig


# --- the registry ----------------------------------------------------------------------------------------------

FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    FigureSpec("00_synthetic_pairs", "the synthetic co-segmentation set (no paper figure)", _synthetic_pairs, False),
    FigureSpec("00_voc_pairs", "positive and negative test pairs of the dataset under data_root", _dataset_pairs,
               True),
    FigureSpec("01_toy_losses", "each pixel-embedding loss moving 2-D points", _toy_losses, False),
    FigureSpec("01_sampler", "IS-Triplet Fig. 2: the K-foreground / K-background sampler (synthetic image)",
               _sampler, False),
    FigureSpec("is_triplet_fig4_curves", "IS-Triplet Fig. 4: Dice term per epoch, with and without IS-Triplet",
               _fig4_curves, False),
    FigureSpec("is_triplet_fig5_curves", "IS-Triplet Fig. 5: curves per segmentation loss", _fig5_curves, False),
    FigureSpec("cosegnet_visual_results", "CoSegNet Figs. 3-6: test pairs, truth, prediction, extracted object",
               _visual_results, True),
    FigureSpec("cosegnet_base_outliers", "CoSegNet Fig. 6: CoSegNet-base on outlier pairs", _base_outliers, True),
    FigureSpec("04_meanshift_clusters", "discriminative loss Fig. 1: mean-shift clusters painted on test images",
               _meanshift_clusters, True),
    FigureSpec("04_embeddings_projected", "pixel embeddings projected with PCA and t-SNE", _embeddings_projected,
               False),
)}


def dataset_pixel_figures() -> tuple[str, ...]:
    """The registered figures that show dataset pixels (``shows_dataset_pixels``), in registry order."""
    return tuple(name for name, spec in FIGURES.items() if spec.shows_dataset_pixels)


def _spec(name: str) -> FigureSpec:
    try:
        return FIGURES[name]
    except KeyError:
        raise KeyError(f"unknown figure {name!r}; registered figures: {', '.join(FIGURES)}") from None


def save(name: str, out, *inputs, **options) -> Path:
    """Draw the registered figure ``name`` from ``inputs``, then :func:`publish` it; returns the PNG's path."""
    return publish(_spec(name).draw(*inputs, **options), out, name)


def publish(fig: Figure, out, name: str) -> Path:
    """Write ``fig`` as ``<out>/figures/<name>.png`` (``name`` must be registered), show it in the running notebook
    with ``{FIGURE_METADATA_KEY: name}`` in the output's metadata, and close it; returns the PNG's path."""
    _spec(name)
    path = plots.save_figure(fig, out, name)
    if get_ipython() is not None:  # in a kernel: one output, named (the inline backend would show it unnamed)
        display(fig, metadata={FIGURE_METADATA_KEY: name})
    plt.close(fig)
    return path
