"""Run records: run.json (config, git commit, seed, package versions, wall time) and metrics.csv (per epoch).

Both files are rewritten whole and atomically (temp file + os.replace) so that a run killed at any instant
leaves either the old or the new version, never half a file; on --resume the CSV is rewritten from the
history stored in the checkpoint, so rows of a killed epoch never survive.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = [
    "atomic_write_text",
    "write_json",
    "read_json",
    "write_history_csv",
    "git_commit",
    "package_versions",
    "CSV_COLUMNS",
    "csv_columns",
]

# Columns common to every run; loss terms of the family go between "loss" and "lr".
CSV_COLUMNS = ("epoch", "loss", "lr", "lambda", "val_precision", "val_jaccard", "seconds")
LOSS_TERMS = {
    "unet": ("loss_seg", "loss_dml"),
    "cosegnet": ("loss_l1", "loss_l2", "loss_l3"),
    "cosegnet-base": ("loss_l1",),
}


def csv_columns(family: str) -> list[str]:
    return ["epoch", "loss", *LOSS_TERMS[family], "lr", "lambda", "val_precision", "val_jaccard", "seconds"]


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return json.loads(path.read_text(encoding="utf-8"))


def write_history_csv(path: Path, history: list[dict], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({c: row.get(c, "") for c in columns})
    atomic_write_text(path, buf.getvalue())


def git_commit() -> dict:
    """The commit of the repository holding this package (and whether the tree is dirty); 'unknown' outside git.

    Dirty means a tracked file outside ``results/`` differs from the commit: a reproduction rewrites the committed
    results while it runs, and that must not mark its own provenance dirty."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    if commit.returncode != 0:
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("cosegkit", "torch", "torchvision", "numpy", "scikit-learn", "scikit-image", "pandas", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
