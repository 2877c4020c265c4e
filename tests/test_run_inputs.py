"""Bad input to `cosegkit train | evaluate` (issue #12): one error line naming the file or parameter, exit 2,
nothing written; small and one-group datasets; logs that stay short when output is not a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations

import pytest
from conftest import write_mask

from cosegkit.cli import main

SMOKE = ["--profile", "smoke", "--no-progress", "--set", "epochs=1"]


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A finished one-epoch SiameseUNet run on the synthetic set (seed 0)."""
    run = tmp_path_factory.mktemp("runs") / "unet"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--out", str(run)]) == 0
    return run


# -- item 1: the dataset is checked before the first step ---------------------------------------------------

def _test_split_image(root, seed=0):
    from cosegkit.data import load_dataset
    from cosegkit.data.splits import split_indices

    ds = load_dataset("folder", root)
    return ds.path_of(split_indices(ds, seed=seed)["test"][0])


def test_train_checks_every_split_before_training(make_folder, tmp_path, capsys):
    root = make_folder({"cat": 10, "dog": 10})
    bad = _test_split_image(root)  # a test image: today found only after every epoch has run
    bad.write_bytes(bad.read_bytes()[:-200])
    run = tmp_path / "run"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--data-root", str(root), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "corrupt or truncated image" in err and "Traceback" not in err
    assert not run.exists()  # nothing written


def test_train_checks_masks_the_training_split_never_draws(make_folder, tmp_path, capsys):
    root = make_folder({"cat": 10, "dog": 10})
    # pairs_per_epoch=1: one pair is drawn, so most masks are never read by training
    for k in range(10):
        write_mask(root / "cat" / "masks" / f"img_{k:03d}.png", fg=7)  # not binary
    run = tmp_path / "run"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--set", "data.pairs_per_epoch=1",
                 "--set", "data.test_negative_pairs=1", "--data-root", str(root), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "not binary" in err and str(root / "cat" / "masks") in err
    assert not run.exists()


# -- item 2: one-group and small datasets --------------------------------------------------------------------

def test_evaluate_on_one_group_scores_positive_pairs(synthetic_run, make_folder, capsys):
    one = make_folder({"cow": 5}, name="cow")
    assert main(["evaluate", "--run", str(synthetic_run), "--data-root", str(one), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "positive pairs: P" in out and "no negative pair" in out and "one group" in out
    report = json.loads((synthetic_run / "evaluation_cow.json").read_text())
    assert report["positive"]["n_pairs"] == len(list(combinations(range(5), 2)))
    assert report["negative"] is None


def test_evaluate_asking_for_too_many_negatives_names_the_option(synthetic_run, make_folder, capsys):
    root = make_folder({"cat": 2, "dog": 2}, name="small")
    assert main(["evaluate", "--run", str(synthetic_run), "--data-root", str(root), "--negative-pairs", "50",
                 "--no-progress"]) == 2
    err = _err_line(capsys)
    assert "--negative-pairs" in err and "50" in err and "4 exist" in err


def test_cosegnet_on_one_group_says_how_many_groups_are_needed(make_folder, tmp_path, capsys):
    one = make_folder({"cow": 10}, name="cow")
    run = tmp_path / "run"
    assert main(["train", "--experiment", "cosegnet", *SMOKE, "--set", "data.test_negative_pairs=0",
                 "--data-root", str(one), "--out", str(run)]) == 2
    err = _err_line(capsys)
    assert "at least 2 groups" in err and "1 group" in err and "--data-root" in err
    assert not run.exists()


def test_too_few_test_negatives_names_the_split_and_the_setting(make_folder, tmp_path, capsys):
    root = make_folder({"cat": 5, "dog": 5})
    run = tmp_path / "run"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--set", "data.test_negative_pairs=500",
                 "--data-root", str(root), "--out", str(run)]) == 2
    err = _err_line(capsys)
    assert "test split" in err and "data.test_negative_pairs" in err and "500" in err
    assert not run.exists()


# -- item 3: damaged checkpoints and mismatched --resume ------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_checkpoint_is_one_error_line(synthetic_run, tmp_path, capsys, damage):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(synthetic_run, run)
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2] if damage == "truncated" else b"")
    assert main(["evaluate", "--run", str(run), "--no-progress"]) == 2
    err = _err_line(capsys)
    assert str(ckpt) in err and "train again into a new folder" in err
    assert main(["train", "--experiment", "unet-dice", "--profile", "smoke", "--no-progress", "--set", "epochs=2",
                 "--out", str(run), "--resume"]) == 2
    err = _err_line(capsys)
    assert str(ckpt) in err and "train again into a new folder" in err


def test_resume_with_another_seed_or_data_root_stops(synthetic_run, make_folder, capsys):
    base = ["train", "--experiment", "unet-dice", *SMOKE, "--out", str(synthetic_run), "--resume"]
    assert main([*base, "--seed", "3"]) == 2
    err = _err_line(capsys)
    assert "--seed" in err and "3" in err and "0" in err
    root = make_folder({"cat": 3, "dog": 3})
    assert main([*base, "--data-root", str(root)]) == 2
    err = _err_line(capsys)
    assert "synthetic" in err and str(root) in err
    assert main([*base, "--seed", "0"]) == 0  # the run's own seed is fine
    capsys.readouterr()


# -- item 4: --set values are type-checked -------------------------------------------------------------------

@pytest.mark.parametrize("item, expected", [
    ("epochs=1.5", "int"), ("epochs=abc", "int"), ("epochs=true", "int"), ("optim.lr=fast", "float"),
    ("model=3", "section"), ("amp=1", "bool"), ("loss.positive_weights=[1,2]", "3"),
])
def test_set_values_are_type_checked(tmp_path, capsys, item, expected):
    run = tmp_path / "run"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--set", item, "--out", str(run)]) == 2
    err = _err_line(capsys)
    key, _, value = item.partition("=")
    assert key in err and expected in err and value in err.replace(" ", "")
    assert not (run / "config.json").exists()


def test_set_accepts_values_of_the_declared_type():
    from cosegkit.train.experiments import build_settings

    s = build_settings("unet-dice-istriplet", "smoke", overrides={
        "optim.lr": 1, "loss.dml": None, "data.split": [1, 1, 1], "optim.grad_clip": 2, "model.encoder": "tiny"})
    assert s.optim.lr == 1.0 and isinstance(s.optim.lr, float) and s.loss.dml is None
    assert s.data.split == (1, 1, 1) and s.optim.grad_clip == 2.0


# -- item 5: evaluate --run without --data-root ------------------------------------------------------------------

def test_evaluate_without_data_root_scores_the_runs_folder(make_folder, tmp_path, capsys):
    root = make_folder({"cat": 10, "dog": 10}, name="pets")
    run = tmp_path / "run"
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--data-root", str(root), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--max-pairs-per-group", "2", "--no-progress"]) == 0
    report = json.loads((run / "evaluation_pets.json").read_text())
    assert report["data"] == str(root.resolve()) and report["positive"]["n_pairs"] == 4
    assert not (run / "evaluation_synthetic.json").exists()
    root.rename(tmp_path / "moved")
    assert main(["evaluate", "--run", str(run), "--no-progress"]) == 2
    err = _err_line(capsys)
    assert str(root.resolve()) in err and "--data-root" in err


# -- item 6: readable logs when output is not a terminal ---------------------------------------------------------

def _cli_to_file(args, log):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        return subprocess.run([sys.executable, "-m", "cosegkit.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                              env=env, timeout=240).returncode


def test_redirected_logs_are_one_line_per_epoch_and_per_set(tmp_path):
    run, log = tmp_path / "run", tmp_path / "train.log"
    assert _cli_to_file(["train", "--experiment", "cosegnet", "--profile", "smoke", "--out", str(run)], log) == 0
    text = log.read_text()
    assert "\r" not in text and len(text.splitlines()) < 40, text
    assert "epoch 1:" in text and "epoch 2:" in text  # one line per epoch still
    log = tmp_path / "eval.log"
    assert _cli_to_file(["evaluate", "--run", str(run)], log) == 0
    lines = log.read_text().splitlines()
    assert "\r" not in log.read_text() and len(lines) == 3, lines  # positive, negative, wrote ...


def test_bars_only_on_terminals_and_in_jupyter(monkeypatch):
    import io

    from cosegkit.train import progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(progress, "_in_jupyter", lambda: False)
    assert progress.show_bars(True) is False
    monkeypatch.setattr(progress, "_in_jupyter", lambda: True)
    assert progress.show_bars(True) is True
    assert progress.show_bars(False) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progress, "_in_jupyter", lambda: False)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress.show_bars(True) is True


# -- item 10: smaller messages -------------------------------------------------------------------------------

def test_negative_seed_names_the_option(tmp_path, capsys):
    assert main(["train", "--experiment", "unet-dice", *SMOKE, "--seed", "-1", "--out", str(tmp_path / "r")]) == 2
    assert "--seed" in _err_line(capsys)
    assert not (tmp_path / "r").exists()
