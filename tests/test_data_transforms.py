"""PairTransform (torchvision v2 with tv_tensors.Mask) and resize_to_original."""

import numpy as np
import pytest
import torch

from cosegkit.data import IMAGENET_MEAN, IMAGENET_STD, PairTransform, resize_to_original


def _sample(h=30, w=40, label=1):
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), bool)
    mask[5:20, 7:31] = True
    return {
        "image_a": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "image_b": rng.integers(0, 256, (h + 6, w - 4, 3), dtype=np.uint8),
        "mask_a": mask, "mask_b": np.zeros((h + 6, w - 4), bool), "label": label,
        "group_a": "cat", "group_b": "cat",
    }


def test_eval_transform_shapes_normalisation_and_sizes():
    s = _sample()
    s["image_a"][:] = 255
    out = PairTransform(16, train=False)(s)
    assert out["image_a"].shape == (3, 16, 16) and out["image_a"].dtype == torch.float32
    # A white image normalises to (1 - mean) / std per channel.
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out["image_a"][:, 0, 0], expected)
    assert out["mask_a"].shape == (16, 16) and out["mask_a"].dtype == torch.float32
    assert out["orig_size_a"] == (30, 40) and out["orig_size_b"] == (36, 36)
    assert out["label"].dtype == torch.float32 and out["label"].item() == 1.0
    assert out["group_a"] == "cat"
    assert PairTransform((8, 12))(s)["image_b"].shape == (3, 8, 12)


def test_masks_use_nearest_and_stay_binary():
    # A 1-pixel checkerboard would become 0.5 grey under bilinear resizing; nearest keeps it binary.
    s = _sample(32, 32)
    s["mask_a"] = (np.indices((32, 32)).sum(0) % 2).astype(bool)
    out = PairTransform(20, train=True)(s)
    vals = set(torch.unique(out["mask_a"]).tolist())
    assert vals == {0.0, 1.0}
    # Downscale by an exact factor 2: nearest picks one of every 2x2 block, as F.interpolate(nearest) does.
    s["mask_a"] = np.kron(np.eye(4, dtype=bool), np.ones((8, 8), bool))
    m = PairTransform(16, train=False)(s)["mask_a"]
    expected = torch.from_numpy(np.kron(np.eye(4), np.ones((4, 4)))).float()
    torch.testing.assert_close(m, expected)


def test_flip_is_applied_jointly_to_image_and_mask():
    h = w = 8
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :3] = 255  # bright left band
    mask = np.zeros((h, w), bool)
    mask[:, :3] = True
    s = {"image_a": img, "image_b": img, "mask_a": mask, "mask_b": mask, "label": 1}
    t = PairTransform(8, train=True, flip_p=1.0, jitter=(0, 0, 0, 0))
    out = t(s)
    bright = out["image_a"][0] > 0
    assert torch.equal(bright, out["mask_a"].bool())
    assert out["mask_a"][:, -3:].all() and not out["mask_a"][:, :5].any()  # flipped to the right


def test_extra_object_masks_follow_the_image():
    s = _sample()
    s["objects_a"] = s["mask_a"].copy()
    s["objects_b"] = s["mask_b"].copy()
    out = PairTransform(16, train=True)(s)
    assert torch.equal(out["objects_a"], out["mask_a"])


def test_bad_inputs():
    s = _sample()
    s["mask_a"] = s["mask_a"].astype(np.uint8) * 255
    with pytest.raises(ValueError, match="mask_a must be binary"):
        PairTransform(16)(s)
    s = _sample()
    s["mask_b"] = np.zeros((5, 5), bool)
    with pytest.raises(ValueError, match=r"image_b: mask shape \(5, 5\) differs"):
        PairTransform(16)(s)
    with pytest.raises(ValueError, match="size must be a positive int"):
        PairTransform(0)


def test_resize_to_original_masks_and_probabilities():
    pred = torch.tensor([[True, False], [False, True]])
    out = resize_to_original(pred, (4, 6))
    assert out.dtype == np.bool_ and out.shape == (4, 6)
    np.testing.assert_array_equal(out, np.kron(np.eye(2, dtype=bool), np.ones((2, 3), bool)))
    prob = np.array([[0.0, 1.0]], np.float32)
    # Bilinear (align_corners=False) from 2 to 4 columns gives 0, 0.25, 0.75, 1.
    np.testing.assert_array_equal(resize_to_original(prob, (1, 4)), [[False, False, True, True]])
    np.testing.assert_array_equal(resize_to_original(prob, (1, 4), threshold=0.2), [[False, True, True, True]])
    np.testing.assert_array_equal(resize_to_original(np.array([[0, 1]]), (1, 2)), [[False, True]])
    with pytest.raises(ValueError, match="2-D"):
        resize_to_original(np.zeros((1, 2, 2)), (4, 4))
    with pytest.raises(ValueError, match="only 0 and 1"):
        resize_to_original(np.array([[0, 2]]), (2, 2))


def _read_only(sample: dict) -> dict:
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in sample.items()}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    return out


@pytest.mark.parametrize("train", [True, False])
def test_view_cache_is_bit_identical_to_the_v2_pipeline(train):
    # Without jitter the cached views (read-only arrays) must equal torchvision's own Resize -> Flip -> ToDtype
    # -> Normalize under the same RNG: same flip draws, same pixels.
    sample = _read_only(_sample())
    cached = PairTransform(16, train=train, jitter=None)
    reference = PairTransform(16, train=train, jitter=None, cache_views=False)  # the plain v2.Compose path
    for seed in range(12):
        torch.manual_seed(seed)
        got = cached(sample)
        after_cached = torch.rand(1)
        torch.manual_seed(seed)
        want = reference(sample)
        assert torch.equal(after_cached, torch.rand(1))  # the cache consumes the RNG exactly as v2 does
        for k in ("image_a", "image_b", "mask_a", "mask_b"):
            assert torch.equal(got[k], want[k]), (seed, k)
    # four arrays cached; in training the 12 seeds drew both flips, so each holds both views
    assert len(cached._views) == 4
    if train:
        assert all(len(v[1]) == 2 for v in cached._views.values())
    torch.manual_seed(0)
    first = cached(sample)["image_a"]
    torch.manual_seed(0)
    assert cached(sample)["image_a"] is first


def test_writable_arrays_are_never_served_from_the_view_cache():
    sample = _sample()
    t = PairTransform(16, train=False)
    before = t(sample)["image_a"].clone()
    sample["image_a"][:] = 0  # a write between calls must show in the next output
    after = t(sample)["image_a"]
    assert not torch.equal(before, after)
    assert t._views == {}
    ro = _read_only(sample)
    t(ro)
    assert len(t._views) == 4


def test_jitter_disables_the_view_cache():
    t = PairTransform(16, train=True)
    t(_read_only(_sample()))
    assert t._views is None


def test_cached_dataset_items_are_read_only_so_their_views_are_cached():
    from cosegkit.data import SyntheticCoseg
    from cosegkit.train.data import CachedDataset

    ds = CachedDataset(SyntheticCoseg(2, 32, seed=0))
    item = ds[0]
    assert ds[0] is item
    with pytest.raises(ValueError, match="read-only"):
        item["image_a"][0, 0, 0] = 1
    t = PairTransform(16, train=True, jitter=None)
    t(item)
    assert len(t._views) == len([k for k in item if k.startswith(("image_", "mask_", "objects_"))])
