"""Tests for the Group Loss (group_loss.txt) at sample and pixel level."""

import math

import pytest
import torch
import torch.nn.functional as F

from cosegkit.losses import (
    GroupLoss,
    PixelGroupLoss,
    correlation_similarity,
    group_loss,
    pixel_group_loss,
    replicator_dynamics,
)
from cosegkit.losses.group_loss import _random_anchors
from cosegkit.samplers import gather_pixels, sample_fg_bg_pixels


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_similarity_is_relu_pearson_with_zero_diagonal():
    x = torch.randn(5, 7, generator=_gen(1), dtype=torch.float64)
    want = F.relu(torch.corrcoef(x)).fill_diagonal_(0.0)
    torch.testing.assert_close(correlation_similarity(x), want)
    # a constant embedding has zero correlation with everything (no NaN)
    x[2] = 3.0
    w = correlation_similarity(x)
    assert torch.isfinite(w).all() and w[2].abs().sum() == 0 and w[:, 2].abs().sum() == 0


def test_hand_computed_one_step():
    # rows 0 and 1 perfectly correlated, row 2 anti-correlated -> W = [[0,1,0],[1,0,0],[0,0,0]]
    emb = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0]], dtype=torch.float64)
    logits = torch.tensor([[5.0, -1.0], [0.0, 0.0], [0.0, math.log(3.0)]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    # X0 = [1, 0] (anchor), X1 = [.5, .5], X2 = [.25, .75]; one step: X0 -> [1, 0], X1 -> [1, 0],
    # X2 has zero payoff and keeps [.25, .75]
    loss = group_loss(emb, logits, labels, steps=1, anchors=torch.tensor([0]))
    want = -(2 * math.log(1 + 1e-12) + math.log(0.75 + 1e-12)) / 3
    assert loss.item() == pytest.approx(want)
    # the same with a bool anchor mask
    mask = torch.tensor([True, False, False])
    assert group_loss(emb, logits, labels, steps=1, anchors=mask).item() == pytest.approx(want)


def test_replicator_dynamics_by_hand():
    x = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    w = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # row 0: [.5, .5] * [.9, .1] = [.45, .05] -> [.9, .1]; row 1: [.9, .1] * [.5, .5] -> [.9, .1]
    torch.testing.assert_close(replicator_dynamics(x, w, 1), torch.tensor([[0.9, 0.1], [0.9, 0.1]]))
    # two steps: row 0: [.9,.1]*[.9,.1] = [.81,.01] -> [81/82, 1/82]
    torch.testing.assert_close(replicator_dynamics(x, w, 2)[0], torch.tensor([81 / 82, 1 / 82]))


def test_random_anchors_per_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0, 1])
    a = _random_anchors(labels, 2, _gen(3))
    assert torch.bincount(labels[a], minlength=3).tolist() == [2, 2, 1]
    assert torch.equal(a, _random_anchors(labels, 2, _gen(3)))
    assert not _random_anchors(labels, 0, _gen(3)).any()


def test_gradcheck_float64():
    emb = torch.randn(6, 4, generator=_gen(4), dtype=torch.float64, requires_grad=True)
    logits = torch.randn(6, 3, generator=_gen(5), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    fn = lambda e, z: group_loss(e, z, labels, steps=2, anchors=torch.tensor([0, 1]))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (emb, logits))


def test_pixel_level_matches_per_image_group_loss():
    emb = torch.randn(3, 4, 5, 5, generator=_gen(6), dtype=torch.float64)
    logits = torch.randn(3, 2, 5, 5, generator=_gen(7), dtype=torch.float64)
    masks = torch.rand(3, 5, 5, generator=_gen(8)) < 0.3
    masks[2] = True  # no background: contributes nothing
    samples = sample_fg_bg_pixels(masks, 6, generator=_gen(9))
    got = pixel_group_loss(emb, logits, masks, n_anchors=2, steps=2, samples=samples)
    per_image = []
    for b in range(3):
        n = int(samples["counts"][b])
        if n == 0:
            continue
        idx = torch.cat([samples["f1"][b, :n], samples["b1"][b, :n]])[None]
        e = gather_pixels(emb[b:b + 1], idx)[0].T
        z = gather_pixels(logits[b:b + 1], idx)[0].T
        y = torch.cat([torch.ones(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)])
        anchors = torch.cat([torch.arange(min(2, n)), n + torch.arange(min(2, n))])
        per_image.append(group_loss(e, z, y, steps=2, anchors=anchors))
    assert len(per_image) == 2
    torch.testing.assert_close(got, torch.stack(per_image).mean())
    # module with the same generator seed gives the same value
    mod = PixelGroupLoss(k=6, n_anchors=2, steps=2, generator=_gen(9))
    torch.testing.assert_close(mod(emb, logits, masks), got)


def test_pixel_level_without_both_classes_is_zero_with_graph():
    emb = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    loss = pixel_group_loss(emb, logits, torch.zeros(2, 4, 4), k=4)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_pixel_level_gradcheck_float64():
    emb = torch.randn(1, 3, 3, 3, generator=_gen(10), dtype=torch.float64, requires_grad=True)
    logits = torch.randn(1, 2, 3, 3, generator=_gen(11), dtype=torch.float64, requires_grad=True)
    masks = torch.tensor([[[1, 0, 1], [0, 1, 0], [0, 0, 1]]])
    fn = lambda e, z: pixel_group_loss(e, z, masks, k=3, n_anchors=1, generator=_gen(12))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (emb, logits))


def test_module_matches_function():
    emb = torch.randn(8, 4, generator=_gen(13))
    logits = torch.randn(8, 2, generator=_gen(14))
    labels = torch.tensor([0, 1] * 4)
    torch.testing.assert_close(GroupLoss(n_anchors=1, generator=_gen(2))(emb, logits, labels),
                               group_loss(emb, logits, labels, n_anchors=1, generator=_gen(2)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=torch.tensor([0, 1, 2, 0])), r"labels must be in \[0, 2\)"),
        (dict(labels=torch.tensor([0.0, 1.0, 1.0, 0.0])), "labels must be an integer"),
        (dict(labels=torch.tensor([0, 1, 1])), "must share N"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(n_anchors=-1), "n_anchors must be >= 0"),
        (dict(embeddings=torch.zeros(4, 3, 1)), "embeddings must have 2 dimensions"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(embeddings=torch.randn(4, 3), logits=torch.randn(4, 2), labels=torch.tensor([0, 1, 1, 0]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        group_loss(**args)


def test_pixel_bad_arguments():
    emb, masks = torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, 2, H, W\)"):
        pixel_group_loss(emb, torch.zeros(2, 3, 4, 4), masks)
    with pytest.raises(ValueError, match="masks must have shape"):
        pixel_group_loss(emb, torch.zeros(2, 2, 4, 4), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="k must be >= 1"):
        pixel_group_loss(emb, torch.zeros(2, 2, 4, 4), masks, k=0)


def test_pixel_level_pair_of_bf16_maps_equals_their_float32_concatenation():
    g = _gen(15)
    masks = torch.rand(4, 10, 10, generator=g) < 0.4
    logits = torch.randn(4, 2, 10, 10, generator=g)
    results = []
    for as_list in (False, True):
        gm = _gen(16)
        maps = [torch.randn(2, 6, 10, 10, generator=gm).to(torch.bfloat16)
                .contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2)]
        emb = maps if as_list else torch.cat(maps).float().contiguous()  # contiguous: the one-gather path
        loss = pixel_group_loss(emb, logits, masks, k=12, n_anchors=1, generator=_gen(17))
        loss.backward()
        results.append((loss.detach(), [m.grad for m in maps]))
    (want, want_grads), (got, got_grads) = results
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(got_grads, want_grads, strict=True))
    assert all(gr.abs().sum() > 0 for gr in got_grads)
