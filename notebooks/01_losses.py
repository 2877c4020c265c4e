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
# # 01 · Losses: how each pixel-embedding loss moves points
#
# **Regenerates:** the papers' loss figures in spirit (IS-Triplet Fig. 2, the sampler; the discriminative loss's
# pull/push forces, its Fig. 1), on small 2-D embeddings. Each panel is plain gradient descent on free 2-D points
# with the package's own losses: IS-Triplet (is_triplet_coseg.txt eqs. 2-4), the discriminative loss
# (discriminative_loss.txt §2) and Group Loss (group_loss.txt, replicator dynamics). Then the K-foreground /
# K-background sampler is drawn on an image, and mean-shift (`cosegkit.cluster.mean_shift`) clusters the result.

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
import torch
from IPython.display import display

from cosegkit import figures, notebook_params, tables
from cosegkit.data import SyntheticCoseg
from cosegkit.samplers import sample_fg_bg_pixels
from cosegkit.toy import TOY_LOSSES, optimise_points, two_class_points

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
points, labels = two_class_points(n_per_class=60, seed=seeds[0])
histories = {name: optimise_points(name, points, labels, steps=100, snapshots=4, seed=seeds[0])
             for name in TOY_LOSSES}
figures.save("01_toy_losses", out, histories, labels)

# %% [markdown]
# IS-Triplet pushes the two classes apart until the margin m = 3 holds on the sampled rows, then stops (a
# hinge). The discriminative loss pulls each class within δv = 0.5 of its mean and pushes the means 2δd = 3 apart.
# Group Loss only needs the refined label assignment to be right, so it separates less.

# %%
summary = tables.write_toy_losses_table(histories, points, labels, out, seed=seeds[0])
display(summary.frame)

# %% [markdown]
# ## The K-foreground / K-background sampler (IS-Triplet §3.2, Fig. 2)
#
# Per image, F1 and F2 are two independent draws of K foreground pixels and B1, B2 two of K background pixels,
# each without replacement; K shrinks to the smaller class's count.

# %%
sample = SyntheticCoseg(n_pairs=1, size=image_size or 128, seed=seeds[0])[0]
mask = torch.as_tensor(sample["mask_a"])[None]
drawn = sample_fg_bg_pixels(mask, k=150, generator=torch.Generator().manual_seed(seeds[0]))
figures.save("01_sampler", out, sample, drawn)
