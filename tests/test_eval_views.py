"""Test-time views (TrainSettings.eval_scales / eval_hflip, Task.predict_views): the masks of a pair averaged over
rescaled and mirrored copies of it, the decision from the pair as it is."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cosegkit.models.cosegnet import CoSegNet
from cosegkit.models.siamese_unet import SiameseUNet
from cosegkit.tasks import task_for
from cosegkit.tasks.base import scaled_view
from cosegkit.train import build_settings, train
from cosegkit.train.evaluate import evaluate_run
from cosegkit.train.run_cache import run_key


def _unet() -> SiameseUNet:
    torch.manual_seed(0)
    return SiameseUNet(encoder="tiny", head="original", pretrained=False).eval()


def _cosegnet() -> CoSegNet:
    torch.manual_seed(0)
    return CoSegNet(encoder="tiny", width_mult=0.25, metric_layer="cT3", decoder_norm="group",
                    decision_init="default").eval()


def _pair(size: int = 64):
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, size, size, generator=g), torch.randn(2, 3, size, size, generator=g)


@pytest.mark.parametrize("family, build", [("unet", _unet), ("cosegnet", _cosegnet)])
def test_default_views_are_the_plain_prediction_bit_for_bit(family, build):
    model, (a, b) = build(), _pair()
    task = task_for(family)
    plain, views = task.predict(model, a, b, threshold=0.4), task.predict_views(model, a, b, threshold=0.4)
    assert torch.equal(plain.prob_a, views.prob_a) and torch.equal(plain.prob_b, views.prob_b)
    if plain.has_decision:
        assert torch.equal(plain.decision_a, views.decision_a) and torch.equal(plain.accepted_a, views.accepted_a)


def test_views_average_every_rescaled_and_mirrored_prediction_at_the_input_size():
    model, (a, b) = _unet(), _pair()
    task = task_for("unet")
    expected_a, expected_b = torch.zeros(2, 64, 64), torch.zeros(2, 64, 64)
    for size in (64, 96):  # scales 1 and 1.5
        sa = F.interpolate(a, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        sb = F.interpolate(b, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        for mirrored in (False, True):
            pred = task.predict(model, sa.flip(-1), sb.flip(-1)) if mirrored else task.predict(model, sa, sb)
            for expected, prob in ((expected_a, pred.prob_a), (expected_b, pred.prob_b)):
                prob = prob.flip(-1) if mirrored else prob
                expected += F.interpolate(prob[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0] / 4
    views = task.predict_views(model, a, b, scales=(1.0, 1.5), hflip=True)
    torch.testing.assert_close(views.prob_a, expected_a)
    torch.testing.assert_close(views.prob_b, expected_b)
    plain = task.predict(model, a, b).prob_a
    assert (views.prob_a - F.interpolate(plain[:, None], size=(64, 64), mode="bilinear")[:, 0]).abs().max() > 1e-3


def test_a_mirror_symmetric_pair_gives_a_mirror_symmetric_mask():
    """Averaging a view with its mirror image makes the prediction of a symmetric input symmetric, whatever the
    network's own asymmetries; without the mirrored view it is not."""
    model = _unet()
    a, b = _pair()
    a, b = a + a.flip(-1), b + b.flip(-1)
    task = task_for("unet")
    views = task.predict_views(model, a, b, hflip=True).prob_a
    torch.testing.assert_close(views, views.flip(-1))
    plain = task.predict(model, a, b).prob_a
    assert (plain - plain.flip(-1)).abs().max() > 1e-4


@pytest.mark.parametrize("scales", [(2.0,), (1.0, 1.5)])
def test_cosegnet_decides_on_the_pair_as_it_is(scales):
    """The decision threshold is chosen on the decisions of the plain pair (evaluate.decision_probabilities), so
    the views change the masks and never the decision, also when scale 1 is not among them."""
    model, (a, b) = _cosegnet(), _pair()
    task = task_for("cosegnet")
    plain = task.predict(model, a, b, threshold=0.5)
    views = task.predict_views(model, a, b, threshold=0.5, scales=scales, hflip=True)
    torch.testing.assert_close(views.decision_a, plain.decision_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(views.decision_b, plain.decision_b, atol=1e-5, rtol=0)
    assert torch.equal(views.accepted_a, plain.decision_a > 0.5)
    assert views.prob_a.shape == (2, 64, 64)
    assert (views.prob_a - plain.prob_a).abs().max() > 1e-4


def test_scaled_views_are_multiples_of_32_pixels():
    x = torch.zeros(1, 3, 224, 224)
    assert scaled_view(x, 1.0) is x
    assert scaled_view(x, 1.5).shape[-2:] == (320, 320)  # 336 -> nearest multiple of 32
    assert scaled_view(torch.zeros(1, 3, 64, 96), 0.25).shape[-2:] == (32, 32)


@pytest.mark.parametrize("overrides, message", [
    ({"eval_scales": []}, "eval_scales"),
    ({"eval_scales": [0]}, "eval_scales"),
    ({"eval_scales": [1.0, 1.0]}, "eval_scales"),
    ({"eval_hflip": 1}, "eval_hflip"),
])
def test_bad_views_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_settings("unet-dice", "smoke", overrides=overrides)


def test_views_enter_the_run_key_only_when_set():
    plain = build_settings("unet-dice", "smoke")
    assert run_key(build_settings("unet-dice", "smoke", overrides={"eval_scales": [1.0]})) == run_key(plain)
    assert run_key(build_settings("unet-dice", "smoke", overrides={"eval_hflip": True})) != run_key(plain)
    assert run_key(build_settings("unet-dice", "smoke", overrides={"eval_scales": [1.5]})) != run_key(plain)


def test_training_tests_and_evaluate_scores_over_the_same_views(tmp_path):
    """A run's test report and `cosegkit evaluate` of it score its synthetic test pairs the same way, over its
    views."""
    result = train("unet-dice", "smoke", tmp_path / "run",
                   overrides={"progress": False, "eval_scales": [1.0, 1.5], "eval_hflip": True})
    report = evaluate_run(result.run_dir, progress=False)
    assert report["positive"]["jaccard"] == pytest.approx(result.test["positive"]["jaccard"], abs=1e-9)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["settings"]["eval_scales"] == [1.0, 1.5] and config["settings"]["eval_hflip"] is True


def test_the_cpu_profile_scores_every_row_over_its_views_and_the_others_score_once():
    from cosegkit.train.experiments import EXPERIMENTS

    for name in EXPERIMENTS:
        cpu = build_settings(name, "cpu")
        assert (cpu.eval_scales, cpu.eval_hflip) == ((1.5,), True), name
        for profile in ("smoke", "paper", "gpu"):
            other = build_settings(name, profile)
            assert (other.eval_scales, other.eval_hflip) == ((1.0,), False), (name, profile)
