"""The decision threshold chosen on many validation pairs, scored by the decision alone (data.decision_val_pairs,
cosegkit.train.evaluate.decision_probabilities)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from cosegkit.data.pairs import RealPairs
from cosegkit.models.cosegnet import CoSegNet
from cosegkit.models.outputs import CoSegNetOutput
from cosegkit.tasks import build_run_data, task_for
from cosegkit.train import build_settings, train
from cosegkit.train.evaluate import decision_probabilities, select_thresholds
from cosegkit.train.modeling import eval_transform
from cosegkit.train.run_cache import run_key


def _settings(**overrides):
    return build_settings("cosegnet", "smoke", overrides={"progress": False, "threshold_selection": "val",
                                                          "data.test_negative_pairs": 2, **overrides})


def _model(single_image: bool = False) -> CoSegNet:
    torch.manual_seed(0)
    return CoSegNet(encoder="tiny", width_mult=0.25, metric_layer="cT3", single_image=single_image,
                    decoder_norm="group", decision_init="default").eval()  # "difference": D(fs, fs) is constant


@pytest.mark.parametrize("single_image", [False, True])
def test_decisions_alone_equal_the_full_prediction(rectangles_folder, single_image):
    """Per-image codes (RealPairs: 20 pairs over their images) and per-pair codes (a plain list) give the decisions
    of the task's predict, side by side; for a single-image model the two sides differ."""
    s = _settings()
    data = build_run_data(s, rectangles_folder)
    ds = data.dataset
    model = _model(single_image)
    tf = eval_transform(s, model)
    idx = data.split["train"][:8]
    combos = [(a, b) for i, a in enumerate(idx) for b in idx[i + 1:]]
    pairs = RealPairs(ds, combos, negative=[ds.group_of(a) != ds.group_of(b) for a, b in combos])
    assert len(pairs) >= 10 and any(pairs.negative) and not all(pairs.negative)
    task = task_for("cosegnet")
    items = [tf(pairs[k]) for k in range(len(pairs))]
    stack = lambda side: torch.stack([it[side] for it in items])  # noqa: E731
    pred = task.predict(model, stack("image_a"), stack("image_b"))
    dev = torch.device("cpu")
    for source in (pairs, [pairs[k] for k in range(len(pairs))]):
        da, db = decision_probabilities(model, "cosegnet", source, tf, dev, batch_size=3)
        np.testing.assert_allclose(da, pred.decision_a.numpy(), atol=1e-5)
        np.testing.assert_allclose(db, pred.decision_b.numpy(), atol=1e-5)
    assert np.ptp(da) > 1e-4 and (np.abs(da - db).max() > 1e-4) == single_image


def test_decisions_need_a_decision_network():
    with pytest.raises(ValueError, match="no decision network"):
        decision_probabilities(nn.Identity(), "unet", [], lambda x: x, torch.device("cpu"))


class CueModel(nn.Module):
    """CoSegNet-shaped: full masks; an image's code is the mean of its channel 1 and a pair's decision
    probability the mean of its two codes."""

    def forward(self, a, b):
        codes_a, codes_b = self.metric_embedding(a), self.metric_embedding(b)
        logits = torch.full((a.shape[0], 1, *a.shape[2:]), 5.0)
        return CoSegNetOutput(logits, logits, codes_a, codes_b, codes_a, codes_b, self.decide(codes_a, codes_b)[0])

    def metric_embedding(self, x):
        return x[:, 1].mean(dim=(1, 2))[:, None]

    def decide(self, codes_a, codes_b):
        p = ((codes_a + codes_b) / 2)[:, 0].clamp(1e-4, 1 - 1e-4)
        return torch.log(p / (1 - p)), None


def _cue_pairs(probs, negative: bool) -> list[dict]:
    mask = np.zeros((8, 8), dtype=bool) if negative else np.ones((8, 8), dtype=bool)
    return [{"mask_a": mask, "mask_b": mask, "cue": p} for p in probs]


def _cue_transform(sample):
    x = torch.zeros(3, 8, 8)
    x[1] = sample["cue"]
    return {"image_a": x, "image_b": x.clone(), "orig_size_a": (8, 8), "orig_size_b": (8, 8)}


def test_threshold_comes_from_the_decision_pairs():
    """The mask pairs alone (decision 0.46 on positive, 0.41 on negative pairs) would put the threshold between
    0.41 and 0.46; the decision pairs (0.35 against 0.20) put it at 0.3 and are counted in the result."""
    dev = torch.device("cpu")
    model = CueModel()
    pos, neg = _cue_pairs([0.46] * 3, False), _cue_pairs([0.41] * 3, True)
    alone = select_thresholds(model, "cosegnet", pos, neg, _cue_transform, dev)
    assert 0.41 < alone["decision"] < 0.46 and alone["decision_pairs"] == {"positive": 3, "negative": 3}
    chosen = select_thresholds(model, "cosegnet", pos, None, _cue_transform, dev,
                               decision_pairs=(_cue_pairs([0.35] * 5, False), _cue_pairs([0.2] * 7, True)))
    assert chosen["decision"] == 0.3
    assert chosen["val_decision_accuracy"] == {"positive": 1.0, "negative": 1.0}
    assert chosen["decision_pairs"] == {"positive": 5, "negative": 7}
    with pytest.raises(ValueError, match="decision_pairs needs positive and negative pairs"):
        select_thresholds(model, "cosegnet", pos, None, _cue_transform, dev, decision_pairs=(pos, []))


def test_validation_decision_pairs_on_a_folder(rectangles_folder):
    """3 groups x 2 validation images: 3 positive and 12 negative validation pairs. The decision pairs come from the
    validation split, positive ones within a group, negative ones across; more than the split has is an error
    naming the setting and the most it can be."""
    data = build_run_data(_settings(**{"data.decision_val_pairs": 3}), rectangles_folder)
    ds, val = data.dataset, set(data.split["val"])
    pos, neg = data.val_decision
    assert data.val_negative is None and len(pos) == len(neg) == 3
    assert all(a in val and b in val and ds.group_of(a) == ds.group_of(b) for a, b in pos.pairs)
    assert all(a in val and b in val and ds.group_of(a) != ds.group_of(b) for a, b in neg.pairs)
    assert neg.negative == [True] * 3 and pos.negative == [False] * 3
    default = build_run_data(_settings(), rectangles_folder)
    assert default.val_decision is None and len(default.val_negative) == len(default.val)
    with pytest.raises(ValueError, match=r"data.decision_val_pairs=4 .* 3 positive and 12 negative .*=3 or less"):
        build_run_data(_settings(**{"data.decision_val_pairs": 4}), rectangles_folder)


@pytest.mark.parametrize("bad", [0, -2, True, 2.5])
def test_decision_val_pairs_is_checked(bad):
    # a wrong type is refused by the overrides' type check, a wrong int by DataSettings
    with pytest.raises(ValueError, match=r"data.decision_val_pairs( must be None or an int >= 1|': expected int)"):
        _settings(**{"data.decision_val_pairs": bad})


RUN_KEY_BEFORE = "1c7d2a1512"  # run_key(_settings()) at 204d4bb, before data.decision_val_pairs existed


def test_the_setting_keys_runs_only_when_set():
    assert run_key(_settings()) == RUN_KEY_BEFORE
    assert run_key(_settings(**{"data.decision_val_pairs": 5})) != RUN_KEY_BEFORE


def test_a_synthetic_run_chooses_its_decision_on_the_decision_pairs(tmp_path):
    run = train("cosegnet", "smoke", tmp_path / "r", overrides={"progress": False, "threshold_selection": "val",
                                                                "data.decision_val_pairs": 5})
    chosen = json.loads((run.run_dir / "results.json").read_text())["thresholds"]
    assert chosen["decision_pairs"] == {"positive": 5, "negative": 5}
    assert 0.0 < chosen["decision"] < 1.0 and not math.isnan(chosen["val_decision_accuracy"]["positive"])
