"""`cosegkit reproduce` on tiny stand-in notebooks: order, outputs, resume, and a failing notebook."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cosegkit.reproduce import ordered_notebooks, reproduce


def _write(path, *sources):
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [new_code_cell(s) for s in sources]
    cells[0].metadata["tags"] = ["parameters"]
    notebook.cells = cells
    nbformat.write(notebook, path)


@pytest.fixture
def notebook_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    params = 'profile = "smoke"\ndata_root = ""\noutput_dir = "."'
    record = ("from pathlib import Path\n"
              "from cosegkit.notebook_params import repo_path\n"
              "log = repo_path(output_dir) / 'ran.txt'\n"
              "log.write_text((log.read_text() if log.exists() else '') + '{name} ' + profile + '\\n')")
    _write(folder / "00_first.ipynb", params, record.format(name="00"))
    _write(folder / "01_second.ipynb", params, record.format(name="01"))
    (folder / "notes.ipynb").write_text("not a numbered notebook")
    return folder


def test_notebooks_run_in_order_write_executed_copies_and_resume(notebook_dir, tmp_path):
    out = tmp_path / "out"
    assert [p.name for p in ordered_notebooks(notebook_dir)] == ["00_first.ipynb", "01_second.ipynb"]
    assert reproduce("smoke", out=out, notebook_dir=notebook_dir) == 0
    assert (out / "ran.txt").read_text() == "00 smoke\n01 smoke\n"
    assert (out / "notebooks" / "00_first.ipynb").exists() and (out / "tables").is_dir()
    state = json.loads((out / "reproduce_state.json").read_text())
    assert set(state) == {"00_first.ipynb", "01_second.ipynb"}
    # A second run with the same parameters skips both; another profile reruns them.
    assert reproduce("smoke", out=out, notebook_dir=notebook_dir) == 0
    assert (out / "ran.txt").read_text() == "00 smoke\n01 smoke\n"
    # Another profile (or data root, or location) in the same folder must not reuse or silently mix its runs.
    (out / "runs").mkdir()
    with pytest.raises(ValueError, match="holds a reproduction made with other parameters.*--fresh"):
        reproduce("cpu", out=out, notebook_dir=notebook_dir, only="01")
    assert reproduce("cpu", out=out, notebook_dir=notebook_dir, only="01", fresh=True) == 0
    assert (out / "ran.txt").read_text() == "00 smoke\n01 smoke\n01 cpu\n"  # not ours to delete
    assert not (out / "runs").exists() and not (out / "notebooks" / "00_first.ipynb").exists()
    assert set(json.loads((out / "reproduce_state.json").read_text())) == {"01_second.ipynb"}
    # --fresh starts over even with the same parameters (the code may have changed since)
    assert reproduce("cpu", out=out, notebook_dir=notebook_dir, only="01", fresh=True) == 0
    assert (out / "ran.txt").read_text() == "00 smoke\n01 smoke\n01 cpu\n01 cpu\n"


def test_a_failing_notebook_stops_the_run_and_exits_non_zero(notebook_dir, tmp_path, capsys):
    _write(notebook_dir / "00_first.ipynb", 'profile = "smoke"\noutput_dir = "."', "raise RuntimeError('boom')")
    out = tmp_path / "out"
    assert reproduce("smoke", out=out, notebook_dir=notebook_dir) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err
    assert not (out / "ran.txt").exists()  # the second notebook never ran


def test_bad_arguments_are_named(notebook_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown profile 'laptop'.*smoke, cpu, paper, gpu"):
        reproduce("laptop", notebook_dir=notebook_dir)
    with pytest.raises(ValueError, match="--only 'zz' matches no notebook"):
        reproduce("smoke", only="zz", out=tmp_path / "o", notebook_dir=notebook_dir)
    with pytest.raises(FileNotFoundError, match="--data-root"):
        reproduce("smoke", data_root=str(tmp_path / "missing"), notebook_dir=notebook_dir)


def test_withholding_dataset_images_strips_figures_outputs_and_report_links(notebook_dir, tmp_path):
    from cosegkit.reproduce import WITHHELD_NOTE

    # Figures are published as the notebooks do (cosegkit.figures.publish names each output); 00_voc_pairs is
    # registered as showing dataset pixels, is_triplet_fig4_curves is not.
    # Like the real notebooks, these resolve output_dir through notebook_params.repo_path: reproduce passes it
    # repository-relative when it lies beside the clone (a clone under /tmp, say), and papermill's cwd differs.
    figure = ("import matplotlib.pyplot as plt\nfrom cosegkit.figures import publish\n"
              "from cosegkit.notebook_params import repo_path\n"
              "fig = plt.figure(); plt.plot([0, 1])\npublish(fig, repo_path(output_dir), '{name}')\nprint('kept text')")
    params = 'profile = "smoke"\ndata_root = ""\noutput_dir = "."'
    _write(notebook_dir / "00_first.ipynb", params, figure.replace("{name}", "00_voc_pairs"))
    _write(notebook_dir / "01_second.ipynb", params, figure.replace("{name}", "is_triplet_fig4_curves"),
           "from pathlib import Path\nfrom cosegkit.notebook_params import repo_path\n"
           "Path(repo_path(output_dir), 'REPORT.md').write_text("
           "'![00_voc_pairs](figures/00_voc_pairs.png)\\n"
           "![is_triplet_fig4_curves](figures/is_triplet_fig4_curves.png)\\n')")
    out = tmp_path / "out"
    assert reproduce("smoke", out=out, notebook_dir=notebook_dir) == 0
    first = nbformat.read(out / "notebooks" / "00_first.ipynb", as_version=4)
    assert any("image/png" in o.get("data", {}) for o in first.cells[-1].outputs)  # the image was there
    # Rerunning with the flag skips the executed notebooks and only withholds.
    assert reproduce("smoke", out=out, notebook_dir=notebook_dir, withhold_dataset_images=True) == 0
    assert not (out / "figures" / "00_voc_pairs.png").exists()
    assert (out / "figures" / "is_triplet_fig4_curves.png").exists()
    outputs = nbformat.read(out / "notebooks" / "00_first.ipynb", as_version=4).cells[-1].outputs
    assert not any("image/png" in o.get("data", {}) for o in outputs)
    assert any("kept text" in o.get("text", "") for o in outputs) and WITHHELD_NOTE in outputs[-1]["text"]
    second = nbformat.read(out / "notebooks" / "01_second.ipynb", as_version=4)  # papermill adds a cell
    assert any("image/png" in o.get("data", {}) for c in second.cells for o in c.get("outputs", []))
    report = (out / "REPORT.md").read_text()
    assert "![is_triplet_fig4_curves](figures/is_triplet_fig4_curves.png)" in report
    assert "00_voc_pairs.png" not in report
    assert WITHHELD_NOTE in report


def test_cli_reports_bad_arguments_without_a_traceback(tmp_path, capsys):
    from cosegkit.cli import main

    assert main(["reproduce", "--profile", "laptop"]) == 2
    err = capsys.readouterr().err
    assert "cosegkit reproduce: error: unknown profile 'laptop'; valid profiles: smoke, cpu, paper, gpu" in err
    assert main(["reproduce", "--profile", "smoke", "--data-root", str(tmp_path / "none")]) == 2
    assert "--data-root" in capsys.readouterr().err
