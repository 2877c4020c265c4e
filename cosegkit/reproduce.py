"""`cosegkit reproduce`: run the ordered notebooks with papermill, resuming where a previous run stopped.

``<out>`` defaults to ``results/<profile>/``, so profiles never overwrite each other. Executed copies go to
``<out>/notebooks/``; the notebooks themselves write tables to ``<out>/tables/`` and figures to ``<out>/figures/``.
A notebook counts as done when its executed copy was written by a run with the same parameters;
``<out>/reproduce_state.json`` records that, so a rerun skips finished notebooks.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from cosegkit.figures import FIGURE_METADATA_KEY, dataset_pixel_figures
from cosegkit.report import STATE_FILE, figure_link
from cosegkit.train.modeling import FEATURE_CACHE_ENV
from cosegkit.train.profiles import get_profile

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
FEATURE_CACHE_DIR = "feature_cache"  # under the output folder; see cosegkit.models.feature_cache
# Figures that show the pixels of a real dataset's images when the notebooks run with a data root (the registry's
# `shows_dataset_pixels` flag, cosegkit.figures). A run meant for committing (`--withhold-dataset-images`) removes
# them: the repository redistributes no part of a dataset.
DATASET_FIGURES = dataset_pixel_figures()
WITHHELD_NOTE = ("[figure withheld: it shows images of the dataset under data_root, which this repository does not "
                 "redistribute; rerun the notebook with your copy of the dataset to see it]")


def ordered_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in run order."""
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def _parameters_key(parameters: dict) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


def _clear_outputs(out: Path) -> None:
    """Remove what `reproduce` writes under ``out`` (and nothing else)."""
    import shutil

    for name in ("notebooks", "tables", "figures", "runs"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    for name in ("REPORT.md", STATE_FILE):
        (out / name).unlink(missing_ok=True)


def _load_state(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _save_state(out: Path, state: dict) -> None:
    tmp = out / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(out / STATE_FILE)


def notebook_parameters(profile: str, data_root: str | None, out: Path) -> dict:
    """The values injected into every notebook's ``parameters`` cell."""
    return {
        "profile": profile,
        "data_root": _repo_relative(data_root) if data_root else "",
        "output_dir": _repo_relative(out),
    }


def _repo_relative(path) -> str:
    """``path`` relative to the repository when it lies in or beside it (the notebooks resolve relative paths
    against the repository), so executed notebooks and records name no machine path; else absolute."""
    resolved = Path(path).resolve()
    root = NOTEBOOK_DIR.parent
    if not resolved.is_relative_to(root.parent):
        return str(resolved)
    return os.path.relpath(resolved, root)


def reproduce(
    profile: str,
    data_root: str | None = None,
    only: str | None = None,
    out: str | Path | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    withhold_dataset_images: bool = False,
    fresh: bool = False,
) -> int:
    """Run every notebook (or those whose name contains ``only``) in order; return a process exit code.

    ``out`` defaults to ``results/<profile>/``. If ``out`` holds a reproduction made with other parameters (another
    data root, profile or location, e.g. the committed ``results/cpu`` in a fresh clone), its training runs would
    be reused or refused, so this raises unless ``fresh=True``. ``fresh=True`` always starts over: it first removes
    the reproduction in ``out`` (notebooks, tables, figures, runs, report and state), whatever its parameters, so
    that code changed since it was made is run again (the parameters do not record the code version).
    ``withhold_dataset_images`` then applies :func:`withhold_dataset_figures` to ``out`` (for a run that will be
    committed).
    """
    get_profile(profile)  # an unknown name raises ValueError listing the valid ones (train/profiles.py)
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"--data-root {data_root!r} is not a directory")
    out = Path("results") / profile if out is None else Path(out)
    notebooks = ordered_notebooks(notebook_dir)
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebook_dir}")
    if only is not None:
        notebooks = [nb for nb in notebooks if only in nb.stem]
        if not notebooks:
            names = ", ".join(nb.stem for nb in ordered_notebooks(notebook_dir))
            raise ValueError(f"--only {only!r} matches no notebook; notebooks: {names}")

    import papermill
    from tqdm.auto import tqdm

    parameters = notebook_parameters(profile, data_root, out)
    key = _parameters_key(parameters)
    state = _load_state(out)
    other = [entry["parameters"] for entry in state.values() if entry.get("parameters_key") != key]
    if other and not fresh:
        raise ValueError(
            f"{out} holds a reproduction made with other parameters ({json.dumps(other[0], sort_keys=True)}; now "
            f"{json.dumps(parameters, sort_keys=True)}); its training runs would be reused or refused. Pass --fresh "
            "to replace it, or --out DIR to write elsewhere"
        )
    if fresh and (other or state):
        _clear_outputs(out)
        state = {}
    for sub in ("notebooks", "tables", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    # Frozen-encoder features are shared by every run and notebook of the reproduction (cosegkit.models.
    # feature_cache): the kernels papermill starts inherit this variable. A cache, never committed (.gitignore).
    os.environ.setdefault(FEATURE_CACHE_ENV, str((out / FEATURE_CACHE_DIR).resolve()))
    progress = tqdm(notebooks, desc=f"reproduce ({profile})", unit="notebook")
    for notebook in progress:
        executed = out / "notebooks" / notebook.name
        done = state.get(notebook.name, {})
        if done.get("parameters_key") == key and executed.exists():
            progress.write(f"skip {notebook.name}: already executed with these parameters")
            continue
        progress.set_postfix_str(notebook.stem)
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
                cwd=str(notebook.parent),
                progress_bar=False,
            )
        except papermill.PapermillExecutionError as error:
            progress.close()
            print(f"\nnotebook {notebook.name} failed; its executed copy is {executed}", file=sys.stderr)
            print(f"{error.ename}: {error.evalue}", file=sys.stderr)
            return 1
        state[notebook.name] = {
            "parameters_key": key,
            "parameters": parameters,
            "seconds": round(time.perf_counter() - started, 1),
        }
        _save_state(out, state)
    progress.close()
    if withhold_dataset_images:
        withheld = withhold_dataset_figures(out)
        print(f"withheld {len(withheld)} figure(s) that show dataset images: {', '.join(withheld) or 'none'}")
    total = sum(state[nb.name]["seconds"] for nb in notebooks if nb.name in state)
    print(f"reproduce --profile {profile}: {len(notebooks)} notebook(s) done, {total:.0f} s of notebook time; "
          f"outputs in {out}/")
    return 0


def withhold_dataset_figures(out: str | Path, names: tuple[str, ...] = DATASET_FIGURES) -> list[str]:
    """Remove every trace of the figures ``names`` from a reproduction in ``out``; return the names removed.

    Deletes ``<out>/figures/<name>.png``; in ``<out>/notebooks/*.ipynb`` replaces each output that shows one of
    these figures (found by the name that :func:`cosegkit.figures.publish` writes in its metadata) by a note; in
    ``<out>/REPORT.md`` replaces the figure's line (:func:`cosegkit.report.figure_link`) by the same note. Tables,
    curves and embedding projections contain no dataset pixels and are kept.
    """
    import nbformat

    out = Path(out)
    removed = set()
    for name in names:
        png = out / "figures" / f"{name}.png"
        if png.exists():
            png.unlink()
            removed.add(name)
    for path in sorted((out / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        changed = False
        for cell in notebook.cells:
            outputs = cell.get("outputs", [])
            hits = [o.get("metadata", {}).get(FIGURE_METADATA_KEY) for o in outputs]
            hits = [name for name in hits if name in names]
            if cell.cell_type != "code" or not hits:
                continue
            kept = [o for o in outputs if o.get("metadata", {}).get(FIGURE_METADATA_KEY) not in names]
            kept.append(nbformat.v4.new_output("stream", name="stdout", text=WITHHELD_NOTE + "\n"))
            cell.outputs = kept
            removed.update(hits)
            changed = True
        if changed:
            nbformat.write(notebook, path)
    report = out / "REPORT.md"
    if report.exists():
        lines = report.read_text().splitlines()
        for i, line in enumerate(lines):
            for name in names:
                if line.strip() == figure_link(name):
                    lines[i] = f"{name}: {WITHHELD_NOTE}"
                    removed.add(name)
        report.write_text("\n".join(lines) + "\n")
    return sorted(removed)

