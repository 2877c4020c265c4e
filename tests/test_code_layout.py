"""Layout rules of issue #15, checked on the source: short functions in the trainer and the tasks, one place that
branches on the model family, and an engine and an evaluation that do not import each other."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cosegkit"
MAX_LINES = 60


def _functions(folder: str):
    for path in sorted((PACKAGE / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path, node


@pytest.mark.parametrize("folder", ["train", "tasks"])
def test_no_function_is_longer_than_60_lines(folder):
    long = [f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions(folder) if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, long


def test_only_the_task_registry_branches_on_the_family():
    registry = PACKAGE / "tasks" / "__init__.py"
    hits = [f"{path.relative_to(PACKAGE)}:{n}" for path in sorted(PACKAGE.rglob("*.py")) if path != registry
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if "family ==" in line]
    assert not hits, hits


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_engine_and_evaluation_do_not_import_each_other():
    assert "cosegkit.train.evaluate" not in _imported_modules(PACKAGE / "train" / "engine.py")
    assert "cosegkit.train.engine" not in _imported_modules(PACKAGE / "train" / "evaluate.py")


def test_committed_run_folders_keep_their_keys():
    """A run folder's name ends with the run_key of the settings in its config.json: the committed runs (some
    written before a setting was retired) are found again, not trained again."""
    from cosegkit.train.run_cache import run_key, run_slug
    from cosegkit.train.settings import settings_from_dict

    configs = sorted((PACKAGE.parent / "results").glob("*/runs/*/*/*/config.json"))
    if not configs:
        pytest.skip("no committed runs")
    for cfg in configs:
        config = json.loads(cfg.read_text())
        settings = settings_from_dict(config["settings"])
        # keyed as run_dir_for keys them: a run on a dataset folder without the synthetic set's sizes
        key = run_key(settings, on_folder=config["data_root"] is not None)
        assert cfg.parent.name == f"{run_slug(settings)}-s{settings.seed}-{key}", cfg
