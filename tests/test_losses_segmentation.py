"""Tests for the Dice / cross-entropy / focal losses of the 2-class head (is_triplet_coseg.txt, Sec. 4)."""

import math

import pytest
import torch

from cosegkit.losses import (
    DiceLoss,
    FocalLoss,
    SegCrossEntropyLoss,
    build_segmentation_loss,
    cross_entropy_loss,
    dice_loss,
    focal_loss,
    segmentation_loss,
)

TARGET = torch.tensor([[[1, 0], [0, 0]], [[1, 1], [0, 1]]])  # 4 fg of 8 pixels


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_hand_values_at_zero_logits():
    logits = torch.zeros(2, 1, 2, 2, dtype=torch.float64)  # p = 0.5 everywhere
    assert cross_entropy_loss(logits, TARGET).item() == pytest.approx(math.log(2))
    # dice: I = 0.5 * 4 = 2, |P| + |T| = 4 + 4 = 8 -> 1 - (4 + 1) / (8 + 1)
    assert dice_loss(logits, TARGET).item() == pytest.approx(1 - 5 / 9)
    # focal: ce = log 2, (1 - p_t)^2 = 1/4, alpha_t = 0.25 (fg) / 0.75 (bg), 4 pixels of each
    want = (4 * 0.25 + 4 * 0.75) * 0.25 * math.log(2) / 8
    assert focal_loss(logits, TARGET).item() == pytest.approx(want)
    assert focal_loss(logits, TARGET, alpha=None, gamma=0.0).item() == pytest.approx(math.log(2))


def test_dice_multiclass_hand_value():
    # channel probabilities: bg 1 - q, fg q with q = 0.5 -> both classes have I = 2, |P| + |T| = 8
    logits = torch.zeros(2, 2, 2, 2, dtype=torch.float64)
    assert dice_loss(logits, TARGET, mode="multiclass").item() == pytest.approx(1 - 5 / 9)


def test_dice_perfect_and_empty():
    t = TARGET.to(torch.float64)
    assert dice_loss(t, TARGET, from_logits=False).item() == pytest.approx(0.0)
    empty = torch.zeros(2, 2, 2)
    assert dice_loss(torch.zeros(2, 2, 2), empty, from_logits=False).item() == pytest.approx(0.0)
    # empty target is not masked out: p = 0.5 on 8 pixels -> 1 - 1 / (4 + 1)
    assert dice_loss(torch.full((2, 2, 2), 0.5), empty, from_logits=False).item() == pytest.approx(0.8)


@pytest.mark.parametrize("name", ["ce", "focal"])
def test_two_channel_head_equals_binary_on_logit_difference(name):
    z = torch.randn(2, 2, 2, 2, generator=_gen(1), dtype=torch.float64)
    multi = segmentation_loss(name, z, TARGET, mode="multiclass")
    binary = segmentation_loss(name, z[:, 1:] - z[:, :1], TARGET, mode="binary")
    torch.testing.assert_close(multi, binary)


@pytest.mark.parametrize("name", ["dice", "ce", "focal"])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_probabilities_equal_logits(name, mode):
    c = 1 if mode == "binary" else 2
    z = torch.randn(2, c, 2, 2, generator=_gen(2), dtype=torch.float64)
    p = torch.sigmoid(z) if mode == "binary" else torch.softmax(z, 1)
    a = segmentation_loss(name, z, TARGET, mode=mode)
    b = segmentation_loss(name, p, TARGET, mode=mode, from_logits=False)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["dice", "ce", "focal"])
def test_binary_accepts_3d_and_4d_shapes(name):
    z = torch.randn(2, 1, 2, 2, generator=_gen(3))
    a = segmentation_loss(name, z, TARGET)
    torch.testing.assert_close(a, segmentation_loss(name, z[:, 0], TARGET))
    torch.testing.assert_close(a, segmentation_loss(name, z, TARGET[:, None].float()))


@pytest.mark.parametrize("name", ["dice", "ce", "focal"])
@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_gradcheck_float64(name, mode):
    c = 1 if mode == "binary" else 2
    z = torch.randn(2, c, 2, 2, generator=_gen(4), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: segmentation_loss(name, x, TARGET, mode=mode), (z,))


def test_modules_and_builder_match_functions():
    z = torch.randn(2, 2, 2, 2, generator=_gen(5))
    kw = dict(mode="multiclass")
    torch.testing.assert_close(DiceLoss(**kw)(z, TARGET), dice_loss(z, TARGET, **kw))
    torch.testing.assert_close(SegCrossEntropyLoss(**kw)(z, TARGET), cross_entropy_loss(z, TARGET, **kw))
    torch.testing.assert_close(FocalLoss(gamma=1.0, alpha=0.5, **kw)(z, TARGET),
                               focal_loss(z, TARGET, gamma=1.0, alpha=0.5, **kw))
    assert isinstance(build_segmentation_loss("focal", gamma=1.0), FocalLoss)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: segmentation_loss("bce", torch.zeros(2, 1, 2, 2), TARGET), "name must be one of"),
        (lambda: dice_loss(torch.zeros(2, 1, 2, 2), TARGET, mode="multilabel"), "mode must be one of"),
        (lambda: dice_loss(torch.zeros(2, 3, 2, 2), TARGET, mode="multiclass"), r"\(B, 2, H, W\)"),
        (lambda: dice_loss(torch.zeros(2, 2, 2, 2), TARGET, mode="binary"), "binary mode"),
        (lambda: dice_loss(torch.zeros(2, 1, 2, 3), TARGET), "target must have shape"),
        (lambda: dice_loss(torch.zeros(2, 1, 2, 2), TARGET * 2), "target must be binary"),
        (lambda: dice_loss(torch.zeros(2, 1, 2, 2, dtype=torch.long), TARGET), "logits must be a floating"),
        (lambda: dice_loss(torch.full((2, 1, 2, 2), 1.5), TARGET, from_logits=False), r"probabilities in \[0, 1\]"),
        (lambda: focal_loss(torch.zeros(2, 1, 2, 2), TARGET, alpha=1.5), "alpha must be in"),
        (lambda: focal_loss(torch.zeros(2, 1, 2, 2), TARGET, gamma=-1.0), "gamma must be >= 0"),
        (lambda: dice_loss(torch.zeros(2, 1, 2, 2), TARGET, smooth=-1.0), "smooth must be >= 0"),
        (lambda: DiceLoss(mode="x"), "mode must be one of"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
