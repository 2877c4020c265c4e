"""CoSegNet triplets "following Schroff et al." (cosegnet §4.1): semi-hard negative mining (issue #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cosegkit.cli import main
from cosegkit.losses import select_semihard_negatives
from cosegkit.tasks import build_run_data
from cosegkit.train import build_settings, train
from cosegkit.train.data import TrainSamples, collate
from cosegkit.train.modeling import _mine_negatives, build_model, set_train_mode, train_transform


def _pick(d_ap, pool, margin=1.0):
    return select_semihard_negatives(torch.tensor(d_ap), torch.tensor(pool), margin).tolist()


def test_semihard_rule_by_hand():
    # d_ap = 1, margin 1: semi-hard means 1 < d_an < 2
    assert _pick([1.0], [[2.5, 1.6, 1.2, 0.5]]) == [2]  # 1.6 and 1.2 are semi-hard: the closer one, 1.2
    assert _pick([1.0], [[2.5, 0.7, 0.4, 3.0]]) == [2]  # none semi-hard, two harder than the positive: the hardest
    assert _pick([1.0], [[2.5, 2.1, 3.0]]) == [1]  # none semi-hard, all beyond the margin: the closest
    assert _pick([1.0], [[1.0, 2.0, 1.9]]) == [2]  # bounds are strict: d_an = d_ap and d_an = d_ap + m are not
    assert _pick([1.0], [[1.0, 2.0]]) == [0]  # ... so the hardest is kept
    assert _pick([1.0], [[1.5, 1.5]]) == [0]  # ties: the lowest index (candidate 0 is the random negative)
    assert _pick([1.0], [[0.3]]) == [0]  # a pool of one: that one
    # rows are independent; the margin is the one given (0.3): row 0 semi-hard 1.2; row 1 none, hardest 0.1;
    # row 2: 3.4 and 3.5 lie beyond 3 + 0.3, so the hardest, 3.4
    assert _pick([1.0, 0.2, 3.0], [[1.2, 0.5], [0.1, 0.15], [3.5, 3.4]], margin=0.3) == [0, 0, 1]
    assert _pick([1.0], [[1.2, 1.25]], margin=0.1) == [0]  # 1.25 is outside a 0.1 margin: 1.2 (hardest anyway)
    assert _pick([1.0], [[1.25, 1.2]], margin=0.1) == [1]


def test_semihard_rule_checks_its_arguments():
    with pytest.raises(ValueError, match="d_an_pool must have shape"):
        select_semihard_negatives(torch.ones(2), torch.ones(3, 4), 1.0)
    with pytest.raises(ValueError, match="margin must be > 0"):
        select_semihard_negatives(torch.ones(2), torch.ones(2, 4), 0.0)
    with pytest.raises(ValueError, match="d_ap must have 1 dimensions"):
        select_semihard_negatives(torch.ones(2, 1), torch.ones(2, 4), 1.0)


def _smoke(**overrides):
    return build_settings("cosegnet", "smoke", overrides={"progress": False, **overrides})


def test_pool_starts_with_the_random_negative_and_is_pure_in_seed_epoch_index():
    s = _smoke(**{"data.triplet_mining": "semihard", "data.mining_pool": 5})
    data = build_run_data(s)
    samples = data.epoch_samples(0)
    for i, spec in enumerate(samples):
        cand = data.negative_candidates(spec, 0, i)
        assert len(cand) == 5 and cand[0] == (spec[1], spec[2])
        assert cand == data.negative_candidates(spec, 0, i)
        allowed = set(data.synthetic_negatives[spec[0]])
        assert set(cand) <= allowed  # every candidate shares no category with anchor and positive
        assert len(set(cand)) == min(5, len(allowed))  # without replacement while there are enough
    assert any(data.negative_candidates(spec, 1, i) != data.negative_candidates(spec, 0, i)
               for i, spec in enumerate(samples))
    assert data.epoch_samples(0) == build_run_data(_smoke()).epoch_samples(0)  # mining leaves the triplets as drawn


def test_pool_items_reuse_the_random_modes_negative_pair():
    mined = _smoke(**{"data.triplet_mining": "semihard", "data.mining_pool": 3})
    model = build_model(mined.model)
    tf = train_transform(mined, model)
    data_m, data_r = build_run_data(mined), build_run_data(_smoke())
    item_m = TrainSamples(data_m, data_m.epoch_samples(0), 0, tf)[1]
    item_r = TrainSamples(data_r, data_r.epoch_samples(0), 0, tf)[1]
    assert set(item_m) == {"pos", "pool"} and set(item_r) == {"pos", "neg"}
    for key, value in item_r["neg"].items():
        assert torch.equal(item_m["pool"][key][0], value)
        assert item_m["pool"][key].shape == (3, *value.shape)
    batch = collate([item_m, item_m])
    assert batch["pool"]["image_b"].shape == (2, 3, 3, 64, 64)


class _Embedder(torch.nn.Module):
    """metric_embedding(image) = the image's mean value (1-D), so distances are set by the test."""

    def metric_embedding(self, image):
        return image.mean(dim=(1, 2, 3))[:, None]


def test_mining_picks_by_the_rule_and_returns_the_picked_pairs():
    def images(values):
        return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1, 1).expand(-1, 1, 3, 4, 4)[:, 0]

    pos = {"image_a": images([0.0, 0.0]), "image_b": images([1.0, 0.5])}  # d_ap = 1 and 0.5
    cand = torch.tensor([[2.5, 1.6, 1.2, 0.5], [3.0, 2.0, 4.0, 5.0]])  # row 0: semi-hard 1.2; row 1: hardest 2.0
    pool = {"image_a": torch.zeros(2, 4, 3, 4, 4), "image_b": cand.view(2, 4, 1, 1, 1).expand(2, 4, 3, 4, 4),
            "mask_a": torch.zeros(2, 4, 4, 4), "mask_b": torch.zeros(2, 4, 4, 4), "label": torch.zeros(2, 4)}
    neg, semihard = _mine_negatives(_Embedder(), pos, pool, margin=1.0)
    assert neg["image_b"][:, 0, 0, 0].tolist() == pytest.approx([1.2, 2.0])
    assert neg["image_b"].shape == (2, 3, 4, 4) and neg["label"].shape == (2,)
    assert semihard.item() == pytest.approx(0.5)


def test_mining_keeps_the_mode_and_leaves_no_trace_in_the_weights():
    s = _smoke()
    model = build_model(s.model)
    set_train_mode(model, s.model.freeze_bn)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.training for m in bns)
    g = torch.Generator().manual_seed(0)
    pos = {"image_a": torch.randn(2, 3, 64, 64, generator=g), "image_b": torch.randn(2, 3, 64, 64, generator=g)}
    pool = {"image_a": torch.randn(2, 4, 3, 64, 64, generator=g), "image_b": torch.randn(2, 4, 3, 64, 64, generator=g)}
    _mine_negatives(model, pos, pool, margin=1.0)
    assert all(m.training and m.track_running_stats for m in bns)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # running means / variances / batch counters untouched
    assert all(p.grad is None for p in model.parameters())


def test_semihard_with_a_pool_of_one_is_the_random_mode_bit_for_bit(tmp_path):
    random_run = train("cosegnet", "smoke", tmp_path / "random", overrides={"progress": False})
    one = train("cosegnet", "smoke", tmp_path / "one", overrides={
        "progress": False, "data.triplet_mining": "semihard", "data.mining_pool": 1})

    def strip(history):
        return [{k: v for k, v in row.items() if k not in ("seconds", "mining_semihard_fraction")} for row in history]

    assert strip(one.history) == strip(random_run.history)
    assert one.test == random_run.test


def test_smoke_cosegnet_trains_end_to_end_with_semihard_mining(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--experiment", "cosegnet", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--set", "data.triplet_mining=semihard"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["data"]["triplet_mining"] == "semihard"
    assert config["settings"]["data"]["mining_pool"] == 8
    history = json.loads((out / "results.json").read_text())["history"]
    assert len(history) == 2
    assert all(0.0 <= row["mining_semihard_fraction"] <= 1.0 for row in history)
    assert all(np.isfinite(row["loss"]) for row in history)


def test_semihard_is_refused_where_there_is_nothing_to_mine_with():
    for experiment, why in (("cosegnet-base", "cosegnet-base has no metric network"),
                            ("unet-dice", "SiameseUNet trains on pairs")):
        s = build_settings(experiment, "smoke", overrides={"data.triplet_mining": "semihard"})
        with pytest.raises(ValueError, match=f"data.triplet_mining='semihard'.*{why}"):
            build_run_data(s)


def test_real_data_candidates_are_negatives_of_anchor_and_positive(rectangles_folder, tmp_path):
    mining = {"data.triplet_mining": "semihard", "data.mining_pool": 4, "data.test_negative_pairs": 2}
    data = build_run_data(_smoke(**mining), rectangles_folder)
    ds = data.dataset
    for i, (a, p, n) in enumerate(data.epoch_samples(0)):
        cand = data.negative_candidates((a, p, n), 0, i)
        assert cand[0] == n and len(cand) == 4 and len(set(cand)) == 4  # of the 12 training images of the other groups
        assert all(ds.group_of(c) not in (ds.group_of(a), ds.group_of(p)) for c in cand)
    run = train("cosegnet", "smoke", tmp_path / "real", data_root=rectangles_folder,
                overrides={"progress": False, "epochs": 1, **mining})
    assert "mining_semihard_fraction" in run.history[0]


def test_semihard_run_killed_mid_epoch_resumes_exactly(tmp_path):
    """The pick depends on the weights, which the checkpoint restores: resume still matches (see test_train_resume)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    args = ["--experiment", "cosegnet", "--profile", "smoke", "--seed", "0", "--no-progress", "--set", "epochs=3",
            "--set", "data.triplet_mining=semihard", "--set", "data.mining_pool=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

    def cli(*extra, kill_at=None):
        # tests/sigkill_train.py: the same command, SIGKILLed before global step `kill_at` (a train() hook)
        command = (["-m", "cosegkit.train"] if kill_at is None
                   else [str(Path(__file__).with_name("sigkill_train.py")), str(kill_at)])
        return subprocess.Popen([sys.executable, *command, "train", *args, *extra], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    full, killed = tmp_path / "full", tmp_path / "killed"
    p_full = cli("--out", str(full))
    p_kill = cli("--out", str(killed), kill_at=4)  # 3 steps per epoch: epoch 2, step 2
    assert p_kill.wait(timeout=240) == -signal.SIGKILL
    resumed = cli("--out", str(killed), "--resume")
    assert resumed.wait(timeout=240) == 0, resumed.communicate()[1][-2000:]
    assert p_full.wait(timeout=240) == 0, p_full.communicate()[1][-2000:]
    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert b["resumed"] is True
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a["history"]] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in b["history"]]
    assert a["test"] == b["test"]
