"""Tests for cosegkit.samplers: IS-Triplet pixel sampling (is_triplet_coseg.txt, Sec. 3.2)."""

import pytest
import torch

from cosegkit.samplers import (
    as_binary_masks,
    gather_pixels,
    sample_fg_bg_pixels,
    sample_ranks_without_replacement,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _masks():
    m = torch.zeros(3, 4, 5, dtype=torch.bool)
    m[0, :1] = True  # 5 fg, 15 bg
    m[1, :, :3] = True  # 12 fg, 8 bg
    # image 2: no foreground
    return m


def test_counts_are_min_of_k_and_both_classes():
    out = sample_fg_bg_pixels(_masks(), k=6, generator=_gen())
    assert out["counts"].tolist() == [5, 6, 0]
    assert out["n_fg"].tolist() == [5, 12, 0]
    assert out["n_bg"].tolist() == [15, 8, 20]
    for key in ("f1", "f2", "b1", "b2"):
        assert out[key].shape == (3, 6) and out[key].dtype == torch.long
    assert out["valid"].tolist() == [[True] * 5 + [False], [True] * 6, [False] * 6]


def test_indices_in_class_distinct_and_padding_zero():
    masks = _masks()
    out = sample_fg_bg_pixels(masks, k=6, generator=_gen(1))
    flat = masks.reshape(3, -1)
    for b in range(3):
        n = int(out["counts"][b])
        for key, want in (("f1", True), ("f2", True), ("b1", False), ("b2", False)):
            idx = out[key][b]
            assert bool((flat[b, idx[:n]] == want).all())
            assert len(set(idx[:n].tolist())) == n  # without replacement within a set
            assert idx[n:].eq(0).all()
    # image 0 has exactly 5 fg pixels and k_b = 5: F1 and F2 are both permutations of all of them
    assert sorted(out["f1"][0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert sorted(out["f2"][0, :5].tolist()) == [0, 1, 2, 3, 4]


def test_k_larger_than_every_count_and_k_one():
    masks = _masks()
    out = sample_fg_bg_pixels(masks, k=10_000, generator=_gen())
    assert out["counts"].tolist() == [5, 8, 0]
    out1 = sample_fg_bg_pixels(masks, k=1, generator=_gen())
    assert out1["counts"].tolist() == [1, 1, 0]


def test_generator_makes_draws_deterministic():
    masks = torch.rand(2, 16, 16, generator=_gen(5)) < 0.3
    a = sample_fg_bg_pixels(masks, 20, generator=_gen(3))
    b = sample_fg_bg_pixels(masks, 20, generator=_gen(3))
    c = sample_fg_bg_pixels(masks, 20, generator=_gen(4))
    for key in ("f1", "f2", "b1", "b2"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["f1"], c["f1"])


def test_no_image_with_both_classes_gives_empty_sets():
    out = sample_fg_bg_pixels(torch.ones(2, 3, 3), k=4)
    assert out["counts"].tolist() == [0, 0]
    assert out["f1"].shape == (2, 0)


def test_float_01_masks_accepted():
    m = _masks()
    a = sample_fg_bg_pixels(m, 3, generator=_gen())
    b = sample_fg_bg_pixels(m.float(), 3, generator=_gen())
    assert torch.equal(a["b2"], b["b2"])


@pytest.mark.parametrize("n_fg", [3, 10])  # dense path (n <= 2k) and rejection path (n > 2k)
def test_draws_are_uniform_and_f1_f2_independent(n_fg):
    # 4000 identical images in one call: each row is one independent draw
    b, k = 4000, 2
    masks = torch.zeros(b, 1, 12, dtype=torch.bool)
    masks[:, 0, :n_fg] = True
    out = sample_fg_bg_pixels(masks, k, generator=_gen(7))
    f1, f2 = out["f1"], out["f2"]
    for col in range(k):
        freq = torch.bincount(f1[:, col], minlength=n_fg).double() / b
        assert torch.allclose(freq, torch.full_like(freq, 1 / n_fg), atol=0.035)
    # independent draws: P(F1[0] == F2[0]) = 1 / n_fg
    assert abs(float((f1[:, 0] == f2[:, 0]).double().mean()) - 1 / n_fg) < 0.035
    # ordered pairs are uniform: first element is never smaller more often than by chance
    assert abs(float((f1[:, 0] < f1[:, 1]).double().mean()) - 0.5) < 0.035


def test_sample_ranks_mixed_rows():
    pop = torch.tensor([0, 1, 5, 100, 7, 50_000])
    k = torch.tensor([0, 1, 5, 3, 4, 40])
    r = sample_ranks_without_replacement(pop, k, _gen(2))
    assert r.shape == (6, 40)
    for i in range(6):
        row = r[i, : k[i]].tolist()
        assert len(set(row)) == len(row) and all(0 <= v < pop[i] for v in row)
        assert r[i, k[i]:].eq(0).all()
    with pytest.raises(ValueError, match="k must satisfy"):
        sample_ranks_without_replacement(torch.tensor([2]), torch.tensor([3]))


def test_gather_pixels_matches_indexing():
    emb = torch.randn(2, 3, 4, 5, generator=_gen())
    idx = torch.tensor([[19, 0, 7, 7], [3, 3, 1, 18]])
    got = gather_pixels(emb, idx)
    flat = emb.reshape(2, 3, 20)
    want = torch.stack([flat[b][:, idx[b]] for b in range(2)])
    assert torch.equal(got, want)


def _bf16_channels_last_pair(seed=0, shape=(2, 8, 16, 16)):
    g = _gen(seed)
    return [torch.randn(*shape, generator=g).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            .requires_grad_() for _ in range(2)]


def test_gather_pixels_of_a_bf16_pair_equals_casting_the_concatenation_first_bit_for_bit():
    # Each row draws every pixel twice (two permutations, like F1 and F2), so the gradient of every gathered pixel
    # is a sum of two; summing in bf16 instead of float32 before the cast back would change many of them.
    g = _gen(1)
    idx = torch.stack([torch.cat([torch.randperm(256, generator=g), torch.randperm(256, generator=g)])
                       for _ in range(4)])
    upstream = torch.randn(4, 8, 512, generator=g)

    parts = _bf16_channels_last_pair()
    want = gather_pixels(torch.cat(parts).float().contiguous(), idx)
    (want * upstream).sum().backward()
    want_grads = [p.grad for p in parts]

    parts = _bf16_channels_last_pair()
    got = gather_pixels(parts, idx, torch.float32)
    assert got.dtype == torch.float32 and got.shape == (4, 8, 512) and got.is_contiguous()
    (got * upstream).sum().backward()
    assert torch.equal(got, want)
    assert all(torch.equal(a.grad, b) for a, b in zip(parts, want_grads, strict=True))

    # the check has teeth: gathering in bf16 and casting after sums the two draws in bf16
    parts = _bf16_channels_last_pair()
    naive = torch.cat([p.reshape(2, 8, -1).gather(2, i[:, None].expand(2, 8, 512))
                       for p, i in zip(parts, idx.split(2), strict=True)]).float()
    (naive * upstream).sum().backward()
    assert torch.equal(naive, want)
    assert not all(torch.equal(a.grad, b) for a, b in zip(parts, want_grads, strict=True))


def test_gather_pixels_refuses_parts_that_do_not_cover_the_index():
    parts = [torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 4, 4)]
    with pytest.raises(ValueError, match="index has 4 rows but the embeddings hold 3 images"):
        gather_pixels(parts, torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one embedding tensor"):
        gather_pixels([], torch.zeros(4, 5, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(masks=torch.zeros(2, 3, 3), k=0), "k must be >= 1"),
        (dict(masks=torch.zeros(2, 3, 3), k=2.5), "k must be an int"),
        (dict(masks=torch.zeros(2, 3, 3), k=True), "k must be an int"),
        (dict(masks=torch.full((2, 3, 3), 2.0), k=2), "masks must be binary"),
        (dict(masks=torch.zeros(3, 3), k=2), r"masks must have shape \(B, H, W\)"),
        (dict(masks=[[0, 1]], k=2), "masks must be a torch.Tensor"),
        (dict(masks=torch.zeros(2, 3, 3), k=2, generator="seed"), "generator must be a torch.Generator"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_fg_bg_pixels(**kwargs)


def test_as_binary_masks():
    assert as_binary_masks(torch.tensor([[[0, 1]]])).dtype == torch.bool
    with pytest.raises(ValueError, match="target must be binary"):
        as_binary_masks(torch.tensor([[[0.5]]]), "target")
