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
profile = "smoke"  # smoke, cpu or paper
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

from cosegkit import companion, paper_numbers, plots
from cosegkit.report import not_run_message, write_table
from cosegkit.train import evaluate_run

companion.check_profile(profile)  # an unknown profile stops here, before any work
out = companion.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = str(companion.repo_path(data_root)) if data_root else None
dataset_name = "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"
overrides = companion.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)
internet_root = str(companion.repo_path(internet_root)) if internet_root else ""
msrc_root = str(companion.repo_path(msrc_root)) if msrc_root else ""

# %%
splits = companion.run_splits("cosegnet", profile, out, n_splits=n_splits, data_root=data_root,
                             seed=seeds[0], overrides=overrides)
experiments = ["cosegnet", "cosegnet-base", "cosegnet-f", "cosegnet-ct3", "cosegnet-ct6", "cosegnet-ct9",
               "cosegnet-ct11", "cosegnet-single-image"]
results = companion.run_experiments(experiments, profile, out, data_root=data_root, seeds=seeds, overrides=overrides)
runs = companion.runs_frame(results)
agg = companion.aggregate_seeds(runs).set_index("experiment")
gain = companion.add_gain_over_baseline(runs, "cosegnet-single-image").set_index("experiment")
provenance = companion.provenance_for(results, dataset_name, profile)
display(runs)
print(f"CoSegNet over {splits['n_splits']} split(s): P {100 * splits['precision_mean']:.1f} ± "
      f"{100 * splits['precision_std']:.1f}, J {splits['jaccard_mean']:.3f} ± {splits['jaccard_std']:.3f}")

# %%
single = agg.loc["cosegnet-single-image"]
table1 = paper_numbers.cosegnet_table1()[["method", "P", "J"]].assign(source="paper")
ours = pd.DataFrame([
    {"method": f"CoSegNet (ours, {splits['n_splits']} split(s), mean ± std)",
     "P": f"{100 * splits['precision_mean']:.1f} ± {100 * splits['precision_std']:.1f}",
     "J": f"{splits['jaccard_mean']:.3f} ± {splits['jaccard_std']:.3f}",
     "ΔJ vs single-image": agg.loc["cosegnet", "test_J"] - single.test_J, "source": f"ours, {dataset_name}"},
    {"method": companion.SINGLE_IMAGE_LABEL, "P": single.test_P, "J": single.test_J, "ΔJ vs single-image": 0.0,
     "source": f"ours, {dataset_name}"},
])
table1 = pd.concat([table1, ours], ignore_index=True)
write_table(table1, out, "cosegnet_table1", "CoSegNet Table 1: PASCAL-VOC co-segmentation", provenance,
            notes=("ΔJ compares split 0 of CoSegNet with the single-image run on the same split. " +
                   ("" if data_root else "No data_root: ours is on the synthetic set, not PASCAL-VOC.")))
display(Markdown((out / "tables" / "cosegnet_table1.md").read_text()))

# %%
voc_run = next(r for r in results if r.experiment == "cosegnet" and r.settings.seed == seeds[0])
paper2 = paper_numbers.cosegnet_table2()
if internet_root:
    internet = companion.run_experiments(["cosegnet", "cosegnet-single-image"], profile, out, data_root=internet_root,
                                         seeds=seeds, overrides=overrides, dataset="internet")
    ours2 = companion.runs_frame(internet)[["experiment", "test_P", "test_J"]]
else:
    ours2 = pd.DataFrame([{"experiment": "CoSegNet (ours)",
                           "test_P": not_run_message("Internet", internet_root, "internet", "internet_root")}])
write_table(pd.concat([paper2, ours2], ignore_index=True), out, "cosegnet_table2",
            "CoSegNet Table 2: Internet dataset per class", None)
tables34 = {}
for number, name, root, layout in ((3, "Internet", internet_root, "internet"), (4, "MSRC", msrc_root, "msrc")):
    paper = getattr(paper_numbers, f"cosegnet_table{number}")()
    if root:
        scores = evaluate_run(voc_run.run_dir, data_root=root, dataset=layout, progress=False)["positive"]
        ours = pd.DataFrame([{"method": f"CoSegNet (ours, trained on {dataset_name})",
                              "P": 100 * scores["precision"], "J": scores["jaccard"]}])
    else:
        ours = pd.DataFrame([{"method": "CoSegNet (ours)", "P": not_run_message(name, root, layout, f"{layout}_root")}])
    tables34[number] = pd.concat([paper, ours], ignore_index=True)
    write_table(tables34[number], out, f"cosegnet_table{number}",
                f"CoSegNet Table {number}: trained on VOC, tested on {name}", provenance if root else None)
display(tables34[4])

# %%
rows = []
for name, label in (("cosegnet-base", "CoSegNet-base"), ("cosegnet", "CoSegNet"),
                    ("cosegnet-single-image", companion.SINGLE_IMAGE_LABEL)):
    rows.append({"architecture": label, "J (ours)": agg.loc[name, "test_J"],
                 "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
                 "outlier pairs: empty masks": runs.set_index("experiment").loc[name, "neg_empty_fraction"],
                 "outlier pairs: decision accuracy": runs.set_index("experiment").loc[name, "decision_accuracy"]})
table5 = pd.DataFrame(rows)
paper5 = paper_numbers.cosegnet_table5()
table5["J (paper, Pascal-VOC)"] = [paper5.iloc[0]["CoSegNet-base_J"], paper5.iloc[0]["CoSegNet_J"], float("nan")]
write_table(table5, out, "cosegnet_table5", "CoSegNet Table 5: CoSegNet against CoSegNet-base", provenance,
            notes="Internet and MSRC columns of the paper's Table 5 are not run here (datasets absent).")
display(Markdown((out / "tables" / "cosegnet_table5.md").read_text()))

# %%
layers = {"f": "cosegnet-f", "cT3": "cosegnet-ct3", "cT6": "cosegnet-ct6", "cT9": "cosegnet-ct9",
          "cT11": "cosegnet-ct11"}
paper6 = paper_numbers.cosegnet_table6().set_index("dataset")
table6 = pd.DataFrame([
    {"metric-network input": layer, "J (ours)": agg.loc[name, "test_J"],
     "ΔJ vs single-image": gain.loc[name, "gain_test_J"], "J (paper, Pascal-VOC)": paper6.loc["Pascal-VOC", layer],
     "J (paper, Internet)": paper6.loc["Internet", layer]}
    for layer, name in layers.items()
])
write_table(table6, out, "cosegnet_table6", "CoSegNet Table 6: which decoder layer feeds the metric network",
            provenance, notes=paper_numbers.TABLE6_NOTE)
display(Markdown((out / "tables" / "cosegnet_table6.md").read_text()))

# %% [markdown]
# ## Visual results (Figs. 3-6)
#
# Positive test pairs, then outlier pairs (no common object): CoSegNet's decision network should blank them
# (Fig. 6); CoSegNet-base has no decision network.

# %%
base_run = next(r for r in results if r.experiment == "cosegnet-base" and r.settings.seed == seeds[0])
positive, negative = companion.test_samples(voc_run, n_positive=4, n_negative=3)
predictions = companion.predict_samples(voc_run, positive + negative)
titles = [f"{s['group_a']}/{s['group_b']}" for s in positive + negative]
fig = plots.show_predictions(positive + negative, predictions, titles=titles)
plots.save_figure(fig, out, "cosegnet_visual_results")
if negative:
    fig = plots.show_predictions(negative, companion.predict_samples(base_run, negative),
                                 titles=[f"base: {s['group_a']}/{s['group_b']}" for s in negative])
    plots.save_figure(fig, out, "cosegnet_base_outliers")
