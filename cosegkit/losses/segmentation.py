"""Segmentation losses for the 2-class co-segmentation head: Dice, cross-entropy, focal.

The IS-Triplet paper combines its metric loss with a Dice, a cross-entropy (CE) and a focal loss
(is_triplet_coseg.txt, Sec. 4, Tables 1-2, eq. 5); the base framework's head outputs 2 channels. The argument
conventions follow segmentation-models-pytorch (smp):

* ``mode="binary"``: inputs (B, 1, H, W) or (B, H, W), one foreground logit (or probability) per pixel.
* ``mode="multiclass"``: inputs (B, 2, H, W), background / foreground logits (or probabilities), i.e. the
  2-class head. Only C = 2 is accepted: this package segments foreground vs background.
* ``target``: (B, H, W) (binary mode also accepts (B, 1, H, W)), bool or {0, 1}; 1 = foreground.
* ``from_logits=True``: inputs are logits (sigmoid in binary mode, softmax over channels in multiclass mode);
  ``from_logits=False``: inputs are already probabilities in [0, 1] (checked).

All losses return the mean over the batch (scalar).

Choices (documented where the papers and smp leave room):

* Dice: smp style, intersection and cardinality are summed over the batch and all pixels, per class, then
  ``1 - (2 I + smooth) / (|P| + |T| + smooth)``, averaged over classes (multiclass: both channels). Unlike smp,
  classes absent from the target are *not* masked out: with ``smooth > 0`` an empty target still gives a loss
  that pulls the prediction to zero, which negative (no common object) pairs need.
* Focal (Lin et al.): binary mode is ``torchvision.ops.sigmoid_focal_loss``. Multiclass mode is the *softmax*
  focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` with ``p_t`` the softmax probability of the true class and
  ``alpha_t = alpha`` for foreground, ``1 - alpha`` for background. With two classes this equals the sigmoid
  focal loss of the logit difference ``z1 - z0`` (softmax([z0, z1])[1] = sigmoid(z1 - z0)), so it is computed
  with ``sigmoid_focal_loss`` too and agrees with the binary mode; smp instead applies a sigmoid focal loss to
  each channel independently, which ignores the softmax coupling of the 2-class head. ``alpha=None``
  disables the alpha weighting.
* Probabilities (``from_logits=False``): ``log p`` is computed as ``log(max(p, eps))`` so that p = 0 gives a
  large finite loss instead of inf/NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from cosegkit.losses._checks import check_positive, check_tensor, same_device
from cosegkit.samplers import as_binary_masks

__all__ = [
    "SEGMENTATION_LOSSES",
    "DiceLoss",
    "FocalLoss",
    "SegCrossEntropyLoss",
    "build_segmentation_loss",
    "cross_entropy_loss",
    "dice_loss",
    "focal_loss",
    "segmentation_loss",
]

_MODES = ("binary", "multiclass")


def _prepare(inputs: Tensor, target: Tensor, mode: str, from_logits: bool) -> tuple[Tensor, Tensor]:
    """Validate and return ``(x, t)``: binary mode x (B, H, W); multiclass mode x (B, 2, H, W); t (B, H, W) bool."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if not isinstance(from_logits, bool):
        raise ValueError(f"from_logits must be a bool, got {from_logits!r}")
    inputs = check_tensor(inputs, "logits", (3, 4), floating=True)
    target = check_tensor(target, "target", (3, 4))
    same_device(inputs, target, names=("logits", "target"))
    if mode == "binary":
        if inputs.ndim == 4:
            if inputs.shape[1] != 1:
                raise ValueError(f"logits in binary mode must be (B, 1, H, W) or (B, H, W), got {tuple(inputs.shape)}")
            inputs = inputs[:, 0]
        if target.ndim == 4:
            if target.shape[1] != 1:
                raise ValueError(f"target must be (B, H, W) or (B, 1, H, W), got {tuple(target.shape)}")
            target = target[:, 0]
        expected = tuple(inputs.shape)
    else:
        if inputs.ndim != 4 or inputs.shape[1] != 2:
            raise ValueError(f"logits in multiclass mode must be (B, 2, H, W) (2-class head), got "
                             f"{tuple(inputs.shape)}")
        expected = (inputs.shape[0], *inputs.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} to match logits, got {tuple(target.shape)}")
    target = as_binary_masks(target, "target")
    if not from_logits and inputs.numel():
        lo, hi = float(inputs.min()), float(inputs.max())
        if lo < 0.0 or hi > 1.0 or math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"logits must be probabilities in [0, 1] when from_logits=False, got range "
                             f"[{lo}, {hi}]")
    return inputs, target


def _probs(x: Tensor, mode: str, from_logits: bool) -> Tensor:
    if not from_logits:
        return x
    return torch.sigmoid(x) if mode == "binary" else torch.softmax(x, dim=1)


def _p_true(p: Tensor, t: Tensor, mode: str) -> Tensor:
    """Probability assigned to the true class, (B, H, W)."""
    if mode == "binary":
        return torch.where(t, p, 1.0 - p)
    return p.gather(1, t.long()[:, None])[:, 0]


def dice_loss(
    logits: Tensor,
    target: Tensor,
    mode: str = "binary",
    from_logits: bool = True,
    smooth: float = 1.0,
    eps: float = 1e-7,
) -> Tensor:
    """Dice loss (smp convention, see module docstring): ``1 - (2 I + smooth) / max(|P| + |T| + smooth, eps)``
    with sums over the batch and pixels; binary mode scores the foreground, multiclass mode averages the two
    channels."""
    smooth = check_positive(smooth, "smooth", allow_zero=True)
    eps = check_positive(eps, "eps")
    x, t = _prepare(logits, target, mode, from_logits)
    p = _probs(x, mode, from_logits)
    if mode == "binary":
        p, tf = p.reshape(1, -1), t.reshape(1, -1).to(p.dtype)
    else:
        p = p.transpose(0, 1).reshape(2, -1)
        tf = torch.stack([~t, t]).reshape(2, -1).to(p.dtype)
    inter = (p * tf).sum(1)
    card = (p + tf).sum(1)
    score = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    return (1.0 - score).mean()


def cross_entropy_loss(
    logits: Tensor, target: Tensor, mode: str = "binary", from_logits: bool = True, eps: float = 1e-7
) -> Tensor:
    """Pixel-wise cross-entropy, mean over pixels: binary = BCE on the foreground logit, multiclass = softmax CE
    over the 2 channels (``eps`` only used when ``from_logits=False``)."""
    eps = check_positive(eps, "eps")
    x, t = _prepare(logits, target, mode, from_logits)
    if from_logits:
        if mode == "binary":
            return F.binary_cross_entropy_with_logits(x, t.to(x.dtype))
        return F.cross_entropy(x, t.long())
    return -torch.log(_p_true(x, t, mode).clamp_min(eps)).mean()


def focal_loss(
    logits: Tensor,
    target: Tensor,
    mode: str = "binary",
    from_logits: bool = True,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    eps: float = 1e-7,
) -> Tensor:
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017), mean over pixels.

    Binary mode: ``torchvision.ops.sigmoid_focal_loss``. Multiclass mode (2-class head): softmax focal loss,
    computed as the sigmoid focal loss of ``z1 - z0`` (identical for two classes). ``alpha`` weights the
    foreground (``1 - alpha`` the background); ``alpha=None`` turns the weighting off.
    """
    gamma = check_positive(gamma, "gamma", allow_zero=True)
    eps = check_positive(eps, "eps")
    if alpha is not None:
        alpha = check_positive(alpha, "alpha", allow_zero=True)
        if alpha > 1.0:
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    x, t = _prepare(logits, target, mode, from_logits)
    if from_logits:
        z = x if mode == "binary" else x[:, 1] - x[:, 0]
        return sigmoid_focal_loss(z, t.to(z.dtype), alpha=-1.0 if alpha is None else alpha, gamma=gamma,
                                  reduction="mean")
    p_t = _p_true(x, t, mode)
    loss = -torch.log(p_t.clamp_min(eps)) * (1.0 - p_t) ** gamma
    if alpha is not None:
        loss = torch.where(t, alpha, 1.0 - alpha) * loss
    return loss.mean()


SEGMENTATION_LOSSES = {"dice": dice_loss, "ce": cross_entropy_loss, "focal": focal_loss}


def segmentation_loss(
    name: str, logits: Tensor, target: Tensor, mode: str = "binary", from_logits: bool = True, **kwargs
) -> Tensor:
    """Dispatch by name: ``"dice"`` -> :func:`dice_loss`, ``"ce"`` -> :func:`cross_entropy_loss`,
    ``"focal"`` -> :func:`focal_loss`; extra keyword arguments go to that function."""
    if name not in SEGMENTATION_LOSSES:
        raise ValueError(f"name must be one of {sorted(SEGMENTATION_LOSSES)}, got {name!r}")
    return SEGMENTATION_LOSSES[name](logits, target, mode=mode, from_logits=from_logits, **kwargs)


class DiceLoss(nn.Module):
    """Module form of :func:`dice_loss`; ``forward(logits, target)``."""

    def __init__(self, mode: str = "binary", from_logits: bool = True, smooth: float = 1.0, eps: float = 1e-7):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode, self.from_logits, self.smooth, self.eps = mode, from_logits, smooth, eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, self.mode, self.from_logits, self.smooth, self.eps)


class SegCrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`; ``forward(logits, target)``."""

    def __init__(self, mode: str = "binary", from_logits: bool = True, eps: float = 1e-7):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode, self.from_logits, self.eps = mode, from_logits, eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy_loss(logits, target, self.mode, self.from_logits, self.eps)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; ``forward(logits, target)``."""

    def __init__(
        self,
        mode: str = "binary",
        from_logits: bool = True,
        gamma: float = 2.0,
        alpha: float | None = 0.25,
        eps: float = 1e-7,
    ):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.mode, self.from_logits, self.gamma, self.alpha, self.eps = mode, from_logits, gamma, alpha, eps

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.mode, self.from_logits, self.gamma, self.alpha, self.eps)


def build_segmentation_loss(name: str, mode: str = "binary", from_logits: bool = True, **kwargs) -> nn.Module:
    """Module by name (``"dice"``, ``"ce"``, ``"focal"``), e.g. for the training engine's config."""
    classes = {"dice": DiceLoss, "ce": SegCrossEntropyLoss, "focal": FocalLoss}
    if name not in classes:
        raise ValueError(f"name must be one of {sorted(classes)}, got {name!r}")
    return classes[name](mode=mode, from_logits=from_logits, **kwargs)
