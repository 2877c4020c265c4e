"""Notebook helpers in cosegkit.companion that do not train."""

from cosegkit.companion import data_tag, run_dir_for


def test_run_folders_never_look_like_the_dataset_folder(tmp_path):
    root = tmp_path / "pascal_voc_coseg"
    root.mkdir()
    assert data_tag(None) == "synthetic"
    assert data_tag(str(root)) == "pascal-voc-coseg"
    run = run_dir_for(tmp_path / "out", "cpu", str(root), "unet-dice", 1)
    assert run == tmp_path / "out" / "runs" / "cpu" / "pascal-voc-coseg" / "unet-dice" / "seed1"
    assert "pascal_voc_coseg" not in run.relative_to(tmp_path).as_posix()
