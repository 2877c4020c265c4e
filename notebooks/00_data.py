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
# # 00 · Data: datasets, pairs and splits
#
# **Regenerates:** no paper table; it shows the data behind every later table: the embedded synthetic
# co-segmentation set, and (with `data_root`) the PASCAL-VOC co-segmentation set with CoSegNet's 3:1:1 split
# protocol (cosegnet.txt §4.2), positive pairs (same group) and negative pairs (different groups, never the same
# image bytes).

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
from IPython.display import Markdown, display

from cosegkit import figures, notebook_params, tables
from cosegkit.data import (
    RealPairs,
    SyntheticCoseg,
    check_dataset,
    load_dataset,
    negative_pairs,
    positive_pairs,
    split_indices,
)

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %% [markdown]
# ## The synthetic set
#
# Each image holds 2-3 textured objects of distinct categories (shape family × texture cut from a real photograph
# shipped with scikit-image). A positive pair shares exactly one category, and its masks cover only that object;
# a negative pair shares none, and its masks are empty. Single-image saliency cannot solve it: predicting every
# object of an image scores a low Jaccard, as the table below measures.

# %%
synthetic = SyntheticCoseg(n_pairs=64, size=image_size or 128, seed=seeds[0], negative_fraction=0.25)
figures.save("00_synthetic_pairs", out, [synthetic[i] for i in range(6)])

# %%
display(tables.every_object_saliency(synthetic))

# %% [markdown]
# ## The real set (with `data_root`)
#
# `check_dataset` validates every image and mask (it is also `cosegkit data check DIR`).

# %%
if data_root:
    report = check_dataset(data_root)
    print(report.format())
    voc = load_dataset("folder", data_root)
    split = split_indices(voc, ratios=(3, 1, 1), seed=seeds[0])
    sizes = pd.DataFrame({"split": list(split), "images": [len(v) for v in split.values()]})
    display(sizes)
    test_pos = RealPairs(voc, positive_pairs(voc, split["test"], seed=seeds[0]))
    test_neg = RealPairs(voc, negative_pairs(voc, split["test"], n=4, seed=seeds[0]), negative=True)
    print(f"test pairs: {len(test_pos)} positive (every pair within each group), {len(test_neg)} negative shown")
    samples = [test_pos[i] for i in range(0, len(test_pos), max(1, len(test_pos) // 4))][:4]
    samples += [test_neg[i] for i in range(2)]
    figures.save("00_voc_pairs", out, samples)
else:
    display(Markdown("No `data_root` given: the real-data part is skipped."))
