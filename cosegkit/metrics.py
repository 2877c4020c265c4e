"""Co-segmentation metrics: Precision and Jaccard, as both papers define them.

Precision (IS-Triplet §4.1.2; CoSegNet §4) is the share of correctly labelled pixels, foreground and background
together. Jaccard is foreground intersection over union. Both are computed per image at the image's original
resolution and averaged over every evaluated image of every pair.

Convention for an empty ground truth (a negative pair, or an image whose partner shares no object): an empty
prediction scores Jaccard 1.0 (the right answer, "no common object"), any predicted foreground scores 0.0.
Neither paper states this; it is the choice that makes Jaccard reward the null masks CoSegNet's decision network
is built to produce (cosegnet.txt §3.5, Fig. 6).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["precision", "jaccard", "PairScores"]


def _as_bool_array(mask, name: str) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean mask, got dtype {mask.dtype}; threshold it first")
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {mask.shape}")
    return mask


def _checked_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_bool_array(pred, "pred")
    gt = _as_bool_array(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred has shape {pred.shape} but gt has shape {gt.shape}; "
            "resize predictions to the image's original size before scoring"
        )
    return pred, gt


def precision(pred, gt) -> float:
    """Fraction of pixels whose foreground/background label matches the ground truth, in [0, 1]."""
    pred, gt = _checked_pair(pred, gt)
    return float(np.count_nonzero(pred == gt)) / pred.size


def jaccard(pred, gt) -> float:
    """Foreground intersection over union, in [0, 1]; 1.0 when both masks are empty (see module docstring)."""
    pred, gt = _checked_pair(pred, gt)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & gt)) / union


@dataclass
class PairScores:
    """Accumulates per-image Precision and Jaccard, overall and per group.

    Every evaluated image of every pair counts once, as in CoSegNet §4: an image that appears in several pairs is
    scored once per pair.
    """

    _by_group: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, pred, gt, group: str = "all") -> tuple[float, float]:
        p, j = precision(pred, gt), jaccard(pred, gt)
        self._by_group[group].append((p, j))
        return p, j

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_group.values())

    def summary(self) -> dict:
        """Mean precision (as a fraction) and Jaccard overall and per group, with image counts and each group's
        Jaccard per image in the order added (``jaccard_per_image``: what a test-set interval resamples)."""
        if len(self) == 0:
            raise ValueError("PairScores.summary() called before any image was added")
        every = np.array([s for scores in self._by_group.values() for s in scores])
        per_group = {
            group: {
                "precision": float(np.mean([s[0] for s in scores])),
                "jaccard": float(np.mean([s[1] for s in scores])),
                "n_images": len(scores),
                # in the order scored (positive pairs: side a, side b of each pair), for pair_bootstrap_ci95
                "jaccard_per_image": [s[1] for s in scores],
            }
            for group, scores in sorted(self._by_group.items())
        }
        return {
            "precision": float(every[:, 0].mean()),
            "jaccard": float(every[:, 1].mean()),
            "n_images": int(every.shape[0]),
            "per_group": per_group,
        }
