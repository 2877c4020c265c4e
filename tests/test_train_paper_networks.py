"""IS-Triplet Tables 1-2 run the paper's two networks: `cosegkit train` records which head each row trained."""

from __future__ import annotations

import json

import pytest

from cosegkit.cli import main


@pytest.mark.parametrize("experiment, head", [("unet-dice", "original"), ("unet-dice-istriplet", "embedding"),
                                              ("unet-dice-embedding", "embedding")])
def test_cli_run_records_the_head(tmp_path, experiment, head):
    out = tmp_path / experiment
    assert main(["train", "--experiment", experiment, "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--set", "epochs=1"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["model"]["head"] == head
    assert json.loads((out / "results.json").read_text())["test"]["positive"]["jaccard"] >= 0.0
