"""The CoSegNet task (cosegnet §3.4-3.5, Eq. 1-4): (anchor, positive, negative) triplets, w1 L1 + w2 L2 + w3 L3.

A batch of B triplets is run as one batch of 2B pairs [(a, p) ..., (a, n) ...]; `cosegnet_loss` applies
(0.33, 0.33, 0.33) on positive and (0, 0.5, 0.5) on negative pairs; the model detaches the mask logits of
negative pairs (positive_mask), so no L1 gradient ever comes from them (§3.5). The triplet term uses the metric
outputs fs of a (from the positive pair), p and n.

With `data.triplet_mining="semihard"` the batch carries, instead of "neg", a "pool" of `data.mining_pool`
candidate negative pairs per triplet; :func:`mine_negatives` computes the metric embeddings fs of the anchors,
positives and candidates without gradients (encoder + decoder up to the metric layer only, in the model's current
train/eval mode, BatchNorm running statistics left untouched), keeps one candidate per triplet with
`select_semihard_negatives` (FaceNet's rule, margin `loss.triplet_margin`), and the step then runs exactly as with
a random negative. With `mining_pool=1` it is the random mode, bit for bit.

With `data.head_triplets=h` > 0 (ours; the paper has none) each training triplet also carries h extra random
triplets: their 2h pairs run in a forward of their own with ``positive_mask`` False (no mask tail), and their eq. 1
without the mask term (w1 = 0 for positive pairs too), averaged over those pairs, is added to the batch's eq. 1.
They give the metric and decision networks more pairs per step at almost no cost when the metric layer is f and
the encoder frozen (cached): the masks still train on the batch's own triplets alone.

Prediction: sigmoid mask probabilities, gated at test time by the decision network (§3.5, `decision_gate`).
:class:`TripletData` (real or synthetic) is shared with CoSegNet-base (cosegkit.tasks.cosegnet_base).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from cosegkit.data.pairs import cosegnet_triplets
from cosegkit.losses import cosegnet_loss, select_semihard_negatives
from cosegkit.models.cosegnet import CoSegNet, decision_gate
from cosegkit.tasks.base import PairPrediction, Task, fp32, he_init, maybe_freeze, unwrap
from cosegkit.train.data import KEEP, RunData, derive_seed, pair_only, real_sets, synthetic_sets, take, tensors
from cosegkit.train.settings import ModelSettings, TrainSettings

__all__ = ["CoSegNetTask", "TripletData", "RealTripletData", "SyntheticTripletData", "mine_negatives",
           "triplet_sections", "triplet_data", "collate_triplets", "pair_batch"]


@dataclass(kw_only=True)
class TripletData(RunData):
    """CoSegNet's run data: each epoch, `pairs_per_epoch` triplets; a triplet is a positive pair (anchor, positive)
    and a negative pair (anchor, negative) with null masks."""

    triplet_mining: str = "random"  # data.triplet_mining
    mining_pool: int = 1  # data.mining_pool (candidate negatives per triplet under "semihard")
    head_triplets: int = 0  # data.head_triplets (extra triplets per triplet for the metric / decision networks)
    _null_masks: dict = field(default_factory=dict, repr=False)  # (shape, dtype) -> read-only zeros

    def extra_triplet_specs(self, epoch: int, i: int) -> list:
        """The `head_triplets` extra triplet specs of sample i of `epoch`, drawn as the epoch's own triplets are
        (random negatives). Pure in (seed, epoch, i)."""
        raise NotImplementedError

    def negative_candidates(self, spec, epoch: int, i: int) -> list:
        """The `mining_pool` candidate negatives of triplet `spec` (sample i of `epoch`): the triplet's own (random)
        negative first, then `mining_pool - 1` others negative to anchor and positive, drawn without replacement
        while there are enough (then with replacement). Pure in (seed, epoch, i). Real data: dataset indices;
        synthetic: (k2, side)."""
        first, cand = self._other_negatives(spec)
        extra = self.mining_pool - 1
        if extra == 0:
            return [first]
        if not cand:
            return [first] * self.mining_pool
        rng = np.random.default_rng([self.seed, epoch, i, 4])
        if len(cand) >= extra:
            pick = rng.choice(len(cand), size=extra, replace=False).tolist()
        else:
            pick = rng.permutation(len(cand)).tolist() + rng.integers(len(cand), size=extra - len(cand)).tolist()
        return [first] + [cand[j] for j in pick]

    def train_item(self, spec, epoch: int, i: int, seeded) -> dict:
        pos, neg = self.triplet(spec)
        out = {"pos": tensors(seeded(pos, 0))}
        if self.head_triplets:
            # extra triplet k is transformed under (seed, epoch, i, -1 - 2k) and (..., -2 - 2k): apart from the
            # main pairs' 0, 1 and the mining pool's 1 + j
            extra = [self.triplet(x) for x in self.extra_triplet_specs(epoch, i)]
            for part, side in (("extra_pos", 0), ("extra_neg", 1)):
                pairs = [tensors(seeded(t[side], -1 - 2 * k - side)) for k, t in enumerate(extra)]
                out[part] = {key: torch.stack([p[key] for p in pairs]) for key in KEEP}
        if self.triplet_mining != "semihard":
            out["neg"] = tensors(seeded(neg, 1))
            return out
        # candidate j is transformed under (seed, epoch, i, 1 + j): candidate 0 is exactly the random mode's "neg"
        pool = [tensors(seeded(self.negative_pair(pos, c), 1 + j))
                for j, c in enumerate(self.negative_candidates(spec, epoch, i))]
        out["pool"] = {k: torch.stack([c[k] for c in pool]) for k in KEEP}
        return out

    def triplet(self, spec) -> tuple[dict, dict]:
        """(positive pair, negative pair) of a triplet spec."""
        raise NotImplementedError

    def negative_pair(self, pos: dict, candidate) -> dict:
        """The negative pair (anchor of `pos`, candidate negative), with null masks."""
        image, mask, group = self._negative_image(candidate)
        return {"image_a": pos["image_a"], "image_b": image, "mask_a": self._null_mask(pos["mask_a"]),
                "mask_b": self._null_mask(mask), "label": 0, "group_a": pos.get("group_a"), "group_b": group}

    def _null_mask(self, like: np.ndarray) -> np.ndarray:
        """A read-only all-background mask shaped like `like`, one per (shape, dtype): the same array each time,
        so PairTransform's view cache serves its resized views too."""
        key = (like.shape, like.dtype.str)
        if key not in self._null_masks:
            zeros = np.zeros_like(like)
            zeros.setflags(write=False)
            self._null_masks[key] = zeros
        return self._null_masks[key]

    def _negative_image(self, candidate) -> tuple:
        raise NotImplementedError

    def _other_negatives(self, spec) -> tuple[object, list]:
        """(the triplet's own negative, the other candidate negatives of its anchor and positive)."""
        raise NotImplementedError


@dataclass(kw_only=True)
class RealTripletData(TripletData):
    """Triplets on a dataset folder: fresh (anchor, positive, negative) dataset indices each epoch."""

    dataset: object  # the (cached) image dataset
    train_idx: list
    _labels: dict | None = field(default=None, repr=False)  # image bytes id -> its classes (lazily)
    _negatives: dict = field(default_factory=dict, repr=False)  # forbidden classes -> negative indices

    def epoch_samples(self, epoch: int) -> list:
        n = self.pairs_per_epoch or len(self.train_pool)
        return [tuple(t) for t in cosegnet_triplets(self.dataset, self.train_idx, n=n,
                                                    seed=derive_seed(self.seed, epoch, 2))]

    def extra_triplet_specs(self, epoch: int, i: int) -> list:
        return [tuple(t) for t in cosegnet_triplets(self.dataset, self.train_idx, n=self.head_triplets,
                                                    seed=derive_seed(self.seed, epoch, i, 5))]

    def triplet(self, spec) -> tuple[dict, dict]:
        a, p, n = spec
        ia, ip = self.dataset[a], self.dataset[p]
        pos = {"image_a": ia.image, "image_b": ip.image, "mask_a": ia.mask, "mask_b": ip.mask, "label": 1,
               "group_a": ia.group, "group_b": ip.group}
        return pos, self.negative_pair(pos, n)

    def _negative_image(self, candidate) -> tuple:
        neg = self.dataset[candidate]
        return neg.image, neg.mask, neg.group

    def _other_negatives(self, spec) -> tuple[object, list]:
        a, p, first = spec
        return first, [int(n) for n in self._negatives_of(a, p) if int(n) != first]

    def _negatives_of(self, a: int, p: int) -> np.ndarray:
        """Training images sharing no class with a or p (as `cosegnet_triplets` draws its negatives)."""
        ds = self.dataset
        if self._labels is None:
            labels: dict[str, set[str]] = {}
            for k in self.train_idx:
                labels.setdefault(ds.id_of(k), set()).add(ds.group_of(k))
            self._labels = {h: frozenset(g) for h, g in labels.items()}
        forbidden = self._labels[ds.id_of(a)] | self._labels[ds.id_of(p)]
        if forbidden not in self._negatives:
            self._negatives[forbidden] = np.array(
                [k for k in self.train_idx if not self._labels[ds.id_of(k)] & forbidden], dtype=np.int64)
        return self._negatives[forbidden]


@dataclass(kw_only=True)
class SyntheticTripletData(TripletData):
    """Triplets on the synthetic set: anchor / positive = a positive pair, negative = an image sharing no category
    with them; a triplet spec is (pair k, pair k2, side of k2)."""

    synthetic_negatives: list  # per positive pair: its candidate negatives (k2, side)

    def epoch_samples(self, epoch: int) -> list:
        rng = np.random.default_rng([self.seed, epoch, 1])
        return [self._with_negative(k, rng) for k in take(rng, len(self.train_pool), self.pairs_per_epoch)]

    def _with_negative(self, k: int, rng: np.random.Generator) -> tuple:
        cand = self.synthetic_negatives[k]
        k2, side = cand[int(rng.integers(len(cand)))]
        return k, k2, side

    def extra_triplet_specs(self, epoch: int, i: int) -> list:
        rng = np.random.default_rng([self.seed, epoch, i, 5])
        return [self._with_negative(int(rng.integers(len(self.train_pool))), rng) for _ in range(self.head_triplets)]

    def triplet(self, spec) -> tuple[dict, dict]:
        k, k2, side = spec
        pos = pair_only(self.train_pool[k])
        return pos, self.negative_pair(pos, (k2, side))

    def _negative_image(self, candidate) -> tuple:
        k2, side = candidate
        other = self.train_pool[k2]
        return other[f"image_{side}"], other[f"mask_{side}"], other[f"group_{side}"]

    def _other_negatives(self, spec) -> tuple[object, list]:
        k, k2, side = spec
        first = (k2, side)
        return first, [c for c in self.synthetic_negatives[k] if c != first]


def _synthetic_negatives(pool, seed: int) -> list[list[tuple[int, str]]]:
    """For each positive synthetic pair k, the images (k2, side) sharing no category with either image of k:
    the negative of a CoSegNet triplet must be negative to both anchor and positive (as cosegnet_triplets)."""
    cats = [(set(pool[k]["categories_a"]), set(pool[k]["categories_b"])) for k in range(len(pool))]
    out = []
    for k, (ca, cb) in enumerate(cats):
        forbidden = ca | cb
        cand = [(k2, side) for k2 in range(len(pool)) if k2 != k
                for side, c in (("a", cats[k2][0]), ("b", cats[k2][1])) if not c & forbidden]
        if not cand:
            raise ValueError(f"synthetic pair {k}: no image in the training set shares no category with it")
        out.append(cand)
    return out


def _check_two_groups(settings: TrainSettings, data_root):
    def check(ds, train_idx) -> None:
        groups = sorted({ds.group_of(i) for i in train_idx})
        if len(groups) < 2:
            raise ValueError(
                f"{settings.experiment} trains on triplets whose negative image comes from another group, so the "
                f"training split needs at least 2 groups; the one of {data_root} has {len(groups)} group "
                f"({', '.join(groups)}): pass a --data-root with 2 or more groups, or train a SiameseUNet "
                "experiment (unet-*), which needs positive pairs only")
    return check


def triplet_data(settings: TrainSettings, data_root=None, val_negatives: bool = False) -> TripletData:
    """The triplet run data of CoSegNet and CoSegNet-base (`val_negatives`: with negative validation pairs)."""
    mining = dict(triplet_mining=settings.data.triplet_mining, mining_pool=settings.data.mining_pool,
                  head_triplets=settings.data.head_triplets)
    if data_root is None:
        fields = synthetic_sets(settings, val_negatives)
        split_seed = settings.seed if settings.data.split_seed is None else settings.data.split_seed
        return SyntheticTripletData(**fields, **mining,
                                    synthetic_negatives=_synthetic_negatives(fields["train_pool"], split_seed))
    fields, ds = real_sets(settings, data_root, _check_two_groups(settings, data_root), val_negatives)
    return RealTripletData(**fields, **mining, dataset=ds, train_idx=fields["split"]["train"])


def triplet_sections(experiment, profile, dataset: str, has_heads: bool = True) -> dict:
    """model, data, optim and epochs of a CoSegNet or CoSegNet-base experiment (CoSegNet's claim rows get the
    profile's `cosegnet_claim_head_triplets` when the model `has_heads` (metric and decision networks), its other
    rows the `cosegnet_ablation_image_size`)."""
    model = replace(profile.cosegnet_model, family=experiment.family,
                    metric_layer=experiment.metric_layer or profile.cosegnet_model.metric_layer,
                    single_image=experiment.single_image)
    optim = profile.cosegnet_optim
    if dataset == "internet":  # cosegnet §4.1: weight decay 5e-4 on the Internet dataset
        optim = replace(optim, weight_decay=profile.cosegnet_weight_decay_internet)
    heads = profile.cosegnet_claim_head_triplets if experiment.claim and has_heads else 0
    data = replace(profile.cosegnet_data, dataset=dataset, head_triplets=heads)
    if not experiment.claim and profile.cosegnet_ablation_image_size is not None:
        data = replace(data, image_size=profile.cosegnet_ablation_image_size)
    return dict(model=model, data=data, optim=optim,
                epochs=profile.cosegnet_claim_epochs if experiment.claim else profile.cosegnet_epochs)


def collate_triplets(batch: list[dict]) -> dict:
    """Items {"pos", "neg"} or {"pos", "pool"} collated part by part (the pool's tensors become (B, pool, ...))."""
    return {part: {k: torch.stack([b[part][k] for b in batch]) for k in batch[0][part]} for part in batch[0]}


def pair_batch(pos: dict, neg: dict) -> tuple[torch.Tensor, ...]:
    """The B triplets as one batch of 2B pairs [(a, p) ..., (a, n) ...]: images a, b, masks a, b, labels."""
    return tuple(torch.cat([pos[k], neg[k]]) for k in ("image_a", "image_b", "mask_a", "mask_b", "label"))


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


def mine_negatives(model: nn.Module, pos: dict, pool: dict, margin: float) -> tuple[dict, torch.Tensor]:
    """The negative pair of each triplet, picked from its pool by FaceNet's semi-hard rule; and the fraction of
    triplets whose pick was semi-hard (the rest got the hardest candidate).

    pos: the B positive pairs; pool: tensors (B, P, ...) of P candidate negative pairs (anchor, candidate) each.
    The embedding of a candidate is its fs, the negative embedding L2 would see in the pair (anchor, candidate)
    (CoSegNet computes each image's fs from that image alone); anchor and positive are those of `pos`.
    """
    net = unwrap(model)
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
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):  # the trainer's layout
        neg = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in neg.items()}
    chosen = d_an[rows, pick]
    semihard = ((chosen > d_ap) & (chosen < d_ap + margin)).float().mean()
    return neg, semihard


def _terms(out, b: int, masks_a, masks_b, labels, settings: TrainSettings, mask_term: bool = True):
    """Eq. 1 over the 2b pairs of the model output `out` ([(a, p) ..., (a, n) ...]); `mask_term=False`: w1 = 0 for
    the positive pairs too (the extra head triplets, whose mask logits were not computed)."""
    ls = settings.loss
    emb_b = out.embedding_b.float()
    emb_p, emb_n = emb_b[:b], emb_b[b:]
    w_pos = tuple(ls.positive_weights) if mask_term else (0.0, *tuple(ls.positive_weights)[1:])
    # row r = one pair; both pairs of a triplet carry the triplet's (anchor of the row, positive, negative)
    total, parts = cosegnet_loss(
        out.logits_a.float(), out.logits_b.float(), masks_a, masks_b,
        out.embedding_a.float(), torch.cat([emb_p, emb_p]), torch.cat([emb_n, emb_n]),
        out.decision_logit.float(), labels,
        margin=ls.triplet_margin, positive_weights=w_pos, negative_weights=ls.negative_weights,
    )
    return total, {"loss_l1": parts["l1"], "loss_l2": parts["l2"], "loss_l3": parts["l3"]}


class CoSegNetTask(Task):
    family = "cosegnet"
    loss_terms = ("loss_l1", "loss_l2", "loss_l3")
    has_decision = True
    unused_parameters = True  # the decoder tail gets no gradient on all-negative batches (§3.5)

    def experiment_sections(self, experiment, profile, dataset: str) -> dict:
        return triplet_sections(experiment, profile, dataset)

    def slug_parts(self, settings: TrainSettings) -> list[str]:
        heads = settings.data.head_triplets
        return ["cosegnet", settings.model.metric_layer] + ([f"head{heads}"] if heads else [])

    def build_model(self, ms: ModelSettings) -> nn.Module:
        model = CoSegNet(pretrained=ms.pretrained, metric_layer=ms.metric_layer, encoder=ms.encoder,
                         width_mult=ms.width_mult, single_image=ms.single_image, decoder_norm=ms.decoder_norm,
                         decision_init=ms.decision_init, feature_dropout=ms.feature_dropout)
        if ms.decoder_init == "he":
            he_init(model.decoder)
        maybe_freeze(model, ms)
        return model

    def build_data(self, settings: TrainSettings, data_root=None) -> TripletData:
        # the decision threshold is chosen on negative validation pairs as well (threshold_selection="val")
        return triplet_data(settings, data_root, val_negatives=settings.threshold_selection == "val")

    def collate(self, batch: list[dict]) -> dict:
        return collate_triplets(batch)

    def loss(self, model, batch, settings, lam, generator):
        pos = batch["pos"]
        mined = None
        if "pool" in batch:
            neg, mined = mine_negatives(model, pos, batch["pool"], settings.loss.triplet_margin)
        else:
            neg = batch["neg"]
        image_a, image_b, masks_a, masks_b, labels = pair_batch(pos, neg)
        out = model(image_a, image_b, positive_mask=labels > 0.5)
        with fp32(image_a.device):
            total, terms = _terms(out, pos["image_a"].shape[0], masks_a, masks_b, labels, settings)
        if "extra_pos" in batch:
            # a forward of its own (so batch statistics, where a model has them, stay those of the main pairs), with
            # no mask tail: positive_mask False for every extra pair
            flat = {part: {k: v.flatten(0, 1) for k, v in batch[part].items()} for part in ("extra_pos", "extra_neg")}
            xa, xb, xma, xmb, xlabels = pair_batch(flat["extra_pos"], flat["extra_neg"])
            out_x = model(xa, xb, positive_mask=torch.zeros_like(xlabels, dtype=torch.bool))
            with fp32(image_a.device):
                extra, extra_terms = _terms(out_x, xa.shape[0] // 2, xma, xmb, xlabels, settings, mask_term=False)
            total = total + extra
            terms.update(loss_l2_extra=extra_terms["loss_l2"], loss_l3_extra=extra_terms["loss_l3"])
        if mined is not None:
            terms["mining_semihard_fraction"] = mined  # diagnostic, not a loss term (results.json history)
        return total, terms

    @torch.no_grad()
    def decision_codes(self, model, images):
        return unwrap(model).metric_embedding(images)

    @torch.no_grad()
    def decide(self, model, codes_a, codes_b):
        logit_a, logit_b = unwrap(model).decide(codes_a, codes_b)
        prob_a = torch.sigmoid(logit_a.float()).cpu()
        return prob_a, (torch.sigmoid(logit_b.float()).cpu() if logit_b is not None else prob_a)

    @torch.no_grad()
    def predict(self, model, image_a, image_b, threshold: float = 0.5) -> PairPrediction:
        """Mask probabilities and §3.5's gate; a single-image CoSegNet decides each side from its own image."""
        out = model(image_a, image_b)
        da = torch.sigmoid(out.decision_logit.float())
        db = torch.sigmoid(out.decision_logit_b.float()) if out.decision_logit_b is not None else da
        da, db = da.cpu(), db.cpu()
        return PairPrediction(torch.sigmoid(out.logits_a.float())[:, 0], torch.sigmoid(out.logits_b.float())[:, 0],
                              da, db, decision_gate(da, threshold), decision_gate(db, threshold))
