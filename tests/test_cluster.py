"""Tests for cosegkit.cluster.mean_shift against sklearn.cluster.MeanShift."""

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift, get_bin_seeds
from sklearn.metrics import adjusted_rand_score

from cosegkit.cluster import bin_seeds, mean_shift


def _blobs(n, d, k, std, seed, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * spread
    y = torch.randint(0, k, (n,), generator=g)
    return centres[y] + std * torch.randn(n, d, generator=g), y


@pytest.mark.parametrize("d, std, seed", [(2, 0.15, 0), (4, 0.1, 1), (8, 0.1, 2)])
def test_agrees_with_sklearn_on_gaussian_blobs(d, std, seed):
    x, y = _blobs(1500, d, 6, std, seed)
    labels = mean_shift(x, bandwidth=0.5)
    ref = MeanShift(bandwidth=0.5, bin_seeding=True).fit(x.numpy())
    assert labels.shape == (1500,) and labels.dtype == torch.long
    assert adjusted_rand_score(ref.labels_, labels.numpy()) >= 0.99
    assert int(labels.max()) + 1 == len(ref.cluster_centers_)


def test_centers_match_sklearn():
    x, _ = _blobs(800, 3, 4, 0.1, 3, spread=3.0)
    labels, centers = mean_shift(x, 0.5, return_centers=True)
    ref = MeanShift(bandwidth=0.5, bin_seeding=True).fit(x.numpy())
    assert centers.shape == ref.cluster_centers_.shape
    # same modes (up to order) to float32 precision
    dist = torch.cdist(centers.double(), torch.from_numpy(ref.cluster_centers_).double())
    assert float(dist.min(1).values.max()) < 1e-4
    # each point's centre is its nearest one
    assert torch.equal(labels, torch.cdist(x, centers).argmin(1))


def test_without_bin_seeding_matches_sklearn():
    x, _ = _blobs(200, 2, 3, 0.1, 4, spread=3.0)
    labels = mean_shift(x, 0.5, bin_seeding=False)
    ref = MeanShift(bandwidth=0.5, bin_seeding=False).fit(x.numpy())
    assert adjusted_rand_score(ref.labels_, labels.numpy()) >= 0.99


def test_explicit_seeds_match_sklearn_where_bin_seeding_finds_nothing():
    # 64-D blobs of std 0.15 (points ~1.2 from their centre): every grid-bin centre is farther than the bandwidth
    # from all points, so bin seeding fails in both implementations; seeding from points works in both.
    x, y = _blobs(600, 64, 3, 0.15, 6, spread=1.0)
    with pytest.raises(ValueError, match="no point was within bandwidth=1.5"):
        mean_shift(x, 1.5)
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(bandwidth=1.5, bin_seeding=True).fit(x.numpy())
    seeds = x[torch.randperm(600, generator=torch.Generator().manual_seed(0))[:60]]
    labels = mean_shift(x, 1.5, seeds=seeds)
    ref = MeanShift(bandwidth=1.5, seeds=seeds.numpy()).fit(x.numpy())
    assert adjusted_rand_score(ref.labels_, labels.numpy()) >= 0.99
    assert adjusted_rand_score(y.numpy(), labels.numpy()) >= 0.99
    with pytest.raises(ValueError, match=r"seeds must be a \(S, 64\) tensor"):
        mean_shift(x, 1.5, seeds=seeds[:, :3])


def test_chunking_does_not_change_the_result():
    x, _ = _blobs(600, 4, 3, 0.1, 5)
    torch.testing.assert_close(mean_shift(x, 0.5, chunk_size=1000), mean_shift(x, 0.5))


def test_single_cluster_and_single_point():
    x, _ = _blobs(300, 3, 1, 0.05, 6)
    assert mean_shift(x, 0.5).eq(0).all()
    assert mean_shift(torch.zeros(1, 4)).tolist() == [0]


def test_bin_seeds_match_sklearn():
    x, _ = _blobs(500, 3, 3, 0.3, 7)
    ours = {tuple(np.round(r, 6)) for r in bin_seeds(x.double(), 0.5, 2).numpy()}
    theirs = {tuple(np.round(r, 6)) for r in get_bin_seeds(x.double().numpy(), 0.5, 2)}
    assert ours == theirs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_stays_on_device():
    x, _ = _blobs(500, 4, 3, 0.1, 8)
    labels = mean_shift(x.cuda(), 0.5)
    assert labels.is_cuda
    assert torch.equal(labels.cpu(), mean_shift(x, 0.5))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(points=torch.zeros(5)), r"points must have shape \(N, D\)"),
        (dict(points=torch.zeros(0, 3)), r"points must have shape \(N, D\)"),
        (dict(points=torch.zeros(5, 2, dtype=torch.long)), "points must be a floating"),
        (dict(points=torch.tensor([[0.0, float("nan")]])), "points must be finite"),
        (dict(bandwidth=0.0), "bandwidth must be > 0"),
        (dict(bandwidth=-1.0), "bandwidth must be a finite number >= 0"),
        (dict(min_bin_freq=0), "min_bin_freq must be an int >= 1"),
        (dict(min_bin_freq=100), "no bin has min_bin_freq=100"),
        (dict(max_iter=-1), "max_iter must be an int >= 0"),
        (dict(chunk_size=2**25), "chunk_size must be <= 2\\*\\*24"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(points=torch.randn(10, 2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mean_shift(**args)
