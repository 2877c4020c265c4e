"""The Siamese U-Net task (is_triplet_coseg §3.3, Eq. 5): positive pairs, seg loss + lambda * pixel DML.

Training draws positive pairs within groups (§4.1.1); a batch of B pairs is 2B images. The loss is
(seg(a) + seg(b)) / 2 + lambda(epoch) * dml over the pixel embeddings of both images, with lambda from
:class:`~cosegkit.losses.LambdaSchedule` (lambda0 * 0.85^epoch, §4.1.3); without a DML term, seg alone.
Prediction: softmax over the 2-channel logits, foreground channel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosegkit.losses import (
    LambdaSchedule,
    discriminative_loss,
    is_triplet_loss,
    pixel_group_loss,
    segmentation_loss,
)
from cosegkit.models.siamese_unet import SiameseUNet
from cosegkit.tasks.base import PairPrediction, Task, fp32, maybe_freeze
from cosegkit.train.data import RunData, pair_only, real_sets, synthetic_sets, take, tensors
from cosegkit.train.settings import ModelSettings, TrainSettings

__all__ = ["SiameseUNetTask", "PairData", "pixel_dml_loss"]


@dataclass
class PairData(RunData):
    """SiameseUNet's run data: each epoch, `pairs_per_epoch` positive pairs of the training pool."""

    def epoch_samples(self, epoch: int) -> list[int]:
        """Indices into train_pool. Pure in (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch, 1])
        return take(rng, len(self.train_pool), self.pairs_per_epoch)

    def train_item(self, spec: int, epoch: int, i: int, seeded) -> dict:
        return tensors(seeded(pair_only(self.train_pool[spec]), 0))


def _resize_target(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) {0,1} target at the logits' resolution (nearest; the original head is at half size)."""
    if mask.shape[-2:] == logits.shape[-2:]:
        return mask
    return F.interpolate(mask[:, None], size=logits.shape[-2:], mode="nearest")[:, 0]


def pixel_dml_loss(name: str, emb, masks: torch.Tensor, logits: torch.Tensor,
                   settings: TrainSettings, generator) -> torch.Tensor:
    """One pixel-embedding loss over a batch of images: emb (N, D, H, W) or a list of maps that stand for their
    concatenation along the batch (the pair's two, as the model returns them), masks (N, H, W) {0, 1}.

    IS-Triplet and the Group Loss read only their sampled pixels, in float32, straight from the maps; the
    discriminative loss reads every pixel and gets the float32 concatenation."""
    ls = settings.loss
    if name == "istriplet":
        return is_triplet_loss(emb, masks.bool(), k=ls.k, margin=ls.margin, generator=generator)
    if name == "discriminative":  # two clusters per image: background (0) and the common object (1)
        emb = torch.cat(emb).float() if isinstance(emb, list | tuple) else emb
        return discriminative_loss(emb, masks.long(), delta_v=ls.delta_v, delta_d=ls.delta_d)
    if name == "group":
        return pixel_group_loss(emb, logits, masks.bool(), k=ls.group_k, n_anchors=ls.group_anchors,
                                steps=ls.group_steps, generator=generator)
    raise ValueError(f"unknown pixel DML loss {name!r}")


def _terms(out, batch: dict, settings: TrainSettings, lam: float | None, generator):
    la, lb = out.logits_a.float(), out.logits_b.float()
    name = settings.loss.seg
    seg = 0.5 * (segmentation_loss(name, la, _resize_target(batch["mask_a"], la), mode="multiclass")
                 + segmentation_loss(name, lb, _resize_target(batch["mask_b"], lb), mode="multiclass"))
    dml_name = settings.loss.dml
    if dml_name is None:
        return seg, {"loss_seg": seg.detach(), "loss_dml": torch.zeros(())}
    emb = [out.embedding_a, out.embedding_b]  # not concatenated: the losses read only what they need
    masks = torch.cat([batch["mask_a"], batch["mask_b"]])
    logits = torch.cat([la, lb])
    dml = pixel_dml_loss(dml_name, emb, masks, logits, settings, generator)
    return seg + lam * dml, {"loss_seg": seg.detach(), "loss_dml": dml.detach()}


class SiameseUNetTask(Task):
    family = "unet"
    loss_terms = ("loss_seg", "loss_dml")
    has_pixel_embeddings = True

    def experiment_sections(self, experiment, profile, dataset: str) -> dict:
        optim = profile.unet_optim
        if experiment.dml == "istriplet" and not experiment.shared_lr:  # §4.1.3: lr 1e-4 with IS-Triplet
            optim = replace(optim, lr=profile.unet_lr_istriplet)
        data = replace(profile.unet_data, dataset=dataset)
        if not experiment.claim and profile.unet_ablation_image_size is not None:
            data = replace(data, image_size=profile.unet_ablation_image_size)
        if experiment.head == "embedding" and profile.unet_embedding_head_image_size is not None:
            data = replace(data, image_size=profile.unet_embedding_head_image_size)
        return dict(
            model=replace(profile.unet_model, single_image=experiment.single_image, head=experiment.head,
                          tune_encoder_levels=profile.unet_claim_tune_encoder_levels if experiment.claim
                          else profile.unet_model.tune_encoder_levels,
                          tuned_levels_float32=profile.unet_claim_tuned_levels_float32 if experiment.claim
                          else profile.unet_model.tuned_levels_float32),
            data=data,
            optim=optim,
            epochs=profile.unet_claim_epochs if experiment.claim else profile.unet_epochs,
        )

    def slug_parts(self, settings: TrainSettings) -> list[str]:
        loss = settings.loss
        return ["unet", settings.model.head, loss.seg] + ([loss.dml] if loss.dml else [])

    def build_model(self, ms: ModelSettings) -> nn.Module:
        model = SiameseUNet(encoder=ms.encoder, head=ms.head, pretrained=ms.pretrained,
                            embedding_dim=ms.embedding_dim, single_image=ms.single_image, coattention=ms.coattention,
                            skip_attention=ms.skip_attention, match_stride=ms.match_stride,
                            feature_dropout=ms.feature_dropout)
        maybe_freeze(model, ms)
        return model

    def build_data(self, settings: TrainSettings, data_root=None) -> PairData:
        if settings.data.triplet_mining == "semihard":
            raise ValueError("data.triplet_mining='semihard' needs CoSegNet's triplets and metric embeddings; "
                             "SiameseUNet trains on pairs, not triplets: use data.triplet_mining='random'")
        if data_root is None:
            return PairData(**synthetic_sets(settings))
        fields, _ = real_sets(settings, data_root)
        return PairData(**fields)

    def collate(self, batch: list[dict]) -> dict:
        return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}

    def loss_weight(self, settings: TrainSettings, epoch: int) -> float | None:
        """Eq. 5's lambda at ``epoch``; None without a DML term."""
        if settings.loss.dml is None:
            return None
        return LambdaSchedule(settings.loss.lambda0, settings.loss.lambda_decay).value(epoch)

    def loss(self, model, batch, settings, lam, generator):
        out = model(batch["image_a"], batch["image_b"])
        with fp32(batch["image_a"].device):
            return _terms(out, batch, settings, lam, generator)

    @torch.no_grad()
    def predict(self, model, image_a, image_b, threshold: float = 0.5) -> PairPrediction:
        out = model(image_a, image_b)
        return PairPrediction(torch.softmax(out.logits_a.float(), dim=1)[:, 1],
                              torch.softmax(out.logits_b.float(), dim=1)[:, 1])

    def pixel_embedding(self, model, image_a, image_b) -> torch.Tensor | None:
        return model(image_a, image_b).embedding_a  # None for the original head (Fig. 1a)
