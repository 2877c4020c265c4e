"""Writing results/: tables (ours beside the paper's, with provenance) as CSV and Markdown, and REPORT.md.

Every table that leaves this module carries a provenance caption (profile, dataset, image size, seeds, commit,
wall time). A row whose dataset is absent says so and how to fetch it; it never shows a number. What goes in each
table is ``cosegkit.tables``'s; :func:`write_report` gathers the written tables and figures into one page, whose
figure lines (:func:`figure_link`) ``cosegkit reproduce --withhold-dataset-images`` finds and replaces.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "Provenance",
    "mean_ci95",
    "format_mean_ci",
    "pair_bootstrap_ci95",
    "not_run_message",
    "to_markdown",
    "write_table",
    "STATE_FILE",
    "figure_link",
    "write_report",
]

# Written by `cosegkit reproduce` in its output folder (per notebook: parameters and seconds), read by the report.
STATE_FILE = "reproduce_state.json"


@dataclass
class Provenance:
    """Where a number came from. ``caption()`` is printed under every table we write."""

    profile: str
    dataset: str
    image_size: int | tuple[int, ...]  # a tuple when the runs of a table differ in size
    seeds: tuple[int, ...]
    commit: str
    wall_time_s: float | None = None

    def caption(self) -> str:
        seeds = ",".join(str(s) for s in self.seeds)
        wall = f"; wall time {self.wall_time_s / 60:.1f} min" if self.wall_time_s is not None else ""
        sizes = self.image_size if isinstance(self.image_size, tuple) else (self.image_size,)
        size = " and ".join(f"{s}x{s}" for s in sizes)
        return (
            f"Ours: profile `{self.profile}`, dataset {self.dataset}, {size} px, "
            f"seed(s) {seeds}, commit {self.commit}{wall}."
        )


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t confidence interval (nan half-width for one value)."""
    from scipy import stats

    values = np.asarray(list(values), dtype=float)
    if values.size == 0:
        raise ValueError("mean_ci95() needs at least one value")
    mean = float(values.mean())
    if values.size == 1:
        return mean, math.nan
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return mean, half


def pair_bootstrap_ci95(per_group: dict, baseline: dict | None = None, n_resamples: int = 2000,
                        seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of a test mean over the pairs of one run, resampled within each group.

    ``per_group`` maps each group to the scores of its test images in the order they were scored, two per pair
    (side a, then side b: ``PairScores`` on positive pairs, results.json ``per_group.<g>.jaccard_per_image``).
    Each resample draws, within every group, as many pairs as it has, with replacement, and takes the mean over
    all their images: the spread of the test mean over test sets drawn as ours is (a fixed number of pairs per
    group), with the two images of a pair kept together since they share one prediction. With ``baseline``
    (the same groups, the same pairs in the same order: another model on the same split and seed), the
    interval of the paired mean difference ``per_group - baseline``, each resample taking the same pairs from
    both. It describes the test sample only: a new seed or split moves a run more than this (the seed CIs).

    Written for speed: one vectorised draw per group instead of ``sklearn.utils.resample(stratify=...)`` per
    resample (benchmarks/bench_bootstrap.py).
    """
    if not per_group:
        raise ValueError("pair_bootstrap_ci95() needs scores of at least one group")
    if baseline is not None and sorted(baseline) != sorted(per_group):
        raise ValueError(f"baseline groups {sorted(baseline)} differ from the run's {sorted(per_group)}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an int >= 1, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    totals = np.zeros(n_resamples)
    n_images = 0
    for group in sorted(per_group):
        values = np.asarray(per_group[group], dtype=float)
        if baseline is not None:
            base = np.asarray(baseline[group], dtype=float)
            if base.shape != values.shape:
                raise ValueError(f"group {group!r}: {values.size} scores against {base.size} in the baseline; "
                                 "a paired interval needs the same test pairs")
            values = values - base
        if values.ndim != 1 or values.size == 0 or values.size % 2:
            raise ValueError(f"group {group!r}: expected two scores per pair (an even, non-zero count), "
                             f"got {values.size}")
        pairs = values.reshape(-1, 2).sum(1)
        totals += pairs[rng.integers(0, pairs.size, size=(n_resamples, pairs.size))].sum(1)
        n_images += values.size
    low, high = np.quantile(totals / n_images, [0.025, 0.975])
    return float(low), float(high)


def format_mean_ci(values, digits: int = 3) -> str:
    mean, half = mean_ci95(values)
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def not_run_message(dataset: str, expected_root: str | Path | None, fetch_name: str, parameter: str = "") -> str:
    """The cell text for a row whose dataset is absent here (never a number)."""
    if expected_root:
        where = f"at {expected_root}"
    else:
        where = f"(parameter {parameter} is empty)" if parameter else "(no path given)"
    return f"not run: dataset not found {where}; `cosegkit data fetch {fetch_name} --root DIR`"


def _cell(value) -> str:
    if value is pd.NA:  # a missing entry of an integer column (pandas "Int64")
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3f}" if abs(value) < 1.5 else f"{value:.1f}"
    return str(value).replace("|", "\\|")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' own needs the optional ``tabulate`` package)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_table(frame: pd.DataFrame, out_dir: str | Path, name: str, title: str, provenance: Provenance | None,
                notes: str = "") -> Path:
    """Write ``<out_dir>/tables/<name>.csv`` and ``.md`` (title, table, provenance caption, notes)."""
    tables = Path(out_dir) / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    frame.to_csv(tables / f"{name}.csv", index=False)
    parts = [f"### {title}", "", to_markdown(frame), ""]
    if provenance is not None:
        parts.append(provenance.caption())
    if notes:
        parts.append(notes)
    markdown = tables / f"{name}.md"
    markdown.write_text("\n".join(parts).rstrip() + "\n")
    return markdown


def figure_link(name: str) -> str:
    """The line of REPORT.md that shows the figure ``<out>/figures/<name>.png``."""
    return f"![{name}](figures/{name}.png)"


def write_report(out: str | Path, profile: str, data_label: str) -> Path:
    """Write ``<out>/REPORT.md``: the notebooks' wall time (from ``<out>/reproduce_state.json`` when `cosegkit
    reproduce` wrote one), every table under ``<out>/tables/`` and every figure under ``<out>/figures/``."""
    out = Path(out)
    tables = sorted((out / "tables").glob("*.md"))
    figures = sorted((out / "figures").glob("*.png"))
    state_file = out / STATE_FILE
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    timing = pd.DataFrame([{"notebook": name, "minutes": entry["seconds"] / 60}
                           for name, entry in sorted(state.items())])
    lines = ["# cosegkit results", "",
             f"Profile `{profile}`, data: {data_label}. Every table below gives its own",
             "provenance line; rows marked paper are the published numbers.", ""]
    if not timing.empty:
        lines += ["## Notebook wall time", "", *[f"- {r.notebook}: {r.minutes:.1f} min" for r in timing.itertuples()],
                  f"- total: {timing.minutes.sum():.1f} min", ""]
    lines += ["## Tables", ""]
    for table in tables:
        lines += [table.read_text(), ""]
    lines += ["## Figures", ""]
    lines += [figure_link(figure.stem) for figure in figures]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"{len(tables)} tables and {len(figures)} figures -> {report}")
    return report
