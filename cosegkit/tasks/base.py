"""What every model family's task provides, and the pieces they share.

A task (one per family: :mod:`cosegkit.tasks.siamese_unet`, :mod:`cosegkit.tasks.cosegnet`,
:mod:`cosegkit.tasks.cosegnet_base`) owns what differs between the families: the experiment's settings sections,
building the model, the data a run draws each epoch, collating, the loss and its logged terms, and prediction
(a :class:`PairPrediction`, where CoSegNet's decision gate is applied). The trainer, the evaluation, ``cosegkit
predict`` and the notebooks' inference only call these methods.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cosegkit.models.cosegnet import decision_gate
from cosegkit.train.data import RunData
from cosegkit.train.settings import ModelSettings, TrainSettings

__all__ = ["Task", "PairPrediction", "FEATURE_CACHE_ENV", "unwrap", "fp32", "maybe_freeze", "he_init", "scaled_view"]

FEATURE_CACHE_ENV = "COSEGKIT_FEATURE_CACHE"


@dataclass(frozen=True)
class PairPrediction:
    """One forward pass on a batch of pairs, as probabilities.

    prob_a, prob_b: foreground probability maps (B, h, w), before any gate; decision_a, decision_b: decision
    probabilities (B,) on the CPU (cosegnet §3.3; the two differ only for a single-image CoSegNet), None without a
    decision network; accepted_a, accepted_b: the §3.5 gate (B,) bool, None without a decision network.
    """

    prob_a: torch.Tensor
    prob_b: torch.Tensor
    decision_a: torch.Tensor | None = None
    decision_b: torch.Tensor | None = None
    accepted_a: torch.Tensor | None = None
    accepted_b: torch.Tensor | None = None

    @property
    def has_decision(self) -> bool:
        return self.decision_a is not None

    def gated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(prob_a, prob_b) multiplied by the gate (§3.5: mask x thresholded decision); ungated without one."""
        if not self.has_decision:
            return self.prob_a, self.prob_b
        gate = lambda accepted, p: accepted.to(device=p.device, dtype=p.dtype).view(-1, 1, 1)  # noqa: E731
        return self.prob_a * gate(self.accepted_a, self.prob_a), self.prob_b * gate(self.accepted_b, self.prob_b)


class Task:
    """The interface of a model family's task; see the module docstring."""

    family: str = ""
    loss_terms: tuple[str, ...] = ()  # logged loss terms, metrics.csv columns between "loss" and "lr"
    has_decision: bool = False  # a decision network (cosegnet §3.3) gates the masks
    has_pixel_embeddings: bool = False
    # DistributedDataParallel: parameters some steps leave without gradient (CoSegNet on all-negative batches)
    unused_parameters: bool = False

    def experiment_sections(self, experiment, profile, dataset: str) -> dict:
        """model, data, optim and epochs of ``experiment`` (cosegkit.train.experiments) under ``profile``."""
        raise NotImplementedError

    def slug_parts(self, settings: TrainSettings) -> list[str]:
        """The main settings that a run folder's name spells out (cosegkit.train.run_cache.run_slug)."""
        raise NotImplementedError

    def build_model(self, ms: ModelSettings) -> nn.Module:
        raise NotImplementedError

    def build_data(self, settings: TrainSettings, data_root=None) -> RunData:
        raise NotImplementedError

    def collate(self, batch: list[dict]) -> dict:
        raise NotImplementedError

    def loss_weight(self, settings: TrainSettings, epoch: int) -> float | None:
        """The weight of the metric-learning term at ``epoch`` (is_triplet_coseg Eq. 5's lambda); None: no such
        weight (metrics.csv's lambda column is then empty)."""
        return None

    def loss(self, model: nn.Module, batch: dict, settings: TrainSettings, lam: float | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its terms (already weighted as in the total) for one batch. Call it under autocast if
        wanted: the model runs in the ambient precision, the losses always in float32."""
        raise NotImplementedError

    def predict(self, model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor,
                threshold: float = 0.5) -> PairPrediction:
        raise NotImplementedError

    @torch.no_grad()
    def predict_views(self, model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor, threshold: float = 0.5,
                      scales: tuple[float, ...] = (1.0,), hflip: bool = False) -> PairPrediction:
        """:meth:`predict` averaged over test-time views (ours; neither paper uses any): the pair resized by each of
        ``scales`` (:func:`scaled_view`) and, with ``hflip``, mirrored as well. Every view's foreground
        probabilities are mapped back to the input's size (bilinear, mirrored back) and averaged. The decision and
        its gate are those of the input itself (scale 1, not mirrored), the view that the decision threshold is
        chosen on (evaluate.decision_probabilities). With the defaults this is :meth:`predict`, bit for bit."""
        scales = tuple(float(s) for s in scales)
        if scales == (1.0,) and not hflip:
            return self.predict(model, image_a, image_b, threshold=threshold)
        size = tuple(image_a.shape[-2:])
        sums, n_views, plain = [0.0, 0.0], 0, None
        for scale in scales:
            a, b = scaled_view(image_a, scale), scaled_view(image_b, scale)
            for mirrored in (False, True) if hflip else (False,):
                pred = self.predict(model, a.flip(-1) if mirrored else a, b.flip(-1) if mirrored else b,
                                    threshold=threshold)
                if scale == 1.0 and not mirrored:
                    plain = pred
                for side, prob in enumerate((pred.prob_a, pred.prob_b)):
                    prob = prob.float().flip(-1) if mirrored else prob.float()
                    sums[side] = sums[side] + F.interpolate(prob[:, None], size=size, mode="bilinear",
                                                            align_corners=False)[:, 0]
                n_views += 1
        prob_a, prob_b = sums[0] / n_views, sums[1] / n_views
        if not self.has_decision:
            return PairPrediction(prob_a, prob_b)
        if plain is not None:
            decision_a, decision_b = plain.decision_a, plain.decision_b
        else:
            decision_a, decision_b = self.decide(model, self.decision_codes(model, image_a),
                                                 self.decision_codes(model, image_b))
        return PairPrediction(prob_a, prob_b, decision_a, decision_b, decision_gate(decision_a, threshold),
                              decision_gate(decision_b, threshold))

    def decision_codes(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """What the decision network reads of each image of a (B, 3, H, W) batch, computed from that image alone
        (CoSegNet: its metric embedding fs), so a pair's decision is :meth:`decide` of its two images' codes."""
        raise ValueError(f"a {self.family} model has no decision network")

    def decide(self, model: nn.Module, codes_a: torch.Tensor, codes_b: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decision probabilities (decision_a, decision_b), as :class:`PairPrediction` holds them, of the pairs
        whose images have the :meth:`decision_codes` codes_a and codes_b."""
        raise ValueError(f"a {self.family} model has no decision network")

    def pixel_embedding(self, model: nn.Module, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor | None:
        """The (B, D, H, W) pixel embedding of image A (SiameseUNet; None for its original head)."""
        raise ValueError(f"a {self.family} model has no pixel embedding")


def scaled_view(images: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, 3, H, W) images resized by ``scale`` to the nearest multiple of 32 pixels per side (the encoders'
    stride; ties to the even multiple, as Python rounds: 224 x 1.5 gives 320; at least 32), bilinear with
    antialiasing; scale 1 returns them unchanged."""
    if scale == 1.0:
        return images
    size = [max(32, int(round(side * scale / 32)) * 32) for side in images.shape[-2:]]
    return F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def fp32(device: torch.device):
    """Losses run in float32 whatever the ambient autocast."""
    return torch.autocast(device_type=device.type, enabled=False)


def maybe_freeze(model: nn.Module, ms: ModelSettings) -> None:
    """``model.freeze_encoder``: freeze the encoder and cache its features, in memory and, where the environment
    variable COSEGKIT_FEATURE_CACHE names a folder, there too (shared by every process and run that uses the
    same encoder weights; `cosegkit reproduce` sets it to <out>/feature_cache). ``model.tune_encoder_levels``
    deepest levels train on the cached level below them (:meth:`Encoder.freeze`), in float32 with
    ``model.tuned_levels_float32``."""
    if ms.freeze_encoder:
        model.encoder.freeze(os.environ.get(FEATURE_CACHE_ENV) or None, tune_levels=ms.tune_encoder_levels,
                             tuned_float32=ms.tuned_levels_float32)


def he_init(decoder: nn.Module, prior: float = 0.15) -> None:
    """Kaiming-normal init of the convT stack (fan = in_channels * 3 * 3, the fan-in of the equivalent conv); the
    last layer (linear, no ReLU) gets unit gain and the bias log(prior / (1 - prior)), so training starts near the
    foreground prior (the "prior" bias of Lin et al.'s focal-loss paper)."""
    convs = [m for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    for m in convs:
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # convT weight: (in, out, k, k)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    last = convs[-1]
    nn.init.kaiming_normal_(last.weight, mode="fan_out", nonlinearity="linear")
    if last.bias is not None:
        nn.init.constant_(last.bias, math.log(prior / (1 - prior)))
