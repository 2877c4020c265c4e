"""Figures for the notebooks: image grids with masks, training curves (IS-Triplet Figs. 4-5), embeddings, clusters.

Every function returns the matplotlib Figure; ``save_figure`` writes it as PNG under ``<out>/figures/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

__all__ = [
    "overlay_mask",
    "show_pairs",
    "extract_object",
    "show_predictions",
    "plot_training_curves",
    "plot_embedding_2d",
    "paint_clusters",
    "plot_sampled_pixels",
    "save_figure",
]

FOREGROUND = np.array([255, 60, 60], dtype=np.float32)


def overlay_mask(image: np.ndarray, mask: np.ndarray, color=FOREGROUND, alpha: float = 0.45) -> np.ndarray:
    """Blend a boolean mask onto an RGB uint8 image; returns uint8."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    out = image.astype(np.float32).copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, dtype=np.float32)
    return out.clip(0, 255).astype(np.uint8)


def show_pairs(samples, titles=None, columns=("image_a", "image_b"), masks=("mask_a", "mask_b"), size=2.4):
    """A grid with one pair per row: each image with its mask overlaid (PairSample dicts)."""
    samples = list(samples)
    if not samples:
        raise ValueError("show_pairs() needs at least one sample")
    fig, axes = plt.subplots(len(samples), len(columns), figsize=(size * len(columns), size * len(samples)),
                             squeeze=False)
    for row, sample in enumerate(samples):
        for col, (image_key, mask_key) in enumerate(zip(columns, masks, strict=True)):
            ax = axes[row, col]
            image = sample[image_key]
            shown = overlay_mask(image, np.asarray(sample[mask_key], dtype=bool)) if mask_key else image
            ax.imshow(shown)
            ax.set_axis_off()
            if titles is not None and col == 0:
                ax.set_title(titles[row], fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def extract_object(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with everything outside ``mask`` whitened, as CoSegNet Figs. 1 and 3-5 show extracted objects."""
    out = np.full_like(image, 255)
    out[mask] = image[mask]
    return out


def show_predictions(samples, predictions, titles=None, size=1.9):
    """CoSegNet Figs. 3-6 layout: per pair, for each image: input, ground truth, prediction, extracted object."""
    samples, predictions = list(samples), list(predictions)
    if len(samples) != len(predictions) or not samples:
        raise ValueError(f"need as many predictions as samples (>0), got {len(predictions)} and {len(samples)}")
    headers = ["image A", "truth A", "predicted A", "object A", "image B", "truth B", "predicted B", "object B"]
    fig, axes = plt.subplots(len(samples), 8, figsize=(size * 8, size * len(samples)), squeeze=False)
    for row, (sample, prediction) in enumerate(zip(samples, predictions, strict=True)):
        panels = []
        for side in ("a", "b"):
            image, truth, pred = sample[f"image_{side}"], sample[f"mask_{side}"], prediction[f"pred_{side}"]
            panels += [image, truth, pred, extract_object(image, pred)]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1 if panel.ndim == 2 else None)
            ax.set_axis_off()
            pred = prediction["pred_a" if col < 4 else "pred_b"]
            if col % 4 in (2, 3) and not np.asarray(pred).any():
                # an empty prediction would otherwise be a plain black mask and a blank white object panel
                ax.text(0.5, 0.5, "empty mask" if col % 4 == 2 else "no object", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="tab:red",
                        bbox={"facecolor": "white", "edgecolor": "tab:red", "alpha": 0.85})
            if row == 0:
                ax.set_title(headers[col], fontsize=8)
        if titles is not None:
            axes[row, 0].text(-0.1, 0.5, titles[row], transform=axes[row, 0].transAxes, rotation=90, va="center",
                              ha="right", fontsize=7)
    fig.tight_layout()
    return fig


METRIC_TITLES = {"loss_seg": "segmentation loss (train)", "train_loss": "total loss (train)",
                 "val_jaccard": "Jaccard (validation)", "val_precision": "Precision (validation)"}


def plot_training_curves(histories: dict[str, pd.DataFrame], metrics=("loss_seg", "val_jaccard", "val_precision"),
                         title: str = ""):
    """One panel per metric, one line per run label, x = epoch (the layout of IS-Triplet Figs. 4-5).

    The default loss panel is the segmentation term alone (``loss_seg``): what Figs. 4-5 compare ("the Dice loss
    decreases faster"); the total would add lambda * IS-Triplet to one run only. Epochs are integers."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    palette = sns.color_palette("tab10", n_colors=max(len(histories), 1))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for color, (label, history) in zip(palette, histories.items(), strict=False):
            if metric not in history.columns:
                raise KeyError(f"run {label!r} has no column {metric!r}; columns: {list(history.columns)}")
            ax.plot(history["epoch"], history[metric], marker="o", markersize=3, label=label, color=color,
                    linestyle="--" if "without" in label or "no DML" in label else "-")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(METRIC_TITLES.get(metric, metric.replace("_", " ")))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


FG_BG_NAMES = {0: "background", 1: "foreground"}  # bools hash like 0 and 1


def plot_embedding_2d(points: np.ndarray, labels: np.ndarray, ax=None, title: str = "", max_points: int = 4000,
                      seed: int = 0, label_names: dict | None = None):
    """Scatter of 2-D projected embeddings coloured by label (subsampled for legibility); ``label_names`` maps
    label values to legend names."""
    points, labels = np.asarray(points), np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got {points.shape}")
    if len(points) > max_points:
        keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
        points, labels = points[keep], labels[keep]
    if label_names is not None:  # e.g. FG_BG_NAMES for a ground-truth mask, so the legend never says 0 / 1
        labels = np.asarray([label_names[v] for v in labels.tolist()])
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=labels, s=6, linewidth=0, palette="tab10", ax=ax,
                    legend="brief")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def paint_clusters(image: np.ndarray, cluster_labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Paint an (H, W) integer cluster map onto an RGB image, one tab20 colour per cluster."""
    if image.shape[:2] != cluster_labels.shape:
        raise ValueError(f"cluster map {cluster_labels.shape} does not match image {image.shape[:2]}")
    colours = (np.array(sns.color_palette("tab20", 20)) * 255).astype(np.float32)
    painted = colours[np.asarray(cluster_labels) % 20]
    return ((1 - alpha) * image.astype(np.float32) + alpha * painted).clip(0, 255).astype(np.uint8)


def plot_sampled_pixels(image: np.ndarray, mask: np.ndarray, fg_index, bg_index, ax=None, title: str = ""):
    """Draw the K-foreground / K-background pixel sample (flat indices) on the image."""
    h, w = mask.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(overlay_mask(image, mask, alpha=0.25))
    for index, colour, label in ((fg_index, "yellow", "foreground sample"), (bg_index, "cyan", "background sample")):
        index = np.asarray(index)
        ax.scatter(index % w, index // w, s=4, c=colour, label=f"{label} ({index.size})")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_axis_off()
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    return ax.figure


def save_figure(fig, out_dir: str | Path, name: str, dpi: int = 120) -> Path:
    """Save ``fig`` as ``<out_dir>/figures/<name>.png`` and return the path."""
    figures = Path(out_dir) / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    path = figures / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
