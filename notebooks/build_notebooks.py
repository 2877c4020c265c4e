"""Writes the numbered notebooks from the cell sources below (outputs stripped), so they can be reviewed as code.

Run ``.venv/bin/python notebooks/build_notebooks.py`` after editing; commit the .ipynb files it writes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = '''# Parameters (papermill injects its own values after this cell).
profile = "smoke"  # smoke, cpu or paper
data_root = ""  # PASCAL-VOC co-segmentation folder; empty means the embedded synthetic set
image_size = None  # None keeps the image size of the profile
epochs = None  # None keeps the number of epochs of the profile
seeds = [0]
device = "auto"  # auto, cpu or cuda
output_dir = "runs/notebooks"  # relative paths are taken from the repository; cosegkit reproduce passes results/'''

COMMON = """
companion.check_profile(profile)  # an unknown profile stops here, before any work
out = companion.repo_path(output_dir)  # relative paths: from the repository, whatever papermill's cwd
data_root = str(companion.repo_path(data_root)) if data_root else None
dataset_name = "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"
overrides = companion.overrides_from(image_size, epochs, device)
pd.set_option("display.precision", 3)"""


def setup(imports: str, roots: tuple[str, ...] = ()) -> tuple[str, str]:
    """The set-up cell: the notebook's imports (isort order), then the shared derived settings; `roots` names
    the notebook's extra dataset-folder parameters, resolved like data_root (empty stays empty)."""
    extra = "".join(f"\n{name} = str(companion.repo_path({name})) if {name} else \"\"" for name in roots)
    return ("code", imports.strip() + "\n" + COMMON + extra)


def nb(cells):
    notebook = new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    out = []
    for index, (kind, source, *tags) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"cell-{index:02d}"  # stable ids: regenerating a notebook changes only what was edited
        if tags:
            cell.metadata["tags"] = list(tags)
        out.append(cell)
    notebook.cells = out
    return notebook


def parameters_cell(extra: str = "", seeds: str = "[0]"):
    source = PARAMETERS.replace("seeds = [0]", f"seeds = {seeds}")
    return ("code", source + ("\n" + extra if extra else ""), "parameters")


NOTEBOOKS = {}

NOTEBOOKS["00_data"] = [
    ("md", """# 00 · Data: datasets, pairs and splits

**Regenerates:** no paper table; it shows the data behind every later table: the embedded synthetic
co-segmentation set, and (with `data_root`) the PASCAL-VOC co-segmentation set with CoSegNet's 3:1:1 split
protocol (cosegnet.txt §4.2), positive pairs (same group) and negative pairs (different groups, never the same
image bytes)."""),
    parameters_cell(),
    setup('''
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import companion, plots
from cosegkit.data import (
    RealPairs,
    SyntheticCoseg,
    check_dataset,
    load_dataset,
    negative_pairs,
    positive_pairs,
    split_indices,
)
from cosegkit.metrics import jaccard'''),
    ("md", """## The synthetic set

Each image holds 2-3 textured objects of distinct categories (shape family × texture cut from a real photograph
shipped with scikit-image). A positive pair shares exactly one category, and its masks cover only that object;
a negative pair shares none, and its masks are empty. Single-image saliency cannot solve it: predicting every
object of an image scores a low Jaccard, as the table below measures."""),
    ("code", '''synthetic = SyntheticCoseg(n_pairs=64, size=image_size or 128, seed=seeds[0], negative_fraction=0.25)
shown = [synthetic[i] for i in range(6)]
fig = plots.show_pairs(shown, titles=[f"{s['category'] or 'negative pair'}" for s in shown])
plots.save_figure(fig, out, "00_synthetic_pairs")'''),
    ("code", '''rows = []
for i in range(len(synthetic)):
    sample = synthetic[i]
    if sample["label"] == 1:
        for side in ("a", "b"):
            rows.append(jaccard(sample[f"objects_{side}"], sample[f"mask_{side}"]))
saliency = pd.DataFrame({"statistic": ["positive images", "mean Jaccard of 'every object'", "max"],
                         "value": [len(rows), sum(rows) / len(rows), max(rows)]})
display(saliency)'''),
    ("md", """## The real set (with `data_root`)

`check_dataset` validates every image and mask (it is also `cosegkit data check DIR`)."""),
    ("code", '''if data_root:
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
    titles = [f"{s['group_a']} / {s['group_b']}" for s in samples]
    fig = plots.show_pairs(samples, titles=titles)
    plots.save_figure(fig, out, "00_voc_pairs")
else:
    display(Markdown("No `data_root` given: the real-data part is skipped."))'''),
]

NOTEBOOKS["01_losses"] = [
    ("md", """# 01 · Losses: how each pixel-embedding loss moves points

**Regenerates:** the papers' loss figures in spirit (IS-Triplet Fig. 2, the sampler; the discriminative loss's
pull/push forces, its Fig. 1), on small 2-D embeddings. Each panel is plain gradient descent on free 2-D points
with the package's own losses: IS-Triplet (is_triplet_coseg.txt eqs. 2-4), the discriminative loss
(discriminative_loss.txt §2) and Group Loss (group_loss.txt, replicator dynamics). Then the K-foreground /
K-background sampler is drawn on an image, and mean-shift (`cosegkit.cluster.mean_shift`) clusters the result."""),
    parameters_cell(),
    setup('''
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
from cosegkit.toy import TOY_LOSSES, class_gap, optimise_points, two_class_points'''),
    ("code", '''points, labels = two_class_points(n_per_class=60, seed=seeds[0])
histories = {name: optimise_points(name, points, labels, steps=100, snapshots=4, seed=seeds[0])
             for name in TOY_LOSSES}
fig, axes = plt.subplots(len(TOY_LOSSES), 4, figsize=(12, 3 * len(TOY_LOSSES)), squeeze=False)
for row, (name, history) in enumerate(histories.items()):
    for col, (step, xy, loss) in enumerate(history):
        plots.plot_embedding_2d(xy, labels, ax=axes[row, col], title=f"{name}: step {step}, loss {loss:.3f}")
fig.tight_layout()
plots.save_figure(fig, out, "01_toy_losses")'''),
    ("md", """IS-Triplet pushes the two classes apart until the margin m = 3 holds on the sampled rows, then stops (a
hinge). The discriminative loss pulls each class within δv = 0.5 of its mean and pushes the means 2δd = 3 apart.
Group Loss only needs the refined label assignment to be right, so it separates less."""),
    ("code", '''summary = pd.DataFrame([
    {"loss": name, "first loss": h[0][2], "last loss": h[-1][2],
     "class-mean distance before": class_gap(points, labels), "class-mean distance after": class_gap(h[-1][1], labels),
     "mean-shift ARI after": adjusted_rand_score(labels, mean_shift(torch.tensor(h[-1][1]), bandwidth=0.5).numpy())}
    for name, h in histories.items()
])
display(summary)
write_table(summary, out, "01_toy_losses", "Toy 2-D embeddings: each loss's effect (gradient descent on points)", None,
            notes=f"Deterministic toy problem (seed {seeds[0]}); no dataset.")'''),
    ("md", """## The K-foreground / K-background sampler (IS-Triplet §3.2, Fig. 2)

Per image, F1 and F2 are two independent draws of K foreground pixels and B1, B2 two of K background pixels,
each without replacement; K shrinks to the smaller class's count."""),
    ("code", '''sample = SyntheticCoseg(n_pairs=1, size=image_size or 128, seed=seeds[0])[0]
mask = torch.as_tensor(sample["mask_a"])[None]
k = 150
drawn = sample_fg_bg_pixels(mask, k=k, generator=torch.Generator().manual_seed(seeds[0]))
n = int(drawn["counts"][0])
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f1"][0, :n], drawn["b1"][0, :n], ax=axes[0],
                          title=f"F1 and B1 (K={n})")
plots.plot_sampled_pixels(sample["image_a"], sample["mask_a"], drawn["f2"][0, :n], drawn["b2"][0, :n], ax=axes[1],
                          title="F2 and B2: independent draws")
plots.save_figure(fig, out, "01_sampler")'''),
]

NOTEBOOKS["02_is_triplet"] = [
    ("md", """# 02 · IS-Triplet: Tables 1-2 and Figs. 4-5

**Regenerates:** IS-Triplet (is_triplet_coseg.txt) **Table 1** (Dice with and without IS-Triplet), **Table 2**
(Dice, CE and Focal, each with and without IS-Triplet) and the training curves of **Figs. 4-5** (loss, IoU and
precision per epoch, with against without). Every table also carries the single-image baseline (same network, the
correlation block sees the image itself) and each row's Jaccard gain over it.

The paper compares two networks: the "Gong et al." rows are the original network (Fig. 1a: 2-channel logits at
half size, `model.head="original"`, the segmentation loss alone), the "modified framework" rows are Fig. 1b
(64-channel full-size embedding and a 1×1 conv to logits, `model.head="embedding"`, loss_seg + λ·IS-Triplet), so
each of its pairs changes the head and the loss together. Rows labelled *ours* add the like-for-like comparison
the paper does not make: the embedding head trained with the segmentation loss alone (`unet-<loss>-embedding`),
which differs from the IS-Triplet row only in the IS-Triplet term (and the learning rate, 1e-3 against 1e-4,
§4.1.3).

The paper trains on its "Collection" (VOC 2012 + MSRC) and tests on Internet; with `data_root` we train and test
on the PASCAL-VOC co-segmentation set instead, and the tables say so. Our numbers are at the profile's reduced
scale unless the profile is `paper`."""),
    parameters_cell('internet_root = ""  # Internet dataset (Rubinstein et al. 2013); empty means absent\n'
                    'sbcoseg_root = ""  # SBCoseg; empty means absent'),
    setup('''
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import companion, paper_numbers, plots
from cosegkit.report import not_run_message, write_table''', roots=("internet_root", "sbcoseg_root")),
    ("code", '''experiments = ["unet-dice", "unet-dice-istriplet", "unet-ce", "unet-ce-istriplet", "unet-focal",
               "unet-focal-istriplet", "unet-dice-embedding", "unet-ce-embedding", "unet-focal-embedding",
               "unet-single-image"]
results = companion.run_experiments(experiments, profile, out, data_root=data_root, seeds=seeds, overrides=overrides)
runs = companion.runs_frame(results)
agg = companion.aggregate_seeds(runs).set_index("experiment")
gain = companion.add_gain_over_baseline(runs, "unet-single-image").set_index("experiment")
provenance = companion.provenance_for(results, dataset_name, profile)
display(runs)'''),
    ("code", '''paper2 = paper_numbers.is_triplet_table2()
names = {"dice": "Dice", "ce": "CE", "focal": "Focal"}
nan = float("nan")
# (suffix, network label, paper row: with IS-Triplet or not, None = not in the paper)
variants = (("", "Gong et al. (Fig. 1a, original head)", False),
            ("-istriplet", "modified framework (Fig. 1b, embedding head)", True),
            ("-embedding", "ours: embedding head (Fig. 1b), no IS-Triplet", None))
rows = []
for seg in ("dice", "ce", "focal"):
    for suffix, network, with_is in variants:
        name = f"unet-{seg}{suffix}"
        paper_row = (paper2[(paper2.seg_loss == names[seg]) & (paper2.is_triplet == with_is)].iloc[0]
                     if with_is is not None else None)
        rows.append({
            "network": network, "loss": names[seg] + (" + IS-Triplet" if with_is else ""),
            "ours val P": agg.loc[name, "val_P"], "ours val J": agg.loc[name, "val_J"],
            "ours test P": agg.loc[name, "test_P"], "ours test J": agg.loc[name, "test_J"],
            "ΔJ vs single-image": gain.loc[name, "gain_test_J"],
            "ΔJ 95% CI": gain.loc[name, "gain_test_J_ci95"],
            "paper val P": nan if paper_row is None else paper_row.val_P,
            "paper val J": nan if paper_row is None else paper_row.val_J,
            "paper test P": nan if paper_row is None else paper_row.test_P,
            "paper test J": nan if paper_row is None else paper_row.test_J,
        })
rows.append({"network": "original head (Fig. 1a)", "loss": companion.SINGLE_IMAGE_LABEL,
             "ours val P": agg.loc["unet-single-image", "val_P"], "ours val J": agg.loc["unet-single-image", "val_J"],
             "ours test P": agg.loc["unet-single-image", "test_P"],
             "ours test J": agg.loc["unet-single-image", "test_J"], "ΔJ vs single-image": 0.0,
             "ΔJ 95% CI": float("nan"), "paper val P": float("nan"), "paper val J": float("nan"),
             "paper test P": float("nan"), "paper test J": float("nan")})
table2 = pd.DataFrame(rows)
where = f"ours: train/val/test on {dataset_name}; paper: train/val on Collection (VOC 2012 + MSRC), test on Internet"
heads = ("Rows 'ours: embedding head, no IS-Triplet' are not in the paper: with the IS-Triplet row just above "
         "each, they compare the same head with and without IS-Triplet. The single-image baseline has the original "
         "head (that of unet-dice), so ΔJ of an embedding-head row also includes the change of head.")
write_table(table2, out, "is_triplet_table2", "IS-Triplet Table 2: Dice, CE, Focal with and without IS-Triplet",
            provenance, notes=where + ". Precision in %, Jaccard as a fraction; ΔJ is paired by seed. " + heads)
display(Markdown((out / "tables" / "is_triplet_table2.md").read_text()))'''),
    ("code", '''paper1 = paper_numbers.is_triplet_table1()
rows = []
for name, method, loss in (
        ("unet-dice", "ours: Gong et al. network (original head)", "Dice"),
        ("unet-dice-istriplet", "ours: modified framework (embedding head)", "Dice + IS-Triplet"),
        ("unet-dice-embedding", "ours, not in the paper: embedding head", "Dice"),
        ("unet-single-image", "ours: original head", companion.SINGLE_IMAGE_LABEL)):
    rows.append({"method": method, "loss": loss, "train/val": dataset_name, "test": dataset_name,
                 "val P": agg.loc[name, "val_P"], "val J": agg.loc[name, "val_J"],
                 "test P": agg.loc[name, "test_P"], "test J": agg.loc[name, "test_J"],
                 "ΔJ vs single-image": gain.loc[name, "gain_test_J"]})
for dataset, root, fetch in (("SBCoseg", sbcoseg_root, "sbcoseg"), ("Internet", internet_root, "internet")):
    if not root:
        rows.append({"method": "ours", "loss": "Dice ± IS-Triplet", "train/val": dataset, "test": dataset,
                     "val P": not_run_message(dataset, root, fetch, parameter=f"{fetch}_root")})
for row in paper1.itertuples():
    rows.append({"method": f"paper: {row.method}", "loss": row.loss, "train/val": row.train_val_dataset,
                 "test": row.test_dataset, "val P": row.val_P, "val J": row.val_J, "test P": row.test_P,
                 "test J": row.test_J})
table1 = pd.DataFrame(rows)
write_table(table1, out, "is_triplet_table1", "IS-Triplet Table 1: Dice with and without IS-Triplet", provenance,
            notes="Rows marked 'paper:' are the published numbers (448x448, ResNet-50, 30 epochs). Gong et al. = "
                  "the original network (Fig. 1a: 2-channel logits at half size); modified framework = Fig. 1b "
                  "(64-channel embedding, 1x1 conv to logits). The embedding-head Dice row is ours: the same head as "
                  "the IS-Triplet row, without IS-Triplet.")
display(Markdown((out / "tables" / "is_triplet_table1.md").read_text()))'''),
    ("md", """## Figs. 4-5: curves per epoch, with against without IS-Triplet"""),
    ("code", '''first = {r.experiment: r for r in results if r.settings.seed == seeds[0]}
label = {"dice": "Dice", "ce": "CE", "focal": "Focal"}
fig4 = plots.plot_training_curves(
    {"Dice without IS-Triplet (original head)": companion.history_frame(first["unet-dice"]),
     "Dice without IS-Triplet (embedding head, ours)": companion.history_frame(first["unet-dice-embedding"]),
     "Dice + IS-Triplet (embedding head)": companion.history_frame(first["unet-dice-istriplet"])},
    title=f"Fig. 4 (ours, {dataset_name}, profile {profile})")
plots.save_figure(fig4, out, "is_triplet_fig4_curves")
curves = {}
for seg in ("dice", "ce", "focal"):
    curves[f"{label[seg]} without"] = companion.history_frame(first[f"unet-{seg}"])
    curves[f"{label[seg]} + IS-Triplet"] = companion.history_frame(first[f"unet-{seg}-istriplet"])
fig5 = plots.plot_training_curves(curves, title=f"Fig. 5 (ours, {dataset_name}, profile {profile})")
plots.save_figure(fig5, out, "is_triplet_fig5_curves")'''),
]

NOTEBOOKS["03_cosegnet"] = [
    ("md", """# 03 · CoSegNet: Tables 1-6 and visual results (Figs. 3-6)

**Regenerates:** CoSegNet (cosegnet.txt) **Table 1** (PASCAL-VOC P/J against the published methods),
**Table 2** (Internet per class), **Table 3** (trained on VOC, tested on Internet), **Table 4** (MSRC),
**Table 5** (CoSegNet against CoSegNet-base), **Table 6** (which decoder layer feeds the metric network), and
visual results like **Figs. 3-6**: input pair, ground truth, prediction and extracted object, and outlier pairs
that should get empty predictions. Every table carries the single-image baseline and the gain over it.

Table 1 follows §4.2: random 3:1:1 splits, repeated `n_splits` times (the paper uses 100), mean ± std.

Training triplets "follow Schroff et al." (§4.1): the `paper` profile mines FaceNet's semi-hard negatives among
8 candidates per triplet (`data.triplet_mining="semihard"`); `smoke` and `cpu` draw negatives at random (a
deviation the cpu profile states, for speed)."""),
    parameters_cell('n_splits = None  # 3:1:1 splits for Table 1; None: the profiles (smoke 2, cpu 1, paper 100)\n'
                    'internet_root = ""  # Internet dataset; empty means absent\n'
                    'msrc_root = ""  # MSRC co-segmentation subset; empty means absent'),
    setup('''
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import companion, paper_numbers, plots
from cosegkit.report import not_run_message, write_table
from cosegkit.train import evaluate_run''', roots=("internet_root", "msrc_root")),
    ("code", '''splits = companion.run_splits("cosegnet", profile, out, n_splits=n_splits, data_root=data_root,
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
      f"{100 * splits['precision_std']:.1f}, J {splits['jaccard_mean']:.3f} ± {splits['jaccard_std']:.3f}")'''),
    ("code", '''single = agg.loc["cosegnet-single-image"]
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
display(Markdown((out / "tables" / "cosegnet_table1.md").read_text()))'''),
    ("code", '''voc_run = next(r for r in results if r.experiment == "cosegnet" and r.settings.seed == seeds[0])
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
display(tables34[4])'''),
    ("code", '''rows = []
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
display(Markdown((out / "tables" / "cosegnet_table5.md").read_text()))'''),
    ("code", '''layers = {"f": "cosegnet-f", "cT3": "cosegnet-ct3", "cT6": "cosegnet-ct6", "cT9": "cosegnet-ct9",
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
display(Markdown((out / "tables" / "cosegnet_table6.md").read_text()))'''),
    ("md", """## Visual results (Figs. 3-6)

Positive test pairs, then outlier pairs (no common object): CoSegNet's decision network should blank them
(Fig. 6); CoSegNet-base has no decision network."""),
    ("code", '''base_run = next(r for r in results if r.experiment == "cosegnet-base" and r.settings.seed == seeds[0])
positive, negative = companion.test_samples(voc_run, n_positive=4, n_negative=3)
predictions = companion.predict_samples(voc_run, positive + negative)
titles = [f"{s['group_a']}/{s['group_b']}" for s in positive + negative]
fig = plots.show_predictions(positive + negative, predictions, titles=titles)
plots.save_figure(fig, out, "cosegnet_visual_results")
if negative:
    fig = plots.show_predictions(negative, companion.predict_samples(base_run, negative),
                                 titles=[f"base: {s['group_a']}/{s['group_b']}" for s in negative])
    plots.save_figure(fig, out, "cosegnet_base_outliers")'''),
]

NOTEBOOKS["04_embeddings_meanshift"] = [
    ("md", """# 04 · Pixel embeddings and mean-shift clusters

**Regenerates:** the discriminative-loss paper's central picture (discriminative_loss.txt Fig. 1: pixels mapped
to an embedding space where a fast clustering step separates objects), for the two pixel losses of this
companion: the discriminative loss and IS-Triplet, each trained on the same SiameseUNet (64-channel embedding
head, is_triplet_coseg.txt §3.3). Embeddings are projected with PCA and t-SNE, clustered with
`cosegkit.cluster.mean_shift` and painted back onto the images; cluster quality is the adjusted Rand index
against the ground-truth foreground/background."""),
    parameters_cell('n_images = 4  # test images to embed and cluster'),
    setup('''
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
from cosegkit.report import write_table'''),
    ("code", '''losses = {"discriminative": "pixel-dml-discriminative", "IS-Triplet": "pixel-dml-istriplet"}
results = companion.run_experiments(losses.values(), profile, out, data_root=data_root, seeds=seeds[:1],
                                    overrides={**overrides, "data.split_seed": seeds[0]})
by_name = {r.experiment: r for r in results}
positive, _ = companion.test_samples(results[0], n_positive=n_images, n_negative=0)
embedded = {loss: companion.pixel_embeddings(by_name[name], positive) for loss, name in losses.items()}'''),
    ("md", """Mean-shift bandwidth: the discriminative loss is trained so each cluster lies within δv = 0.5 of its
centre, so its bandwidth is δv (the paper's choice). IS-Triplet has no such radius; its margin m = 3 separates
the classes, and we use m/2 = 1.5. The embeddings are not normalised. Seeds: 256 random pixels of each image
(sklearn's `seeds=`); grid-bin seeding, the sklearn default, can find no seed at all in 64 dimensions, where a
bin centre may lie farther than the bandwidth from every point in its bin."""),
    ("code", '''bandwidths = {"discriminative": 0.5, "IS-Triplet": 1.5}
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
display(quality)'''),
    ("code", '''fig, axes = plt.subplots(len(embedded), 3, figsize=(12, 4 * len(embedded)), squeeze=False)
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
plots.save_figure(fig, out, "04_embeddings_projected")'''),
]

NOTEBOOKS["05_pixel_dml_comparison"] = [
    ("md", """# 05 · Pixel-DML comparison, and the benchmark where the pair must matter

**Regenerates:** a table none of the papers has. One framework (SiameseUNet + Dice, is_triplet_coseg.txt §3.3),
one split and several seeds: no pixel-DML term against IS-Triplet, the discriminative loss and pixel-level Group
Loss, each weighted by the same λ schedule (λ0 = 1, ×0.85 per epoch). It reports P and J as mean ± 95% CI over
seeds, the Jaccard gain over the single-image baseline (paired by seed), and training time.

The second part is the synthetic benchmark on which co-segmentation must use the partner image: each synthetic
image holds 2-3 objects and only the one shared with the partner is foreground."""),
    parameters_cell(seeds="[0, 1, 2]"),
    setup('''
import pandas as pd
from IPython.display import Markdown, display

from cosegkit import companion
from cosegkit.report import write_table'''),
    ("code", '''experiments = ["pixel-dml-none", "pixel-dml-istriplet", "pixel-dml-discriminative", "pixel-dml-group",
               "pixel-dml-single-image"]
one_split = {**overrides, "data.split_seed": seeds[0]}
results = companion.run_experiments(experiments, profile, out, data_root=data_root, seeds=seeds, overrides=one_split)
runs = companion.runs_frame(results)
agg = companion.aggregate_seeds(runs)
gain = companion.add_gain_over_baseline(runs, "pixel-dml-single-image")
is_triplet = companion.add_gain_over_baseline(runs, "pixel-dml-none").set_index("experiment")
table = agg.merge(gain, on="experiment")
table["experiment"] = table["experiment"].replace({"pixel-dml-single-image": companion.SINGLE_IMAGE_LABEL})
table = table[["experiment", "n_seeds", "test_P", "test_P_ci95", "test_J", "test_J_ci95", "gain_test_J",
               "gain_test_J_ci95", "train_min"]]
write_table(table, out, "pixel_dml_comparison", "Pixel-DML comparison (one split, several seeds)",
            companion.provenance_for(results, dataset_name, profile),
            notes="Values are means over seeds with 95% Student-t CI half-widths; the gain is paired by seed. Every "
                  "row, the single-image baseline included, uses the embedding head (Fig. 1b) and the same lr.")
display(Markdown((out / "tables" / "pixel_dml_comparison.md").read_text()))
effect = is_triplet.loc["pixel-dml-istriplet"]
print(f"IS-Triplet effect (Dice + IS-Triplet - Dice, paired by seed, {len(seeds)} seed(s)): "
      f"ΔJ {effect.gain_test_J:+.3f} ± {effect.gain_test_J_ci95:.3f} (95% CI)")'''),
    ("md", """## The synthetic benchmark: where the pair must matter

Single-image baseline against the Siamese U-Net and CoSegNet on `SyntheticCoseg`, and how often each returns an
empty mask for negative (outlier) pairs. It always runs on the synthetic set, whatever `data_root` is."""),
    ("code", '''bench = ["unet-single-image", "unet-dice", "cosegnet-single-image", "cosegnet"]
synthetic = companion.run_experiments(bench, profile, out, data_root=None, seeds=seeds[:1], overrides=overrides)
srun = companion.runs_frame(synthetic).set_index("experiment")
rows = []
for family, single, pair in (("SiameseUNet", "unet-single-image", "unet-dice"),
                             ("CoSegNet", "cosegnet-single-image", "cosegnet")):
    for name, label in ((single, companion.SINGLE_IMAGE_LABEL), (pair, "co-segmentation")):
        rows.append({"family": family, "model": label, "test P": srun.loc[name, "test_P"],
                     "test J": srun.loc[name, "test_J"], "ΔJ vs single-image": srun.loc[name, "test_J"] -
                     srun.loc[single, "test_J"], "outlier pairs: empty masks": srun.loc[name, "neg_empty_fraction"],
                     "outlier pairs: decision accuracy": srun.loc[name, "decision_accuracy"]})
bench_table = pd.DataFrame(rows)
write_table(bench_table, out, "synthetic_pair_benchmark", "Synthetic benchmark: does the model use the partner image?",
            companion.provenance_for(synthetic, "SyntheticCoseg", profile))
display(Markdown((out / "tables" / "synthetic_pair_benchmark.md").read_text()))'''),
]

NOTEBOOKS["06_report"] = [
    ("md", """# 06 · Report: assemble `results/`

**Regenerates:** nothing new; it gathers every table (ours beside the papers', each labelled with profile,
dataset, image size, seeds and commit) and every figure that notebooks 00-05 wrote under `output_dir`, into
`output_dir/REPORT.md`, with the time each notebook took."""),
    parameters_cell(),
    setup('''
import json

import pandas as pd

from cosegkit import companion'''),
    ("code", '''tables = sorted((out / "tables").glob("*.md"))
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
(out / "REPORT.md").write_text("\\n".join(lines) + "\\n")
print(f"{len(tables)} tables and {len(figures)} figures -> {out / 'REPORT.md'}")'''),
]


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(nb(cells), HERE / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
    main()
