"""CoSegNet: conditional siamese encoder-decoder + siamese metric network + decision network (cosegnet §3.1-3.5).

- Encoder (§3.1): VGG16's 13 conv + 5 max-pool layers, shared by both images; f = 512 x 7 x 7 at 224.
- Decoder (§3.1, Fig. 2 bottom): 5 nearest-neighbour interpolations (NNI, x2) and 13 transposed convolutions
  (3x3, stride 1, padding 1), ReLU after all but the last, which outputs one mask logit map per image:

      NNI -> cT1-3 (14^2)  NNI -> cT4-6 (28^2)  NNI -> cT7-9 (56^2)  NNI -> cT10-11 (112^2)  NNI -> cT12-13 (224^2)

  The paper fixes only cT9 = 256 channels at 56^2. We give every decoder stage the width VGG16 has at the same
  resolution - 512, 512, 256, 128, 64 for the 14^2 ... 224^2 stages - changing width at the first convT after each
  NNI (so cT3 = 512, cT6 = 512, cT9 = 256, cT11 = 128 channels; cT13 = 1). ``width_mult`` scales these widths.
- Metric network (§3.2): GAP over a decoder layer (cT9 by default; ``metric_layer`` selects f/cT3/cT6/cT9/cT11
  for Table 6) -> fu, then FC128-ReLU-FC64 -> fs.
- Decision network (§3.3): concat(fs_a, fs_b) (128) -> FC32-ReLU-FC1 (-> sigmoid: common object present).
- Conditional training (§3.5): L1 (mask loss) is back-propagated for positive pairs only, L2/L3 for all pairs, so
  for negative pairs no gradient reaches the decoder layers after the metric layer (cT10-13 for cT9). Passing
  ``positive_mask`` to ``forward`` makes this structural: the decoder layers after the metric layer run on the
  positive pairs only, and the mask logits of negative pairs are zeros without gradient, so no mask loss on them
  can produce a gradient anywhere. The per-image decoder (no batch statistics: GroupNorm or none) makes every
  computed row the same as in a full pass, and a triplet batch of B positive and B negative pairs runs the mask
  tail B times instead of 2B (for ``metric_layer="f"`` the negatives need no decoder at all).
- Test time (§3.5): masks are multiplied by the thresholded decision (:meth:`CoSegNet.predict`).

``CoSegNetBase`` is the Table 5 ablation: no metric/decision network; each decoder gets concat(f_self, f_other)
(1024 channels for VGG16). The paper trains it on negative pairs too, with null (all-zero) target masks; that is
the training engine's job, the model has nothing conditional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import check_image_batch, check_pair
from .encoders import Encoder, build_encoder
from .outputs import CoSegNetBaseOutput, CoSegNetOutput, CoSegNetPrediction

STAGE_DEPTHS = (3, 3, 3, 2, 2)  # convT layers after each of the 5 NNI upsamplings (13 in total)
VGG_STAGE_WIDTHS = (512, 512, 256, 128, 64)  # VGG16 widths at strides 16, 8, 4, 2, 1
DEFAULT_WIDTH_MULT = {"vgg16": 1.0, "resnet50": 1.0, "efficientnet_lite0": 0.25, "tiny": 0.125}
DEFAULT_WIDTH_MULT["efficientnet_lite2"] = 0.25  # like efficientnet_lite0
LAYER_NAMES = tuple(f"cT{i}" for i in range(1, 14))
METRIC_LAYERS = ("f", *LAYER_NAMES[:-1])  # Table 6 uses f, cT3, cT6, cT9, cT11


def _stage_widths(encoder: str, width_mult: float | None, decoder_widths: Sequence[int] | None) -> tuple[int, ...]:
    if decoder_widths is not None:
        if width_mult is not None:
            raise ValueError("give either width_mult or decoder_widths, not both")
        widths = tuple(int(w) for w in decoder_widths)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"decoder_widths must be 5 positive stage widths, got {decoder_widths}")
        return widths
    mult = DEFAULT_WIDTH_MULT.get(encoder, 1.0) if width_mult is None else float(width_mult)
    if mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    return tuple(max(1, round(w * mult)) for w in VGG_STAGE_WIDTHS)


DECODER_NORMS = ("none", "group")


class CoSegDecoder(nn.Module):
    """13 convT (3x3, stride 1, pad 1) in 5 NNI stages; ``layers["cT<i>"]``. Output: 1-channel logits.

    ``norm="group"`` adds a GroupNorm (8 groups, or fewer when the width is not divisible) before each ReLU. The
    paper has no normalisation in the decoder; "group" is the cpu profile's deviation (see ``norms``)."""

    def __init__(self, in_channels: int, stage_widths: Sequence[int], norm: str = "none"):
        super().__init__()
        if norm not in DECODER_NORMS:
            raise ValueError(f"decoder norm must be one of {', '.join(DECODER_NORMS)}, got {norm!r}")
        self.stage_widths = tuple(stage_widths)
        self.norm = norm
        self.layers = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        self.upsample_before: set[str] = set()
        self.channels: dict[str, int] = {}
        cin, i = in_channels, 1
        for depth, width in zip(STAGE_DEPTHS, stage_widths, strict=True):
            for j in range(depth):
                name = f"cT{i}"
                cout = 1 if i == 13 else width
                self.layers[name] = nn.ConvTranspose2d(cin, cout, 3, stride=1, padding=1)
                if norm == "group" and i != 13:
                    self.norms[name] = nn.GroupNorm(math.gcd(8, cout), cout)
                if j == 0:
                    self.upsample_before.add(name)
                self.channels[name] = cout
                cin, i = cout, i + 1

    def run(self, x: torch.Tensor, start: int = 1, stop: int = 13) -> torch.Tensor:
        """Apply layers cT<start> .. cT<stop> (inclusive; NNI before the first layer of each stage)."""
        for i in range(start, stop + 1):
            name = f"cT{i}"
            if name in self.upsample_before:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = self.layers[name](x)
            if name in self.norms:
                x = self.norms[name](x)
            if i != 13:
                x = F.relu(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _rows_to_keep(positive_mask: torch.Tensor | None, batch: int, device) -> torch.Tensor | None:
    """positive_mask as a (B,) bool tensor on `device` (None stays None)."""
    if positive_mask is None:
        return None
    pm = torch.as_tensor(positive_mask, device=device)
    if pm.shape != (batch,):
        raise ValueError(f"positive_mask must have shape ({batch},), got {tuple(pm.shape)}")
    return pm.bool()


DECISION_INITS = ("difference", "default")


def _check_dropout(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"feature_dropout must be in [0, 1), got {p!r}")
    return float(p)


def _drop(f: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Channel dropout on the encoder output f while training (``feature_dropout``; not in the paper)."""
    return F.dropout2d(f, p) if training and p > 0 else f


def decision_gate(decision_prob, threshold: float):
    """§3.5's test-time gate: the pair shares a common object when the decision probability exceeds
    ``threshold`` (a tensor of probabilities or one float). The one place this rule is written: CoSegNet.predict,
    the training-time evaluation, ``cosegkit evaluate`` and ``cosegkit predict`` all call it."""
    return decision_prob > threshold


@torch.no_grad()
def init_decision_as_difference(first: nn.Linear) -> None:
    """Initialise the decision network's first layer (input concat(fs_a, fs_b), cosegnet §3.3) so that its hidden
    units come in pairs reading u·(fs_a - fs_b) and -u·(fs_a - fs_b): after the ReLU each pair sums to |u·(fs_a -
    fs_b)|, a distance along u, which is what "is there a common object" rests on.

    Why: with PyTorch's default (independent) weights the first-order gradient of L3 on the first layer is the
    mean partner embedding of positive pairs minus that of negative pairs (the anchor block cancels, both pairs of
    a triplet share it), which is about zero when partners are drawn at random across classes. Same/different is
    an XOR-like function of a concatenation, learnt only through second-order effects: measured on PASCAL-VOC at
    the cpu profile, L3 stayed at the weighted prior (p = 0.33 / (0.33 + 0.5) = 0.40 for every pair, so every
    mask was gated off) while the triplet loss fell. The layer and its parameters are the paper's; only their
    starting point differs, and training may move the two halves apart. With an odd width the last unit keeps
    its default weights."""
    out_features, in_features = first.weight.shape
    if in_features % 2:
        raise ValueError(f"the decision input must be concat(fs_a, fs_b), an even width; got {in_features}")
    half = in_features // 2
    u = first.weight[0::2, :half].clone()
    pairs = u.shape[0] if out_features % 2 == 0 else out_features // 2
    u = u[:pairs]
    first.weight[0 : 2 * pairs : 2] = torch.cat([u, -u], dim=1)
    first.weight[1 : 2 * pairs : 2] = torch.cat([-u, u], dim=1)
    first.bias[: 2 * pairs].zero_()


class CoSegNet(nn.Module):
    """CoSegNet (cosegnet §3.1-3.5, Fig. 2). See the module docstring for the layer layout.

    Args:
        pretrained: ImageNet weights for the encoder.
        metric_layer: input of the metric network (GAP over it): "f" (encoder output) or "cT1".."cT12";
            the paper uses "cT9" and compares f, cT3, cT6, cT9, cT11 in Table 6.
        encoder: "vgg16" (paper), "efficientnet_lite0" (CPU profile), "resnet50" or "tiny".
        width_mult: scales the decoder stage widths (512, 512, 256, 128, 64); None -> per-encoder default
            (1.0 for vgg16, 0.25 for efficientnet_lite0: 128, 128, 64, 32, 16).
        single_image: the decision network sees (fs_a, fs_a) instead of (fs_a, fs_b) (and ``decision_logit_b``
            = D(fs_b, fs_b)), so no information crosses the pair.
        decoder_widths: explicit 5 stage widths instead of ``width_mult``.
        embedding_dim, hidden_dim, decision_hidden: metric network FC sizes (64, 128) and decision FC (32).
        decoder_norm: "none" (paper) or "group" (GroupNorm before each decoder ReLU; the cpu profile's choice).
        decision_init: "difference" (see :func:`init_decision_as_difference`) or "default" (PyTorch's). The paper
            gives the decision network's layers (concat 128 -> FC32-ReLU -> FC1) but not their initialisation.
        feature_dropout: channel dropout (``F.dropout2d``) on the encoder output f while training, before the
            decoder and the metric network; 0 (default, the paper) for none. Ours, for a frozen encoder whose
            heads overfit a few hundred training images.

    ``forward(image_a, image_b, positive_mask=None)`` -> :class:`~cosegkit.models.outputs.CoSegNetOutput`:
    logits_a, logits_b (B, 1, H, W) mask logits
    (for rows where the (B,) bool ``positive_mask`` is False they are not computed: zeros without gradient, since
    negative pairs give no mask-loss gradient, §3.5);
    embedding_a, embedding_b (B, 64) metric outputs fs; pooled_a, pooled_b (B, C) the GAP vectors fu;
    decision_logit (B,) pre-sigmoid (and decision_logit_b in single-image mode).
    """

    def __init__(
        self,
        pretrained: bool = False,
        metric_layer: str = "cT9",
        encoder: str = "vgg16",
        width_mult: float | None = None,
        single_image: bool = False,
        decoder_widths: Sequence[int] | None = None,
        embedding_dim: int = 64,
        hidden_dim: int = 128,
        decision_hidden: int = 32,
        decoder_norm: str = "none",
        decision_init: str = "difference",
        feature_dropout: float = 0.0,
    ):
        super().__init__()
        self.feature_dropout = _check_dropout(feature_dropout)
        if metric_layer not in METRIC_LAYERS:
            raise ValueError(f"metric_layer must be one of {', '.join(METRIC_LAYERS)}; got {metric_layer!r}")
        self.encoder: Encoder = build_encoder(encoder, pretrained).drop_classifier()
        self.metric_layer = metric_layer
        self.single_image = bool(single_image)
        self.decoder = CoSegDecoder(self.encoder.out_channels[-1], _stage_widths(encoder, width_mult, decoder_widths),
                                    norm=decoder_norm)
        self._metric_index = 0 if metric_layer == "f" else int(metric_layer[2:])
        fu_dim = self.encoder.out_channels[-1] if metric_layer == "f" else self.decoder.channels[metric_layer]
        self.metric = nn.Sequential(nn.Linear(fu_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim))
        self.decision = nn.Sequential(
            nn.Linear(2 * embedding_dim, decision_hidden), nn.ReLU(), nn.Linear(decision_hidden, 1)
        )
        if decision_init not in DECISION_INITS:
            raise ValueError(f"decision_init must be one of {', '.join(DECISION_INITS)}, got {decision_init!r}")
        if decision_init == "difference":
            init_decision_as_difference(self.decision[0])
        self.input_mean = self.encoder.input_mean
        self.input_std = self.encoder.input_std

    def post_metric_layers(self) -> list[str]:
        """Decoder layers after the metric layer: not trained by negative pairs (cT10-cT13 for cT9)."""
        return list(LAYER_NAMES[self._metric_index :])

    def _branch(self, image: torch.Tensor, keep: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mask logits, fu, fs) for one image batch; with `keep` (B,) bool, the decoder layers after the metric
        layer run on the kept rows only and the other rows' logits are zeros without gradient."""
        f = _drop(self.encoder(image)[-1], self.feature_dropout, self.training)
        tap = f if self._metric_index == 0 else self.decoder.run(f, 1, self._metric_index)
        fu = tap.mean(dim=(2, 3))
        if keep is None or bool(keep.all()):
            logits = self.decoder.run(tap, self._metric_index + 1, 13)
        else:
            tail = [n for n in self.post_metric_layers() if n in self.decoder.upsample_before]
            scale = 2 ** len(tail)
            logits = tap.new_zeros((tap.shape[0], 1, tap.shape[2] * scale, tap.shape[3] * scale))
            if bool(keep.any()):
                kept = self.decoder.run(tap[keep], self._metric_index + 1, 13)
                logits = logits.to(kept.dtype).index_put((keep.nonzero().squeeze(1),), kept)
        return logits, fu, self.metric(fu)

    def forward(
        self, image_a: torch.Tensor, image_b: torch.Tensor, positive_mask: torch.Tensor | None = None
    ) -> CoSegNetOutput:
        check_pair(image_a, image_b)
        keep = _rows_to_keep(positive_mask, image_a.shape[0], image_a.device)
        logits_a, fu_a, fs_a = self._branch(image_a, keep)
        logits_b, fu_b, fs_b = self._branch(image_b, keep)
        decision, decision_b = self.decide(fs_a, fs_b)
        return CoSegNetOutput(logits_a, logits_b, fs_a, fs_b, fu_a, fu_b, decision, decision_b)

    def decide(self, fs_a: torch.Tensor, fs_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decision logits (B,) from the metric embeddings of the two images (§3.3: concat(fs_a, fs_b) -> FC32-ReLU
        -> FC1), and None; in single-image mode (D(fs_a, fs_a), D(fs_b, fs_b)). Each image's fs depends on that
        image alone (the branches share weights, not activations), so the decisions of many pairs over the same
        images can be computed from one :meth:`metric_embedding` per image."""
        if self.single_image:
            return (self.decision(torch.cat([fs_a, fs_a], dim=1)).squeeze(1),
                    self.decision(torch.cat([fs_b, fs_b], dim=1)).squeeze(1))
        return self.decision(torch.cat([fs_a, fs_b], dim=1)).squeeze(1), None

    def metric_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """fs (B, 64) of one image batch, computing the decoder only up to the metric layer (for triplets)."""
        check_image_batch(image, "image")
        f = _drop(self.encoder(image)[-1], self.feature_dropout, self.training)
        tap = f if self._metric_index == 0 else self.decoder.run(f, 1, self._metric_index)
        return self.metric(tap.mean(dim=(2, 3)))

    @torch.no_grad()
    def predict(self, image_a: torch.Tensor, image_b: torch.Tensor, threshold: float = 0.5) -> CoSegNetPrediction:
        """Test-time output (§3.5): mask probabilities multiplied by the thresholded decision.

        Returns :class:`~cosegkit.models.outputs.CoSegNetPrediction` (masks_a, masks_b (B, 1, H, W) in [0, 1],
        decision (B,) bool, decision_prob (B,),
        decision_b, decision_prob_b); in single-image mode masks_b is gated by decision_b, the decision computed
        from image B alone (elsewhere decision_b is decision). The module's current train/eval mode is used
        (call ``model.eval()`` first).
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        out = self(image_a, image_b)
        prob = torch.sigmoid(out.decision_logit)
        prob_b = torch.sigmoid(out.decision_logit_b) if self.single_image else prob
        dec_a = decision_gate(prob, threshold)
        dec_b = decision_gate(prob_b, threshold)
        gate = lambda d: d.to(prob.dtype).view(-1, 1, 1, 1)  # noqa: E731
        return CoSegNetPrediction(torch.sigmoid(out.logits_a) * gate(dec_a), torch.sigmoid(out.logits_b) * gate(dec_b),
                                  dec_a, prob, dec_b, prob_b)


class CoSegNetBase(nn.Module):
    """CoSegNet-base (cosegnet §4.5, Table 5): no metric/decision network; each decoder gets concat(f_self, f_other).

    With VGG16 the decoder input has 1024 channels. Trained on negative pairs too, with null target masks (the
    engine's job). ``single_image=True`` concatenates f_self with itself. Args as in :class:`CoSegNet`.
    ``forward(image_a, image_b)`` -> :class:`~cosegkit.models.outputs.CoSegNetBaseOutput` (logits_a, logits_b of
    shape (B, 1, H, W)).
    """

    def __init__(
        self,
        pretrained: bool = False,
        encoder: str = "vgg16",
        width_mult: float | None = None,
        single_image: bool = False,
        decoder_widths: Sequence[int] | None = None,
        decoder_norm: str = "none",
        feature_dropout: float = 0.0,
    ):
        super().__init__()
        self.feature_dropout = _check_dropout(feature_dropout)
        self.encoder: Encoder = build_encoder(encoder, pretrained).drop_classifier()
        self.single_image = bool(single_image)
        self.decoder = CoSegDecoder(
            2 * self.encoder.out_channels[-1], _stage_widths(encoder, width_mult, decoder_widths), norm=decoder_norm
        )
        self.input_mean = self.encoder.input_mean
        self.input_std = self.encoder.input_std

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> CoSegNetBaseOutput:
        check_pair(image_a, image_b)
        f_a, f_b = (_drop(self.encoder(x)[-1], self.feature_dropout, self.training) for x in (image_a, image_b))
        if f_a.shape != f_b.shape and not self.single_image:
            raise ValueError(
                f"CoSegNetBase concatenates the two feature maps, so image_a and image_b need the same size; "
                f"got {tuple(image_a.shape[-2:])} and {tuple(image_b.shape[-2:])}"
            )
        other_a, other_b = (f_a, f_b) if self.single_image else (f_b, f_a)
        return CoSegNetBaseOutput(self.decoder(torch.cat([f_a, other_a], dim=1)),
                                  self.decoder(torch.cat([f_b, other_b], dim=1)))
