"""Small 2-D embedding problems that show how each pixel-embedding loss moves points (notebook 01).

Points are free parameters: we run plain gradient descent on a loss and keep snapshots, so a reader can see the
pull and push each loss exerts. The losses are the package's own (`cosegkit.losses`), fed 2-D "pixels" laid out
as a 1 x N image.
"""

from __future__ import annotations

import numpy as np
import torch

from cosegkit.losses import discriminative_loss, group_loss, is_triplet_loss

__all__ = ["TOY_LOSSES", "TOY_LEARNING_RATES", "class_gap", "two_class_points", "toy_loss", "optimise_points"]

TOY_LOSSES = ("istriplet", "discriminative", "group")
# Step sizes that converge in ~100 steps: the IS-Triplet loss is a mean over K rows, so each point's gradient is
# ~1/K of the hinge's and needs a larger step.
TOY_LEARNING_RATES = {"istriplet": 20.0, "discriminative": 2.0, "group": 2.0}


def two_class_points(n_per_class: int = 60, seed: int = 0, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian clouds in 2-D: foreground (label 1) and background (label 0)."""
    rng = np.random.default_rng(seed)
    fg = rng.normal([0.4, 0.0], spread, size=(n_per_class, 2))
    bg = rng.normal([-0.4, 0.0], spread, size=(n_per_class, 2))
    points = np.concatenate([fg, bg]).astype(np.float32)
    labels = np.concatenate([np.ones(n_per_class), np.zeros(n_per_class)]).astype(np.int64)
    return points, labels


def class_gap(points: np.ndarray, labels: np.ndarray) -> float:
    """Distance between the two classes' mean points."""
    return float(np.linalg.norm(points[labels == 1].mean(0) - points[labels == 0].mean(0)))


def toy_loss(name: str, points: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """The loss ``name`` on (N, 2) points with 0/1 labels, with the settings the notebook explains."""
    if name == "istriplet":
        embeddings = points.T.reshape(1, 2, 1, -1)
        return is_triplet_loss(embeddings, labels.reshape(1, 1, -1).bool(), k=len(points), margin=3.0,
                               generator=generator)
    if name == "discriminative":
        embeddings = points.T.reshape(1, 2, 1, -1)
        return discriminative_loss(embeddings, labels.reshape(1, 1, -1), delta_v=0.5, delta_d=1.5)
    if name == "group":
        logits = points @ classifier
        return group_loss(points, logits, labels, n_anchors=2, steps=3, generator=generator)
    raise ValueError(f"unknown toy loss {name!r}; valid: {', '.join(TOY_LOSSES)}")


def optimise_points(name: str, points: np.ndarray, labels: np.ndarray, steps: int = 100, lr: float | None = None,
                    snapshots: int = 4, seed: int = 0) -> list[tuple[int, np.ndarray, float]]:
    """Gradient descent on the points themselves; returns (step, points, loss) at evenly spaced steps."""
    if steps < 1 or snapshots < 2:
        raise ValueError(f"need steps >= 1 and snapshots >= 2, got steps={steps}, snapshots={snapshots}")
    lr = TOY_LEARNING_RATES[name] if lr is None and name in TOY_LEARNING_RATES else lr
    generator = torch.Generator().manual_seed(seed)
    x = torch.tensor(points, dtype=torch.float32, requires_grad=True)
    y = torch.as_tensor(labels, dtype=torch.long)
    classifier = torch.tensor([[-1.0, 1.0], [0.0, 0.0]], requires_grad=name == "group")
    params = [x, classifier] if name == "group" else [x]
    optimiser = torch.optim.SGD(params, lr=lr)
    keep = set(np.linspace(0, steps, snapshots).round().astype(int).tolist())
    history = []
    for step in range(steps + 1):
        loss = toy_loss(name, x, y, classifier, generator)
        if step in keep:
            history.append((step, x.detach().numpy().copy(), float(loss.detach())))
        if step == steps:
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return history
