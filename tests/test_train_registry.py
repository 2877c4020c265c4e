"""Experiment registry, profiles and settings (no training)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cosegkit.train import (
    apply_overrides,
    build_settings,
    get_profile,
    list_experiments,
    list_profiles,
)
from cosegkit.train.experiments import get_experiment
from cosegkit.train.settings import settings_from_dict, settings_to_dict

TABLE_ROWS = [
    "unet-dice", "unet-dice-istriplet", "unet-ce", "unet-ce-istriplet", "unet-focal", "unet-focal-istriplet",
    "unet-dice-embedding", "unet-ce-embedding", "unet-focal-embedding",
    "cosegnet", "cosegnet-base", "cosegnet-f", "cosegnet-ct3", "cosegnet-ct6", "cosegnet-ct9",
    "cosegnet-ct11", "pixel-dml-none", "pixel-dml-istriplet", "pixel-dml-discriminative", "pixel-dml-group",
    "pixel-dml-single-image",
    "unet-single-image", "cosegnet-single-image",
]


def test_every_table_row_is_registered():
    names = [e.name for e in list_experiments()]
    assert names == TABLE_ROWS
    assert all(e.description for e in list_experiments())


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="smoke, cpu, paper, gpu"):
        get_profile("laptop")
    assert list_profiles() == ["smoke", "cpu", "paper", "gpu"]


def test_unknown_experiment_lists_valid_ones():
    with pytest.raises(ValueError, match="unet-dice-istriplet.*cosegnet-ct11"):
        build_settings("unet-tversky", "smoke")


def test_paper_profile_is_the_papers_settings():
    # is_triplet_coseg §4.1.3
    s = build_settings("unet-dice", "paper")
    assert (s.optim.lr, s.optim.momentum, s.optim.weight_decay, s.optim.lr_decay) == (1e-3, 0.9, 1e-4, 0.85)
    assert (s.data.image_size, s.data.batch_size, s.epochs) == (448, 3, 30)
    s = build_settings("unet-focal-istriplet", "paper")
    assert s.optim.lr == 1e-4 and s.loss.dml == "istriplet" and s.loss.seg == "focal"
    assert (s.loss.k, s.loss.margin, s.loss.lambda0, s.loss.lambda_decay) == (5000, 3.0, 1.0, 0.85)
    assert s.model.encoder == "resnet50" and s.model.head == "embedding"
    # cosegnet §4.1
    c = build_settings("cosegnet", "paper")
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.lr_decay) == (1e-5, 0.9, 4e-4, 1.0)
    assert (c.data.image_size, c.data.batch_size, c.loss.triplet_margin) == (224, 3, 1.0)
    assert c.loss.positive_weights == (0.33, 0.33, 0.33) and c.loss.negative_weights == (0.0, 0.5, 0.5)
    assert c.model.encoder == "vgg16" and c.model.metric_layer == "cT9"
    assert build_settings("cosegnet", "paper", dataset="internet").optim.weight_decay == 5e-4
    assert build_settings("cosegnet-ct3", "paper").model.metric_layer == "cT3"
    assert build_settings("cosegnet-f", "paper").model.metric_layer == "f"
    assert build_settings("cosegnet-base", "paper").model.family == "cosegnet-base"
    assert build_settings("unet-single-image", "paper").model.single_image
    assert build_settings("cosegnet-single-image", "paper").model.single_image


def test_pixel_dml_rows_share_one_lr():
    lrs = {build_settings(f"pixel-dml-{t}", "cpu").optim.lr for t in ("none", "istriplet", "discriminative", "group")}
    assert len(lrs) == 1
    # the paper's 10x lower lr with IS-Triplet (is_triplet_coseg §4.1.3); the cpu profile states that it drops it
    assert build_settings("unet-dice-istriplet", "paper").optim.lr < build_settings("unet-dice", "paper").optim.lr
    cpu = build_settings("unet-dice-istriplet", "cpu")
    assert cpu.optim.lr == build_settings("unet-dice", "cpu").optim.lr
    assert any("IS-Triplet rows use the same lr" in d for d in cpu.deviations)


def test_cpu_profile_states_its_deviations():
    s = build_settings("cosegnet", "cpu")
    assert s.model.encoder == "efficientnet_lite2" and s.model.pretrained and s.model.freeze_encoder
    assert s.model.metric_layer == "f" and build_settings("cosegnet-ct9", "cpu").model.metric_layer == "cT9"
    assert build_settings("cosegnet", "paper").model.metric_layer == "cT9"
    assert any("lr" in d for d in s.deviations) and any("frozen" in d for d in s.deviations)
    unet = build_settings("unet-dice", "cpu")
    assert unet.model.encoder == "efficientnet_lite2" and unet.model.freeze_encoder and unet.data.augment == "flip"
    for name in ("paper", "gpu"):  # the papers fine-tune their encoders on jittered images
        paper = build_settings("unet-dice", name)
        assert not paper.model.freeze_encoder and paper.data.augment == "flip_jitter"
        assert paper.optim.schedule == "exponential"


def test_claim_rows_get_the_claim_budget():
    claims = ("unet-dice", "unet-dice-istriplet", "unet-dice-embedding", "unet-single-image")
    for name in claims:
        assert build_settings(name, "cpu").epochs == 6
    for name in ("unet-ce", "unet-focal-istriplet", "pixel-dml-none", "pixel-dml-single-image"):
        assert build_settings(name, "cpu").epochs == 2
    for name in ("cosegnet", "cosegnet-base", "cosegnet-single-image"):
        assert build_settings(name, "cpu").epochs == 12
    # Table 6's rows get the claim epochs too (at 3 epochs the decision gate blanked them), but not the claim rows'
    # head triplets and size, so its f row is a run of its own at cpu; at paper, where neither differs, Table 6's
    # cT9 row is the cosegnet run itself, trained once
    assert build_settings("cosegnet-ct3", "cpu").epochs == 12
    from cosegkit.train.run_cache import run_key
    assert run_key(build_settings("cosegnet-f", "cpu")) != run_key(build_settings("cosegnet", "cpu"))
    assert run_key(build_settings("cosegnet-ct9", "paper")) == run_key(build_settings("cosegnet", "paper"))
    assert build_settings("unet-dice", "paper").epochs == build_settings("unet-ce", "paper").epochs == 30


def test_only_the_unet_claim_rows_tune_the_deepest_encoder_level():
    from cosegkit.notebook_params import synthetic_overrides

    claims = ("unet-dice", "unet-dice-istriplet", "unet-dice-embedding", "unet-single-image")
    for name in claims:
        s = build_settings(name, "cpu")
        assert (s.model.tune_encoder_levels, s.optim.encoder_lr_mult) == (1, 0.1), name
        assert s.model.freeze_encoder and s.model.tuned_levels_float32, name
    for name in ("unet-ce", "unet-focal-istriplet", "pixel-dml-none", "pixel-dml-single-image", "cosegnet",
                 "cosegnet-base", "cosegnet-single-image", "cosegnet-ct9"):
        s = build_settings(name, "cpu")
        assert (s.model.tune_encoder_levels, s.model.tuned_levels_float32) == (0, False), name
    # the synthetic benchmark's claim rows stay frozen
    for name in ("unet-dice", "unet-single-image"):
        s = build_settings(name, "cpu", overrides=synthetic_overrides("cpu", {}))
        assert (s.model.tune_encoder_levels, s.model.tuned_levels_float32) == (0, False), name
    # other profiles leave every row as their model has it
    for profile in ("smoke", "paper", "gpu"):
        for name in claims:
            s = build_settings(name, profile)
            assert (s.model.tune_encoder_levels, s.model.tuned_levels_float32) == (0, False), (profile, name)


def test_unet_claim_rows_train_at_the_claim_size_and_the_synthetic_benchmark_at_its_own():
    from cosegkit.notebook_params import synthetic_overrides
    from cosegkit.train.profiles import get_profile

    cpu = get_profile("cpu")
    assert cpu.unet_ablation_image_size is not None and cpu.unet_ablation_image_size != cpu.unet_data.image_size
    for name in ("unet-dice", "unet-single-image"):  # original-head claim rows
        assert build_settings(name, "cpu").data.image_size == cpu.unet_data.image_size
    for name in ("unet-ce", "unet-focal"):  # original-head ablation rows
        assert build_settings(name, "cpu").data.image_size == cpu.unet_ablation_image_size
    # the embedding head follows the rows' role: claim rows at the claim size, ablation rows at the ablation size
    assert cpu.unet_embedding_head_image_size is None
    for name in ("unet-dice-istriplet", "unet-dice-embedding"):  # embedding-head claim rows
        assert build_settings(name, "cpu").data.image_size == cpu.unet_data.image_size
    for name in ("unet-ce-istriplet", "pixel-dml-none", "pixel-dml-single-image"):  # embedding-head ablation rows
        assert build_settings(name, "cpu").data.image_size == cpu.unet_ablation_image_size
    # a profile that sets the embedding-head size applies it to every embedding-head row, claim rows included
    sized = dataclasses.replace(cpu, unet_embedding_head_image_size=160)
    for name in ("unet-dice-istriplet", "pixel-dml-none"):
        assert get_experiment(name).settings(sized, seed=0, dataset="folder").data.image_size == 160
    original_head = get_experiment("unet-dice").settings(sized, seed=0, dataset="folder")
    assert original_head.data.image_size == cpu.unet_data.image_size
    # the synthetic benchmark: the profile's size, unless the notebook's own image_size parameter overrides it
    assert synthetic_overrides("cpu", {"epochs": 3}) == {"data.image_size": cpu.synthetic_image_size, "epochs": 3,
                                                         "data.decision_val_pairs": None,
                                                         "model.tune_encoder_levels": 0,
                                                         "model.tuned_levels_float32": False}
    assert synthetic_overrides("cpu", {"data.image_size": 96})["data.image_size"] == 96
    # smoke has no synthetic size of its own
    assert synthetic_overrides("smoke", {}) == {"data.decision_val_pairs": None, "model.tune_encoder_levels": 0,
                                                "model.tuned_levels_float32": False}
    # the decision pairs: many on real data, the profile's own number on the synthetic benchmark (cheap: default)
    assert build_settings("cosegnet", "cpu").data.decision_val_pairs == 600
    synthetic = build_settings("cosegnet", "cpu", overrides=synthetic_overrides("cpu", {}))
    assert synthetic.data.decision_val_pairs is None and synthetic.data.image_size == cpu.synthetic_image_size
    # profiles without an ablation size keep one size for every row
    assert build_settings("unet-ce", "paper").data.image_size == build_settings("unet-dice", "paper").data.image_size


def test_gpu_profile_is_the_papers_schedule_with_the_offline_encoder():
    for name in ("unet-dice", "unet-dice-istriplet", "cosegnet", "cosegnet-base"):
        paper, gpu = build_settings(name, "paper"), build_settings(name, "gpu")
        assert gpu.model.encoder == "efficientnet_lite0" != paper.model.encoder
        assert (gpu.epochs, gpu.optim, gpu.loss) == (paper.epochs, paper.optim, paper.loss)
        assert (gpu.data.image_size, gpu.data.batch_size, gpu.data.pairs_per_epoch) == (
            paper.data.image_size, paper.data.batch_size, None)
        assert gpu.data.triplet_mining == paper.data.triplet_mining
        assert any("EfficientNet-Lite0" in d for d in gpu.deviations)


def test_overrides_and_json_roundtrip():
    s = build_settings("cosegnet", "smoke", seed=3, overrides={"epochs": 5, "optim.lr": 0.5,
                                                               "loss.negative_weights": [0.0, 0.4, 0.6]})
    assert s.epochs == 5 and s.optim.lr == 0.5 and s.seed == 3 and s.loss.negative_weights == (0.0, 0.4, 0.6)
    back = settings_from_dict(json.loads(json.dumps(settings_to_dict(s))))
    assert back == s
    with pytest.raises(ValueError, match="unknown field 'lrr'"):
        apply_overrides(s, {"optim.lrr": 1})
    with pytest.raises(ValueError, match="not a settings section"):
        apply_overrides(s, {"epochs.x": 1})
    with pytest.raises(ValueError, match="divisible by 32"):
        apply_overrides(s, {"data.image_size": 100})
    with pytest.raises(ValueError, match="loss.seg"):
        apply_overrides(s, {"loss.seg": "tversky"})


def test_optimizer_setting_builds_sgd_or_adamw_with_encoder_multiplier():
    import torch

    from cosegkit.train.modeling import build_model, make_optimizer

    assert build_settings("cosegnet", "paper").optim.optimizer == "sgd"
    assert build_settings("cosegnet", "paper").model.decoder_norm == "none"
    cpu = build_settings("cosegnet", "cpu")
    assert cpu.optim.optimizer == "adamw" and cpu.model.decoder_norm == "group"
    assert build_settings("unet-dice", "cpu").optim.optimizer == "adamw"
    assert build_settings("unet-dice", "paper").optim.optimizer == "sgd"
    s = build_settings("cosegnet", "smoke", overrides={"optim.optimizer": "adamw", "optim.lr": 0.002,
                                                      "optim.encoder_lr_mult": 0.5})
    opt = make_optimizer(build_model(s.model), s.optim)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.002]
    assert isinstance(make_optimizer(build_model(s.model), build_settings("cosegnet", "smoke").optim), torch.optim.SGD)
    with pytest.raises(ValueError, match="optim.optimizer must be 'sgd' or 'adamw'"):
        apply_overrides(s, {"optim.optimizer": "adam"})


def test_decoder_norm_setting_is_checked_by_name():
    s = build_settings("cosegnet", "smoke")
    assert apply_overrides(s, {"model.decoder_norm": "group"}).model.decoder_norm == "group"
    with pytest.raises(ValueError, match="model.decoder_norm must be 'none' or 'group', got 'batch'"):
        apply_overrides(s, {"model.decoder_norm": "batch"})


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_table_rows_use_the_papers_two_networks(profile):
    # IS-Triplet Tables 1-2: "Gong et al." = Fig. 1a (original head, seg loss alone); "modified framework" =
    # Fig. 1b (embedding head, seg + lambda * IS-Triplet)
    for seg in ("dice", "ce", "focal"):
        gong = build_settings(f"unet-{seg}", profile)
        modified = build_settings(f"unet-{seg}-istriplet", profile)
        ours = build_settings(f"unet-{seg}-embedding", profile)
        assert (gong.model.head, gong.loss.seg, gong.loss.dml) == ("original", seg, None)
        assert (modified.model.head, modified.loss.seg, modified.loss.dml) == ("embedding", seg, "istriplet")
        # ours: the same head as the IS-Triplet row, without the IS-Triplet term, at the no-DML lr
        assert (ours.model.head, ours.loss.seg, ours.loss.dml) == ("embedding", seg, None)
        assert ours.optim == gong.optim
    baseline = build_settings("unet-single-image", profile)
    assert baseline.model.head == "original" and baseline.model.single_image and baseline.loss.dml is None
    for tag in ("none", "istriplet", "discriminative", "group"):
        assert build_settings(f"pixel-dml-{tag}", profile).model.head == "embedding"
    assert all(e.description.startswith("ours:") for e in list_experiments() if e.name.endswith("-embedding"))


def test_triplet_mining_by_profile():
    paper = build_settings("cosegnet", "paper")
    assert paper.data.triplet_mining == "semihard" and paper.data.mining_pool == 8
    for name in ("cosegnet-f", "cosegnet-ct3", "cosegnet-ct6", "cosegnet-ct9", "cosegnet-ct11",
                 "cosegnet-single-image"):
        assert build_settings(name, "paper").data.triplet_mining == "semihard"
    assert build_settings("cosegnet-base", "paper").data.triplet_mining == "random"  # no metric network
    assert build_settings("cosegnet", "smoke").data.triplet_mining == "random"
    cpu = build_settings("cosegnet", "cpu")
    assert cpu.data.triplet_mining == "random"
    assert any("triplet_mining" in d for d in cpu.deviations)


def test_triplet_mining_settings_are_checked_by_name():
    s = build_settings("cosegnet", "smoke")
    mined = apply_overrides(s, {"data.triplet_mining": "semihard", "data.mining_pool": 4})
    assert (mined.data.triplet_mining, mined.data.mining_pool) == ("semihard", 4)
    assert settings_from_dict(json.loads(json.dumps(settings_to_dict(mined)))) == mined
    with pytest.raises(ValueError, match="data.triplet_mining must be one of random, semihard, got 'hardest'"):
        apply_overrides(s, {"data.triplet_mining": "hardest"})
    with pytest.raises(ValueError, match="data.mining_pool must be an int >= 1"):
        apply_overrides(s, {"data.mining_pool": 0})
    for bad in (2.5, True):  # refused by the --set type check before the field sees them
        with pytest.raises(ValueError, match="data.mining_pool.*expected int"):
            apply_overrides(s, {"data.mining_pool": bad})
    # a config.json written before these settings existed still loads (defaults: random)
    old = settings_to_dict(s)
    del old["data"]["triplet_mining"], old["data"]["mining_pool"]
    assert settings_from_dict(old) == s
