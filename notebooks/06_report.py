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
profile = "smoke"  # a name from cosegkit.train.profiles.list_profiles()
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/

# %%
import pandas as pd

from cosegkit import notebook_params, report

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
report_file = report.write_report(out, profile, notebook_params.data_label(data_root))
