"""Run records and checkpoints: CSV columns, atomic writes, RNG state round trip, weights_only loading."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch

from cosegkit.train.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from cosegkit.train.records import csv_columns, write_history_csv


def test_csv_columns_per_family(tmp_path):
    assert csv_columns("unet") == ["epoch", "loss", "loss_seg", "loss_dml", "lr", "lambda", "val_precision",
                                   "val_jaccard", "seconds"]
    assert csv_columns("cosegnet")[2:5] == ["loss_l1", "loss_l2", "loss_l3"]
    path = tmp_path / "m.csv"
    write_history_csv(path, [{"epoch": 1, "loss": 0.5, "loss_seg": 0.4, "loss_dml": 0.1, "lr": 0.1,
                              "lambda": 1.0, "val_precision": 0.9, "val_jaccard": 0.5, "seconds": 1.0}],
                      csv_columns("unet"))
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"epoch": "1", "loss": "0.5", "loss_seg": "0.4", "loss_dml": "0.1", "lr": "0.1",
                     "lambda": "1.0", "val_precision": "0.9", "val_jaccard": "0.5", "seconds": "1.0"}]


def test_rng_state_roundtrip_through_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian-free state but a moved position
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    save_checkpoint(tmp_path / "c.pt", {"rng": state, "epoch": 4})
    loaded = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_state(loaded["rng"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    assert loaded["epoch"] == 4


def test_checkpoint_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
