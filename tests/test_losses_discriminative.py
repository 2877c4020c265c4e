"""Tests for the discriminative loss (discriminative_loss.txt, Sec. 2)."""

import pytest
import torch
import torch.nn.functional as F

from cosegkit.losses import DiscriminativeLoss, discriminative_loss


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _image(values, labels):
    """1-D embeddings on a 1 x N image: (1, 1, 1, N) and labels (1, 1, N)."""
    return (torch.tensor(values, dtype=torch.float64).reshape(1, 1, 1, -1),
            torch.tensor(labels).reshape(1, 1, -1))


def _loop_reference(emb, labels, dv=0.5, dd=1.5, a=1.0, b=1.0, g=0.001):
    """Straightforward per-image, per-cluster implementation of the paper's equations."""
    totals = []
    for i in range(emb.shape[0]):
        x = emb[i].reshape(emb.shape[1], -1)
        lab = labels[i].reshape(-1)
        ids = [c for c in lab.unique().tolist() if c >= 0]
        if not ids:
            continue
        mus, var = [], 0.0
        for c in ids:
            xc = x[:, lab == c]
            mu = xc.mean(1)
            mus.append(mu)
            var = var + (F.relu((xc - mu[:, None]).norm(dim=0) - dv) ** 2).mean()
        cn = len(ids)
        dist = 0.0
        for p in range(cn):
            for q in range(cn):
                if p != q:
                    dist = dist + F.relu(2 * dd - (mus[p] - mus[q]).norm()) ** 2
        dist = dist / (cn * (cn - 1)) if cn > 1 else 0.0
        reg = sum(m.norm() for m in mus) / cn
        totals.append(a * var / cn + b * dist + g * reg)
    return torch.stack(totals).mean()


def test_hand_computed_far_clusters():
    # cluster 0: {0, 2}, mean 1, distances 1 -> (1 - 0.5)^2 = 0.25; cluster 1: {10, 10}, var 0
    emb, lab = _image([0.0, 2.0, 10.0, 10.0], [0, 0, 1, 1])
    total, parts = discriminative_loss(emb, lab, return_parts=True)
    assert parts["var"].item() == pytest.approx(0.125)
    assert parts["dist"].item() == pytest.approx(0.0)  # |1 - 10| > 2 * 1.5
    assert parts["reg"].item() == pytest.approx(5.5)  # (1 + 10) / 2
    assert total.item() == pytest.approx(0.125 + 0.001 * 5.5)


def test_hand_computed_close_clusters():
    # means 1 and 2: [3 - 1]^2 = 4 for both ordered pairs, / (2 * 1) = 4
    emb, lab = _image([1.0, 1.0, 2.0], [0, 0, 1])
    _, parts = discriminative_loss(emb, lab, return_parts=True)
    assert parts["var"].item() == pytest.approx(0.0)
    assert parts["dist"].item() == pytest.approx(4.0)
    assert parts["reg"].item() == pytest.approx(1.5)
    total = discriminative_loss(emb, lab, alpha=2.0, beta=0.5, gamma=1.0)
    assert total.item() == pytest.approx(0.5 * 4.0 + 1.5)


def test_one_cluster_has_no_distance_term():
    emb, lab = _image([0.0, 3.0], [4, 4])
    _, parts = discriminative_loss(emb, lab, return_parts=True)
    assert parts["dist"].item() == 0.0
    assert parts["var"].item() == pytest.approx(1.0)  # distances 1.5 -> (1.5 - 0.5)^2


def test_ignored_pixels_and_noncontiguous_ids():
    emb, lab = _image([0.0, 2.0, 10.0, 10.0, 123.0], [3, 3, 9, 9, -1])
    ref_emb, ref_lab = _image([0.0, 2.0, 10.0, 10.0], [0, 0, 1, 1])
    torch.testing.assert_close(discriminative_loss(emb, lab), discriminative_loss(ref_emb, ref_lab))
    # large ids take the compaction path and give the same value
    big = torch.where(lab >= 0, lab * 100_000, lab)
    torch.testing.assert_close(discriminative_loss(emb, big), discriminative_loss(ref_emb, ref_lab))


def test_matches_per_cluster_loop_reference():
    emb = torch.randn(3, 4, 6, 7, generator=_gen(1), dtype=torch.float64)
    labels = torch.randint(-1, 5, (3, 6, 7), generator=_gen(2))
    labels[1][labels[1] == 2] = 0  # id 2 absent from image 1
    labels[2] = 1  # a single cluster
    for params in ((0.5, 1.5, 1.0, 1.0, 0.001), (0.1, 0.8, 0.7, 2.0, 0.1)):
        torch.testing.assert_close(discriminative_loss(emb, labels, *params), _loop_reference(emb, labels, *params))


def test_image_without_labelled_pixels_contributes_nothing():
    emb, lab = _image([0.0, 2.0, 10.0, 10.0], [0, 0, 1, 1])
    emb2 = torch.cat([emb, torch.randn_like(emb)])
    lab2 = torch.cat([lab, torch.full_like(lab, -1)])
    torch.testing.assert_close(discriminative_loss(emb2, lab2), discriminative_loss(emb, lab))


def test_all_ignored_returns_zero_with_graph():
    emb = torch.randn(2, 3, 4, 4, requires_grad=True)
    total, parts = discriminative_loss(emb, torch.full((2, 4, 4), -1), return_parts=True)
    assert total.item() == 0.0 and parts["var"].item() == 0.0
    total.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_gradcheck_float64():
    emb = torch.randn(2, 3, 3, 3, generator=_gen(3), dtype=torch.float64, requires_grad=True)
    labels = torch.randint(-1, 3, (2, 3, 3), generator=_gen(4))
    fn = lambda e: discriminative_loss(e, labels, delta_v=0.2, delta_d=1.0, gamma=0.1)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (emb,))


def test_bool_labels_and_module():
    emb = torch.randn(2, 3, 4, 4, generator=_gen(5))
    masks = torch.rand(2, 4, 4, generator=_gen(6)) < 0.5
    torch.testing.assert_close(DiscriminativeLoss()(emb, masks), discriminative_loss(emb, masks.long()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=torch.zeros(2, 4, 4)), "labels must be an integer"),
        (dict(labels=torch.zeros(2, 4, 5, dtype=torch.long)), "labels must have shape"),
        (dict(embeddings=torch.zeros(2, 3, 4, 4, dtype=torch.int32)), "embeddings must be a floating"),
        (dict(delta_v=0.0), "delta_v must be > 0"),
        (dict(delta_d=-1.0), "delta_d must be > 0"),
        (dict(gamma=-0.1), "gamma must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(embeddings=torch.zeros(2, 3, 4, 4), labels=torch.zeros(2, 4, 4, dtype=torch.long))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        discriminative_loss(**args)
