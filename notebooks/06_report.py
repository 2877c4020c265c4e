# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Report: assemble `results/`
#
# **Regenerates:** nothing new; it gathers every table (ours beside the papers', each labelled with profile,
# dataset, image size, seeds and commit) and every figure that notebooks 00-05 wrote under `output_dir`, into
# `output_dir/REPORT.md`, with the time each notebook took.

# %% tags=["parameters"]
# Parameters (papermill injects its own values after this cell).
profile = "smoke"  # smoke, cpu or paper
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/

# %%
import json

import pandas as pd

from cosegkit import companion

companion.check_profile(profile)  # an unknown profile stops here, before any work
out = companion.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = str(companion.repo_path(data_root)) if data_root else None
dataset_name = "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"
overrides = companion.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
tables = sorted((out / "tables").glob("*.md"))
figures = sorted((out / "figures").glob("*.png"))
state_file = out / "reproduce_state.json"
state = json.loads(state_file.read_text()) if state_file.exists() else {}
timing = pd.DataFrame([{"notebook": name, "minutes": entry["seconds"] / 60} for name, entry in sorted(state.items())])
lines = ["# cosegkit results", "",
         f"Profile `{profile}`, data: {companion.data_label(data_root)}. Every table below gives its own",
         "provenance line; rows marked paper are the published numbers.", ""]
if not timing.empty:
    lines += ["## Notebook wall time", "", *[f"- {r.notebook}: {r.minutes:.1f} min" for r in timing.itertuples()],
              f"- total: {timing.minutes.sum():.1f} min", ""]
lines += ["## Tables", ""]
for table in tables:
    lines += [table.read_text(), ""]
lines += ["## Figures", ""]
lines += [f"![{figure.stem}](figures/{figure.name})" for figure in figures]
(out / "REPORT.md").write_text("\n".join(lines) + "\n")
print(f"{len(tables)} tables and {len(figures)} figures -> {out / 'REPORT.md'}")
