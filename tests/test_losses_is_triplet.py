"""Tests for the IS-Triplet loss (is_triplet_coseg.txt, Sec. 3.2, eqs. 2-5)."""

import math

import pytest
import torch
import torch.nn.functional as F

from cosegkit.losses import (
    ISTripletLoss,
    LambdaSchedule,
    combined_is_triplet_objective,
    is_triplet_from_sets,
    is_triplet_loss,
)
from cosegkit.samplers import sample_fg_bg_pixels


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _constant_embeddings(masks, a, b):
    """fg pixels get embedding a, bg pixels b: (B, D, H, W)."""
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    m = masks[:, None].to(torch.float64)
    return m * a[None, :, None, None] + (1 - m) * b[None, :, None, None]


def test_matches_torch_triplet_margin_loss_on_the_same_rows():
    emb = torch.randn(3, 4, 5, 6, generator=_gen(1), dtype=torch.float64)
    masks = torch.rand(3, 5, 6, generator=_gen(2)) < 0.4
    masks[2] = False  # no foreground: excluded from the mean
    samples = sample_fg_bg_pixels(masks, 7, generator=_gen(3))
    got = is_triplet_loss(emb, masks, margin=0.8, samples=samples)
    per_image = []
    for b in range(3):
        n = int(samples["counts"][b])
        if n == 0:
            continue
        rows = {key: emb[b].reshape(4, -1)[:, samples[key][b, :n]].T for key in ("f1", "f2", "b1", "b2")}
        l1 = F.triplet_margin_loss(rows["f1"], rows["f2"], rows["b1"], margin=0.8, eps=0.0, reduction="none")
        l2 = F.triplet_margin_loss(rows["b1"], rows["b2"], rows["f2"], margin=0.8, eps=0.0, reduction="none")
        per_image.append((0.5 * (l1 + l2)).mean())
    assert len(per_image) == 2
    torch.testing.assert_close(got, torch.stack(per_image).mean(), rtol=1e-12, atol=1e-12)
    # same rows through the generator path
    again = is_triplet_loss(emb, masks, k=7, margin=0.8, generator=_gen(3))
    torch.testing.assert_close(got, again, rtol=0, atol=0)


@pytest.mark.parametrize("margin, want", [(3.0, 0.0), (6.0, 1.0), (5.5, 0.5)])
def test_closed_form_constant_class_embeddings(margin, want):
    # d(F1, F2) = d(B1, B2) = 0 and d(F1, B1) = |a - b| = 5, so loss = max(0, m - 5)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    emb = _constant_embeddings(masks, [0.0, 0.0], [3.0, 4.0])
    got = is_triplet_loss(emb, masks, k=3, margin=margin, generator=_gen())
    assert got.item() == pytest.approx(want, abs=1e-12)


def test_squared_option_uses_squared_distances():
    masks = torch.zeros(1, 3, 3, dtype=torch.bool)
    masks[0, 0] = True
    emb = _constant_embeddings(masks, [0.0], [2.0])  # |a - b| = 2, |a - b|^2 = 4
    assert is_triplet_loss(emb, masks, k=2, margin=3.0).item() == pytest.approx(1.0)
    assert is_triplet_loss(emb, masks, k=2, margin=3.0, squared=True).item() == pytest.approx(0.0)
    assert is_triplet_loss(emb, masks, k=2, margin=5.0, squared=True).item() == pytest.approx(1.0)


def test_hand_computed_two_by_two():
    # one row of 1-D embeddings: fg pixels 0.0 and 1.0, bg pixels 2.0 and 4.0; k = 2 takes all of them.
    emb = torch.tensor([[[[0.0, 1.0, 2.0, 4.0]]]], dtype=torch.float64)
    masks = torch.tensor([[[1, 1, 0, 0]]])
    samples = {
        "f1": torch.tensor([[0, 1]]), "f2": torch.tensor([[1, 1]]),
        "b1": torch.tensor([[2, 3]]), "b2": torch.tensor([[3, 2]]), "counts": torch.tensor([2]),
    }
    # row 0: F1=0, F2=1, B1=2, B2=4: [1 - 2 + 1]+ = 0 and [2 - 1 + 1]+ = 2 -> 1.0
    # row 1: F1=1, F2=1, B1=4, B2=2: [0 - 3 + 1]+ = 0 and [2 - 3 + 1]+ = 0 -> 0.0
    got = is_triplet_loss(emb, masks, margin=1.0, samples=samples)
    assert got.item() == pytest.approx(0.5)


def test_images_without_both_classes_contribute_nothing():
    masks = torch.zeros(3, 3, 3, dtype=torch.bool)
    masks[0, 0] = True
    masks[2] = True  # image 1 all background, image 2 all foreground
    emb = _constant_embeddings(masks, [0.0], [1.0])  # image 0 alone: m - 1 = 2
    assert is_triplet_loss(emb, masks, k=4, margin=3.0).item() == pytest.approx(2.0)


def test_no_image_with_both_classes_returns_zero_with_graph():
    emb = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = is_triplet_loss(emb, torch.ones(2, 4, 4), k=5)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_k_larger_than_counts_and_gradient_flows():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :1] = True
    emb = torch.randn(2, 3, 4, 4, generator=_gen(4), requires_grad=True)
    loss = is_triplet_loss(emb, masks, k=1000, generator=_gen())
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_gradcheck_float64():
    masks = torch.tensor([[[1, 0, 1], [0, 0, 1], [1, 0, 0]]], dtype=torch.bool)
    emb = torch.randn(1, 2, 3, 3, dtype=torch.float64, generator=_gen(5), requires_grad=True)

    def fn(e):
        return is_triplet_loss(e, masks, k=3, margin=2.0, generator=_gen(6))

    assert torch.autograd.gradcheck(fn, (emb,))
    assert torch.autograd.gradcheck(lambda e: is_triplet_loss(e, masks, 3, 2.0, True, _gen(6)), (emb,))


def test_from_sets_matches_eq4():
    f1, f2, b1, b2 = (torch.tensor([[v]]) for v in (0.0, 0.5, 1.0, 3.0))
    # [0.5 - 1 + 2]+ = 1.5, [2 - 0.5 + 2]+ = 3.5 -> 2.5
    assert is_triplet_from_sets(f1, f2, b1, b2, margin=2.0).item() == pytest.approx(2.5)


def test_module_matches_function():
    emb = torch.randn(2, 3, 5, 5, generator=_gen(8))
    masks = torch.rand(2, 5, 5, generator=_gen(9)) < 0.5
    mod = ISTripletLoss(k=6, margin=1.5, generator=_gen(1))
    torch.testing.assert_close(mod(emb, masks), is_triplet_loss(emb, masks, 6, 1.5, generator=_gen(1)))


def test_lambda_schedule_and_combined_objective():
    s = LambdaSchedule()
    assert s.value(0) == 1.0 and s.value(1) == pytest.approx(0.85) and s.value(2) == pytest.approx(0.7225)
    assert LambdaSchedule(2.0, 0.5).value(3) == pytest.approx(0.25)
    total = combined_is_triplet_objective(torch.tensor(1.0), torch.tensor(2.0), epoch=1)
    assert total.item() == pytest.approx(1.0 + 0.85 * 2.0)
    assert math.isclose(combined_is_triplet_objective(torch.tensor(0.0), torch.tensor(1.0), 2, s).item(), 0.7225,
                        rel_tol=1e-6)
    with pytest.raises(ValueError, match="epoch"):
        s.value(-1)
    with pytest.raises(ValueError, match="decay"):
        LambdaSchedule(1.0, 0.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(margin=0.0), "margin must be > 0"),
        (dict(margin=-1.0), "margin must be > 0"),
        (dict(k=0), "k must be >= 1"),
        (dict(masks=torch.zeros(2, 4, 5)), "masks must have shape"),
        (dict(masks=torch.full((2, 4, 4), 0.5)), "masks must be binary"),
        (dict(embeddings=torch.zeros(2, 3, 4, 4, dtype=torch.long)), "embeddings must be a floating-point"),
        (dict(embeddings=torch.zeros(2, 4, 4)), "embeddings must have 4 dimensions"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(embeddings=torch.zeros(2, 3, 4, 4), masks=torch.zeros(2, 4, 4), k=3, margin=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        is_triplet_loss(**args)
    if "margin" in kwargs:
        with pytest.raises(ValueError, match="margin"):
            ISTripletLoss(margin=kwargs["margin"])


def _bf16_pair_maps(seed):
    g = _gen(seed)
    return [torch.randn(2, 8, 12, 12, generator=g).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            .requires_grad_() for _ in range(2)]


def test_a_pair_of_bf16_maps_gives_the_loss_and_gradients_of_their_float32_concatenation():
    # The trainer passes the model's two bf16 maps as they are: the result must be bit for bit that of the old
    # path, torch.cat(maps).float(), down to the gradients (F1 / F2 and B1 / B2 share pixels here).
    masks = torch.rand(4, 12, 12, generator=_gen(5)) < 0.3
    masks[3] = False  # no foreground: padding rows only
    results = []
    for as_list in (False, True):
        maps = _bf16_pair_maps(6)
        emb = maps if as_list else torch.cat(maps).float().contiguous()  # contiguous: the one-gather path
        loss = is_triplet_loss(emb, masks, k=40, margin=3.0, generator=_gen(7))
        loss.backward()
        results.append((loss.detach(), [m.grad for m in maps]))
    (want, want_grads), (got, got_grads) = results
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(got_grads, want_grads, strict=True))
    assert all(g.abs().sum() > 0 for g in got_grads)


def test_a_list_of_maps_must_agree_in_shape():
    masks = torch.zeros(3, 4, 4)
    with pytest.raises(ValueError, match=r"embeddings\[1\] has shape \(1, 2, 4, 4\)"):
        is_triplet_loss([torch.zeros(2, 3, 4, 4), torch.zeros(1, 2, 4, 4)], masks)
    with pytest.raises(ValueError, match="non-empty list"):
        is_triplet_loss([], masks)
    with pytest.raises(ValueError, match=r"masks must have shape \(B, H, W\) = \(3, 4, 4\)"):
        is_triplet_loss([torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 4, 4)], torch.zeros(2, 4, 4))
