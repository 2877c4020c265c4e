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


# --- Hand-computed values on non-zero logits (issue #13): each of these fails when the objective is wrong in one of
# the ways zero logits cannot show: inverted L1 targets, inverted L3 labels, positive/negative weights swapped, or
# anchor-positive and anchor-negative distances swapped in L2.


def _sp(x: float) -> float:
    """softplus(x) = log(1 + e^x); BCE-with-logits(x, y) = softplus(x) - x * y."""
    return math.log1p(math.exp(x))


def _nonzero_batch():
    """Row 0 positive, row 1 negative; 1 x 2 masks, 1-D embeddings, decision logits 2 and -1."""
    return dict(
        mask_logits_a=torch.tensor([[[[2.0, -1.0]]], [[[1.0, -2.0]]]], dtype=torch.float64),
        mask_logits_b=torch.tensor([[[[0.5, 1.5]]], [[[-1.0, 0.0]]]], dtype=torch.float64),
        masks_a=torch.tensor([[[1, 0]], [[0, 0]]]),
        masks_b=torch.tensor([[[0, 1]], [[0, 0]]]),
        emb_anchor=torch.tensor([[0.0], [0.5]], dtype=torch.float64),
        emb_positive=torch.tensor([[1.0], [1.0]], dtype=torch.float64),
        emb_negative=torch.tensor([[1.5], [3.0]], dtype=torch.float64),
        decision_logits=torch.tensor([2.0, -1.0], dtype=torch.float64),
        decision_labels=torch.tensor([1, 0]),
    )


# By hand, BCE(x, 1) = softplus(-x) and BCE(x, 0) = softplus(x):
# row 0 (positive): L1 = ((sp(-2) + sp(-1)) / 2 + (sp(0.5) + sp(-1.5)) / 2) / 2
#                   L2 = [|0 - 1| - |0 - 1.5| + 1]+ = 0.5;   L3 = sp(-2)
# row 1 (negative): L1 = ((sp(1) + sp(-2)) / 2 + (sp(-1) + sp(0)) / 2) / 2   (all-zero targets)
#                   L2 = [|0.5 - 1| - |0.5 - 3| + 1]+ = [0.5 - 2.5 + 1]+ = 0;   L3 = sp(-1)
L1_POS = ((_sp(-2) + _sp(-1)) / 2 + (_sp(0.5) + _sp(-1.5)) / 2) / 2
L1_NEG = ((_sp(1) + _sp(-2)) / 2 + (_sp(-1) + _sp(0)) / 2) / 2
L2_POS, L2_NEG = 0.5, 0.0
L3_POS, L3_NEG = _sp(-2), _sp(-1)


def test_hand_computed_terms_on_nonzero_logits():
    total, parts = cosegnet_loss(**_nonzero_batch())
    assert parts["l1"].item() == pytest.approx(L1_POS)  # mean over positive pairs only
    assert parts["l1"].item() == pytest.approx(0.403920, abs=1e-6)
    assert parts["l2"].item() == pytest.approx((L2_POS + L2_NEG) / 2)
    assert parts["l3"].item() == pytest.approx((L3_POS + L3_NEG) / 2)
    assert parts["l3"].item() == pytest.approx(0.220095, abs=1e-6)
    pos = 0.33 * (L1_POS + L2_POS + L3_POS)
    neg = 0.0 * L1_NEG + 0.5 * (L2_NEG + L3_NEG)
    torch.testing.assert_close(parts["per_pair"], torch.tensor([pos, neg], dtype=torch.float64))
    assert total.item() == pytest.approx((pos + neg) / 2)
    assert total.item() == pytest.approx(0.248405, abs=1e-6)


@pytest.mark.parametrize("w_pos, w_neg", [((0.5, 0.3, 0.2), (0.1, 0.6, 0.3)), ((0.2, 0.7, 0.1), (0.4, 0.0, 0.6))])
def test_each_weight_multiplies_its_own_term_and_label(w_pos, w_neg):
    total, parts = cosegnet_loss(**_nonzero_batch(), positive_weights=w_pos, negative_weights=w_neg)
    pos = w_pos[0] * L1_POS + w_pos[1] * L2_POS + w_pos[2] * L3_POS
    neg = w_neg[0] * L1_NEG + w_neg[1] * L2_NEG + w_neg[2] * L3_NEG
    torch.testing.assert_close(parts["per_pair"], torch.tensor([pos, neg], dtype=torch.float64))
    assert total.item() == pytest.approx((pos + neg) / 2)


def test_triplet_term_orders_positive_before_negative():
    # anchor 0, positive 1, negative 1.5: [1 - 1.5 + 1]+ = 0.5; with the two distances swapped it would be 1.5
    b = _nonzero_batch()
    _, parts = cosegnet_loss(**b, margin=1.0)
    assert parts["l2"].item() == pytest.approx(0.25)  # (0.5 + 0) / 2
    # a negative nearer than the positive is penalised by more than the margin
    b["emb_negative"] = torch.tensor([[0.25], [0.5]], dtype=torch.float64)
    _, parts = cosegnet_loss(**b, margin=1.0)
    assert parts["l2"].item() == pytest.approx(((1 - 0.25 + 1) + (0.5 - 0.0 + 1)) / 2)  # 1.75 and 1.5


def test_decision_term_follows_the_labels():
    b = _nonzero_batch()
    b["decision_logits"] = torch.tensor([3.0, 3.0], dtype=torch.float64)  # both say "common object"
    _, parts = cosegnet_loss(**b)
    assert parts["l3"].item() == pytest.approx((_sp(-3) + _sp(3)) / 2)  # right on row 0, wrong on row 1
    per_pair = parts["per_pair"]
    assert per_pair[1] > per_pair[0]  # the negative pair pays for its confident wrong decision


def test_mask_term_follows_the_targets():
    b = _nonzero_batch()
    # logits that agree with the targets of the positive pair cost less than logits that contradict them
    b["mask_logits_a"] = torch.tensor([[[[4.0, -4.0]]], [[[0.0, 0.0]]]], dtype=torch.float64)
    b["mask_logits_b"] = torch.tensor([[[[-4.0, 4.0]]], [[[0.0, 0.0]]]], dtype=torch.float64)
    _, good = cosegnet_loss(**b)
    assert good["l1"].item() == pytest.approx(_sp(-4))
    b["mask_logits_a"], b["mask_logits_b"] = -b["mask_logits_a"], -b["mask_logits_b"]
    _, bad = cosegnet_loss(**b)
    assert bad["l1"].item() == pytest.approx(_sp(4))


class _StubCoSegNet(torch.nn.Module):
    """Returns fixed outputs for the 2 rows [(a, p), (a, n)] of one triplet; records positive_mask."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.positive_mask = outputs, None

    def forward(self, image_a, image_b, positive_mask=None):
        from cosegkit.models.outputs import CoSegNetOutput

        self.positive_mask = positive_mask
        return CoSegNetOutput(**self.outputs, pooled_a=None, pooled_b=None)  # the loss reads no pooled vector


def test_engine_call_site_wires_triplets_labels_and_masks():
    """The CoSegNet task's loss (modeling.compute_loss) on one triplet, model outputs set by hand (catches mistakes
    at the call site)."""
    from cosegkit.train import build_settings
    from cosegkit.train.modeling import compute_loss

    b = _nonzero_batch()
    outputs = {
        "logits_a": b["mask_logits_a"].float(), "logits_b": b["mask_logits_b"].float(),
        "embedding_a": torch.tensor([[0.0], [0.5]]),  # anchor as computed in the (a, p) and in the (a, n) pass
        "embedding_b": torch.tensor([[1.0], [1.5]]),  # fs(p) from the positive pass, fs(n) from the negative pass
        "decision_logit": torch.tensor([2.0, -1.0]),
    }
    image = torch.zeros(1, 3, 32, 32)
    batch = {
        "pos": {"image_a": image, "image_b": image, "mask_a": torch.tensor([[[1.0, 0.0]]]),
                "mask_b": torch.tensor([[[0.0, 1.0]]]), "label": torch.tensor([1.0])},
        "neg": {"image_a": image, "image_b": image, "mask_a": torch.zeros(1, 1, 2), "mask_b": torch.zeros(1, 1, 2),
                "label": torch.tensor([0.0])},
    }
    model = _StubCoSegNet(outputs)
    settings = build_settings("cosegnet", "smoke")
    total, terms = compute_loss(model, "cosegnet", batch, settings, 1.0, None)
    assert model.positive_mask.tolist() == [True, False]  # the negative pair is the one whose mask logits are skipped
    # row 0: anchor 0, p 1, n 1.5 -> [1 - 1.5 + 1]+ = 0.5; row 1: anchor 0.5 -> [0.5 - 1 + 1]+ = 0.5
    l2_pos = l2_neg = 0.5
    pos = 0.33 * (L1_POS + l2_pos + L3_POS)
    neg = 0.5 * (l2_neg + L3_NEG)
    assert terms["loss_l1"].item() == pytest.approx(L1_POS, rel=1e-6)
    assert terms["loss_l2"].item() == pytest.approx(0.5, rel=1e-6)
    assert terms["loss_l3"].item() == pytest.approx((L3_POS + L3_NEG) / 2, rel=1e-6)
    assert total.item() == pytest.approx((pos + neg) / 2, rel=1e-6)
