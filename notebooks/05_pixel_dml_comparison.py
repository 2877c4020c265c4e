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
# # 05 · Pixel-DML comparison, and the benchmark where the pair must matter
#
# **Regenerates:** a table none of the papers has. One framework (SiameseUNet + Dice, is_triplet_coseg.txt §3.3),
# one split and several seeds: no pixel-DML term against IS-Triplet, the discriminative loss and pixel-level Group
# Loss, each weighted by the same λ schedule (λ0 = 1, ×0.85 per epoch). It reports P and J as mean ± 95% CI over
# seeds, the Jaccard gain over the single-image baseline (paired by seed), and training time.
#
# The second part is the synthetic benchmark on which co-segmentation must use the partner image: each synthetic
# image holds 2-3 objects and only the one shared with the partner is foreground.

# %% tags=["parameters"]
# Parameters (papermill injects its own values after this cell).
profile = "smoke"  # a name from cosegkit.train.profiles.list_profiles()
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0, 1, 2]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/

# %%
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import notebook_params, tables
from cosegkit.train.profiles import SOURCES_COATTENTION
from cosegkit.train.run_cache import run_experiments

notebook_params.check_profile(profile)  # an unknown profile stops here, before any work
out = notebook_params.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = notebook_params.resolve_root(data_root)  # None: the embedded synthetic set
dataset_name = notebook_params.dataset_name(data_root)
overrides = notebook_params.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)

# %%
experiments = ["pixel-dml-none", "pixel-dml-istriplet", "pixel-dml-discriminative", "pixel-dml-group",
               "pixel-dml-single-image"]
one_split = {**overrides, "data.split_seed": seeds[0]}
results = run_experiments(experiments, profile, out, data_root=data_root, seeds=seeds, overrides=one_split)
runs = tables.runs_frame(results)
table = tables.write_pixel_dml_comparison(runs, out, tables.provenance_for(results, dataset_name, profile))
display(Markdown(table.markdown.read_text()))
print(tables.is_triplet_effect_line(runs, n_seeds=len(seeds)))

# %% [markdown]
# ## The synthetic benchmark: where the pair must matter
#
# Single-image baseline against the Siamese U-Net and CoSegNet on `SyntheticCoseg`, and how often each returns an
# empty mask for negative (outlier) pairs. It always runs on the synthetic set, whatever `data_root` is, at the
# profile's `synthetic_image_size` (`cpu`: 160 px for every row; some claim rows on real images train larger).
#
# The U-Net pair is trained twice: with the profile's co-attention and with the sources' one (Gong et al.'s spatial
# and channel co-attention on the deepest features, skips unweighted: `SOURCES_COATTENTION`). At the `cpu` profile
# they differ (the profile uses `coattention="match"` at stride 16 with weighted skips, see its deviations); at a
# profile that already uses the sources' block the second pair of rows is the same runs, read back.

# %%
bench = ["unet-single-image", "unet-dice", "cosegnet-single-image", "cosegnet"]
bench_overrides = notebook_params.synthetic_overrides(profile, overrides)  # the profile's synthetic_image_size
synthetic = run_experiments(bench, profile, out, data_root=None, seeds=seeds[:1], overrides=bench_overrides)
synthetic_sources = run_experiments(["unet-single-image", "unet-dice"], profile, out, data_root=None,
                                    seeds=seeds[:1], overrides={**bench_overrides, **SOURCES_COATTENTION})
bench_table = tables.write_synthetic_pair_benchmark(
    synthetic, out, tables.provenance_for(synthetic + synthetic_sources, notebook_params.dataset_name(None), profile),
    sources_results=synthetic_sources)
display(Markdown(bench_table.markdown.read_text()))
