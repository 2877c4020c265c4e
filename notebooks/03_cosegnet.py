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
# # 03 · CoSegNet: Tables 1-6 and visual results (Figs. 3-6)
#
# **Regenerates:** CoSegNet (cosegnet.txt) **Table 1** (PASCAL-VOC P/J against the published methods),
# **Table 2** (Internet per class), **Table 3** (trained on VOC, tested on Internet), **Table 4** (MSRC),
# **Table 5** (CoSegNet against CoSegNet-base), **Table 6** (which decoder layer feeds the metric network), and
# visual results like **Figs. 3-6**: input pair, ground truth, prediction and extracted object, and outlier pairs
# that should get empty predictions. Every table carries the single-image baseline and the gain over it.
#
# Table 1 follows §4.2: random 3:1:1 splits, repeated `n_splits` times (the paper uses 100), mean ± std.
#
# Training triplets "follow Schroff et al." (§4.1): the `paper` profile mines FaceNet's semi-hard negatives among
# 8 candidates per triplet (`data.triplet_mining="semihard"`); `smoke` and `cpu` draw negatives at random (a
# deviation the cpu profile states, for speed).

# %% tags=["parameters"]
# Parameters (papermill injects its own values after this cell).
profile = "smoke"  # a name from cosegkit.train.profiles.list_profiles()
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/
n_splits = None  # 3:1:1 splits for Table 1; None: the profiles (smoke 2, cpu 1, paper 100)
internet_root = ""  # Internet dataset; empty means absent
msrc_root = ""  # MSRC co-segmentation subset; empty means absent

# %%
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import figures, notebook_params, tables
from cosegkit.tasks.inference import predict_samples, test_samples
from cosegkit.train import evaluate_run
from cosegkit.train.run_cache import run_experiments, run_splits

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)
internet_root = notebook_params.resolve_root(internet_root) or ""
msrc_root = notebook_params.resolve_root(msrc_root) or ""

# %%
splits = run_splits("cosegnet", profile, out, n_splits=n_splits, data_root=data_root, seed=seeds[0],
                    overrides=overrides)
experiments = ["cosegnet", "cosegnet-base", "cosegnet-f", "cosegnet-ct3", "cosegnet-ct6", "cosegnet-ct9",
               "cosegnet-ct11", "cosegnet-single-image"]
results = run_experiments(experiments, profile, out, data_root=data_root, seeds=seeds, overrides=overrides)
runs = tables.runs_frame(results)
provenance = tables.provenance_for(results, dataset_name, profile)
display(runs.drop(columns="test_J_per_group"))  # the per-image scores feed the CIs

# %%
table1 = tables.write_cosegnet_table1(runs, splits, out, dataset_name, provenance, data_root)
display(Markdown(table1.markdown.read_text()))

# %%
internet = None
if internet_root:
    internet = run_experiments(["cosegnet", "cosegnet-single-image"], profile, out, data_root=internet_root,
                               seeds=seeds, overrides=overrides, dataset="internet")
tables.write_cosegnet_table2(internet, internet_root, out)
voc_run = next(r for r in results if r.experiment == "cosegnet" and r.settings.seed == seeds[0])
tables34 = {}
for number, name, root, layout in ((3, "Internet", internet_root, "internet"), (4, "MSRC", msrc_root, "msrc")):
    scores = evaluate_run(voc_run.run_dir, data_root=root, dataset=layout, progress=False)["positive"] if root else None
    tables34[number] = tables.write_cosegnet_cross_dataset_table(number, name, root, layout, scores, out,
                                                                 dataset_name, provenance)
display(tables34[4].frame)

# %%
table5 = tables.write_cosegnet_table5(runs, out, provenance)
display(Markdown(table5.markdown.read_text()))

# %%
table6 = tables.write_cosegnet_table6(runs, out, provenance)
display(Markdown(table6.markdown.read_text()))

# %% [markdown]
# ## Visual results (Figs. 3-6)
#
# Positive test pairs, then outlier pairs (no common object): CoSegNet's decision network should blank them
# (Fig. 6); CoSegNet-base has no decision network.

# %%
base_run = next(r for r in results if r.experiment == "cosegnet-base" and r.settings.seed == seeds[0])
positive, negative = test_samples(voc_run, n_positive=4, n_negative=3)
figures.save("cosegnet_visual_results", out, positive + negative, predict_samples(voc_run, positive + negative))
if negative:
    figures.save("cosegnet_base_outliers", out, negative, predict_samples(base_run, negative))
