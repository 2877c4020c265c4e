"""Co-attention between the two images' deepest features (IS-Triplet §3.3, Fig. 1 and Fig. 3).

IS-Triplet builds on "an image co-segmentation framework [34]" (Gong et al.) with "the correlation block [35]"
(Li et al., DOCS, ACCV 2018) between the siamese encoder and the siamese decoder, and refers to [34] for its
details. What the two sources describe, and what this module computes from them:

**DOCS correlation volume [35]** (:func:`correlation_volume`, ``normalize=True``): for every location i of A's
deepest map and every location j of B's, C_AB(i, j) = <f_A(i), f_B(j)> / (|f_A(i)| |f_B(j)|), laid out as an
(h_B * w_B)-channel map on A's grid: channel j (row-major over B's grid) at location i of A. The decoder then sees
*where in A* something matches *what in B*. C_BA is the same on B's grid.

**Gong et al.'s co-attention [34]** (read in the author's public research code, ``model_siamese.py`` of
GoNgXiAoPeNg1/new-EM-Fisher-loss, the model its ``train.py`` trains, and ``model_siamese_addbn.py`` of
GoNgXiAoPeNg1/co-attention-co-segmentation), on ResNet-50 layer-4 features f_A, f_B:

(a) spatial co-attention: a 3x3 conv reduces each image's features to one channel, s_A and s_B; the two maps are
    correlated over all location pairs, V_A(j, i) = s_A(i) * s_B(j) (an h*w-channel volume on A's grid: the
    code convolves s_A with the h*w values of s_B as 1x1 filters; no normalisation), then BatchNorm, ReLU, a 3x3
    conv to one channel, BatchNorm and a sigmoid give the spatial map m_A (same layers, applied to V_B, give
    m_B);
(b) channel co-attention: each image's features are pooled per channel by a top-k mean over locations, p_A and
    p_B (C values each); the concatenation [p_A, p_B] (2C) goes through an MLP 2C -> 2C, tanh, 2C -> C, sigmoid,
    giving ONE channel-weight vector w shared by both images: what the pair has in common
    (:func:`channel_weights`);
(c) out_A = f_A * w * m_A, out_B = f_B * w * m_B, then the decoder.

:class:`CoAttention` implements (a) + (b) + (c). ``spatial="gong"`` (default) builds the spatial map from Gong's
volume of 1-channel maps; ``spatial="docs"`` builds it, with the same BN-ReLU-conv-BN-sigmoid layers, from the
DOCS cosine volume of the full C-channel features (richer matching, no reducing conv).

``spatial="match"`` (ours, not in the sources) reads the DOCS volume by what it says about each location of A,
whatever the partner's layout: a learned 1x1 projection P (C -> ``match_channels``) stands in for the encoder
adaptation a frozen encoder cannot do, the cosine volume of P f_A against P f_B is taken over B's full grid (no
pooling: nothing of fixed size is convolved over j), and per location i of A its maximum and mean over j,
[max_j C_AB(i, j), mean_j C_AB(i, j)], go through a 3x3 conv to one channel, BatchNorm and a sigmoid. Gong's
and DOCS's conv over the volume's channels weights each partner location j separately, so it can only learn
"matches something at place j of B"; the maximum over j asks "matches something anywhere in B", which is what a
common object at a random place in B needs. In the single-image mode (A with A) the maximum is 1 everywhere
(i = j) and only the mean varies: the map then carries no pair information, as it should.

Where the sources are ambiguous, and what we chose:

- Top-k of the channel pooling: the stored code averages all h*w locations for image A and the top h*w/2 for
  image B (and the file names in its train.py mention k = 0.75 and 0.8). We use ONE fraction for both images,
  ``topk_fraction=0.5`` by default (k = ceil(0.5 * h * w)), so that the pooling does not depend on which image is
  called A.
- The reducing conv of (a): ``model_siamese.py`` has conv3x3 + ReLU (its BatchNorm commented out),
  ``model_siamese_addbn.py``'s ConvRelu is conv3x3 + BN + ReLU. We use conv3x3 + BN + ReLU: a ReLU on a single
  channel without BN can switch off everywhere and cut the gradient to the attention.
- After the volume's 3x3 conv, ``model_siamese.py`` applies a ReLU before the last BatchNorm and the sigmoid. We
  leave that ReLU out (conv -> BN -> sigmoid): with it, every location the conv maps below zero gets the same
  constant attention and no gradient.
- Each BatchNorm normalises one image's tensors at a time (as the sources call it once per image), so in train
  mode image A's statistics never see image B.
- Initialisation: PyTorch's defaults (BN weight 1, bias 0), so at the start the spatial map is a standardised
  score through a sigmoid (about 0.5 +- 0.2, slope ~0.25) and the channel weights are about 0.5: training starts
  near "attend to everything" with a live gradient through both.

The volume's channel count depends on the partner's grid (h_B * w_B). To make it fixed (the BatchNorm and conv
over the volume need a fixed channel count), the partner's map (B's 1-channel map for "gong", B's features for
"docs") is adaptive-average-pooled to ``partner_grid`` before correlating; a grid smaller than ``partner_grid`` is
stretched (cells repeated), a larger one averaged. Choose the grid of the training size (then the volume is exactly
the sources' one there); a model built for one size then runs at any other multiple of 32. A's own grid is never
pooled: the output keeps A's resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

__all__ = [
    "SPATIAL_MODES",
    "CoAttention",
    "channel_weights",
    "correlation_volume",
    "correlation_volumes",
    "topk_channel_pool",
]

SPATIAL_MODES = ("gong", "docs", "match")


def _check_features(feat_a: torch.Tensor, feat_b: torch.Tensor) -> None:
    if feat_a.ndim != 4 or feat_b.ndim != 4 or feat_a.shape[:2] != feat_b.shape[:2]:
        raise ValueError(
            f"feat_a and feat_b must be (B, C, h, w) with equal B and C, got {tuple(feat_a.shape)} and "
            f"{tuple(feat_b.shape)}"
        )


def _grid(partner_grid) -> tuple[int, int] | None:
    if partner_grid is None:
        return None
    grid = (int(partner_grid), int(partner_grid)) if isinstance(partner_grid, int) else tuple(map(int, partner_grid))
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"partner_grid must be a positive int or (h, w), got {partner_grid!r}")
    return grid


def correlation_volume(
    feat_a: torch.Tensor,
    feat_b: torch.Tensor,
    partner_grid: int | tuple[int, int] | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Correlation of every location of A with every location of B, as a map on A's grid.

    ``vol[n, j, y, x] = <f_A(y, x), f_B(j)>`` (divided by both norms if ``normalize``: DOCS's cosine correlation),
    where j = row * w_B + col runs row-major over B's grid, after B is adaptive-average-pooled to
    ``partner_grid`` (None: B's own grid).

    Args:
        feat_a: (N, C, h_a, w_a).
        feat_b: (N, C, h_b, w_b).
        partner_grid: (p_h, p_w) or an int for a square grid; None keeps (h_b, w_b).
        normalize: cosine (True) or plain inner product (False, Gong's volume of 1-channel maps).

    Returns:
        (N, p_h * p_w, h_a, w_a).
    """
    _check_features(feat_a, feat_b)
    grid = _grid(partner_grid)
    if grid is not None:
        feat_b = F.adaptive_avg_pool2d(feat_b, grid)
    fa, fb = feat_a.flatten(2), feat_b.flatten(2)  # (N, C, Na), (N, C, Nb)
    if normalize:
        fa, fb = F.normalize(fa, dim=1), F.normalize(fb, dim=1)
    vol = fb.transpose(1, 2) @ fa  # (N, Nb, Na)
    return vol.view(feat_a.shape[0], fb.shape[2], *feat_a.shape[2:])


def correlation_volumes(
    feat_a: torch.Tensor,
    feat_b: torch.Tensor,
    partner_grid: int | tuple[int, int] | None = None,
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(C_AB on A's grid, C_BA on B's grid): :func:`correlation_volume` both ways."""
    return (
        correlation_volume(feat_a, feat_b, partner_grid, normalize),
        correlation_volume(feat_b, feat_a, partner_grid, normalize),
    )


def topk_channel_pool(feat: torch.Tensor, topk_fraction: float) -> torch.Tensor:
    """Per channel, the mean of its k largest values over the h*w locations, k = ceil(fraction * h * w): (N, C)."""
    if feat.ndim != 4:
        raise ValueError(f"feat must be (N, C, h, w), got {tuple(feat.shape)}")
    if not 0.0 < topk_fraction <= 1.0:
        raise ValueError(f"topk_fraction must be in (0, 1], got {topk_fraction}")
    flat = feat.flatten(2)
    k = math.ceil(topk_fraction * flat.shape[2])
    if k == flat.shape[2]:
        return flat.mean(dim=2)
    return flat.topk(k, dim=2).values.mean(dim=2)


def channel_weights(
    desc_a: torch.Tensor,
    desc_b: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor | None,
    weight2: torch.Tensor,
    bias2: torch.Tensor | None,
) -> torch.Tensor:
    """Gong's shared channel co-attention: sigmoid(W2 tanh(W1 [desc_a, desc_b] + b1) + b2), shape (N, C).

    Args:
        desc_a, desc_b: (N, C) channel descriptors of the two images (:func:`topk_channel_pool`).
        weight1, bias1: (H, 2C), (H,); weight2, bias2: (C, H), (C,) (``nn.Linear`` layout).

    The one result weights the channels of BOTH images.
    """
    if desc_a.ndim != 2 or desc_a.shape != desc_b.shape:
        raise ValueError(f"desc_a and desc_b must be (N, C) of equal shape, got {tuple(desc_a.shape)} and "
                         f"{tuple(desc_b.shape)}")
    hidden = torch.tanh(F.linear(torch.cat([desc_a, desc_b], dim=1), weight1, bias1))
    return torch.sigmoid(F.linear(hidden, weight2, bias2))


class CoAttention(nn.Module):
    """Spatial + channel co-attention of Gong et al. [34], optionally on the DOCS volume [35] (module docstring).

    Args:
        in_channels: C, channels of the deepest feature maps.
        spatial: "gong" (spatial map from the volume of two 1-channel maps), "docs" (from the cosine volume of
            the C-channel features) or "match" (from the maximum and mean over B of the cosine volume of projected
            features; ours, see the module docstring).
        partner_grid: the partner's map is adaptive-average-pooled to this grid, so the volume has
            p_h * p_w channels at every input size.
        topk_fraction: fraction of locations averaged per channel for the channel descriptors.
        hidden_channels: hidden width of the channel MLP (default 2C, as in [34]).
        match_channels: width of the learned projection of ``spatial="match"``.
        match_in_channels: channels of the features the "match" map is computed from, when :meth:`attend` is
            given them (``match_a``/``match_b``, e.g. a finer grid); default: the deepest features' C.

    ``forward(feat_a, feat_b) -> (out_a, out_b)``, each with ``out_channels`` (= C) channels on its own grid:
    out_A = f_A * w * m_A, out_B = f_B * w * m_B with the shared channel weights w (:meth:`channel_weights`)
    and each image's spatial map (:meth:`spatial_maps`). For a single-image model pass an image with itself.
    """

    def __init__(
        self,
        in_channels: int,
        spatial: str = "gong",
        partner_grid: int | tuple[int, int] = 5,
        topk_fraction: float = 0.5,
        hidden_channels: int | None = None,
        match_channels: int = 64,
        match_in_channels: int | None = None,
    ):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if spatial not in SPATIAL_MODES:
            raise ValueError(f"spatial must be one of {', '.join(SPATIAL_MODES)}, got {spatial!r}")
        if not 0.0 < topk_fraction <= 1.0:
            raise ValueError(f"topk_fraction must be in (0, 1], got {topk_fraction}")
        self.in_channels = int(in_channels)
        self.spatial = spatial
        self.partner_grid = _grid(partner_grid)
        self.topk_fraction = float(topk_fraction)
        volume_channels = 2 if spatial == "match" else self.partner_grid[0] * self.partner_grid[1]
        # (a) spatial co-attention
        self.reduce = Conv2dNormActivation(in_channels, 1, 3) if spatial == "gong" else None  # conv-BN-ReLU to 1
        self.project = (nn.Conv2d(match_in_channels or in_channels, match_channels, 1) if spatial == "match"
                        else None)
        self.volume_bn = None if spatial == "match" else nn.BatchNorm2d(volume_channels)
        self.spatial_conv = nn.Conv2d(volume_channels, 1, 3, padding=1, bias=False)  # bias: the BN after it
        self.spatial_bn = nn.BatchNorm2d(1)
        # (b) channel co-attention
        hidden = 2 * in_channels if hidden_channels is None else int(hidden_channels)
        self.mlp1 = nn.Linear(2 * in_channels, hidden)
        self.mlp2 = nn.Linear(hidden, in_channels)

    @property
    def out_channels(self) -> int:
        return self.in_channels

    def volumes(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The correlation volumes (V_A on A's grid, V_B on B's grid), p_h * p_w channels each ("match": the full
        partner grid, h_b * w_b channels on A's grid)."""
        _check_features(feat_a, feat_b)
        if self.project is not None:  # match: cosine volume of the projected features, B's full grid
            return correlation_volumes(self.project(feat_a), self.project(feat_b), None, normalize=True)
        if self.reduce is None:  # docs: cosine volume of the features
            return correlation_volumes(feat_a, feat_b, self.partner_grid, normalize=True)
        s_a, s_b = self.reduce(feat_a), self.reduce(feat_b)  # gong: 1-channel maps, one call per image
        return correlation_volumes(s_a, s_b, self.partner_grid, normalize=False)

    def _spatial_map(self, volume: torch.Tensor) -> torch.Tensor:
        if self.volume_bn is None:  # match: what the volume says about each location of A, whatever B's layout
            scores = torch.cat([volume.amax(dim=1, keepdim=True), volume.mean(dim=1, keepdim=True)], dim=1)
            return torch.sigmoid(self.spatial_bn(self.spatial_conv(scores)))
        return torch.sigmoid(self.spatial_bn(self.spatial_conv(F.relu(self.volume_bn(volume)))))

    def spatial_maps(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m_A, m_B) in (0, 1), shapes (N, 1, h_a, w_a) and (N, 1, h_b, w_b)."""
        vol_a, vol_b = self.volumes(feat_a, feat_b)
        return self._spatial_map(vol_a), self._spatial_map(vol_b)

    def channel_weights(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
        """The channel weights w in (0, 1) shared by both images, shape (N, C, 1, 1)."""
        _check_features(feat_a, feat_b)
        w = channel_weights(
            topk_channel_pool(feat_a, self.topk_fraction),
            topk_channel_pool(feat_b, self.topk_fraction),
            self.mlp1.weight, self.mlp1.bias, self.mlp2.weight, self.mlp2.bias,
        )
        return w[:, :, None, None]

    def attend(
        self, feat_a: torch.Tensor, feat_b: torch.Tensor, match_a: torch.Tensor | None = None,
        match_b: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(out_A, out_B, m_A, m_B): the attended features and the spatial maps. ``match_a``/``match_b`` ("match"
        only): compute the maps from these features (any grid) instead; the deepest features are then multiplied
        by the maps average-pooled to their grid, and the maps are returned on the finer grid."""
        w = self.channel_weights(feat_a, feat_b)
        if match_a is None:
            m_a, m_b = self.spatial_maps(feat_a, feat_b)
            return feat_a * w * m_a, feat_b * w * m_b, m_a, m_b
        if self.project is None:
            raise ValueError("match_a/match_b need spatial='match'")
        m_a, m_b = self.spatial_maps(match_a, match_b)
        deep_a = feat_a * w * F.adaptive_avg_pool2d(m_a, feat_a.shape[-2:])
        deep_b = feat_b * w * F.adaptive_avg_pool2d(m_b, feat_b.shape[-2:])
        return deep_a, deep_b, m_a, m_b

    def forward(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_a, out_b, _, _ = self.attend(feat_a, feat_b)
        return out_a, out_b
