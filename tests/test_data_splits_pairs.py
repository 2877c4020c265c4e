"""Splits, positive/negative pairs, CoSegNet triplets and RealPairs."""

import shutil
from collections import Counter

import numpy as np
import pytest
from conftest import write_mask

from cosegkit.data import (
    CosegFolder,
    RealPairs,
    cosegnet_triplets,
    negative_pairs,
    positive_pairs,
    split_indices,
)


class Fake:
    """Dataset stand-in: groups and byte ids given directly."""

    def __init__(self, groups, ids=None):
        self.groups_ = list(groups)
        self.ids_ = list(ids) if ids is not None else [f"id{i}" for i in range(len(groups))]

    def __len__(self):
        return len(self.groups_)

    def group_of(self, i):
        return self.groups_[i]

    def id_of(self, i):
        return self.ids_[i]


def test_split_ratios_per_group_and_determinism():
    ds = Fake(["a"] * 10 + ["b"] * 5)
    s = split_indices(ds, seed=3)
    assert sorted(s) == ["test", "train", "val"]
    # 3:1:1 of 10 -> 6/2/2, of 5 -> 3/1/1, per group.
    assert Counter(ds.group_of(i) for i in s["train"]) == {"a": 6, "b": 3}
    assert Counter(ds.group_of(i) for i in s["val"]) == {"a": 2, "b": 1}
    assert Counter(ds.group_of(i) for i in s["test"]) == {"a": 2, "b": 1}
    assert sorted(s["train"] + s["val"] + s["test"]) == list(range(15))
    assert s == split_indices(ds, seed=3)
    assert s != split_indices(ds, seed=4)
    assert split_indices(ds, ratios=(1, 0, 1), seed=0)["val"] == []
    with pytest.raises(ValueError, match="ratios must be three non-negative numbers"):
        split_indices(ds, ratios=(3, 1))


def test_largest_remainder_on_tiny_group():
    s = split_indices(Fake(["a"] * 3), seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [2, 1, 0]  # 1.8, 0.6, 0.6


def test_byte_identical_images_stay_on_one_side():
    # Items 0 (bike) and 5 (person) are the same file; so are 1 and 6.
    groups = ["bike"] * 5 + ["person"] * 5
    ids = ["x", "y", "b2", "b3", "b4", "x", "y", "p2", "p3", "p4"]
    ds = Fake(groups, ids)
    for seed in range(20):
        s = split_indices(ds, seed=seed)
        side = {i: k for k, v in s.items() for i in v}
        assert side[0] == side[5] and side[1] == side[6]


def test_positive_pairs_same_group_distinct_bytes():
    ds = Fake(["a", "a", "a", "b", "b", "c"], ids=["1", "2", "1", "3", "4", "5"])
    pairs = positive_pairs(ds, seed=0)
    # Group a: (0,1), (1,2) (0 and 2 are the same bytes); group b: (3,4); c has one image.
    assert sorted(pairs) == [(0, 1), (1, 2), (3, 4)]
    assert all(a < b for a, b in pairs)
    assert positive_pairs(ds, seed=0) == pairs
    assert len(positive_pairs(ds, max_pairs_per_group=1)) == 2
    assert positive_pairs(ds, indices=[0, 1, 5]) == [(0, 1)]


def test_negative_pairs_never_share_a_group_label_of_the_bytes():
    # Item 0 (bike) is byte-identical to item 2 (person): it shows a person too.
    groups = ["bike", "bike", "person", "person", "cow"]
    ids = ["x", "b1", "x", "p1", "c1"]
    ds = Fake(groups, ids)
    # (0, 3) and (2, 3) would pair two person images; (1, 2) two bike images (2 is the bike file as well).
    expected = {(0, 4), (1, 3), (1, 4), (2, 4), (3, 4)}
    pairs = negative_pairs(ds, n=5, seed=1)
    assert set(pairs) == expected and len(pairs) == 5
    assert negative_pairs(ds, n=4, seed=5) == negative_pairs(ds, n=4, seed=5)
    with pytest.raises(ValueError, match="asked for 6 negative pairs but only 5 exist"):
        negative_pairs(ds, n=6)


def test_negative_pairs_rejection_path(monkeypatch):
    import cosegkit.data.pairs as pairs_mod

    monkeypatch.setattr(pairs_mod, "_ENUMERATE_LIMIT", 0)
    ds = Fake(["a"] * 6 + ["b"] * 6)
    pairs = negative_pairs(ds, n=20, seed=0)
    assert len(set(pairs)) == 20
    assert all(ds.group_of(a) != ds.group_of(b) and a < b for a, b in pairs)
    with pytest.raises(ValueError, match="could only find 36 of 37"):
        negative_pairs(ds, n=37, seed=0)


def test_cosegnet_triplets():
    groups = ["a"] * 3 + ["b"] * 3 + ["c"]
    ids = ["a0", "a1", "a2", "b0", "b1", "x", "x"]  # item 6 (c) is the same file as item 5 (b)
    ds = Fake(groups, ids)
    trips = cosegnet_triplets(ds, n=200, seed=0)
    assert len(trips) == 200 and trips == cosegnet_triplets(ds, n=200, seed=0)
    for a, p, n in trips:
        assert ds.group_of(a) == ds.group_of(p) and ds.id_of(a) != ds.id_of(p)
        assert ds.group_of(n) != ds.group_of(a)
        if ds.group_of(a) == "b":
            assert n not in (5, 6)  # never the b/c shared file
    assert {ds.group_of(a) for a, _, _ in trips} == {"a", "b"}  # c has no positive partner
    with pytest.raises(ValueError, match="no group has two distinct images"):
        cosegnet_triplets(Fake(["a", "b"]), n=1)


def test_real_pairs_masks_and_labels(make_folder):
    root = make_folder({"cat": 2, "dog": 2})
    ds = CosegFolder(root)
    pos = RealPairs(ds, positive_pairs(ds))
    assert len(pos) == 2 and pos.pairs == [(0, 1), (2, 3)]
    s = pos[0]
    assert s["label"] == 1 and s["group_a"] == s["group_b"] == "cat"
    np.testing.assert_array_equal(s["mask_a"], ds[0].mask)
    assert s["image_b"].shape == (24, 32, 3)
    neg = RealPairs(ds, [(0, 2)], negative=True)
    n = neg[0]
    assert n["label"] == 0 and not n["mask_a"].any() and not n["mask_b"].any()
    assert neg.sizes == [((24, 32), (24, 32))]
    mixed = RealPairs(ds, [(0, 1), (1, 3)], negative=[False, True])
    assert [mixed[k]["label"] for k in range(2)] == [1, 0]
    with pytest.raises(ValueError, match=r"pair \(0, 1\) is marked negative but both images are in group 'cat'"):
        RealPairs(ds, [(0, 1)], negative=True)
    with pytest.raises(ValueError, match=r"marked positive but its groups differ"):
        RealPairs(ds, [(0, 2)])
    with pytest.raises(IndexError):
        pos[2]


def test_pairs_on_folder_with_shared_file(make_folder):
    root = make_folder({"bike": 2, "person": 2})
    shutil.copy(root / "bike/images/img_000.jpg", root / "person/images/img_009.jpg")
    write_mask(root / "person/masks/img_009.png", seed=9)
    ds = CosegFolder(root)  # 0, 1 bike; 2, 3, 4 person; 4 is the same file as 0 (it shows a bike too)
    assert ds.id_of(0) == ds.id_of(4)
    assert sorted(negative_pairs(ds, n=2, seed=0)) == [(1, 2), (1, 3)]
    with pytest.raises(ValueError, match="only 2 exist"):
        negative_pairs(ds, n=3)


def test_voc_split_keeps_duplicates_together(voc_root):
    ds = CosegFolder(voc_root)
    s = split_indices(ds, seed=0)
    sizes = [len(s[k]) for k in ("train", "val", "test")]
    assert sum(sizes) == 824
    assert sizes[0] / 824 == pytest.approx(0.6, abs=0.03) and sizes[2] / 824 == pytest.approx(0.2, abs=0.03)
    side = {i: k for k, v in s.items() for i in v}
    by_id: dict[str, set[str]] = {}
    for i in range(len(ds)):
        by_id.setdefault(ds.id_of(i), set()).add(side[i])
    assert all(len(v) == 1 for v in by_id.values())
    # 174 files carry shared bytes: 78 images appear under two classes and 6 under three.
    assert len(by_id) == 824 - 78 - 2 * 6
