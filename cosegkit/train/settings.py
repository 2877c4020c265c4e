"""Training settings as frozen dataclasses, plus dotted-key overrides.

One `TrainSettings` fully describes a run; it is written to `config.json` in the run dir and is all that
`--resume` and `evaluate_run` need to rebuild the model and the data. Profiles (`profiles.py`) fill in the
numbers; experiments (`experiments.py`) pick the model family and losses.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ModelSettings",
    "LossSettings",
    "OptimSettings",
    "DataSettings",
    "TrainSettings",
    "apply_overrides",
    "settings_to_dict",
    "settings_from_dict",
]

FAMILIES = ("unet", "cosegnet", "cosegnet-base")
SEG_LOSSES = ("dice", "ce", "focal")
THRESHOLD_SELECTIONS = ("fixed", "val")
DML_LOSSES = ("istriplet", "discriminative", "group")
METRIC_LAYERS = ("f", "cT3", "cT6", "cT9", "cT11")
FREEZE_BN = ("none", "encoder", "all")
AUGMENTS = ("flip_jitter", "flip")
VAL_DRAWS = ("uniform", "by_group")
SCHEDULES = ("exponential", "cosine")
TRIPLET_MINING = ("random", "semihard")
# cosegkit.models.correlation.SPATIAL_MODES (not imported: settings stay torch-free)
COATTENTION = ("gong", "docs", "match")


@dataclass(frozen=True)
class ModelSettings:
    """Which network to build (see cosegkit.models)."""

    family: str  # "unet" (SiameseUNet) | "cosegnet" (CoSegNet) | "cosegnet-base" (CoSegNetBase)
    encoder: str
    pretrained: bool
    head: str = "embedding"  # SiameseUNet only: "original" (2-channel) or "embedding" (64-d + 1x1 conv)
    embedding_dim: int = 64
    metric_layer: str = "cT9"  # CoSegNet only (cosegnet Table 6)
    width_mult: float = 1.0  # CoSegNet decoder width (1.0 = paper)
    single_image: bool = False
    # BatchNorm layers kept in eval mode while training: "none"; "encoder" (the pretrained encoder's BN keeps its
    # ImageNet statistics: batch 3 gives noisy ones; the randomly initialised decoder still normalises with batch
    # statistics, without which SGD barely moves it); "all" (no batch statistics anywhere, so data-parallel
    # ranks compute exactly what one process computes).
    freeze_bn: str = "none"
    # CoSegNet / CoSegNet-base decoder init: "he" (Kaiming normal for the ReLU convT stack) or "default" (PyTorch's,
    # which shrinks activations ~1.7x per layer: after 13 convT the mask logits hardly depend on the input and
    # SGD does not get them moving). The paper does not state its decoder init.
    decoder_init: str = "he"
    # CoSegNet / CoSegNet-base decoder normalisation: "none" (paper) or "group" (GroupNorm before each ReLU).
    decoder_norm: str = "none"
    # Freeze the (pretrained) encoder and serve its features from a content-addressed cache (cosegkit.models.
    # feature_cache): each distinct input is encoded once. Not in the papers, which fine-tune the encoder.
    freeze_encoder: bool = False
    # CoSegNet decision network init: "difference" (paired hidden units reading +-u.(fs_a - fs_b); see cosegkit.
    # models.cosegnet.init_decision_as_difference) or "default" (PyTorch's). The paper does not state it.
    decision_init: str = "difference"
    # SiameseUNet co-attention, spatial part: "gong" (Gong et al.'s volume of 1-channel maps) or "docs" (the DOCS
    # cosine correlation volume of the deepest features); see cosegkit.models.correlation
    coattention: str = "gong"
    # SiameseUNet: multiply the skip connections by the spatial co-attention map too (ours; not in the sources)
    skip_attention: bool = False
    # SiameseUNet, coattention="match": the grid its spatial map is computed on (32: deepest; 16: stride 16)
    match_stride: int = 32
    # Channel dropout while training (ours; 0 = none, as in the papers) on every encoder feature map (SiameseUNet) or
    # on the encoder output f (CoSegNet, CoSegNet-base)
    feature_dropout: float = 0.0
    # With freeze_encoder: the number of the encoder's deepest feature levels (of 5) that still train, as copies of
    # their pretrained modules run on the cached level below (ours; 0 = the whole encoder frozen and cached)
    tune_encoder_levels: int = 0
    # With tune_encoder_levels: those levels run in float32 even under bf16 autocast (ours; the cpu profile's claim
    # rows: on the 2-core AMD EPYC their depthwise convolutions train faster in float32 than in bf16)
    tuned_levels_float32: bool = False

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.freeze_bn not in FREEZE_BN:
            raise ValueError(f"model.freeze_bn must be one of {', '.join(FREEZE_BN)}, got {self.freeze_bn!r}")
        if self.decoder_norm not in ("none", "group"):
            raise ValueError(f"model.decoder_norm must be 'none' or 'group', got {self.decoder_norm!r}")
        if self.decision_init not in ("difference", "default"):
            raise ValueError(f"model.decision_init must be 'difference' or 'default', got {self.decision_init!r}")
        if self.decoder_init not in ("he", "default"):
            raise ValueError(f"model.decoder_init must be 'he' or 'default', got {self.decoder_init!r}")
        if self.coattention not in COATTENTION:
            raise ValueError(
                f"model.coattention must be one of {', '.join(COATTENTION)}, got {self.coattention!r}"
            )
        if self.match_stride not in (16, 32) or (self.match_stride == 16 and self.coattention != "match"):
            raise ValueError(f"model.match_stride must be 32, or 16 with model.coattention='match', got "
                             f"{self.match_stride!r} with coattention {self.coattention!r}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"model.feature_dropout must be in [0, 1), got {self.feature_dropout!r}")
        if (isinstance(self.tune_encoder_levels, bool) or not isinstance(self.tune_encoder_levels, int)
                or not 0 <= self.tune_encoder_levels <= 4):
            raise ValueError(f"model.tune_encoder_levels must be an integer from 0 to 4, got "
                             f"{self.tune_encoder_levels!r}")
        if self.tune_encoder_levels and not self.freeze_encoder:
            raise ValueError("model.tune_encoder_levels > 0 needs model.freeze_encoder=true: it tunes the deepest "
                             "levels on the frozen encoder's cached features (without freeze_encoder the whole "
                             "encoder trains)")
        if not isinstance(self.tuned_levels_float32, bool):
            raise ValueError(f"model.tuned_levels_float32 must be true or false, got {self.tuned_levels_float32!r}")
        if self.tuned_levels_float32 and not self.tune_encoder_levels:
            raise ValueError("model.tuned_levels_float32=true needs model.tune_encoder_levels > 0: it sets the "
                             "precision of the tuned encoder levels, and there are none (to freeze the whole "
                             "encoder, also --set model.tuned_levels_float32=false)")
        if self.metric_layer not in METRIC_LAYERS:
            raise ValueError(
                f"model.metric_layer must be one of {', '.join(METRIC_LAYERS)}, got {self.metric_layer!r}"
            )


@dataclass(frozen=True)
class LossSettings:
    """Loss terms. SiameseUNet: seg + lambda * dml (is_triplet_coseg Eq. 5); CoSegNet: w1 L1 + w2 L2 + w3 L3."""

    seg: str = "dice"  # SiameseUNet segmentation loss: dice | ce | focal (CoSegNet always uses BCE, Eq. 2)
    dml: str | None = None  # None | istriplet | discriminative | group
    k: int = 5000  # IS-Triplet: pixels sampled per set (§3.2, §4.1.3)
    margin: float = 3.0  # IS-Triplet violation margin m
    lambda0: float = 1.0  # weight of the DML term at epoch 0
    lambda_decay: float = 0.85  # lambda multiplied by this after each epoch (§4.1.3)
    triplet_margin: float = 1.0  # CoSegNet triplet margin alpha (cosegnet §4.1)
    positive_weights: tuple[float, float, float] = (0.33, 0.33, 0.33)  # w1, w2, w3 for positive pairs
    negative_weights: tuple[float, float, float] = (0.0, 0.5, 0.5)  # w1, w2, w3 for negative pairs
    delta_v: float = 0.5  # discriminative loss pull margin (discriminative_loss §2)
    delta_d: float = 1.5  # discriminative loss push margin
    group_k: int = 256  # Group Loss: fg and bg pixels sampled per image (the two "groups")
    group_anchors: int = 2  # Group Loss: one-hot anchors per class and image
    group_steps: int = 3  # Group Loss: replicator-dynamics steps (group_loss: 1-3 work best)

    def __post_init__(self):
        if self.seg not in SEG_LOSSES:
            raise ValueError(f"loss.seg must be one of {', '.join(SEG_LOSSES)}, got {self.seg!r}")
        if self.dml is not None and self.dml not in DML_LOSSES:
            raise ValueError(f"loss.dml must be None or one of {', '.join(DML_LOSSES)}, got {self.dml!r}")


@dataclass(frozen=True)
class OptimSettings:
    """SGD with momentum (both papers) or AdamW (cpu profile's CoSegNet), with a per-epoch exponential lr decay."""

    lr: float
    optimizer: str = "sgd"  # "sgd" (momentum, weight_decay as L2) or "adamw" (betas (0.9, 0.999), decoupled decay)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_decay: float = 1.0  # lr multiplied by this after each epoch (IS-Triplet: 0.85; CoSegNet: fixed, 1.0)
    encoder_lr_mult: float = 1.0  # lr multiplier for the (pretrained) encoder parameters
    grad_clip: float | None = None  # max global grad norm, None = no clipping
    # "exponential": lr x lr_decay after each epoch (both papers); "cosine": cosine decay from lr to 0 over every
    # step of the run (the cpu profile: a few hundred steps, where a per-epoch step function wastes most of them)
    schedule: str = "exponential"

    def __post_init__(self):
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optim.optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")


@dataclass(frozen=True)
class DataSettings:
    """Image size, batches, how many pairs per epoch, and the synthetic set used when no data root is given."""

    image_size: int
    batch_size: int  # per process; SiameseUNet: pairs, CoSegNet: triplets (= a positive + a negative pair)
    pairs_per_epoch: int | None = None  # training pairs (triplets) drawn per epoch; None = every positive pair
    dataset: str = "folder"  # cosegkit.data.load_dataset name for --data-root (folder, internet, msrc, ...)
    split: tuple[int, int, int] = (3, 1, 1)  # train:val:test (cosegnet §4.2)
    split_seed: int | None = None  # None -> the run seed
    val_pairs: int = 64  # positive validation pairs scored after every epoch
    # How the val_pairs (and decision_val_pairs) positive validation pairs are drawn from the split's: "uniform" (a
    # group weighs as its number of pairs) or "by_group" (spread evenly over the groups, as test_max_pairs_per_group
    # spreads the test pairs; cosegkit.data.pairs.spread_over_groups)
    val_draw: str = "uniform"
    # A decision network's threshold (threshold_selection="val") is chosen on this many positive and as many
    # negative validation pairs, scored by the decision alone (one metric embedding per image, no mask decoder);
    # None: on the val_pairs positive pairs and as many negative ones, scored with their masks
    decision_val_pairs: int | None = None
    test_max_pairs_per_group: int | None = None  # None = every pair within every test group (paper protocol)
    test_negative_pairs: int = 100  # negative (outlier) test pairs
    num_workers: int = 0
    cache_images: bool = True  # keep decoded images in memory (real data)
    synthetic_train_pairs: int = 24
    synthetic_val_pairs: int = 8
    synthetic_test_pairs: int = 8
    synthetic_negative_fraction: float = 0.25  # of the synthetic test set (negative pairs)
    # Training augmentation: "flip_jitter" (random horizontal flip + colour jitter) or "flip" (flip only: two views
    # per image, so a frozen encoder's features can be cached; the cpu profile's choice).
    augment: str = "flip_jitter"
    # CoSegNet triplets (cosegnet §4.1 "following Schroff et al."): "random" = the negative drawn uniformly among
    # the images negative to anchor and positive; "semihard" = FaceNet's semi-hard negative among `mining_pool`
    # such candidates (the random one first), picked with the current metric embeddings, computed without
    # gradients (see cosegkit.train.modeling and cosegkit.losses.cosegnet.select_semihard_negatives).
    triplet_mining: str = "random"
    mining_pool: int = 8  # candidate negatives per triplet under "semihard" (unused under "random")
    # CoSegNet (ours, 0 = the paper): extra random triplets per training triplet whose two pairs train only the
    # metric and decision networks (L2 and L3, no mask term, so no decoder pass after the metric layer); their
    # mean w2 L2 + w3 L3 is added to eq. 1 of the batch's triplets (cosegkit.tasks.cosegnet)
    head_triplets: int = 0

    def __post_init__(self):
        if self.image_size % 32:
            raise ValueError(f"data.image_size must be divisible by 32, got {self.image_size}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"data.augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.val_draw not in VAL_DRAWS:
            raise ValueError(f"data.val_draw must be one of {', '.join(VAL_DRAWS)}, got {self.val_draw!r}")
        if self.triplet_mining not in TRIPLET_MINING:
            raise ValueError(f"data.triplet_mining must be one of {', '.join(TRIPLET_MINING)}, "
                             f"got {self.triplet_mining!r}")
        if isinstance(self.mining_pool, bool) or not isinstance(self.mining_pool, int) or self.mining_pool < 1:
            raise ValueError(f"data.mining_pool must be an int >= 1, got {self.mining_pool!r}")
        if isinstance(self.head_triplets, bool) or not isinstance(self.head_triplets, int) or self.head_triplets < 0:
            raise ValueError(f"data.head_triplets must be an int >= 0, got {self.head_triplets!r}")
        n = self.decision_val_pairs
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"data.decision_val_pairs must be None or an int >= 1, got {n!r}")


@dataclass(frozen=True)
class TrainSettings:
    experiment: str
    profile: str
    model: ModelSettings
    loss: LossSettings
    optim: OptimSettings
    data: DataSettings
    epochs: int
    seed: int = 0
    description: str = ""
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # CUDA only
    # The same two on a CPU: with AMX (Intel Xeon 4th gen+) bf16 autocast + channels-last made a cpu-profile step
    # 1.6-1.8x faster, on the AMD EPYC with AVX512-BF16 1.3-1.7x (benchmarks/bench_train.py --precision measures
    # yours). They change the last bits of every number; the `cpu` profile turns both on, the others leave them off.
    amp_on_cpu: bool = False
    channels_last_on_cpu: bool = False
    deterministic: bool = True  # torch.use_deterministic_algorithms + fixed thread count
    num_threads: int | None = 2  # torch.set_num_threads on CPU (fixed for bit-exact resume); None = leave
    progress: bool = True  # tqdm bars
    eval_threshold: float = 0.5
    # "fixed": masks and decisions thresholded at eval_threshold; "val": after the last epoch the mask threshold
    # (and a decision network's decision threshold) are chosen on the validation split (neither paper states its
    # thresholds); see cosegkit.train.evaluate.select_thresholds
    threshold_selection: str = "fixed"
    # With threshold_selection="val" and a decision network: > 0 tests the chosen decision threshold against chance
    # on the validation pairs with this many label shufflings (evaluate.apply_chance_test) and opens the gate
    # (every pair accepted) when it does not beat chance at 5 %; 0: the threshold always stands
    decision_chance_permutations: int = 0
    # Test-time views (ours; neither paper uses any): the thresholds chosen on validation, the test, `evaluate`,
    # `predict` and the notebooks' inference average the foreground probabilities of the pair resized by each of
    # eval_scales (to multiples of 32 px) and, with eval_hflip, mirrored too (Task.predict_views); decisions come
    # from the pair as it is. The per-epoch validation curve stays on that one view (its cost is paid each epoch).
    eval_scales: tuple[float, ...] = (1.0,)
    eval_hflip: bool = False
    deviations: tuple[str, ...] = ()  # documented differences from the paper's own settings

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.threshold_selection not in THRESHOLD_SELECTIONS:
            raise ValueError(f"threshold_selection must be one of {', '.join(THRESHOLD_SELECTIONS)}, got "
                             f"{self.threshold_selection!r}")
        if isinstance(self.decision_chance_permutations, bool) or self.decision_chance_permutations < 0:
            raise ValueError("decision_chance_permutations must be a non-negative integer (0: off), got "
                             f"{self.decision_chance_permutations!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        scales = self.eval_scales
        if (not isinstance(scales, tuple) or not scales or len(set(scales)) != len(scales)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 4 for v in scales)):
            raise ValueError(f"eval_scales must be a non-empty list of distinct numbers in (0, 4], got {scales!r}")
        if not isinstance(self.eval_hflip, bool):
            raise ValueError(f"eval_hflip must be true or false, got {self.eval_hflip!r}")


def settings_to_dict(settings) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def _coerce(value, annotation):
    """Turn JSON values back into the dataclass field's type (tuples from lists, nested dataclasses)."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return _from_dict(annotation, value)
    if annotation is tuple or origin is tuple:
        return tuple(value) if value is not None else None
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(value, args[0])
    return value


def _from_dict(cls, data: dict):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; valid: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k]) for k, v in data.items()})


# Fields that TrainSettings no longer has; config.json files written before their removal still carry them.
RETIRED_FIELDS = {"fault_sigkill_step": None}  # a test-only hook, now passed to train(on_step=...) by the tests
# Settings added after runs were committed, with the default they were added at: at that default they are left out
# of the run key (cosegkit.train.run_cache.run_key), so those runs keep their folders.
ADDED_MODEL_FIELDS = {"skip_attention": False, "match_stride": 32, "feature_dropout": 0.0,
                      "tune_encoder_levels": 0, "tuned_levels_float32": False}
ADDED_DATA_FIELDS = {"head_triplets": 0, "decision_val_pairs": None, "val_draw": "uniform"}
# the same for top-level settings
ADDED_FIELDS = {"amp_on_cpu": False, "channels_last_on_cpu": False, "decision_chance_permutations": 0,
                "eval_scales": (1.0,), "eval_hflip": False}


def settings_from_dict(data: dict) -> TrainSettings:
    return _from_dict(TrainSettings, {k: v for k, v in data.items() if k not in RETIRED_FIELDS})


def _type_name(annotation) -> str:
    """How an error message spells a field's declared type (e.g. 'int', 'float or null', '3 floats')."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        kinds = {_type_name(a) for a in args}
        return f"a list of {len(args)} {kinds.pop()}s" if len(kinds) == 1 else f"a list of {len(args)} values"
    return getattr(annotation, "__name__", str(annotation))


def _matches(value, annotation) -> bool:
    """Whether a JSON-parsed `value` has the declared type (bool is never an int; an int is a float)."""
    origin = typing.get_origin(annotation)
    if annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True  # Any


def _normalised(value, annotation):
    """An accepted value in the field's own type: ints given for floats become floats."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(annotation):
            if _matches(value, a):
                return _normalised(value, a)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return [_normalised(v, args[0]) for v in value]
        return [_normalised(v, a) for v, a in zip(value, args, strict=True)]
    if annotation is float:
        return float(value)
    return value


def apply_overrides(settings: TrainSettings, overrides: dict[str, Any] | None) -> TrainSettings:
    """Return a copy with dotted keys replaced, e.g. {"epochs": 2, "optim.lr": 0.01, "data.image_size": 96}.

    Each value must have the field's declared type (ValueError naming the key, the type and the value), so
    that `--set epochs=1.5` or `--set model=3` fails here, before anything is written.
    """
    if not overrides:
        return settings
    data = settings_to_dict(settings)
    for key, value in overrides.items():
        parts = key.split(".")
        node, cls = data, TrainSettings
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"override {key!r}: {part!r} is not a settings section")
            node, cls = node[part], typing.get_type_hints(cls)[part]
        if parts[-1] not in node:
            raise ValueError(f"override {key!r}: unknown field {parts[-1]!r}; valid: {sorted(node)}")
        annotation = typing.get_type_hints(cls)[parts[-1]]
        shown = json.dumps(list(value) if isinstance(value, tuple) else value)
        if dataclasses.is_dataclass(annotation):
            fields = ", ".join(f"{key}.{f.name}" for f in dataclasses.fields(annotation)[:3])
            raise ValueError(f"override {key!r}: {key!r} is a settings section, not a value (got {shown}); "
                             f"set one of its fields, e.g. {fields}")
        if not _matches(value, annotation):
            raise ValueError(f"override {key!r}: expected {_type_name(annotation)}, got {shown}")
        node[parts[-1]] = _normalised(value, annotation)
    return settings_from_dict(data)

