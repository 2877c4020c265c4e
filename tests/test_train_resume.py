"""Exact resume: a run SIGKILLed mid-epoch and resumed ends with the same metrics as an uninterrupted run.

Both runs are separate processes (smoke profile, CPU, seed 0, 1 thread). The kill is injected by
`sigkill_train.py`, which runs the same command with a `train(on_step=...)` hook that makes the process send
itself SIGKILL before a given global step, so the kill always lands mid-epoch (epoch 2 of 3, step 2 of 4), after
the epoch-1 checkpoint and before the epoch-2 one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

SMOKE = ["--experiment", "unet-dice-istriplet", "--profile", "smoke", "--seed", "0", "--no-progress",
         "--set", "epochs=3"]


KILL_AT = str(Path(__file__).with_name("sigkill_train.py"))  # `python KILL_AT STEP train ...`


def _cli(*args: str, kill_at: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = ["-m", "cosegkit.train"] if kill_at is None else [KILL_AT, str(kill_at)]
    return subprocess.Popen([sys.executable, *command, "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _without_times(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    # the two first legs run concurrently (2 cores)
    p_full = _cli(*SMOKE, "--out", str(full))
    p_kill = _cli(*SMOKE, "--out", str(killed), kill_at=6)
    r_kill = _finish(p_kill)
    assert r_kill.returncode == -signal.SIGKILL, r_kill.stderr[-2000:]
    assert not (killed / "results.json").exists()
    ckpt = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 0  # only epoch 1 was completed
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "sampler", "history"}
    assert len((killed / "metrics.csv").read_text().strip().splitlines()) == 2  # header + epoch 1

    r_resume = _finish(_cli(*SMOKE, "--out", str(killed), "--resume"))
    assert r_resume.returncode == 0, r_resume.stderr[-2000:]
    r_full = _finish(p_full)
    assert r_full.returncode == 0, r_full.stderr[-2000:]

    a = json.loads((full / "results.json").read_text())
    b = json.loads((killed / "results.json").read_text())
    assert b["resumed"] is True and a["resumed"] is False
    assert _without_times(a["history"]) == _without_times(b["history"])  # every loss term, lr, lambda, val P/J
    assert a["test"] == b["test"]  # exact equality of the final test metrics
    assert len(a["history"]) == 3
    cfg = json.loads((killed / "config.json").read_text())
    assert "fault_sigkill_step" not in cfg["settings"] and cfg["wall_time_s"] > 0  # the fault is not a setting
