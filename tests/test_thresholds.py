"""Thresholds chosen on the validation split (threshold_selection="val", cosegkit.train.evaluate)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cosegkit.data.transforms import resize_to_original
from cosegkit.models.outputs import CoSegNetOutput
from cosegkit.train.evaluate import (
    THRESHOLD_GRID,
    _upsample,
    decision_threshold_candidates,
    run_thresholds,
    score_pairs,
    select_thresholds,
)

H, W = 12, 16


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class MaskEcho(nn.Module):
    """A CoSegNet-shaped stand-in: foreground probability `fg` on the pixels that channel 0 of the input marks,
    `bg` elsewhere; the decision probability is channel 1's mean (the test writes it there)."""

    def __init__(self, fg: float, bg: float):
        super().__init__()
        self.fg, self.bg = fg, bg

    def forward(self, a, b):
        def logits(x):
            return torch.where(x[:, :1] > 0.5, _logit(self.fg), _logit(self.bg))

        dec = a[:, 1].mean(dim=(1, 2)).clamp(1e-4, 1 - 1e-4)
        unused = torch.zeros(a.shape[0], 4)
        return CoSegNetOutput(logits_a=logits(a), logits_b=logits(b), embedding_a=unused, embedding_b=unused,
                              pooled_a=unused, pooled_b=unused, decision_logit=torch.log(dec / (1 - dec)))


def _pairs(n: int, decision: float, negative: bool = False, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        masks = []
        for _side in "ab":
            m = np.zeros((H, W), dtype=bool)
            if not negative:
                r, c = rng.integers(0, H // 2), rng.integers(0, W // 2)
                m[r:r + H // 2, c:c + W // 2] = True
            masks.append(m)
        out.append({"mask_a": masks[0], "mask_b": masks[1], "decision": decision})
    return out


def _transform(sample: dict) -> dict:
    def image(side):  # channel 0: where the model puts its foreground (the true mask unless the test says)
        x = torch.zeros(3, H, W)
        x[0] = torch.from_numpy(sample.get(f"cue_{side}", sample[f"mask_{side}"]).astype(np.float32))
        x[1] = sample["decision"]
        return x

    return {"image_a": image("a"), "image_b": image("b"),
            "orig_size_a": (H, W), "orig_size_b": (H, W)}


def test_upsample_thresholds_like_resize_to_original():
    prob = torch.rand(7, 9, generator=torch.Generator().manual_seed(0))
    for size in ((7, 9), (20, 13), (5, 30)):
        up = _upsample(prob, size)
        for t in (0.1, 0.35, 0.5, 0.8):
            np.testing.assert_array_equal(up > t, resize_to_original(prob, size, threshold=t))


def test_mask_threshold_recovers_underconfident_foreground():
    """Foreground at p = 0.3 and background at 0.1: 0.5 gives empty masks (J 0); validation picks a threshold
    between the two, the one closest to 0.5 among the perfect ones (0.25), and J becomes 1."""
    model = MaskEcho(fg=0.3, bg=0.1)
    pos = _pairs(6, decision=0.9)
    at_half = score_pairs(model, "cosegnet", pos, _transform, torch.device("cpu"))
    assert at_half["ungated"]["jaccard"] == 0.0
    chosen = select_thresholds(model, "cosegnet", pos, None, _transform, torch.device("cpu"))
    assert chosen["mask"] == 0.25 and chosen["decision"] is None
    assert chosen["val_jaccard"] == pytest.approx(1.0) and chosen["val_jaccard_at_0.5"] == 0.0
    again = score_pairs(model, "cosegnet", pos, _transform, torch.device("cpu"), threshold=chosen["mask"],
                        decision_threshold=0.5)
    assert again["jaccard"] == pytest.approx(1.0)


def test_mask_threshold_follows_the_ground_truth():
    """Inverted ground truth (foreground where the model says background): the best threshold is then the one
    that marks everything (0.05, J = the inverted masks' 3/4 of the image), not the 0.25 that fits the true masks."""
    model = MaskEcho(fg=0.3, bg=0.1)
    pos = _pairs(6, decision=0.9)
    inverted = [dict(s, mask_a=~s["mask_a"], mask_b=~s["mask_b"], cue_a=s["mask_a"], cue_b=s["mask_b"])
                for s in pos]
    chosen = select_thresholds(model, "cosegnet", inverted, None, _transform, torch.device("cpu"))
    assert chosen["mask"] == 0.05 and chosen["val_jaccard"] == pytest.approx(0.75)
    assert chosen["val_precision"] == pytest.approx(0.75)  # every pixel marked: the inverted masks' share


def test_tables_show_validation_scores_at_the_chosen_threshold(tmp_path):
    """The tables' val P / val J are the validation scores at the mask threshold the test used (chosen on
    validation), not the last epoch's at 0.5; a run with fixed thresholds keeps the epoch's."""
    from cosegkit.tables import runs_frame
    from cosegkit.train.experiments import build_settings
    from cosegkit.train.records import RunResult

    model = MaskEcho(fg=0.3, bg=0.1)
    chosen = select_thresholds(model, "cosegnet", _pairs(6, decision=0.9), None, _transform, torch.device("cpu"))
    test = {"positive": {"precision": 1.0, "jaccard": 1.0}, "negative": None}
    history = [{"epoch": 1, "val_precision": 0.5, "val_jaccard": 0.0}]
    settings = build_settings("cosegnet", "smoke", seed=0)
    runs = runs_frame([RunResult(tmp_path, settings, history, test, 1.0, thresholds=chosen),
                       RunResult(tmp_path, settings, history, test, 1.0,
                                 thresholds={"selected_on": "fixed", "mask": 0.5, "decision": 0.5})])
    assert runs.loc[0, "val_J"] == pytest.approx(1.0) and runs.loc[0, "val_P"] == pytest.approx(100.0)
    assert runs.loc[1, "val_J"] == 0.0 and runs.loc[1, "val_P"] == 50.0


def test_decision_threshold_balances_positive_and_negative_pairs():
    """Decision probability 0.35 on positive and 0.2 on negative pairs: at 0.5 every pair is "no common object";
    validation picks 0.3 (perfect balanced accuracy, closest to 0.5), and the test scores use it."""
    model = MaskEcho(fg=0.9, bg=0.1)
    pos, neg = _pairs(5, decision=0.35), _pairs(5, decision=0.2, negative=True, seed=1)
    chosen = select_thresholds(model, "cosegnet", pos, neg, _transform, torch.device("cpu"))
    assert chosen["decision"] == 0.3
    assert chosen["val_decision_accuracy"] == {"positive": 1.0, "negative": 1.0}
    dev = torch.device("cpu")
    fixed = score_pairs(model, "cosegnet", pos, _transform, dev)
    assert fixed["decision_accuracy"] == 0.0 and fixed["jaccard"] == 0.0
    tuned = score_pairs(model, "cosegnet", pos, _transform, dev, threshold=0.5, decision_threshold=0.3)
    assert tuned["decision_accuracy"] == 1.0 and tuned["jaccard"] == pytest.approx(1.0)
    tuned_neg = score_pairs(model, "cosegnet", neg, _transform, dev, negative=True, decision_threshold=0.3)
    assert tuned_neg["decision_accuracy"] == 1.0 and tuned_neg["empty_fraction"] == 1.0


def test_decision_threshold_splits_probabilities_between_grid_points():
    """A briefly trained decision network: 0.418 on positive, 0.412 on negative pairs, no 0.05-grid point between
    them (the best grid point says "yes" or "no" to every pair). The midpoint of the validation probabilities
    separates them; with the classes swapped nothing does, and the choice is no better than chance."""
    model = MaskEcho(fg=0.9, bg=0.1)
    dev = torch.device("cpu")
    pos, neg = _pairs(4, decision=0.418), _pairs(4, decision=0.412, negative=True, seed=1)
    chosen = select_thresholds(model, "cosegnet", pos, neg, _transform, dev)
    assert 0.412 < chosen["decision"] < 0.418
    assert chosen["val_decision_accuracy"] == {"positive": 1.0, "negative": 1.0}
    swapped = select_thresholds(model, "cosegnet", _pairs(4, decision=0.412), _pairs(4, decision=0.418,
                                negative=True, seed=1), _transform, dev)
    acc = swapped["val_decision_accuracy"]
    assert (acc["positive"] + acc["negative"]) / 2 == pytest.approx(0.5)
    assert decision_threshold_candidates([0.418], [0.412], grid=(0.5,)) == [pytest.approx(0.415), 0.5]


def test_uninformative_decision_network_lets_masks_through():
    """Every pair at decision probability 0.4, positive or negative: no threshold does better than chance, and
    "yes to every pair" ties "no to every pair" (0.5 is above every probability). The tie goes to "yes": the
    masks survive the gate instead of all being blanked."""
    model = MaskEcho(fg=0.9, bg=0.1)
    dev = torch.device("cpu")
    pos, neg = _pairs(4, decision=0.4), _pairs(4, decision=0.4, negative=True, seed=1)
    chosen = select_thresholds(model, "cosegnet", pos, neg, _transform, dev)
    assert chosen["val_decision_accuracy"] == {"positive": 1.0, "negative": 0.0}
    gated = score_pairs(model, "cosegnet", pos, _transform, dev, threshold=chosen["mask"],
                        decision_threshold=chosen["decision"])
    assert gated["decision_accuracy"] == 1.0 and gated["jaccard"] == pytest.approx(1.0)


def test_grid_and_inputs_are_checked():
    model = MaskEcho(fg=0.3, bg=0.1)
    with pytest.raises(ValueError, match="grid"):
        select_thresholds(model, "cosegnet", _pairs(2, 0.9), None, _transform, torch.device("cpu"), grid=[0.0, 0.5])
    with pytest.raises(ValueError, match="no validation pair"):
        select_thresholds(model, "cosegnet", [], None, _transform, torch.device("cpu"))
    assert THRESHOLD_GRID[0] == 0.05 and THRESHOLD_GRID[-1] == 0.95 and 0.5 in THRESHOLD_GRID


def test_run_thresholds_reads_the_run(tmp_path):
    class S:
        eval_threshold = 0.5

    assert run_thresholds(tmp_path, S) == (0.5, 0.5)
    chosen = {"selected_on": "val", "mask": 0.2, "decision": 0.35}
    (tmp_path / "results.json").write_text(json.dumps({"thresholds": chosen}))
    assert run_thresholds(tmp_path, S) == (0.2, 0.35)
    (tmp_path / "results.json").write_text(json.dumps({"thresholds": dict(chosen, decision=None)}))
    assert run_thresholds(tmp_path, S) == (0.2, 0.2)
    (tmp_path / "results.json").write_text(json.dumps({"thresholds": dict(chosen, selected_on="fixed")}))
    assert run_thresholds(tmp_path, S) == (0.5, 0.5)  # a fixed run follows its settings' eval_threshold


def test_smoke_cosegnet_chooses_on_validation_and_evaluate_uses_it(tmp_path):
    from cosegkit.train import train
    from cosegkit.train.evaluate import evaluate_run

    run = train("cosegnet", "smoke", tmp_path / "r", overrides={"progress": False, "threshold_selection": "val"})
    chosen = json.loads((run.run_dir / "results.json").read_text())["thresholds"]
    assert chosen["selected_on"] == "val"
    assert chosen["mask"] in THRESHOLD_GRID and 0.0 < chosen["decision"] < 1.0
    report = evaluate_run(run.run_dir, progress=False)
    assert report["thresholds"] == {"mask": chosen["mask"], "decision": chosen["decision"]}
    assert report["positive"]["jaccard"] == pytest.approx(run.test["positive"]["jaccard"])


def test_fixed_is_the_default_and_unknown_values_are_refused(tmp_path):
    from cosegkit.train import train
    from cosegkit.train.experiments import get_experiment

    assert get_experiment("unet-dice").settings("smoke").threshold_selection == "fixed"
    assert get_experiment("unet-dice").settings("cpu").threshold_selection == "val"
    run = train("unet-dice", "smoke", tmp_path / "u", overrides={"progress": False})
    chosen = json.loads((run.run_dir / "results.json").read_text())["thresholds"]
    assert chosen == {"selected_on": "fixed", "mask": 0.5, "decision": None}
    with pytest.raises(ValueError, match="threshold_selection"):
        train("unet-dice", "smoke", tmp_path / "bad", overrides={"progress": False, "threshold_selection": "test"})



@pytest.mark.parametrize("exp", ["unet-dice", "cosegnet"])
def test_evaluate_and_predict_score_a_bf16_channels_last_run_in_its_own_arithmetic(tmp_path, exp, monkeypatch):
    from cosegkit import predict as predict_module
    from cosegkit.tasks import task_for
    from cosegkit.train import evaluate as evaluate_module
    from cosegkit.train import train
    from cosegkit.train.modeling import load_trained_model

    fast = {"progress": False, "amp_on_cpu": True, "channels_last_on_cpu": True}
    run = train(exp, "smoke", tmp_path / "r", overrides=fast)
    settings, model, _ = load_trained_model(run.run_dir, device="cpu")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # as the run was trained and tested

    seen = []
    task = task_for(settings)
    original = type(task).predict

    def spy(self, model, a, b, **kw):  # the arithmetic evaluate and predict run the model in
        seen.append((torch.is_autocast_enabled("cpu"), a.is_contiguous(memory_format=torch.channels_last)))
        return original(self, model, a, b, **kw)

    monkeypatch.setattr(type(task), "predict", spy)
    report = evaluate_module.evaluate_run(run.run_dir, progress=False)
    assert seen and set(seen) == {(True, True)}
    assert report["positive"]["precision"] == run.test["positive"]["precision"]
    seen.clear()
    rng = np.random.default_rng(0)
    images = [tmp_path / f"{k}.png" for k in "ab"]
    for path in images:
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    predict_module.predict_images(run.run_dir, images, tmp_path / "out", device="cpu")
    assert seen and set(seen) == {(True, True)}


def _separated(shift: float, n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.4 + shift, 0.05, n), rng.normal(0.4, 0.05, n)


def test_the_chance_test_finds_what_threshold_search_finds_on_shuffled_labels():
    from cosegkit.train.evaluate import choose_decision_threshold, decision_chance_test

    for shift, informative in ((0.0, False), (0.03, True), (0.1, True)):
        p, n = _separated(shift)
        report = decision_chance_test(p, n, n_permutations=300)
        _, acc = choose_decision_threshold(p, n)
        # the statistic is the best balanced accuracy the threshold search reaches, not a different quantity
        assert report["balanced_accuracy"] == pytest.approx((acc["positive"] + acc["negative"]) / 2)
        assert 0.5 < report["chance_95"] < 0.56  # the search's own optimism on 600 + 600 pairs
        assert (report["p_value"] <= 0.05) == informative
    p, n = _separated(0.1)
    inverted = decision_chance_test(n, p, n_permutations=300)  # positives below negatives: "yes" above t is wrong
    assert inverted["balanced_accuracy"] == 0.5 and inverted["p_value"] > 0.05


def test_a_gate_no_better_than_chance_on_validation_is_opened():
    from cosegkit.train.evaluate import OPEN_GATE, apply_chance_test, choose_decision_threshold

    p, n = _separated(0.0)
    fitted, acc = choose_decision_threshold(p, n)
    threshold, acc_after, report = apply_chance_test(p, n, fitted, acc, n_permutations=300)
    assert report["gate_opened"] and report["fitted_threshold"] == fitted
    assert threshold == OPEN_GATE and acc_after == {"positive": 1.0, "negative": 0.0}
    p, n = _separated(0.1)
    fitted, acc = choose_decision_threshold(p, n)
    assert apply_chance_test(p, n, fitted, acc, n_permutations=300)[:2] == (fitted, acc)  # a real decision stays


def test_smoke_cosegnet_with_the_chance_test_records_it_and_tests_at_its_threshold(tmp_path):
    from cosegkit.train import train

    run = train("cosegnet", "smoke", tmp_path / "r", overrides={
        "progress": False, "threshold_selection": "val", "decision_chance_permutations": 200})
    chosen = json.loads((run.run_dir / "results.json").read_text())["thresholds"]
    chance = chosen["decision_chance"]
    assert chance["permutations"] == 200 and 0.0 < chance["p_value"] <= 1.0
    assert chosen["decision"] == (0.0 if chance["gate_opened"] else chance["fitted_threshold"])
    if chance["gate_opened"]:  # every positive test pair accepted, so no mask is gated off
        assert run.test["positive"]["decision_accuracy"] == 1.0
    with pytest.raises(ValueError, match="decision_chance_permutations"):
        train("cosegnet", "smoke", tmp_path / "bad", overrides={"progress": False, "decision_chance_permutations": -1})


def test_only_the_cpu_profile_tests_its_decision_thresholds_against_chance():
    from cosegkit.train.experiments import get_experiment

    assert get_experiment("cosegnet").settings("cpu").decision_chance_permutations == 1000
    for profile in ("smoke", "paper", "gpu"):
        assert get_experiment("cosegnet").settings(profile).decision_chance_permutations == 0


def test_the_chance_statistic_is_youdens_j_of_sklearns_roc_curve():
    from sklearn.metrics import roc_curve

    from cosegkit.train.evaluate import _best_balanced_accuracy

    rng = np.random.default_rng(3)
    values = np.round(rng.uniform(0.3, 0.5, 400), 3)  # rounded: ties between pairs, as bf16 probabilities have
    labels = np.stack([rng.random(400) < 0.5 for _ in range(20)])
    ours = _best_balanced_accuracy(values, labels)
    for row, got in zip(labels, ours, strict=True):
        fpr, tpr, _ = roc_curve(row, values)
        assert got == pytest.approx(0.5 + 0.5 * max((tpr - fpr).max(), 0.0), abs=1e-12)
