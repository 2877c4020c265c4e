"""The CoSegNet-base task (cosegnet §4.5, Table 5): CoSegNet's triplet batches, a BCE mask loss on every pair.

No metric or decision network: the decoders see concat(f_self, f_other), and the negative pairs of the triplets
are trained towards null masks (the paper's way of teaching the base model about outliers). With no metric
embedding to mine with, its negatives are always drawn at random. Prediction: sigmoid mask probabilities, no gate.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from cosegkit.models.cosegnet import CoSegNetBase
from cosegkit.tasks.base import PairPrediction, Task, fp32, he_init, maybe_freeze
from cosegkit.tasks.cosegnet import TripletData, collate_triplets, pair_batch, triplet_data, triplet_sections
from cosegkit.train.settings import ModelSettings, TrainSettings

__all__ = ["CoSegNetBaseTask"]


class CoSegNetBaseTask(Task):
    family = "cosegnet-base"
    loss_terms = ("loss_l1",)
    unused_parameters = True

    def experiment_sections(self, experiment, profile, dataset: str) -> dict:
        sections = triplet_sections(experiment, profile, dataset, has_heads=False)
        sections["data"] = replace(sections["data"], triplet_mining="random")  # no metric embedding to mine with
        return sections

    def slug_parts(self, settings: TrainSettings) -> list[str]:
        return [self.family]

    def build_model(self, ms: ModelSettings) -> nn.Module:
        model = CoSegNetBase(pretrained=ms.pretrained, encoder=ms.encoder, width_mult=ms.width_mult,
                             single_image=ms.single_image, decoder_norm=ms.decoder_norm,
                             feature_dropout=ms.feature_dropout)
        if ms.decoder_init == "he":
            he_init(model.decoder)
        maybe_freeze(model, ms)
        return model

    def build_data(self, settings: TrainSettings, data_root=None) -> TripletData:
        if settings.data.triplet_mining == "semihard":
            raise ValueError("data.triplet_mining='semihard' needs CoSegNet's triplets and metric embeddings; "
                             "cosegnet-base has no metric network: use data.triplet_mining='random'")
        if settings.data.head_triplets:
            raise ValueError(f"data.head_triplets={settings.data.head_triplets} trains CoSegNet's metric and decision "
                             "networks; cosegnet-base has neither: use data.head_triplets=0")
        return triplet_data(settings, data_root)

    def collate(self, batch: list[dict]) -> dict:
        return collate_triplets(batch)

    def loss(self, model, batch, settings, lam, generator):
        image_a, image_b, masks_a, masks_b, _ = pair_batch(batch["pos"], batch["neg"])
        out = model(image_a, image_b)
        with fp32(image_a.device):
            la, lb = out.logits_a[:, 0].float(), out.logits_b[:, 0].float()
            l1 = 0.5 * (F.binary_cross_entropy_with_logits(la, masks_a)
                        + F.binary_cross_entropy_with_logits(lb, masks_b))
        return l1, {"loss_l1": l1.detach()}

    @torch.no_grad()
    def predict(self, model, image_a, image_b, threshold: float = 0.5) -> PairPrediction:
        out = model(image_a, image_b)
        return PairPrediction(torch.sigmoid(out.logits_a.float())[:, 0], torch.sigmoid(out.logits_b.float())[:, 0])
