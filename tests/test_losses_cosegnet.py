"""Tests for the CoSegNet objective (cosegnet.txt, Secs. 3.4-3.5, 4.1)."""

import math

import pytest
import torch

from cosegkit.losses import CoSegNetLoss, cosegnet_loss, cosegnet_triplet_loss

LOG2 = math.log(2)


def _batch(dtype=torch.float64):
    """Two pairs: row 0 positive, row 1 negative; 1-D metric embeddings a=0, p=2, n=2.5."""
    p = 2
    return dict(
        mask_logits_a=torch.zeros(p, 1, 2, 2, dtype=dtype),
        mask_logits_b=torch.zeros(p, 1, 2, 2, dtype=dtype),
        masks_a=torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 0]]]),
        masks_b=torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]]),
        emb_anchor=torch.tensor([[0.0], [0.0]], dtype=dtype),
        emb_positive=torch.tensor([[2.0], [2.0]], dtype=dtype),
        emb_negative=torch.tensor([[2.5], [2.5]], dtype=dtype),
        decision_logits=torch.zeros(p, dtype=dtype),
        decision_labels=torch.tensor([1, 0]),
    )


def test_hand_computed_weighted_total():
    total, parts = cosegnet_loss(**_batch())
    # L1 = log 2 (logits 0), L2 = [2 - 2.5 + 1]+ = 0.5, L3 = log 2
    pos = 0.33 * (LOG2 + 0.5 + LOG2)
    neg = 0.5 * (0.5 + LOG2)
    assert total.item() == pytest.approx((pos + neg) / 2)
    assert parts["l1"].item() == pytest.approx(LOG2)
    assert parts["l2"].item() == pytest.approx(0.5)
    assert parts["l3"].item() == pytest.approx(LOG2)
    torch.testing.assert_close(parts["per_pair"], torch.tensor([pos, neg], dtype=torch.float64))
    assert not parts["l1"].requires_grad


def test_squared_distance_option():
    _, parts = cosegnet_loss(**_batch(), squared=True)
    assert parts["l2"].item() == pytest.approx(0.0)  # 4 - 6.25 + 1 < 0
    _, parts = cosegnet_loss(**_batch(), squared=True, margin=3.0)
    assert parts["l2"].item() == pytest.approx(0.75)


def test_negative_pairs_do_not_train_the_masks():
    batch = _batch()
    la = batch["mask_logits_a"].clone().requires_grad_(True)
    batch["mask_logits_a"] = la
    batch["decision_logits"] = batch["decision_logits"].clone().requires_grad_(True)
    total, _ = cosegnet_loss(**batch)
    total.backward()
    assert la.grad[1].abs().sum() == 0  # negative pair: w1 = 0
    assert la.grad[0].abs().sum() > 0
    assert batch["decision_logits"].grad.abs().min() > 0  # L3 trains both


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    b = _batch()
    tensors = {k: torch.randn(v.shape, generator=g, dtype=torch.float64, requires_grad=True)
               for k, v in b.items() if v.is_floating_point()}
    names = list(tensors)

    def fn(*xs):
        kw = dict(b)
        kw.update(zip(names, xs, strict=True))
        return cosegnet_loss(**kw)[0]

    assert torch.autograd.gradcheck(fn, tuple(tensors.values()))


def test_triplet_helper_builds_positive_then_negative_rows():
    g = torch.Generator().manual_seed(1)

    def out():
        return dict(logits_a=torch.randn(2, 1, 4, 4, generator=g), logits_b=torch.randn(2, 1, 4, 4, generator=g),
                    embedding_a=torch.randn(2, 3, generator=g), embedding_b=torch.randn(2, 3, generator=g),
                    decision_logit=torch.randn(2, generator=g))

    pos, neg = out(), out()
    ma = torch.rand(2, 4, 4, generator=g) < 0.5
    mp = torch.rand(2, 4, 4, generator=g) < 0.5
    total, _ = cosegnet_triplet_loss(pos, neg, ma, mp)
    null = torch.zeros_like(ma)
    want, _ = cosegnet_loss(
        torch.cat([pos["logits_a"], neg["logits_a"]]), torch.cat([pos["logits_b"], neg["logits_b"]]),
        torch.cat([ma, null]), torch.cat([mp, null]),
        torch.cat([pos["embedding_a"], neg["embedding_a"]]),
        torch.cat([pos["embedding_b"], pos["embedding_b"]]),
        torch.cat([neg["embedding_b"], neg["embedding_b"]]),
        torch.cat([pos["decision_logit"], neg["decision_logit"]]), torch.tensor([1, 1, 0, 0]))
    torch.testing.assert_close(total, want)
    with pytest.raises(ValueError, match="out_negative is missing"):
        cosegnet_triplet_loss(pos, {"logits_a": neg["logits_a"]}, ma, mp)


def test_module_matches_function():
    b = _batch()
    total, _ = CoSegNetLoss(margin=2.0)(*b.values())
    torch.testing.assert_close(total, cosegnet_loss(**b, margin=2.0)[0])


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(decision_labels=torch.tensor([1, 2])), "decision_labels must be binary"),
        (dict(decision_labels=torch.tensor([1, 0, 1])), "mask_logits_a must have 3 rows"),
        (dict(masks_a=torch.zeros(2, 3, 3)), "masks_a must have shape"),
        (dict(masks_b=torch.full((2, 2, 2), 0.3)), "masks_b must be binary"),
        (dict(emb_negative=torch.zeros(2, 4, dtype=torch.float64)), "emb_negative must have shape"),
        (dict(decision_logits=torch.zeros(3, dtype=torch.float64)), "decision_logits must have 2"),
        (dict(mask_logits_b=torch.zeros(2, 2, 2, 2, dtype=torch.float64)), r"mask_logits_b must be \(P, 1, H, W\)"),
    ],
)
def test_bad_arguments(change, match):
    b = _batch()
    b.update(change)
    with pytest.raises(ValueError, match=match):
        cosegnet_loss(**b)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="margin must be > 0"):
        cosegnet_loss(**_batch(), margin=0.0)
    with pytest.raises(ValueError, match="positive_weights must be a sequence of 3"):
        cosegnet_loss(**_batch(), positive_weights=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"negative_weights\[1\] must be >= 0"):
        cosegnet_loss(**_batch(), negative_weights=(0.0, -0.5, 0.5))
