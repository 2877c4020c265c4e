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
# # 04 · Pixel embeddings and mean-shift clusters
#
# **Regenerates:** the discriminative-loss paper's central picture (discriminative_loss.txt Fig. 1: pixels mapped
# to an embedding space where a fast clustering step separates objects), for the two pixel losses of this
# companion: the discriminative loss and IS-Triplet, each trained on the same SiameseUNet (64-channel embedding
# head, is_triplet_coseg.txt §3.3). Embeddings are projected with PCA and t-SNE, clustered with
# `cosegkit.cluster.mean_shift` and painted back onto the images; cluster quality is the adjusted Rand index
# against the ground-truth foreground/background.

# %% tags=["parameters"]
# Parameters (papermill injects its own values after this cell).
profile = "smoke"  # smoke, cpu or paper
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/
n_images = 4  # test images to embed and cluster

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score

from cosegkit import companion, plots
from cosegkit.cluster import mean_shift
from cosegkit.report import write_table

companion.check_profile(profile)  # an unknown profile stops here, before any work
out = companion.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = str(companion.repo_path(data_root)) if data_root else None
dataset_name = "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"
overrides = companion.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
losses = {"discriminative": "pixel-dml-discriminative", "IS-Triplet": "pixel-dml-istriplet"}
results = companion.run_experiments(losses.values(), profile, out, data_root=data_root, seeds=seeds[:1],
                                    overrides={**overrides, "data.split_seed": seeds[0]})
by_name = {r.experiment: r for r in results}
positive, _ = companion.test_samples(results[0], n_positive=n_images, n_negative=0)
embedded = {loss: companion.pixel_embeddings(by_name[name], positive) for loss, name in losses.items()}

# %% [markdown]
# Mean-shift bandwidth: the discriminative loss is trained so each cluster lies within δv = 0.5 of its
# centre, so its bandwidth is δv (the paper's choice). IS-Triplet has no such radius; its margin m = 3 separates
# the classes, and we use m/2 = 1.5. The embeddings are not normalised. Seeds: 256 random pixels of each image
# (sklearn's `seeds=`); grid-bin seeding, the sklearn default, can find no seed at all in 64 dimensions, where a
# bin centre may lie farther than the bandwidth from every point in its bin.

# %%
bandwidths = {"discriminative": 0.5, "IS-Triplet": 1.5}
generator = torch.Generator().manual_seed(seeds[0])
cluster_maps = {loss: [] for loss in embedded}
rows = []
fig, axes = plt.subplots(len(embedded) * 2, len(positive), figsize=(2.6 * len(positive), 5.2 * len(embedded)),
                         squeeze=False)
for row, (loss, items) in enumerate(embedded.items()):
    for col, item in enumerate(items):
        h, w, d = item["embedding"].shape
        pixels = torch.from_numpy(item["embedding"].reshape(-1, d))
        start = pixels[torch.randperm(len(pixels), generator=generator)[:256]]
        labels = mean_shift(pixels, bandwidth=bandwidths[loss], seeds=start)
        clusters = labels.numpy().reshape(h, w)
        cluster_maps[loss].append(clusters)
        ari = adjusted_rand_score(item["mask"].ravel(), clusters.ravel())
        rows.append({"loss": loss, "image": col, "clusters": int(clusters.max()) + 1, "ARI": ari})
        axes[2 * row, col].imshow(plots.overlay_mask(item["image"], item["mask"]))
        axes[2 * row, col].set_title(f"{loss}: truth", fontsize=8)
        axes[2 * row + 1, col].imshow(plots.paint_clusters(item["image"], clusters))
        axes[2 * row + 1, col].set_title(f"mean-shift: {clusters.max() + 1} clusters, ARI {ari:.2f}", fontsize=8)
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
plots.save_figure(fig, out, "04_meanshift_clusters")
quality = pd.DataFrame(rows).groupby("loss", as_index=False).agg(images=("image", "count"),
                                                                  mean_clusters=("clusters", "mean"),
                                                                  mean_ARI=("ARI", "mean"))
write_table(quality, out, "04_cluster_quality", "Mean-shift cluster quality per pixel loss (ARI vs ground truth)",
            companion.provenance_for(results, dataset_name, profile))
display(quality)

# %%
fig, axes = plt.subplots(len(embedded), 3, figsize=(12, 4 * len(embedded)), squeeze=False)
for row, (loss, items) in enumerate(embedded.items()):
    points = np.concatenate([it["embedding"].reshape(-1, it["embedding"].shape[-1]) for it in items])
    truth = np.concatenate([it["mask"].ravel() for it in items]).astype(int)
    found = np.minimum(np.concatenate([c.ravel() for c in cluster_maps[loss]]), 5)
    keep = np.random.default_rng(seeds[0]).choice(len(points), min(len(points), 1000), replace=False)
    pca = PCA(n_components=2, random_state=seeds[0]).fit_transform(points[keep])
    tsne = TSNE(n_components=2, init="pca", perplexity=30, random_state=seeds[0]).fit_transform(points[keep])
    plots.plot_embedding_2d(pca, truth[keep], ax=axes[row, 0], title=f"{loss}: PCA, ground truth",
                            label_names=plots.FG_BG_NAMES)
    plots.plot_embedding_2d(tsne, truth[keep], ax=axes[row, 1], title=f"{loss}: t-SNE, ground truth",
                            label_names=plots.FG_BG_NAMES)
    plots.plot_embedding_2d(tsne, found[keep], ax=axes[row, 2],
                            title=f"{loss}: t-SNE, mean-shift cluster (0 = largest, 5 = sixth or later)")
fig.tight_layout()
plots.save_figure(fig, out, "04_embeddings_projected")
