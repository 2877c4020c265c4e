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
profile = "smoke"  # smoke, cpu or paper
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display
from sklearn.metrics import adjusted_rand_score

from cosegkit import companion, plots
from cosegkit.cluster import mean_shift
from cosegkit.data import SyntheticCoseg
from cosegkit.report import write_table
from cosegkit.samplers import sample_fg_bg_pixels
from cosegkit.toy import TOY_LOSSES, class_gap, optimise_points, two_class_points

companion.check_profile(profile)  # an unknown profile stops here, before any work
out = companion.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = str(companion.repo_path(data_root)) if data_root else None
dataset_name = "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"
overrides = companion.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
points, labels = two_class_points(n_per_class=60, seed=seeds[0])
histories = {name: optimise_points(name, points, labels, steps=100, snapshots=4, seed=seeds[0])
             for name in TOY_LOSSES}
fig, axes = plt.subplots(len(TOY_LOSSES), 4, figsize=(12, 3 * len(TOY_LOSSES)), squeeze=False)
for row, (name, history) in enumerate(histories.items()):
    for col, (step, xy, loss) in enumerate(history):
        plots.plot_embedding_2d(xy, labels, ax=axes[row, col], title=f"{name}: step {step}, loss {loss:.3f}")
fig.tight_layout()
plots.save_figure(fig, out, "01_toy_losses")

# %% [markdown]
# IS-Triplet pushes the two classes apart until the margin m = 3 holds on the sampled rows, then stops (a
# hinge). The discriminative loss pulls each class within δv = 0.5 of its mean and pushes the means 2δd = 3 apart.
# Group Loss only needs the refined label assignment to be right, so it separates less.

# %%
summary = pd.DataFrame([
    {"loss": name, "first loss": h[0][2], "last loss": h[-1][2],
     "class-mean distance before": class_gap(points, labels), "class-mean distance after": class_gap(h[-1][1], labels),
     "mean-shift ARI after": adjusted_rand_score(labels, mean_shift(torch.tensor(h[-1][1]), bandwidth=0.5).numpy())}
    for name, h in histories.items()
])
display(summary)
write_table(summary, out, "01_toy_losses", "Toy 2-D embeddings: each loss's effect (gradient descent on points)", None,
            notes=f"Deterministic toy problem (seed {seeds[0]}); no dataset.")

# %% [markdown]
# ## The K-foreground / K-background sampler (IS-Triplet §3.2, Fig. 2)
#
# Per image, F1 and F2 are two independent draws of K foreground pixels and B1, B2 two of K background pixels,
# each without replacement; K shrinks to the smaller class's count.

# %%
sample = SyntheticCoseg(n_pairs=1, size=image_size or 128, seed=seeds[0])[0]
mask = torch.as_tensor(sample["mask_a"])[None]
k = 150
drawn = sample_fg_bg_pixels(mask, k=k, generator=torch.Generator().manual_seed(seeds[0]))
n = int(drawn["counts"][0])
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f1"][0, :n], drawn["b1"][0, :n], ax=axes[0],
                          title=f"F1 and B1 (K={n})")
plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f2"][0, :n], drawn["b2"][0, :n], ax=axes[1],
                          title="F2 and B2: independent draws")
plots.save_figure(fig, out, "01_sampler")
