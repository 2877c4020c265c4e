"""The run cache (cosegkit.train.run_cache): run folders keyed by settings, and runs shared between experiments."""

import pytest

from cosegkit.notebook_params import data_tag
from cosegkit.train.experiments import build_settings
from cosegkit.train.run_cache import run_dir_for, run_experiments, run_key

# Two registered experiments that differ only in name: the pixel-DML comparison's "no DML" row is the like-for-like
# embedding-head Dice row of Table 2.
TWINS = ("pixel-dml-none", "unet-dice-embedding")


def test_run_folders_never_look_like_the_dataset_folder(tmp_path):
    root = tmp_path / "pascal_voc_coseg"
    root.mkdir()
    assert data_tag(None) == "synthetic"
    assert data_tag(str(root)) == "pascal-voc-coseg"
    run = run_dir_for(tmp_path / "out", "cpu", str(root), "unet-dice", 1)
    assert run.parent == tmp_path / "out" / "runs" / "cpu" / "pascal-voc-coseg"
    assert run.name.startswith("unet-") and "-s1-" in run.name
    # the epochs tell apart runs that the rest of the name does not (cpu: claim rows 6, pixel-DML rows 2)
    assert "-e6-s0-" in run_dir_for(tmp_path, "cpu", str(root), "unet-dice-embedding", 0).name
    assert "-e2-s0-" in run_dir_for(tmp_path, "cpu", str(root), "pixel-dml-none", 0).name
    assert "pascal_voc_coseg" not in run.relative_to(tmp_path).as_posix()


def test_run_key_follows_what_is_trained_not_what_it_is_called():
    a = build_settings(TWINS[0], "smoke", seed=0)
    b = build_settings(TWINS[1], "smoke", seed=0)
    assert a.experiment != b.experiment and run_key(a) == run_key(b)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"data.split_seed": 0})) == run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"progress": False})) == run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"data.split_seed": 1})) != run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=1)) != run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"optim.lr": 0.5})) != run_key(a)
    assert run_key(build_settings("unet-dice-istriplet", "smoke", seed=0)) != run_key(a)
    # a setting added after runs were committed changes the key only away from the default it was added at
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"model.skip_attention": False})) == run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"model.skip_attention": True})) != run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"model.feature_dropout": 0.0})) == run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"model.feature_dropout": 0.4})) != run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"amp_on_cpu": False})) == run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"amp_on_cpu": True})) != run_key(a)
    assert run_key(build_settings(TWINS[0], "smoke", seed=0, overrides={"channels_last_on_cpu": True})) != run_key(a)


def test_synthetic_set_sizes_key_synthetic_runs_only(tmp_path):
    root = tmp_path / "pascal_voc_coseg"
    root.mkdir()
    bigger = {"data.synthetic_train_pairs": 300, "data.synthetic_test_pairs": 99}
    for experiment in ("cosegnet", "unet-dice"):
        on_folder = run_dir_for(tmp_path, "cpu", str(root), experiment, 0)
        assert run_dir_for(tmp_path, "cpu", str(root), experiment, 0, bigger) == on_folder
        assert run_dir_for(tmp_path, "cpu", None, experiment, 0, bigger) != run_dir_for(tmp_path, "cpu", None,
                                                                                      experiment, 0)
        # the rest of the data settings still key folder runs
        assert run_dir_for(tmp_path, "cpu", str(root), experiment, 0, {"data.val_pairs": 7}) != on_folder
    settings = build_settings("cosegnet", "cpu", seed=0)
    assert run_key(settings, on_folder=True) != run_key(settings)  # the old key: every data setting


@pytest.mark.parametrize("first, second", [TWINS])
def test_experiments_with_the_same_settings_are_one_run_trained_once(tmp_path, first, second):
    out = tmp_path / "out"
    (trained,) = run_experiments([first], "smoke", out, progress=False)
    (shared,) = run_experiments([second], "smoke", out, progress=False)
    assert trained.extra["reused"] is False and shared.extra["reused"] is True
    assert (trained.experiment, shared.experiment) == (first, second)
    assert shared.run_dir == trained.run_dir and shared.test == trained.test
    assert len(list((out / "runs" / "smoke" / "synthetic").iterdir())) == 1


def test_split_zero_of_the_splits_protocol_is_the_seed_run(tmp_path):
    from cosegkit.train.run_cache import run_splits

    out = tmp_path / "out"
    agg = run_splits("cosegnet", "smoke", out, n_splits=2, seed=0, progress=False)
    assert agg["n_splits"] == 2 and len(agg["splits"]) == 2
    (seed0,) = run_experiments(["cosegnet"], "smoke", out, seeds=[0], progress=False)
    assert seed0.extra["reused"] is True
    assert agg["splits"][0]["jaccard"] == seed0.jaccard
    assert len(list((out / "runs" / "smoke" / "synthetic").iterdir())) == 2
