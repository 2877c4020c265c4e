"""SyntheticCoseg: determinism, pair semantics, occlusion and the saliency bound."""

import numpy as np
import pytest

from cosegkit.data import SyntheticCoseg
from cosegkit.data.synthetic import MAX_COMMON_SHARE, SHAPES, TEXTURES
from cosegkit.metrics import jaccard


@pytest.fixture(scope="module")
def pairs():
    ds = SyntheticCoseg(120, size=64, seed=7, negative_fraction=0.3)
    return ds, [ds[i] for i in range(len(ds))]


def test_same_seed_same_arrays_and_random_access():
    a = SyntheticCoseg(5, size=48, seed=3, negative_fraction=0.5)
    b = SyntheticCoseg(500, size=48, seed=3, negative_fraction=0.5)
    for i in (0, 4):
        x, y = a[i], b[i]
        for k in ("image_a", "image_b", "mask_a", "mask_b", "objects_a", "objects_b"):
            np.testing.assert_array_equal(x[k], y[k])
        assert x["label"] == y["label"] and x["categories_a"] == y["categories_a"]
    np.testing.assert_array_equal(a[-1]["image_a"], a[4]["image_a"])
    c = SyntheticCoseg(5, size=48, seed=4)
    assert not np.array_equal(a[0]["image_a"], c[0]["image_a"])
    with pytest.raises(IndexError):
        a[5]


def test_output_types_and_categories(pairs):
    ds, samples = pairs
    assert len(ds.categories) == 12 >= 8
    assert {c.split("-")[0] for c in ds.categories} == set(SHAPES)
    s = samples[0]
    assert s["image_a"].dtype == np.uint8 and s["image_a"].shape == (64, 64, 3)
    assert s["mask_a"].dtype == bool and s["mask_a"].shape == (64, 64)
    for s in samples:
        for side in "ab":
            cats = s[f"categories_{side}"]
            assert 2 <= len(cats) <= 3 and len(set(cats)) == len(cats)
            assert s[f"objects_{side}"].any()
    big = SyntheticCoseg(2, size=(48, 80), seed=0, textures=TEXTURES)
    assert len(big.categories) == 20 and big[1]["image_b"].shape == (48, 80, 3)


def test_positive_pairs_share_exactly_one_category_and_mask_only_it(pairs):
    _, samples = pairs
    pos = [s for s in samples if s["label"] == 1]
    assert len(pos) > 50
    for s in pos:
        assert set(s["categories_a"]) & set(s["categories_b"]) == {s["category"]}
        assert s["group_a"] == s["group_b"] == s["category"]
        for side in "ab":
            m, objs = s[f"mask_{side}"], s[f"objects_{side}"]
            assert m.any() and not (m & ~objs).any()  # inside the objects...
            assert (objs & ~m).any()  # ...and not all of them


def test_negative_pairs_share_nothing_and_have_empty_masks(pairs):
    _, samples = pairs
    neg = [s for s in samples if s["label"] == 0]
    assert 20 <= len(neg) <= 60  # negative_fraction 0.3 of 120
    for s in neg:
        assert not set(s["categories_a"]) & set(s["categories_b"])
        assert not s["mask_a"].any() and not s["mask_b"].any()
        assert s["category"] is None and s["group_a"] != s["group_b"]


def test_saliency_of_all_objects_is_not_enough(pairs):
    _, samples = pairs
    scores = [jaccard(s[f"objects_{k}"], s[f"mask_{k}"]) for s in samples if s["label"] == 1 for k in "ab"]
    assert max(scores) <= MAX_COMMON_SHARE == 0.6
    assert np.mean(scores) < 0.5


def test_occluded_parts_are_excluded_from_the_mask():
    ds = SyntheticCoseg(1, size=64, seed=0)
    rng = np.random.default_rng(123)
    objs, labels = ds._layout(rng, [0, 5])
    full = []
    for (y0, y1, x0, x1), inside, _ in objs:
        m = np.zeros((64, 64), bool)
        m[y0:y1, x0:x1] = inside
        full.append(m)
    # Object 5 is painted last: it hides object 0 wherever they overlap.
    np.testing.assert_array_equal(labels == 0, full[0] & ~full[1])
    np.testing.assert_array_equal(labels == 5, full[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="negative_fraction"):
        SyntheticCoseg(3, negative_fraction=1.5)
    with pytest.raises(ValueError, match="unknown texture 'wood'"):
        SyntheticCoseg(3, textures=("wood",))
    with pytest.raises(ValueError, match="at least 6 distinct categories"):
        SyntheticCoseg(3, shapes=("disc", "star"), textures=("brick", "grass"))
    with pytest.raises(ValueError, match="sides >= 32"):
        SyntheticCoseg(3, size=16)
