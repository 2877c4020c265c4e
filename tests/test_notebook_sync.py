"""Each notebook's percent source (``notebooks/NN_name.py``, the file a maintainer edits) and its paired
``.ipynb`` (what papermill and nbval run) hold the same cells; the ``.ipynb`` is committed without outputs; every
notebook keeps one ``parameters`` cell of plain literals and opens with what it regenerates.

A failure here means a pair is out of sync: run ``.venv/bin/jupytext --sync notebooks/[0-9]*.py`` (see README)."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[tuple[str, str, list[str]]]:
    """(type, source, tags) of every cell, as jupytext reads the file (not its bytes)."""
    notebook = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), list(c.metadata.get("tags", []))) for c in notebook.cells]


def test_every_notebook_has_its_percent_source_and_no_generator_remains():
    assert NOTEBOOKS, "no numbered notebooks found"
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]
    assert not (NOTEBOOK_DIR / "build_notebooks.py").exists()
    for source in SOURCES:
        assert "format_name: percent" in source.read_text(), f"{source.name} is not a py:percent file"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_percent_source_and_notebook_hold_the_same_cells(source):
    notebook = source.with_suffix(".ipynb")
    py_cells, nb_cells = _cells(source), _cells(notebook)
    assert len(py_cells) == len(nb_cells), f"{source.name} and {notebook.name} differ in their number of cells"
    for index, (py_cell, nb_cell) in enumerate(zip(py_cells, nb_cells, strict=True)):
        assert py_cell == nb_cell, f"cell {index} of {source.name} differs from {notebook.name}: run jupytext --sync"
    assert jupytext.read(notebook).metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(notebook):
    for cell in jupytext.read(notebook).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{notebook.name} holds outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_parameters_cell_of_plain_literals_and_a_regenerates_header(source):
    cells = jupytext.read(source).cells
    assert cells[0].cell_type == "markdown" and "**Regenerates:**" in cells[0].source
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.name}: {len(tagged)} cells tagged parameters"
    assert tagged[0] is next(c for c in cells if c.cell_type == "code"), "the parameters cell is the first code cell"
    for statement in ast.parse(tagged[0].source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1
        ast.literal_eval(statement.value)  # raises on anything but a plain literal
