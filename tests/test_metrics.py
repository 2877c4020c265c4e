import numpy as np
import pytest
import torch

from cosegkit.metrics import PairScores, jaccard, precision


def test_precision_and_jaccard_by_hand():
    gt = np.array([[1, 1, 0, 0]], dtype=bool)
    pred = np.array([[1, 0, 1, 0]], dtype=bool)
    # Correct pixels: (0,0) fg and (0,3) bg -> 2 of 4.
    assert precision(pred, gt) == pytest.approx(0.5)
    # Intersection 1, union 3.
    assert jaccard(pred, gt) == pytest.approx(1 / 3)


def test_metrics_accept_tensors():
    gt = torch.tensor([[True, False], [False, False]])
    assert precision(gt, gt) == 1.0
    assert jaccard(gt, gt) == 1.0


def test_empty_ground_truth_convention():
    empty = np.zeros((3, 3), dtype=bool)
    some = empty.copy()
    some[1, 1] = True
    assert jaccard(empty, empty) == 1.0
    assert jaccard(some, empty) == 0.0
    assert precision(some, empty) == pytest.approx(8 / 9)


def test_metrics_reject_non_boolean_and_mismatched_masks():
    with pytest.raises(ValueError, match="pred must be a boolean"):
        precision(np.zeros((2, 2), dtype=np.uint8), np.zeros((2, 2), dtype=bool))
    with pytest.raises(ValueError, match="original size"):
        jaccard(np.zeros((2, 2), dtype=bool), np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="2-D"):
        jaccard(np.zeros((1, 2, 2), dtype=bool), np.zeros((1, 2, 2), dtype=bool))


def test_pair_scores_average_every_image_and_break_down_by_group():
    scores = PairScores()
    full = np.ones((2, 2), dtype=bool)
    half = np.array([[1, 1], [0, 0]], dtype=bool)
    scores.add(full, full, "cat")
    scores.add(half, full, "cat")
    scores.add(full, half, "dog")
    summary = scores.summary()
    assert summary["n_images"] == 3
    assert summary["jaccard"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert summary["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert summary["per_group"]["cat"]["jaccard"] == pytest.approx(0.75)
    assert summary["per_group"]["dog"]["n_images"] == 1


def test_pair_scores_summary_refuses_to_average_nothing():
    with pytest.raises(ValueError, match="before any image"):
        PairScores().summary()
