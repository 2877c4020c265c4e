"""Run profiles: `smoke` (tests/CI), `cpu` (the whole reproduction on 2 cores), `paper` (the papers' own settings,
GPU, needs ResNet-50 / VGG16 ImageNet weights) and `gpu` (the papers' schedules with the offline encoder).

A profile holds the numbers; an experiment (experiments.py) decides which of them a run uses. The `paper`
profile copies both papers' stated settings exactly (CoSegNet's triplets "following Schroff et al.": semi-hard
negative mining, `data.triplet_mining="semihard"`); `smoke` and `cpu` draw CoSegNet negatives at random. Every
place where the `cpu` profile differs is listed in its `deviations`, with the reason, and lands in each run's
config.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cosegkit.train.settings import DataSettings, LossSettings, ModelSettings, OptimSettings

__all__ = ["Profile", "PROFILES", "SOURCES_COATTENTION", "get_profile", "list_profiles"]

# The Siamese U-Net's co-attention as its sources describe it (Gong et al. [34]: spatial and channel co-attention
# on the deepest features; the skips reach the decoder unweighted), as --set overrides: the `cpu` profile uses
# another (see its deviations), and the synthetic benchmark trains both.
SOURCES_COATTENTION = {"model.coattention": "gong", "model.skip_attention": False, "model.match_stride": 32}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    unet_model: ModelSettings
    cosegnet_model: ModelSettings
    unet_data: DataSettings
    cosegnet_data: DataSettings
    unet_epochs: int
    cosegnet_epochs: int
    unet_optim: OptimSettings  # SiameseUNet without a DML term (IS-Triplet §4.1.3: lr 1e-3)
    unet_lr_istriplet: float  # SiameseUNet with IS-Triplet (§4.1.3: lr 1e-4)
    cosegnet_optim: OptimSettings
    cosegnet_weight_decay_internet: float  # cosegnet §4.1: 5e-4 when training on the Internet dataset
    loss: LossSettings
    n_splits: int = 1  # random 3:1:1 splits per CoSegNet table entry (cosegnet §4.2: 100)
    # Epochs of the rows the papers' claims rest on (Experiment.claim); None: the same as the other rows.
    unet_claim_epochs: int | None = None
    cosegnet_claim_epochs: int | None = None
    # data.head_triplets of CoSegNet's claim rows (cosegnet, cosegnet-single-image); the other rows keep 0
    cosegnet_claim_head_triplets: int = 0
    # image size of CoSegNet's other rows (Table 6's metric layers); None: cosegnet_data.image_size
    cosegnet_ablation_image_size: int | None = None
    # image size of the Siamese U-Net's other rows (CE / Focal, the pixel-DML seeds); None: unet_data.image_size
    unet_ablation_image_size: int | None = None
    # image size of every Siamese U-Net row with the embedding head (Fig. 1b), claim rows included; None: as above
    unet_embedding_head_image_size: int | None = None
    # model.tune_encoder_levels of the Siamese U-Net's claim rows (Experiment.claim); the other rows keep the
    # profile's unet_model value. Notebook 05's synthetic benchmark keeps 0 (notebook_params.synthetic_overrides)
    unet_claim_tune_encoder_levels: int = 0
    # model.tuned_levels_float32 of those rows (the precision of their tuned levels under amp)
    unet_claim_tuned_levels_float32: bool = False
    # image size of notebook 05's synthetic pair benchmark (every row); None: each row's own
    synthetic_image_size: int | None = None
    # data.decision_val_pairs of the synthetic pair benchmark (its pairs share no image, so each decision pair costs
    # two encoder passes); None: the default, the val_pairs pairs scored with their masks
    synthetic_decision_val_pairs: int | None = None

    def __post_init__(self):
        if self.unet_claim_epochs is None:
            object.__setattr__(self, "unet_claim_epochs", self.unet_epochs)
        if self.cosegnet_claim_epochs is None:
            object.__setattr__(self, "cosegnet_claim_epochs", self.cosegnet_epochs)
    num_threads: int | None = 2
    threshold_selection: str = "fixed"  # TrainSettings.threshold_selection
    # TrainSettings.amp_on_cpu / channels_last_on_cpu: bf16 autocast and channels-last when the run is on a CPU
    amp_on_cpu: bool = False
    channels_last_on_cpu: bool = False
    # TrainSettings.decision_chance_permutations (0: a decision threshold chosen on validation always stands)
    decision_chance_permutations: int = 0
    # TrainSettings.eval_scales / eval_hflip: the test-time views every row of the profile is scored over
    eval_scales: tuple[float, ...] = (1.0,)
    eval_hflip: bool = False
    deviations: tuple[str, ...] = ()


_SMOKE = Profile(
    name="smoke",
    description="synthetic 64x64 pairs, tiny random encoder, 2 epochs: seconds per experiment (tests, CI)",
    unet_model=ModelSettings(family="unet", encoder="tiny", pretrained=False),
    cosegnet_model=ModelSettings(family="cosegnet", encoder="tiny", pretrained=False, width_mult=0.25),
    unet_data=DataSettings(
        image_size=64, batch_size=2, pairs_per_epoch=8, val_pairs=4, test_max_pairs_per_group=2,
        test_negative_pairs=4, synthetic_train_pairs=8, synthetic_val_pairs=4, synthetic_test_pairs=6,
    ),
    cosegnet_data=DataSettings(
        image_size=64, batch_size=2, pairs_per_epoch=6, val_pairs=4, test_max_pairs_per_group=2,
        test_negative_pairs=4, synthetic_train_pairs=8, synthetic_val_pairs=4, synthetic_test_pairs=6,
    ),
    unet_epochs=2,
    cosegnet_epochs=2,
    unet_optim=OptimSettings(lr=1e-2, weight_decay=1e-4, lr_decay=0.85),
    unet_lr_istriplet=1e-3,
    cosegnet_optim=OptimSettings(lr=1e-2, weight_decay=4e-4, lr_decay=1.0),
    cosegnet_weight_decay_internet=5e-4,
    loss=LossSettings(k=256),
    n_splits=2,
    num_threads=1,
    deviations=(
        "smoke: tiny random encoder, 64x64 synthetic pairs, 2 epochs, K=256, lr x10: checks the code, not the paper",
    ),
)

# cpu: both families on the offline ImageNet EfficientNet-Lite2, frozen, its features computed once per image and
# view (cosegkit.models.feature_cache) and shared by every run of the same encoder and size; only the co-attention,
# decoders and heads train (and, in the U-Net's claim rows, a copy of the encoder's deepest level), with AdamW on a
# cosine schedule. The rows the papers' claims rest on (Experiment.claim)
# get 3-4x the steps of the ablation rows. Measured on PASCAL-VOC co-seg (2 cores, validation split, seed 0): see
# the deviations below and the README.
_CPU = Profile(
    name="cpu",
    description="frozen, cached EfficientNet-Lite2 features (its deepest level tuned in the U-Net's claim rows); "
                "claim rows 256 px (U-Net) / 224 px (CoSegNet), the other rows 192 / 128 px, the synthetic benchmark "
                "160 px; 600 / 360 steps for the claim rows, 200 / 360 for the ablations (PASCAL-VOC)",
    unet_model=ModelSettings(family="unet", encoder="efficientnet_lite2", pretrained=True, freeze_bn="encoder",
                             freeze_encoder=True, coattention="match", skip_attention=True, match_stride=16,
                             feature_dropout=0.4),
    cosegnet_model=ModelSettings(
        family="cosegnet", encoder="efficientnet_lite2", pretrained=True, width_mult=0.25, freeze_bn="encoder",
        decoder_norm="group", freeze_encoder=True, metric_layer="f",
    ),
    # the U-Net's claim rows at 256 px (was 192): validation J 0.522 / 0.533 / 0.562 at 192 / 224 / 256 px (unet-dice,
    # PASCAL-VOC, seed 0, at a309554); 320 px gave 0.570 against 0.568 at 256 in 257 against 186 s (bf16, at
    # 5825355); its ablation rows stay at 192 for the budget
    unet_data=DataSettings(
        image_size=256, batch_size=3, pairs_per_epoch=300, val_pairs=24, test_max_pairs_per_group=6,
        test_negative_pairs=60, num_workers=0, synthetic_train_pairs=300, synthetic_val_pairs=32,
        synthetic_test_pairs=64, augment="flip", val_draw="by_group",
    ),
    # CoSegNet's claim rows at the paper's 224 px: validation J after the gate 0.317 / 0.343 / 0.373 at 128 / 160 /
    # 192 px without head triplets (PASCAL-VOC, seed 0); with 8 head triplets 0.367 at 192 and 0.404 at 224 (balanced
    # decision accuracy 0.854 / 0.844, at a309554); affordable since the mask tail runs on positive pairs only.
    # On the synthetic set CoSegNet draws its triplets from the U-Net's 300 training pairs (was 30, which 12 epochs
    # of 90 triplets memorised: train L3 0.005, validation J 0.188, balanced decision accuracy 0.55; with 300: 0.263
    # and 0.72; cosegnet-single-image 0.197 -> 0.267; 192 px, seed 0, one 2-core Intel Xeon, at f306e19 / 63ff89d)
    # The decision threshold is chosen on 600 positive + 600 negative validation pairs scored by the decision alone
    # (data.decision_val_pairs; the PASCAL-VOC validation split has 731-886 positive pairs over split seeds 0-19)
    # instead of the 48 + 48 scored with their masks: over 200 random halvings of 735 + 735 validation pairs, the
    # held-out balanced accuracy of `cosegnet` was 82.9 +- 1.8 % chosen on 48 + 48 and 83.9 +- 1.0 % chosen on
    # all, the per-class accuracies' spread fell from +-5-6 to +-2 points (Table 6 rows: +-13-20 to +-2-5;
    # the single-image row, at chance either way: +-25 to +-17), and scoring 1470 pairs that way took 2.1 s against
    # 16.5 s for the 96 with masks (benchmarks/bench_decision_threshold.py on cpu-profile runs trained at 204d4bb,
    # seed 0, 2-core AMD EPYC; benchmarks/README.md)
    cosegnet_data=DataSettings(
        image_size=224, batch_size=3, pairs_per_epoch=90, val_pairs=48, test_max_pairs_per_group=6,
        test_negative_pairs=60, num_workers=0, synthetic_train_pairs=300, synthetic_val_pairs=32,
        synthetic_test_pairs=64, augment="flip", decision_val_pairs=600, val_draw="by_group",
    ),
    unet_epochs=2,
    unet_claim_epochs=6,
    # Table 6's ablation rows get the claim rows' 12 epochs: at 3 (90 steps) the decision network had not left its
    # prior and the gate blanked nearly every mask (test J 0.000-0.162 at 06331cf); validation at 12 epochs
    # (cT6, seed 0): balanced decision accuracy 0.63, not the 0.5 of "no to every pair"
    cosegnet_epochs=12,
    cosegnet_claim_epochs=12,
    # 16 head triplets per triplet (was 8): on the validation split (cosegnet, 224 px, bf16, seed 0, trained alone,
    # at 5825355) head_triplets 8 / 16 / 32 gave balanced decision accuracy 0.827 / 0.842 / 0.847 on 600 + 600
    # pairs and val J after the gate 0.430 / 0.429 / 0.429, in 257 / 361 / 552 s; 32 costs 3 more minutes a run
    # for +0.005
    cosegnet_claim_head_triplets=16,
    # Table 6's rows stay at 128 px: at 192 their 5 runs alone would add ~12 min and push the reproduction past 90
    cosegnet_ablation_image_size=128,
    unet_ablation_image_size=192,
    # the embedding-head claim rows (unet-dice-istriplet, unet-dice-embedding) at the claim size, 256 px (was 192):
    # bf16 made them affordable; validation J 0.548 -> 0.593 (Dice + IS-Triplet) and 0.541 -> 0.576 (Dice), 200 ->
    # 395 s and 119 -> 253 s (PASCAL-VOC, seed 0, trained alone, at 5825355); their ablation rows stay at 192
    unet_embedding_head_image_size=None,
    # the synthetic benchmark at 160 px (was 192, since stop 42, to bring the reproduction under 90 min): its objects
    # are drawn at the image size and it asks whether the pair matters, not what resolution buys. On its validation
    # pairs (unet-dice / unet-single-image, seed 0, at 404a1ac) val J 0.507 / 0.311 at 160 px against
    # 0.531 / 0.283 at 192 (the pair's lead +0.196 against +0.248); warm epochs ~9-10 s against ~14 s
    synthetic_image_size=160,
    # the synthetic benchmark's CoSegNet rows keep 32 + 32 validation pairs with masks: 600 + 600 decision pairs
    # there cost 2400 encoder passes (103 s measured at 224 px, ~75 s expected at 192), which the 90-minute
    # reproduction has not got
    synthetic_decision_val_pairs=None,
    # the U-Net's claim rows adapt the encoder's deepest level (stride 32, EfficientNet-Lite2 blocks 15-20) on the
    # cached stride-16 features, at 0.1x the lr (encoder_lr_mult; the rows with a frozen encoder have no encoder
    # parameters to train). Validation (PASCAL-VOC, 120 val pairs, trained alone at 04ee28d): unet-dice val J
    # +0.018 over seeds 0-4 (95 % CI +0.002 to +0.034), lr x 0.03 / 0.1 / 0.3 / 1 at seed 0: 0.632 / 0.649 /
    # 0.616 / 0.568 against 0.628 frozen; 160-212 -> 313-328 s a run. The ablation rows stay frozen (time)
    unet_claim_tune_encoder_levels=1,
    # ... in float32 inside the bf16 step (since stop 41): on the 2-core AMD EPYC a warm unet-dice step took
    # 294-375 ms against 479-510 ms with the level in bf16 (its depthwise 5x5 convolutions' backward dominated);
    # in the reproduction at 266adbd the four rows took 24.2 min against 25.6 (less than that promised); the
    # cached features it reads are float32 already
    unet_claim_tuned_levels_float32=True,
    unet_optim=OptimSettings(lr=2e-3, optimizer="adamw", weight_decay=1e-4, schedule="cosine", encoder_lr_mult=0.1),
    unet_lr_istriplet=2e-3,
    cosegnet_optim=OptimSettings(lr=2e-3, optimizer="adamw", weight_decay=4e-4, schedule="cosine", grad_clip=1.0),
    cosegnet_weight_decay_internet=5e-4,
    loss=LossSettings(k=2000),
    n_splits=1,
    num_threads=2,
    threshold_selection="val",
    # bf16 autocast + channels-last (was float32, contiguous): on the 2-core AMD EPYC (AVX512-BF16, no AMX) a warm
    # training step was 1.67x (unet-dice, 256 px) / 1.32x (unet-dice-embedding, 192 px) / 1.34x (cosegnet, 224 px)
    # faster (benchmarks/bench_train.py --precision, at a4cacfc); on the validation split (seed 0, trained alone):
    # unet-dice val J 0.562 -> 0.568 (262 -> 186 s), cosegnet val J after the gate 0.404 -> 0.430, balanced
    # decision accuracy 0.841 -> 0.827 (373 -> 280 s). The frozen encoder's cached features stay float32.
    amp_on_cpu=True,
    channels_last_on_cpu=True,
    # A decision threshold fitted to a decision network that validation cannot tell from chance blanks masks at
    # random: in a reproduction of 87867a2 (stopped after notebook 03) Table 6's cT9 reached balanced accuracy 0.525
    # on its 600 + 600 validation pairs, and the threshold that maximised it said "no" to 90 % of them (test J
    # 0.001; 0.294 before the gate). Opening the gate when a permutation test cannot reject chance at 5 % is
    # our rule (neither paper states its threshold); 1000 shuffles cost ~0.1 s.
    decision_chance_permutations=1000,
    # Every row is scored over two test-time views, the pair at 1.5x its training size and its mirror image
    # (Task.predict_views; decisions from the pair as it is). Chosen on 120 validation pairs (PASCAL-VOC, seed 0,
    # the claim rows trained at cb0d172, mean J of unet-dice / unet-single-image / unet-dice-embedding / cosegnet
    # before its gate): plain 0.548; mirrored 0.552; scale 1.25 / 1.5 / 1.75 with the mirror 0.569 / 0.573 / 0.578;
    # scales 1 + 1.25 / 1 + 1.5 with the mirror 0.564 / 0.569. 1.75 costs a third more scoring time for +0.005.
    eval_scales=(1.5,),
    eval_hflip=True,
    deviations=(
        "cpu: every row is scored over two test-time views (eval_scales=(1.5,), eval_hflip=True; the papers score "
        "the image once): the pair resized to 1.5x its training size (to a multiple of 32 px) and its mirror image, "
        "their foreground probabilities averaged; CoSegNet's decision reads the pair as it is. Chosen on 120 "
        "PASCAL-VOC validation pairs (seed 0): the claim rows' mean J 0.548 scored once, 0.573 over these views "
        "(README); the per-epoch validation curve is scored once",
        "cpu: the decoders, heads and co-attention train and are scored under bf16 autocast with channels-last "
        "weights (amp_on_cpu, channels_last_on_cpu; the papers say nothing of precision); the frozen encoder's "
        "cached features are float32, and so is the U-Net claim rows' tuned encoder level "
        "(model.tuned_levels_float32: its depthwise convolutions train faster in float32 there, 294-375 against "
        "479-510 ms a unet-dice step). On the 2-core AMD EPYC (AVX512-BF16) a training step was 1.3-1.7x faster "
        "with validation J unchanged or higher (README); a CPU without native bf16 may be slower: "
        "--set amp_on_cpu=false --set channels_last_on_cpu=false gives float32",
        "cpu: Siamese U-Net co-attention coattention='match' at match_stride=16 with skip_attention (ours; the "
        "sources' Gong et al. block is the model's default and the paper/gpu profiles'): the spatial map of each "
        "image is the maximum and mean over the partner's grid of the cosine correlation of learned projections of "
        "the stride-16 and upsampled stride-32 features, and it weights the skips as well as the deepest features. "
        "With the encoder frozen, Gong's block on the deepest 6x6 grid gave the pair nothing (synthetic benchmark at "
        "b3f271a: pair J 0.263 vs single-image 0.294; PASCAL-VOC +0.006); chosen on the synthetic validation pairs "
        "and checked on the PASCAL-VOC validation split (README)",
        "cpu: ImageNet EfficientNet-Lite2 (shipped offline) replaces ResNet-50 / VGG-16 in both families, and it is "
        "frozen: its features are computed once per image and view and cached (model.freeze_encoder), so only the "
        "co-attention / decoders / heads train (the papers fine-tune the whole encoder). The Siamese U-Net's claim "
        "rows (Dice +- IS-Triplet, the like-for-like Dice row, the single-image baseline) adapt the deepest level "
        "(stride 32, blocks 15-20) on the cached stride-16 features, at 0.1x the lr, its BatchNorm in eval mode "
        "(model.tune_encoder_levels=1, optim.encoder_lr_mult=0.1): on the PASCAL-VOC validation split (120 pairs) "
        "unet-dice gained +0.018 J over seeds 0-4 (95 % CI +0.002 to +0.034) and the single-image baseline +0.076 "
        "at seed 0, for ~1.5-2x a run's time. CoSegNet's rows, the U-Net's ablation rows and the synthetic "
        "benchmark stay frozen (cosegnet at seed 0: balanced decision accuracy 0.851 -> 0.8725 but fewer positive "
        "pairs accepted, val J after the gate 0.471 -> 0.446, 3.6x the time)",
        "cpu: Siamese U-Net channel dropout on every encoder feature map while training (model.feature_dropout=0.4; "
        "the papers have none): with the encoder frozen, the decoder fits the ~490 training images (train Dice loss "
        "0.13 while validation J stalls near 0.5). Chosen on the PASCAL-VOC validation split (unet-dice, seed 0, "
        "0 / 0.1 / 0.25 / 0.4: val J 0.497 / 0.509 / 0.513 / 0.522 at the thresholds validation picks)",
        "cpu: training augmentation is a horizontal flip only (data.augment='flip'), so each image has two views "
        "whose features can be cached",
        "cpu: images 256 px for the U-Net's original-head claim rows (unet-dice, unet-single-image) and 224 px (the "
        "paper's) for CoSegNet's claim rows and CoSegNet-base; the embedding-head claim rows (Dice + IS-Triplet and "
        "its like-for-like Dice row) at 256 px too; 192 px for the U-Net's other rows; 160 px for the "
        "synthetic benchmark; 128 px for CoSegNet's Table 6 rows; instead of 448 / 224 (chosen on the PASCAL-VOC "
        "validation split, seed 0: unet-dice val J 0.522 / 0.533 / 0.562 / 0.570 at 192 / 224 / 256 / 320 px; Dice + "
        "IS-Triplet 0.548 / 0.593 and its Dice row 0.541 / 0.576 at 192 / 256; cosegnet val J after the gate "
        "0.367 / 0.404 at 192 / 224; the other rows stay smaller so that the reproduction fits 90 minutes); claim "
        "rows (Dice +- IS-Triplet, the "
        "single-image baselines, CoSegNet, CoSegNet-base) train 6 epochs of 300 pairs (600 steps) / 12 epochs of "
        "90 triplets (360 steps), the U-Net ablation rows 2 such epochs and CoSegNet's Table 6 rows 12 (at 3 their "
        "decision network stayed at its prior and the gate blanked the masks), instead of 30 epochs of 41k pairs; on "
        "the synthetic set both families draw from the same 300 training pairs (an epoch: 300 pairs / 90 triplets). "
        "Measured on 2 cores: a step of 3 pairs takes ~0.16 s "
        "with the original head and ~0.35 s with the full-size embedding head at 192 px (0.21 / 0.55-0.67 s at 224)",
        "cpu: AdamW with a cosine learning-rate schedule to 0 over the run (U-Net lr 2e-3, CoSegNet 2e-3 with the "
        "gradient norm clipped at 1) instead of SGD with a per-epoch x0.85 decay: a few hundred steps are too few "
        "for SGD at the papers' rates",
        "cpu: IS-Triplet rows use the same lr as the Dice rows (paper: 10x lower, 1e-4 vs 1e-3): at a few hundred "
        "steps a 10x lower lr leaves the IS-Triplet row under-trained, and the comparison should isolate the loss",
        "cpu: CoSegNet's metric network is fed from f, the encoder's GAP (cosegnet Table 6's first row), instead of "
        "cT9: at 90-600 steps GAP(cT9) barely varies between images (std 0.03 against a mean of 0.38, PASCAL-VOC "
        "training images), the metric embeddings hardly separate and the decision stays at its prior; Table 6 still "
        "trains every layer, cT9 included (cosegnet-ct9)",
        "cpu: CoSegNet's claim rows (cosegnet, cosegnet-single-image) add 16 random triplets per training triplet "
        "(data.head_triplets=16) whose pairs train only the metric and decision networks: their L2 + L3 with the "
        "paper's weights and no mask term, averaged over those pairs, is added to eq. 1 of the batch's 3 triplets. "
        "With metric_layer='f' and the encoder frozen they need no decoder pass. At 3 triplets a step the "
        "decision network saw too few pairs (PASCAL-VOC validation at 192 px, seed 0, head_triplets 0 / 4 / 8: "
        "balanced decision accuracy 0.73 / 0.83 / 0.86, J after the gate 0.368 / 0.381 / 0.387; epoch 15 / 17 / "
        "21 s; at 224 px in bf16, head_triplets 8 / 16 / 32: 0.827 / 0.842 / 0.847, J after the gate 0.430 / 0.429 / "
        "0.429, 257 / 361 / 552 s a run). Table 6's rows keep 0 (at cT3-cT11 each extra pair needs the "
        "decoder up to that layer), so Table 6 compares the layers at one budget and its f row is a run of its own",
        "cpu: CoSegNet GroupNorm before each decoder ReLU (paper: none): without it the decoder's loss diverged in "
        "the first epoch at these learning rates",
        "cpu: CoSegNet decoder at width 0.25 of the paper's channel counts (speed)",
        "cpu: K=2000 pixels per IS-Triplet set (an image has 36864 pixels at 192 px)",
        "cpu: at most 6 test pairs per group and 60 negative pairs (paper: every pair); one 3:1:1 split (paper: 100)",
        "cpu: the mask threshold (and CoSegNet's decision threshold) are chosen on the validation split after "
        "training (threshold_selection='val': best mean Jaccard / best balanced decision accuracy over 0.05-0.95; "
        "neither paper states its thresholds); at these budgets some rows' foreground probabilities stay below 0.5 "
        "(Focal with alpha 0.25, CoSegNet-base trained on null masks for half its pairs) and 0.5 blanks them. "
        "CoSegNet's decision threshold is chosen on 600 positive and 600 negative validation pairs scored by the "
        "decision alone (data.decision_val_pairs=600; the synthetic benchmark: 32 + 32 scored with their masks). "
        "When that threshold's balanced accuracy does not beat what the same search reaches on shuffled labels "
        "(permutation test, 1000 shuffles, 5 %: decision_chance_permutations=1000), the gate is opened and every "
        "pair is accepted: a decision no better than chance on validation does not blank masks. The validation "
        "pairs are spread evenly over the groups (data.val_draw='by_group'), as the test pairs are (at most 6 per "
        "group): drawn uniformly, PASCAL-VOC's larger groups filled most of them (seed 0: Person 5 of the U-Net's "
        "24 and 112 of the 600 decision pairs, five groups none of the 24)",
        "cpu: CoSegNet negatives drawn uniformly at random (data.triplet_mining='random'; paper profile: semi-hard "
        "negatives among 8 candidates, our reading of 'following Schroff et al.'): mining 8 candidates adds a no-grad "
        "pass of 30 images per step (measured 0.2-0.45 of a training step's time on a shared 2-core machine) and 24 "
        "more pair transforms per batch (~0.1 s)",
    ),
)

_PAPER = Profile(
    name="paper",
    description="the papers' own settings (GPU): ResNet-50 U-Net 448x448 30 epochs; VGG-16 CoSegNet 224x224",
    unet_model=ModelSettings(family="unet", encoder="resnet50", pretrained=True),
    cosegnet_model=ModelSettings(family="cosegnet", encoder="vgg16", pretrained=True),
    unet_data=DataSettings(
        image_size=448, batch_size=3, pairs_per_epoch=None, val_pairs=256, test_max_pairs_per_group=None,
        test_negative_pairs=500, num_workers=4, synthetic_train_pairs=2000, synthetic_val_pairs=200,
        synthetic_test_pairs=200,
    ),
    # cosegnet §4.1 "we follow [Schroff et al., 2015] for generating samples": FaceNet's semi-hard negatives,
    # here among 8 candidates per triplet (FaceNet mines over ~1800-image batches, which a batch of 3 triplets
    # cannot give). With 8, a triplet gets a semi-hard negative with probability >= 0.9 once a quarter of its
    # negatives are semi-hard (1 - 0.75^8); the cost is a no-grad pass of 3 * (2 + 8) images through VGG16 and
    # decoder cT1-cT9 per step, ~890 GMAC next to the ~1400 GMAC of the forward + backward of 12 images at 224 px
    # (FLOP count, about +60%; measured on a shared 2-core CPU at cpu-profile scale: 0.2-0.45 of a step for 8).
    cosegnet_data=DataSettings(
        image_size=224, batch_size=3, pairs_per_epoch=None, val_pairs=256, test_max_pairs_per_group=None,
        test_negative_pairs=500, num_workers=4, synthetic_train_pairs=2000, synthetic_val_pairs=200,
        synthetic_test_pairs=200, triplet_mining="semihard", mining_pool=8,
    ),
    unet_epochs=30,
    cosegnet_epochs=50,
    unet_optim=OptimSettings(lr=1e-3, momentum=0.9, weight_decay=1e-4, lr_decay=0.85),
    unet_lr_istriplet=1e-4,
    cosegnet_optim=OptimSettings(lr=1e-5, momentum=0.9, weight_decay=4e-4, lr_decay=1.0),
    cosegnet_weight_decay_internet=5e-4,
    loss=LossSettings(k=5000, margin=3.0, lambda0=1.0, lambda_decay=0.85, triplet_margin=1.0),
    n_splits=100,
    num_threads=None,
    deviations=(
        "paper: CoSegNet's number of epochs is not stated (cosegnet §4.1); 50 chosen",
        "paper: CoSegNet batch of 3 counts triplets (3 positive + 3 negative pairs); the paper's '3 pairs' "
        "cannot hold a whole triplet for L2",
        "paper: 'following Schroff et al.' (cosegnet §4.1) read as semi-hard negative mining among 8 candidates per "
        "triplet (data.triplet_mining='semihard', data.mining_pool=8); cosegnet-base, which has no metric network, "
        "draws its negatives at random",
    ),
)

# gpu: the papers' schedules on the one ImageNet encoder these machines have. ResNet-50 and VGG16 ImageNet weights
# cannot be had offline here, so `paper` cannot run on any machine of this project; `gpu` is the nearest run that
# can: everything the papers state (epochs, every training pair, 448 / 224 px, batch 3, K, m, lambda and lr decay,
# optimizers) with EfficientNet-Lite0 in both families.
_GPU = replace(
    _PAPER,
    name="gpu",
    description="the papers' schedules (30 / 50 epochs, every pair, 448 / 224 px) with the offline EfficientNet-Lite0",
    unet_model=replace(_PAPER.unet_model, encoder="efficientnet_lite0"),
    cosegnet_model=replace(_PAPER.cosegnet_model, encoder="efficientnet_lite0", width_mult=1.0),
    cosegnet_data=replace(_PAPER.cosegnet_data, decision_val_pairs=600),  # as the cpu profile (see there)
    threshold_selection="val",
    deviations=(
        "gpu: mask and decision thresholds chosen on the validation split (threshold_selection='val'; the papers "
        "do not state theirs); the decision threshold on 600 positive + 600 negative validation pairs scored by "
        "the decision alone (data.decision_val_pairs)",
        "gpu: ImageNet EfficientNet-Lite0 (shipped offline) replaces ResNet-50 / VGG-16: no machine here has their "
        "ImageNet weights; its input normalisation is [-1, 1]",
        "gpu: CoSegNet's decoder keeps VGG16's stage widths (512, 512, 256, 128, 64) on Lite0's 320-channel f",
        *_PAPER.deviations,
    ),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_SMOKE, _CPU, _PAPER, _GPU)}


def list_profiles() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The named profile; an unknown name raises ValueError listing the valid ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}") from None
