"""`cosegkit experiments | train | evaluate` on the smoke profile, on a tiny generated dataset folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cosegkit.cli import main
from cosegkit.models.feature_cache import weight_layout
from cosegkit.train import list_experiments, train
from cosegkit.train.records import data_root_of_run

H, W = 72, 96  # not multiples of 32: predictions must be resized back to this size before scoring


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 groups x 10 images: noise background and a group-coloured rectangle (the mask)."""
    root = tmp_path_factory.mktemp("coseg")
    rng = np.random.default_rng(0)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    for group, colour in colours.items():
        (root / group / "images").mkdir(parents=True)
        (root / group / "masks").mkdir()
        for i in range(10):
            image = rng.integers(0, 120, size=(H, W, 3), dtype=np.uint8)
            mask = np.zeros((H, W), dtype=bool)
            y, x = rng.integers(0, H - 30), rng.integers(0, W - 40)
            mask[y:y + rng.integers(15, 30), x:x + rng.integers(20, 40)] = True
            image[mask] = colour
            Image.fromarray(image).save(root / group / "images" / f"img_{i}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / group / "masks" / f"img_{i}.png")
    return root


def test_experiments_prints_one_per_line_name_first(capsys):
    assert main(["experiments"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [e.name for e in list_experiments()]
    assert all(len(line.split()) > 1 for line in lines)  # a description follows the name


def test_unknown_experiment_and_profile_are_errors_listing_valid_names(tmp_path, capsys):
    assert main(["train", "--experiment", "unet-tversky", "--profile", "smoke", "--out", str(tmp_path / "x")]) == 2
    assert "unet-dice-istriplet" in capsys.readouterr().err
    assert main(["train", "--experiment", "cosegnet", "--profile", "laptop", "--out", str(tmp_path / "x")]) == 2
    assert "smoke, cpu, paper, gpu" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_then_evaluate_on_a_folder(folder, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--experiment", "cosegnet", "--profile", "smoke", "--data-root", str(folder),
            "--out", str(run), "--seed", "1", "--no-progress", "--set", "epochs=1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "positive pairs: P" in out and "decision accuracy" in out

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["experiment"] == "cosegnet" and cfg["profile"] == "smoke" and cfg["seed"] == 1
    # recorded relative to the run folder (no absolute machine path in a committed run), resolved back on read
    assert not Path(cfg["data_root"]).is_absolute()
    assert (run / cfg["data_root"]).resolve() == folder.resolve()
    assert data_root_of_run(run) == str(folder.resolve())
    assert cfg["data_source"] == f"folder {folder.name}"
    assert str(tmp_path) not in (run / "config.json").read_text()
    assert {"commit", "dirty"} <= set(cfg["git"]) and cfg["versions"]["torch"]
    assert cfg["wall_time_s"] > 0 and cfg["settings"]["loss"]["negative_weights"] == [0.0, 0.5, 0.5]
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "loss", "loss_l1", "loss_l2", "loss_l3", "lr", "lambda", "val_precision",
                             "val_jaccard", "seconds"]
    assert len(rows) == 1 and float(rows[0]["loss"]) > 0
    res = json.loads((run / "results.json").read_text())
    # 3:1:1 per group of 10 -> 2 test images per group -> 1 positive pair per group (smoke caps at 2)
    assert res["test"]["positive"]["n_pairs"] == 3 and res["test"]["positive"]["n_images"] == 6
    assert set(res["test"]["positive"]["per_group"]) == {"red", "green", "blue"}
    assert res["test"]["negative"]["n_pairs"] == 4 and res["test"]["negative"]["decision_accuracy"] is not None

    # a second train into the same dir needs --resume; with --resume a finished run is returned as is
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    capsys.readouterr()

    assert main(["evaluate", "--run", str(run), "--data-root", str(folder), "--max-pairs-per-group", "4",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "positive pairs: P" in out and "negative pairs: 12" in out
    report = json.loads((run / f"evaluation_{folder.name}.json").read_text())
    assert report["positive"]["n_pairs"] == 12 and report["positive"]["n_images"] == 24
    assert 0.0 <= report["positive"]["jaccard"] <= 1.0 and 0.0 <= report["positive"]["precision"] <= 1.0
    assert report["negative"]["n_pairs"] == 12 and 0.0 <= report["negative"]["empty_fraction"] <= 1.0


def test_python_api_on_the_synthetic_set(tmp_path):
    result = train("unet-dice", "smoke", tmp_path / "r", seed=0, overrides={"epochs": 1, "progress": False})
    assert result.test["positive"]["n_images"] == 12  # 6 synthetic test pairs
    assert result.test["negative"]["decision_accuracy"] is None  # no decision network
    assert 0.0 <= result.test["negative"]["empty_fraction"] <= 1.0
    assert [row["epoch"] for row in result.history] == [1]
    assert result.history[0]["lambda"] == ""  # no DML term
    assert (tmp_path / "r" / "checkpoint.pt").is_file()


def test_repeated_splits_report_mean_and_std(folder, tmp_path):
    from cosegkit.train import train_splits

    agg = train_splits("unet-ce", "smoke", tmp_path / "splits", n_splits=2, data_root=folder,
                       overrides={"epochs": 1, "progress": False})
    assert agg["n_splits"] == 2 and len(agg["splits"]) == 2
    js = [row["jaccard"] for row in agg["splits"]]
    assert agg["jaccard_mean"] == pytest.approx(np.mean(js))
    assert agg["jaccard_std"] == pytest.approx(np.std(js, ddof=1))
    seeds = [json.loads((tmp_path / "splits" / f"split_{i:03d}" / "config.json").read_text())
             ["settings"]["data"]["split_seed"] for i in range(2)]
    assert seeds == [0, 1]  # a different random 3:1:1 split per repeat
    assert json.loads((tmp_path / "splits" / "splits.json").read_text())["n_splits"] == 2


def test_bf16_and_channels_last_on_cpu_are_opt_in(tmp_path, monkeypatch):
    from cosegkit.train import trainer as trainer_module

    seen = []
    step = trainer_module.Trainer.train_epoch

    def spy(self, epoch):  # what the trainer decided, and the layout its model really has
        seen.append((self.amp, self.channels_last, self.model.encoder.feature_cache is not None,
                     weight_layout(self.model.encoder)))
        return step(self, epoch)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", spy)
    overrides = {"epochs": 1, "progress": False, "model.freeze_encoder": True}  # the cpu profile's cached path
    plain = train("unet-dice", "smoke", tmp_path / "fp32", seed=0, overrides=overrides)
    fast = train("unet-dice", "smoke", tmp_path / "bf16", seed=0,
                 overrides={**overrides, "amp_on_cpu": True, "channels_last_on_cpu": True})
    assert seen == [(False, False, True, ""), (True, True, True, "channels_last")]
    a, b = plain.history[0]["loss"], fast.history[0]["loss"]
    assert a != b and abs(a - b) < 0.05 * abs(a)  # bf16 rounding, not another computation


def test_the_cpu_profile_trains_in_bf16_channels_last_and_the_others_do_not():
    from cosegkit.train.experiments import build_settings

    for exp in ("unet-dice", "cosegnet", "unet-dice-istriplet"):
        cpu = build_settings(exp, "cpu", seed=0)
        assert (cpu.amp_on_cpu, cpu.channels_last_on_cpu) == (True, True)
        assert any("bf16" in d for d in cpu.deviations)  # listed where the profile departs from the papers
        for other in ("smoke", "paper", "gpu"):
            s = build_settings(exp, other, seed=0)
            assert (s.amp_on_cpu, s.channels_last_on_cpu) == (False, False)
