"""Atomic checkpoints with every piece of state an exact resume needs.

A checkpoint holds model, optimizer, scheduler, the RNG states of torch (CPU and CUDA), numpy and python, the
sampler state, the per-epoch history and the epoch number. It is written to a temp file in the same folder,
fsynced and moved into place with os.replace, so a kill at any instant leaves the previous checkpoint intact.
Everything is stored as tensors or plain Python types so that `torch.load(..., weights_only=True)` reads it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng_state() -> dict:
    """torch / numpy / python RNG states as tensors and plain types (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_state[0]),
            "state": torch.tensor(py_state[1], dtype=torch.int64),
            "gauss_next": py_state[2],
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to `<path>.tmp`, fsync, then os.replace over `path` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    # make the rename itself durable
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# What a resume reads from a checkpoint.
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "sampler", "epoch", "history", "elapsed_s")


def load_checkpoint(path: Path, map_location="cpu", required: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint written by `save_checkpoint`; a damaged one (empty, truncated, not a checkpoint, or
    without one of the `required` keys) raises ValueError naming the file, what is wrong and what to do,
    instead of torch's traceback."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; nothing to resume")
    advice = "it cannot be resumed or evaluated: train again into a new folder"
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: damaged checkpoint (empty file); {advice}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError ... depending on the damage
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: damaged checkpoint (truncated or not a checkpoint: {reason}); {advice}") from e
    missing = [k for k in required if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path}: damaged checkpoint (missing {', '.join(missing)}); {advice}")
    return ckpt
