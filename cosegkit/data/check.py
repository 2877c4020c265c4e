"""`check_dataset`: decode every image and mask of a dataset folder and report every bad file.

Checks (each failure names the file): the folder layout (see the loader), every image decodes completely
(truncated files fail: PIL's LOAD_TRUNCATED_IMAGES is forced off), every image has a mask of the same size,
and every mask is binary (0/255 or 0/1). Also counts byte-identical images shared between groups (not an
error, but splits and negative pairs must know about them).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosegkit.data.items import Problem, decode_image, decode_mask
from cosegkit.data.official import LOADERS

__all__ = ["GroupSummary", "CheckReport", "check_dataset", "check_items"]


@dataclass(frozen=True)
class GroupSummary:
    name: str
    images: int
    valid: int
    mean_fg: float  # mean foreground fraction over the group's valid items (nan if none)


@dataclass
class CheckReport:
    """Result of `check_dataset`: ``.ok``, ``.groups`` (per-group summary), ``.problems`` [(path, message)]."""

    root: Path
    groups: list[GroupSummary] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)
    shared_images: int = 0  # image files whose bytes also appear in another group

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def n_images(self) -> int:
        return sum(g.images for g in self.groups)

    @property
    def n_valid(self) -> int:
        return sum(g.valid for g in self.groups)

    def format(self) -> str:
        width = max([len("group")] + [len(g.name) for g in self.groups])
        lines = [f"{'group':<{width}}  images  valid  mean_fg"]
        for g in self.groups:
            fg = "    -" if np.isnan(g.mean_fg) else f"{g.mean_fg:7.3f}"
            lines.append(f"{g.name:<{width}}  {g.images:6d}  {g.valid:5d}  {fg}")
        lines.append(f"{'total':<{width}}  {self.n_images:6d}  {self.n_valid:5d}")
        lines.append(f"{self.root}: {self.n_valid} valid items in {len(self.groups)} groups "
                     f"({self.shared_images} image files share their bytes with an image in another group)")
        if self.ok:
            lines.append("OK: no problems found")
        else:
            lines.append(f"FAILED: {len(self.problems)} bad file(s):")
            lines += [f"  {path}: {msg}" for path, msg in self.problems]
        return "\n".join(lines)


def check_dataset(root: Path | str, name: str = "folder", **options) -> CheckReport:
    """Check every file of dataset ``name`` (default: the generic `CosegFolder` layout) under ``root``.

    Never raises for bad files: they are collected in ``report.problems`` (a missing or non-directory root
    still raises FileNotFoundError / NotADirectoryError; an unknown ``name`` raises ValueError).
    """
    key = str(name).lower()
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(LOADERS)}")
    root = Path(root)
    entries, scan_problems = LOADERS[key].scan(root, **options)
    problems: list[Problem] = list(scan_problems)
    counts: dict[str, int] = defaultdict(int)
    fg: dict[str, list[float]] = defaultdict(list)
    groups_of_hash: dict[str, set[str]] = defaultdict(set)
    hash_of: list[str] = []
    for group, path, mask_path in entries:
        counts[group] += 1
        digest, fraction, problem = _check_entry(path, mask_path)
        if digest is not None:
            groups_of_hash[digest].add(group)
            hash_of.append(digest)
        if problem is not None:
            problems.append(problem)
        else:
            fg[group].append(fraction)
    # Groups with no listed image (e.g. an empty folder) still show up in the summary through their problems.
    summaries = [GroupSummary(g, counts[g], len(fg[g]), float(np.mean(fg[g])) if fg[g] else float("nan"))
                 for g in sorted(counts)]
    shared = sum(1 for h in hash_of if len(groups_of_hash[h]) > 1)
    return CheckReport(root=root, groups=summaries, problems=[(p.path, p.message) for p in problems],
                       shared_images=shared)


def _check_entry(path: Path, mask_path: Path | None) -> tuple[str | None, float | None, Problem | None]:
    """(sha256 of the image bytes or None, foreground fraction or None, the first problem or None) of one item."""
    try:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
    except OSError as e:
        return None, None, Problem(path, _reason(e, path))
    try:
        image = decode_image(path, data)
    except (OSError, ValueError) as e:
        return digest, None, Problem(path, _reason(e, path))
    if mask_path is None:
        return digest, None, Problem(path, "no mask file recorded for this image")
    try:
        mask = decode_mask(mask_path)
    except (OSError, ValueError) as e:
        return digest, None, Problem(mask_path, _reason(e, mask_path))
    if mask.shape != image.shape[:2]:
        return digest, None, Problem(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                                                f"{path.name} is {image.shape[1]}x{image.shape[0]}")
    return digest, float(mask.mean()), None


def check_items(dataset, indices) -> list[tuple[Path, str]]:
    """The checks of `check_dataset` on the items ``indices`` of a loaded dataset (exactly the files a run will
    read): [(path, message)] for every bad image or mask, empty if all decode."""
    problems = []
    for i in sorted({int(i) for i in indices}):
        record = dataset.record(i)
        _, _, problem = _check_entry(record.path, record.mask_path)
        if problem is not None:
            problems.append((problem.path, problem.message))
    return problems


def _reason(err: Exception, path: Path) -> str:
    # Decoders prefix their messages with the path; the report already shows it.
    msg = str(err)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
