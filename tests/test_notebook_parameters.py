"""Every notebook's parameters + set-up cells: relative paths resolve against the repository, whatever the
working directory, and unknown profiles are refused (issue #12 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _head(notebook: Path, **params) -> dict:
    """Execute the parameters cell, papermill-style injected values, then the set-up cell; return the names."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    ns: dict = {}
    exec("".join(cells[0]["source"]), ns)
    ns.update(params)
    exec("".join(cells[1]["source"]), ns)
    return ns


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_relative_paths_resolve_against_the_repository(notebook, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = _head(notebook)
    assert ns["out"] == REPO / "runs" / "notebooks"
    ns = _head(notebook, output_dir="results/x", data_root="data/voc")
    assert ns["out"] == REPO / "results" / "x" and ns["data_root"] == str(REPO / "data" / "voc")
    ns = _head(notebook, output_dir=str(tmp_path / "abs"))
    assert ns["out"] == tmp_path / "abs"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_unknown_profile_is_refused(notebook):
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        _head(notebook, profile="laptop")
