"""Data parallel on gloo: 2 CPU processes x batch 1 give the same run as 1 process x batch 2.

Why they can match: the epoch's samples and every augmentation are pure functions of (seed, epoch, index);
DistributedSampler(shuffle=False) gives rank r the items r, r+2, ..., so global batch k holds the same two
pairs in both runs; the cross-entropy loss is a per-pixel mean and every image has the same pixel count, so the
mean of the two ranks' gradients (DDP) equals the gradient of the 2-pair batch; BatchNorm is frozen
(`model.freeze_bn=all`, eval-mode statistics), because train-mode BN would normalise each rank's batch of 1 with its
own statistics and the runs would differ by design; evaluation predictions are gathered from both ranks and
scored in pair order. What remains is floating-point summation order (gradient all-reduce vs batched sums), so
losses are compared with rtol 1e-4 and P / J with an absolute tolerance of 2e-3 (a few boundary pixels).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from cosegkit.train import train

OVERRIDES = {"model.freeze_bn": "all", "data.pairs_per_epoch": 8, "progress": False}
ARGS = ["--experiment", "unet-ce", "--profile", "smoke", "--seed", "0", "--no-progress",
        "--set", "model.freeze_bn=all", "--set", "data.pairs_per_epoch=8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                           "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}


def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "--monitor-interval", "0.2",
         "-m", "cosegkit.train", "train", *ARGS, "--out", str(ddp_dir), "--set", "data.batch_size=1"],
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-3000:]
    train("unet-ce", "smoke", single_dir, seed=0, overrides={**OVERRIDES, "data.batch_size": 2})

    a = json.loads((single_dir / "results.json").read_text())
    b = json.loads((ddp_dir / "results.json").read_text())
    assert json.loads((ddp_dir / "config.json").read_text())["world_size"] == 2
    assert len(a["history"]) == len(b["history"]) == 2
    for ra, rb in zip(a["history"], b["history"], strict=True):
        for key in ("loss", "loss_seg"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4), key
        assert rb["lr"] == ra["lr"]
        assert rb["val_precision"] == pytest.approx(ra["val_precision"], abs=2e-3)
        assert rb["val_jaccard"] == pytest.approx(ra["val_jaccard"], abs=2e-3)
    for part in ("positive", "negative"):
        assert b["test"][part]["n_images"] == a["test"][part]["n_images"]
        assert b["test"][part]["precision"] == pytest.approx(a["test"][part]["precision"], abs=2e-3)
        assert b["test"][part]["jaccard"] == pytest.approx(a["test"][part]["jaccard"], abs=2e-3)
        assert set(b["test"][part]["per_group"]) == set(a["test"][part]["per_group"])
    # only rank 0 wrote records: one CSV with one header and one row per epoch
    assert len((ddp_dir / "metrics.csv").read_text().strip().splitlines()) == 3
