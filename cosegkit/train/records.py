"""Run records: config.json (settings, git commit, seed, package versions, wall time), metrics.csv (per epoch),
results.json (the test report), and `RunResult`, a finished run as read back or returned by the trainer.

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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from cosegkit.tasks import task_for
from cosegkit.train.settings import TrainSettings

__all__ = [
    "CONFIG_NAME",
    "RESULTS_NAME",
    "CSV_NAME",
    "RunResult",
    "format_commit",
    "atomic_write_text",
    "write_json",
    "read_json",
    "data_root_for_config",
    "data_root_of_run",
    "write_history_csv",
    "git_commit",
    "package_versions",
    "CSV_COLUMNS",
    "csv_columns",
]

CONFIG_NAME = "config.json"
RESULTS_NAME = "results.json"
CSV_NAME = "metrics.csv"

# Columns common to every run; loss terms of the family (its task's loss_terms) go between "loss" and "lr".
CSV_COLUMNS = ("epoch", "loss", "lr", "lambda", "val_precision", "val_jaccard", "seconds")


def csv_columns(family: str) -> list[str]:
    return ["epoch", "loss", *task_for(family).loss_terms, "lr", "lambda", "val_precision", "val_jaccard",
            "seconds"]


@dataclass
class RunResult:
    """A run: its folder, settings, per-epoch history, test report (results.json) and wall time."""

    run_dir: Path
    settings: TrainSettings
    history: list[dict]
    test: dict | None
    wall_time_s: float
    resumed: bool = False
    extra: dict = field(default_factory=dict)
    # the thresholds its test used (results.json "thresholds"; cosegkit.train.evaluate.select_thresholds)
    thresholds: dict | None = None

    @property
    def experiment(self) -> str:
        return self.settings.experiment

    @property
    def precision(self) -> float:
        return self.test["positive"]["precision"]

    @property
    def jaccard(self) -> float:
        return self.test["positive"]["jaccard"]


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


def data_root_for_config(data_root, run_dir: Path) -> str | None:
    """How config.json records the dataset folder: relative to the run folder (POSIX separators), so that a
    committed run names no absolute path of the machine it ran on and still finds its data when the repository
    and the dataset move together. None (the synthetic set) stays None."""
    if data_root is None:
        return None
    return Path(os.path.relpath(Path(data_root).resolve(), Path(run_dir).resolve())).as_posix()


def data_root_of_run(run_dir: Path, config: dict | None = None) -> str | None:
    """The absolute dataset folder a run was trained on (None: synthetic), from its config.json. Reads both the
    relative form :func:`data_root_for_config` writes and the absolute paths that older runs recorded."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / CONFIG_NAME) if config is None else config
    stored = cfg.get("data_root")
    if stored is None:
        return None
    return str((run_dir.resolve() / stored).resolve())


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


def format_commit(record: dict | None) -> str:
    """How reports name a commit: a :func:`git_commit` record (as stored in config.json's ``git``) as its first 10
    hex digits, with ``+dirty`` when tracked files had changed; ``unknown`` outside git or without a record."""
    commit = (record or {}).get("commit", "unknown")
    if commit == "unknown":
        return "unknown"
    return commit[:10] + ("+dirty" if record.get("dirty") else "")


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("cosegkit", "torch", "torchvision", "numpy", "scikit-learn", "scikit-image", "pandas", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
