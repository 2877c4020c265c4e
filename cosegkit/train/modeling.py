"""Adapters between the engine and cosegkit.models / cosegkit.losses: build, optimise, compute losses, predict.

SiameseUNet (is_triplet_coseg Eq. 5): loss = (seg(a) + seg(b)) / 2 + lambda * dml over the pixel embeddings of
both images (the batch of 2B images), lambda = lambda0 * 0.85^epoch.

CoSegNet (cosegnet §3.4-3.5, Eq. 1-4): a batch of B triplets (anchor, positive, negative) is run as one
batch of 2B pairs [(a, p) ..., (a, n) ...]; `cosegnet_loss` applies w1 L1 + w2 L2 + w3 L3 with
(0.33, 0.33, 0.33) on positive and (0, 0.5, 0.5) on negative pairs; the model detaches the mask logits of
negative pairs (positive_mask), so no L1 gradient ever comes from them (§3.5). The triplet term uses the metric
outputs fs of a (from the positive pair), p and n.

CoSegNet with `data.triplet_mining="semihard"`: the batch carries, instead of "neg", a "pool" of
`data.mining_pool` candidate negative pairs per triplet; `_mine_negatives` computes the metric embeddings fs of
the anchors, positives and candidates without gradients (encoder + decoder up to the metric layer only, in the
model's current train/eval mode, BatchNorm running statistics left untouched), keeps one candidate per triplet
with `select_semihard_negatives` (FaceNet's rule, margin `loss.triplet_margin`), and the step then runs exactly
as with a random negative. With `mining_pool=1` it is the random mode, bit for bit.

CoSegNet-base (§4.5): the same batches; BCE mask loss on every pair, with null masks for negative pairs.
"""

from __future__ import annotations

import contextlib
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from cosegkit.losses import (
    cosegnet_loss,
    discriminative_loss,
    is_triplet_loss,
    pixel_group_loss,
    segmentation_loss,
    select_semihard_negatives,
)
from cosegkit.train.settings import ModelSettings, OptimSettings, TrainSettings

FEATURE_CACHE_ENV = "COSEGKIT_FEATURE_CACHE"

__all__ = [
    "build_model",
    "make_optimizer",
    "make_scheduler",
    "set_train_mode",
    "train_transform",
    "eval_transform",
    "compute_loss",
    "predict_probabilities",
]


def build_model(ms: ModelSettings) -> nn.Module:
    from cosegkit.models.cosegnet import CoSegNet, CoSegNetBase
    from cosegkit.models.siamese_unet import SiameseUNet

    if ms.family == "unet":
        model = SiameseUNet(encoder=ms.encoder, head=ms.head, pretrained=ms.pretrained,
                            embedding_dim=ms.embedding_dim, single_image=ms.single_image, coattention=ms.coattention)
        _maybe_freeze(model, ms)
        return model
    if ms.family == "cosegnet":
        model = CoSegNet(pretrained=ms.pretrained, metric_layer=ms.metric_layer, encoder=ms.encoder,
                         width_mult=ms.width_mult, single_image=ms.single_image, decoder_norm=ms.decoder_norm,
                         decision_init=ms.decision_init)
    else:
        model = CoSegNetBase(pretrained=ms.pretrained, encoder=ms.encoder, width_mult=ms.width_mult,
                             single_image=ms.single_image, decoder_norm=ms.decoder_norm)
    if ms.decoder_init == "he":
        _he_init(model.decoder)
    _maybe_freeze(model, ms)
    return model


def _maybe_freeze(model: nn.Module, ms: ModelSettings) -> None:
    """``model.freeze_encoder``: freeze the encoder and cache its features, in memory and, where the environment
    variable COSEGKIT_FEATURE_CACHE names a folder, there too (shared by every process and run that uses the
    same encoder weights; `cosegkit reproduce` sets it to <out>/feature_cache)."""
    if ms.freeze_encoder:
        model.encoder.freeze(os.environ.get(FEATURE_CACHE_ENV) or None)


def _he_init(decoder: nn.Module, prior: float = 0.15) -> None:
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


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def make_optimizer(model: nn.Module, optim: OptimSettings) -> torch.optim.Optimizer:
    """SGD with momentum, or AdamW; encoder parameters at lr * encoder_lr_mult (one group each, encoder first)."""
    enc, rest = [], []
    for name, p in _unwrap(model).named_parameters():
        if p.requires_grad:
            (enc if name.startswith("encoder.") else rest).append(p)
    groups = [{"params": enc, "lr": optim.lr * optim.encoder_lr_mult}, {"params": rest, "lr": optim.lr}]
    groups = [g for g in groups if g["params"]]
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSettings, steps_per_epoch: int,
                   epochs: int) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """(scheduler, steps_per_batch). "exponential": lr x lr_decay after each epoch (is_triplet_coseg §4.1.3), stepped
    once per epoch; "cosine": lr * (1 + cos(pi * t / T)) / 2 over the run's T = epochs * steps_per_epoch steps,
    stepped after every batch."""
    if optim.schedule == "cosine":
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))), True
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=optim.lr_decay), False


def set_train_mode(model: nn.Module, freeze_bn: str) -> None:
    """model.train(), then BatchNorm layers of the encoder ("encoder") or everywhere ("all") back to eval."""
    model.train()
    if freeze_bn == "none":
        return
    scope = _unwrap(model) if freeze_bn == "all" else _unwrap(model).encoder
    for m in scope.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _norm(model: nn.Module) -> tuple[tuple, tuple]:
    m = _unwrap(model)
    return tuple(m.input_mean), tuple(m.input_std)


def train_transform(settings: TrainSettings, model: nn.Module):
    from cosegkit.data.transforms import PairTransform

    mean, std = _norm(model)
    extra = {"jitter": None} if settings.data.augment == "flip" else {}
    return PairTransform(settings.data.image_size, train=True, mean=mean, std=std, **extra)


def eval_transform(settings: TrainSettings, model: nn.Module):
    from cosegkit.data.transforms import PairTransform

    mean, std = _norm(model)
    return PairTransform(settings.data.image_size, train=False, mean=mean, std=std)


def _resize_target(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) {0,1} target at the logits' resolution (nearest; the original head is at half size)."""
    if mask.shape[-2:] == logits.shape[-2:]:
        return mask
    return F.interpolate(mask[:, None], size=logits.shape[-2:], mode="nearest")[:, 0]


def compute_loss(model: nn.Module, family: str, batch: dict, settings: TrainSettings, lam: float,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its terms (already weighted as in the total) for one batch.

    Call it under autocast if wanted: the model runs in the ambient precision, the losses always in float32.
    """
    if family == "unet":
        return _unet_loss(model, batch, settings, lam, generator)
    return _cosegnet_loss(model, family, batch, settings)


def _fp32(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


def _unet_loss(model, batch, settings: TrainSettings, lam: float, generator):
    out = model(batch["image_a"], batch["image_b"])
    with _fp32(batch["image_a"].device):
        return _unet_terms(out, batch, settings, lam, generator)


def _unet_terms(out, batch, settings: TrainSettings, lam: float, generator):
    la, lb = out["logits_a"].float(), out["logits_b"].float()
    name = settings.loss.seg
    seg = 0.5 * (segmentation_loss(name, la, _resize_target(batch["mask_a"], la), mode="multiclass")
                 + segmentation_loss(name, lb, _resize_target(batch["mask_b"], lb), mode="multiclass"))
    dml_name = settings.loss.dml
    if dml_name is None:
        return seg, {"loss_seg": seg.detach(), "loss_dml": torch.zeros(())}
    emb = torch.cat([out["embeddings_a"], out["embeddings_b"]]).float()
    masks = torch.cat([batch["mask_a"], batch["mask_b"]])
    logits = torch.cat([la, lb])
    dml = pixel_dml_loss(dml_name, emb, masks, logits, settings, generator)
    return seg + lam * dml, {"loss_seg": seg.detach(), "loss_dml": dml.detach()}


def pixel_dml_loss(name: str, emb: torch.Tensor, masks: torch.Tensor, logits: torch.Tensor,
                   settings: TrainSettings, generator) -> torch.Tensor:
    """One pixel-embedding loss over a batch of images: emb (N, D, H, W), masks (N, H, W) {0, 1}."""
    ls = settings.loss
    if name == "istriplet":
        return is_triplet_loss(emb, masks.bool(), k=ls.k, margin=ls.margin, generator=generator)
    if name == "discriminative":  # two clusters per image: background (0) and the common object (1)
        return discriminative_loss(emb, masks.long(), delta_v=ls.delta_v, delta_d=ls.delta_d)
    if name == "group":
        return pixel_group_loss(emb, logits, masks.bool(), k=ls.group_k, n_anchors=ls.group_anchors,
                                steps=ls.group_steps, generator=generator)
    raise ValueError(f"unknown pixel DML loss {name!r}")


@contextlib.contextmanager
def _batchnorm_stats_untouched(model: nn.Module):
    """BatchNorm layers in training mode keep normalising with batch statistics but do not update their running
    statistics (nor num_batches_tracked) inside this block: an extra forward leaves no trace in the weights."""
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def _mine_negatives(model: nn.Module, pos: dict, pool: dict, margin: float) -> tuple[dict, torch.Tensor]:
    """The negative pair of each triplet, picked from its pool by FaceNet's semi-hard rule; and the fraction of
    triplets whose pick was semi-hard (the rest got the hardest candidate).

    pos: the B positive pairs; pool: tensors (B, P, ...) of P candidate negative pairs (anchor, candidate) each.
    The embedding of a candidate is its fs, the negative embedding L2 would see in the pair (anchor, candidate)
    (CoSegNet computes each image's fs from that image alone); anchor and positive are those of `pos`.
    """
    net = _unwrap(model)
    if not hasattr(net, "metric_embedding"):
        raise ValueError(f"data.triplet_mining='semihard' needs a model with metric_embedding, got "
                         f"{type(net).__name__}")
    b, p = pool["image_b"].shape[:2]
    with torch.no_grad(), _batchnorm_stats_untouched(net):
        images = torch.cat([pos["image_a"], pos["image_b"], pool["image_b"].flatten(0, 1)])
        emb = net.metric_embedding(images).float()
    anchor, positive, cand = emb[:b], emb[b:2 * b], emb[2 * b:].view(b, p, -1)
    d_ap = torch.linalg.vector_norm(anchor - positive, dim=1)
    d_an = torch.linalg.vector_norm(anchor[:, None] - cand, dim=2)
    pick = select_semihard_negatives(d_ap, d_an, margin)
    rows = torch.arange(b, device=pick.device)
    neg = {k: v[rows, pick] for k, v in pool.items()}
    x = pos["image_a"]
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):  # the engine's layout
        neg = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in neg.items()}
    chosen = d_an[rows, pick]
    semihard = ((chosen > d_ap) & (chosen < d_ap + margin)).float().mean()
    return neg, semihard


def _cosegnet_loss(model, family: str, batch: dict, settings: TrainSettings):
    pos = batch["pos"]
    mined = None
    if "pool" in batch:
        neg, mined = _mine_negatives(model, pos, batch["pool"], settings.loss.triplet_margin)
    else:
        neg = batch["neg"]
    b = pos["image_a"].shape[0]
    image_a = torch.cat([pos["image_a"], neg["image_a"]])
    image_b = torch.cat([pos["image_b"], neg["image_b"]])
    masks_a = torch.cat([pos["mask_a"], neg["mask_a"]])
    masks_b = torch.cat([pos["mask_b"], neg["mask_b"]])
    labels = torch.cat([pos["label"], neg["label"]])
    if family == "cosegnet-base":
        out = model(image_a, image_b)
        with _fp32(image_a.device):
            la, lb = out["logits_a"][:, 0].float(), out["logits_b"][:, 0].float()
            l1 = 0.5 * (F.binary_cross_entropy_with_logits(la, masks_a)
                        + F.binary_cross_entropy_with_logits(lb, masks_b))
        return l1, {"loss_l1": l1.detach()}
    out = model(image_a, image_b, positive_mask=labels > 0.5)
    with _fp32(image_a.device):
        total, terms = _cosegnet_terms(out, b, masks_a, masks_b, labels, settings)
    if mined is not None:
        terms["mining_semihard_fraction"] = mined  # diagnostic, not a loss term (results.json history)
    return total, terms


def _cosegnet_terms(out, b: int, masks_a, masks_b, labels, settings: TrainSettings):
    ls = settings.loss
    emb_b = out["embedding_b"].float()
    emb_p, emb_n = emb_b[:b], emb_b[b:]
    # row r = one pair; both pairs of a triplet carry the triplet's (anchor of the row, positive, negative)
    total, parts = cosegnet_loss(
        out["logits_a"].float(), out["logits_b"].float(), masks_a, masks_b,
        out["embedding_a"].float(), torch.cat([emb_p, emb_p]), torch.cat([emb_n, emb_n]),
        out["decision_logit"].float(), labels,
        margin=ls.triplet_margin, positive_weights=ls.positive_weights, negative_weights=ls.negative_weights,
    )
    return total, {"loss_l1": parts["l1"], "loss_l2": parts["l2"], "loss_l3": parts["l3"]}


@torch.no_grad()
def predict_probabilities(model: nn.Module, family: str, image_a: torch.Tensor, image_b: torch.Tensor):
    """(prob_a, prob_b) foreground probability maps (B, h, w) and (dec_a, dec_b) decision probabilities (B,)
    or None (no decision network). CoSegNet in single-image mode decides each side from that image alone."""
    out = model(image_a, image_b)
    if family == "unet":
        pa = torch.softmax(out["logits_a"].float(), dim=1)[:, 1]
        pb = torch.softmax(out["logits_b"].float(), dim=1)[:, 1]
        return pa, pb, None
    pa = torch.sigmoid(out["logits_a"].float())[:, 0]
    pb = torch.sigmoid(out["logits_b"].float())[:, 0]
    if family == "cosegnet-base":
        return pa, pb, None
    da = torch.sigmoid(out["decision_logit"].float())
    db = torch.sigmoid(out["decision_logit_b"].float()) if "decision_logit_b" in out else da
    return pa, pb, (da.cpu(), db.cpu())
