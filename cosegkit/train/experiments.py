"""The experiment registry: one entry per table row the notebooks need.

- is_triplet_coseg Tables 1-2, as the paper ran them: the "Gong et al." rows `unet-<loss>` (seg loss dice | ce |
  focal) are the original network (Fig. 1a, `model.head="original"`: 2-channel logits at half size, the
  segmentation loss alone); the "modified framework" rows `unet-<loss>-istriplet` are Fig. 1b
  (`model.head="embedding"`: 64-channel full-size embedding, a 1x1 conv to logits, loss_seg + lambda *
  IS-Triplet, §3.3). lr 1e-3 without and 1e-4 with IS-Triplet (§4.1.3).
- ours, not in the paper: `unet-<loss>-embedding`, the embedding head trained with the segmentation loss alone
  (lr 1e-3, as `unet-<loss>`), so that `unet-<loss>-embedding` against `unet-<loss>-istriplet` isolates the
  IS-Triplet term (same head), while the paper's pairs change the head and the loss together.
- cosegnet Tables 1, 5, 6: `cosegnet` (metric layer cT9), `cosegnet-base` (no metric / decision network,
  trained with null masks on negative pairs, §4.5), and `cosegnet-f|ct3|ct6|ct11` (Table 6).
- the pixel-DML comparison notebook: `pixel-dml-none|istriplet|discriminative|group`: SiameseUNet (embedding
  head: every DML loss needs pixel embeddings) + Dice plus one pixel-embedding loss weighted by the same lambda
  schedule, all at the same learning rate (the no-DML lr) so the loss term is the only difference.
- single-image baselines: `unet-single-image` (the baseline of `unet-dice`, so the same original head and Dice
  loss: its Jaccard gain measures the pair information alone), `cosegnet-single-image` (the pair fusion sees the
  image itself).
- CoSegNet triplets follow `data.triplet_mining` of the profile (`paper`: semi-hard negatives, cosegnet §4.1);
  `cosegnet-base` has no metric network to mine with, so it always draws its negatives at random.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cosegkit.tasks import task_for
from cosegkit.train.profiles import Profile, get_profile
from cosegkit.train.settings import TrainSettings, apply_overrides

__all__ = ["Experiment", "EXPERIMENTS", "list_experiments", "get_experiment", "build_settings"]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    family: str  # unet | cosegnet | cosegnet-base
    seg: str = "dice"
    dml: str | None = None
    metric_layer: str | None = None  # CoSegNet: None = the profile's (paper and gpu: cT9; cpu: f)
    single_image: bool = False
    shared_lr: bool = False  # pixel-DML comparison: one lr for every DML loss
    head: str = "embedding"  # SiameseUNet only: "original" (Fig. 1a) or "embedding" (Fig. 1b)
    # A row a paper's claim rests on (Dice +- IS-Triplet, CoSegNet, CoSegNet-base, the single-image baselines): it
    # trains for the profile's claim budget (`*_claim_epochs`), the other rows for the ablation budget.
    claim: bool = False

    def settings(self, profile: Profile | str, seed: int = 0, dataset: str = "folder") -> TrainSettings:
        if isinstance(profile, str):
            profile = get_profile(profile)
        loss = replace(profile.loss, seg=self.seg, dml=self.dml)
        sections = task_for(self.family).experiment_sections(self, profile, dataset)  # model, data, optim, epochs
        return TrainSettings(
            experiment=self.name,
            profile=profile.name,
            description=self.description,
            loss=loss,
            **sections,
            seed=seed,
            num_threads=profile.num_threads,
            threshold_selection=profile.threshold_selection,
            amp_on_cpu=profile.amp_on_cpu,
            channels_last_on_cpu=profile.channels_last_on_cpu,
            decision_chance_permutations=profile.decision_chance_permutations,
            eval_scales=profile.eval_scales,
            eval_hflip=profile.eval_hflip,
            deviations=profile.deviations,
        )


def _build() -> dict[str, Experiment]:
    exps: list[Experiment] = []
    names = {"dice": "Dice", "ce": "cross-entropy", "focal": "Focal"}
    for seg in ("dice", "ce", "focal"):
        exps.append(Experiment(f"unet-{seg}", f"SiameseUNet, original head (Fig. 1a), {names[seg]} loss "
                               "(IS-Triplet Tables 1-2: Gong et al.)", "unet", seg, head="original",
                               claim=seg == "dice"))
        exps.append(
            Experiment(
                f"unet-{seg}-istriplet",
                f"SiameseUNet, embedding head (Fig. 1b), {names[seg]} + lambda * IS-Triplet "
                "(IS-Triplet Tables 1-2: modified framework)",
                "unet",
                seg,
                "istriplet",
                head="embedding",
                claim=seg == "dice",
            )
        )
    for seg in ("dice", "ce", "focal"):  # ours: the like-for-like partner of unet-<seg>-istriplet
        exps.append(Experiment(f"unet-{seg}-embedding", f"ours: SiameseUNet, embedding head (Fig. 1b), {names[seg]} "
                               "loss alone (same head as the IS-Triplet row)", "unet", seg, head="embedding",
                               claim=seg == "dice"))
    exps.append(Experiment("cosegnet", "CoSegNet, the profile's metric layer (paper: cT9; cpu: f) (CoSegNet Tables "
                           "1-6)", "cosegnet", claim=True))
    exps.append(
        Experiment("cosegnet-base", "CoSegNet-base: no metric/decision network (CoSegNet Table 5)", "cosegnet-base",
                   claim=True)
    )
    for layer in ("f", "cT3", "cT6", "cT9", "cT11"):
        exps.append(
            Experiment(
                f"cosegnet-{layer.lower()}",
                f"CoSegNet, metric network fed from {layer} (CoSegNet Table 6)",
                "cosegnet",
                metric_layer=layer,
            )
        )
    dml_names = {None: "none", "istriplet": "istriplet", "discriminative": "discriminative", "group": "group"}
    for dml, tag in dml_names.items():
        what = "Dice only" if dml is None else f"Dice + lambda * {tag} pixel-embedding loss"
        exps.append(
            Experiment(f"pixel-dml-{tag}", f"pixel-DML comparison: SiameseUNet, {what}", "unet", "dice", dml,
                       shared_lr=True)
        )
    exps.append(
        Experiment("pixel-dml-single-image", "pixel-DML comparison: the single-image baseline of its rows "
                   "(SiameseUNet(single_image=True), embedding head, Dice)", "unet", single_image=True, shared_lr=True)
    )
    exps.append(
        Experiment("unet-single-image", "single-image baseline: SiameseUNet(single_image=True), original head, "
                   "Dice (the baseline of unet-dice)", "unet", single_image=True, head="original", claim=True)
    )
    exps.append(
        Experiment("cosegnet-single-image", "single-image baseline: CoSegNet(single_image=True)", "cosegnet",
                   single_image=True, claim=True)
    )
    return {e.name: e for e in exps}


EXPERIMENTS: dict[str, Experiment] = _build()


def list_experiments() -> list[Experiment]:
    """Every registered experiment, in table order."""
    return list(EXPERIMENTS.values())


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}; valid experiments: {', '.join(EXPERIMENTS)}") from None


def build_settings(
    experiment: str,
    profile: str,
    seed: int = 0,
    overrides: dict | None = None,
    dataset: str = "folder",
) -> TrainSettings:
    """Settings of `experiment` under `profile`, with dotted-key `overrides` applied last."""
    exp = get_experiment(experiment)
    prof = get_profile(profile)
    return apply_overrides(exp.settings(prof, seed=seed, dataset=dataset), overrides)
