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
profile = "smoke"  # a name from cosegkit.train.profiles.list_profiles()
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/
n_images = 4  # test images to embed and cluster

# %%
import pandas as pd
import torch
from IPython.display import display

from cosegkit import figures, notebook_params, tables
from cosegkit.cluster import cluster_pixel_embedding
from cosegkit.tasks.inference import pixel_embeddings, test_samples
from cosegkit.train.run_cache import run_experiments

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
losses = {"discriminative": "pixel-dml-discriminative", "IS-Triplet": "pixel-dml-istriplet"}
results = run_experiments(losses.values(), profile, out, data_root=data_root, seeds=seeds[:1],
                          overrides={**overrides, "data.split_seed": seeds[0]})
by_name = {r.experiment: r for r in results}
positive, _ = test_samples(results[0], n_positive=n_images, n_negative=0)
embedded = {loss: pixel_embeddings(by_name[name], positive) for loss, name in losses.items()}

# %% [markdown]
# Mean-shift bandwidth: the discriminative loss is trained so each cluster lies within δv = 0.5 of its
# centre, so its bandwidth is δv (the paper's choice). IS-Triplet has no such radius; its margin m = 3 separates
# the classes, and we use m/2 = 1.5. The embeddings are not normalised. Seeds: 256 random pixels of each image
# (sklearn's `seeds=`); grid-bin seeding, the sklearn default, can find no seed at all in 64 dimensions, where a
# bin centre may lie farther than the bandwidth from every point in its bin.

# %%
bandwidths = {"discriminative": 0.5, "IS-Triplet": 1.5}
generator = torch.Generator().manual_seed(seeds[0])  # one stream for every image's seeds, in order
cluster_maps = {loss: [cluster_pixel_embedding(item["embedding"], bandwidths[loss], generator) for item in items]
                for loss, items in embedded.items()}
figures.save("04_meanshift_clusters", out, embedded, cluster_maps)
quality = tables.write_cluster_quality(embedded, cluster_maps, out, tables.provenance_for(results, dataset_name,
                                                                                          profile))
display(quality.frame)

# %%
figures.save("04_embeddings_projected", out, embedded, cluster_maps, seeds[0])
