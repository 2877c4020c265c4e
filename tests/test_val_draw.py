"""Validation pairs spread over the groups (data.val_draw="by_group", cosegkit.data.pairs.spread_over_groups), as
the test pairs are (data.test_max_pairs_per_group), instead of weighting each group by its number of pairs."""

from collections import Counter

import pytest
from test_data_splits_pairs import Fake

from cosegkit.data.pairs import positive_pairs, spread_over_groups
from cosegkit.train.data import real_sets
from cosegkit.train.experiments import EXPERIMENTS, build_settings
from cosegkit.train.run_cache import run_key

# 45 + 6 + 1 positive pairs: drawn uniformly, the large group fills almost every slot
GROUPS = ["big"] * 10 + ["mid"] * 4 + ["small"] * 2


def _spread(n, seed=0):
    ds = Fake(GROUPS)
    pairs = positive_pairs(ds, seed=0)
    out = spread_over_groups(pairs, [ds.group_of(a) for a, _ in pairs], n, seed=seed)
    return pairs, out, Counter(ds.group_of(a) for a, _ in out)


def test_every_group_gets_a_pair_before_any_gets_a_second():
    assert _spread(3)[2] == {"big": 1, "mid": 1, "small": 1}
    assert _spread(7)[2] == {"big": 3, "mid": 3, "small": 1}  # small has one pair only


@pytest.mark.parametrize("n", [1, 2, 8, 12, 30, 52])
def test_groups_differ_by_at_most_one_pair_until_exhausted(n):
    pairs, out, counts = _spread(n)
    assert len(out) == n == sum(counts.values())
    full = {"big": 45, "mid": 6, "small": 1}
    for g in full:  # a group left short of its pairs is at most one behind any other group
        if counts[g] < full[g]:
            assert all(counts[h] <= counts[g] + 1 for h in full), (g, counts)


def test_the_pairs_keep_their_order_and_the_draw_its_seed():
    pairs, out, _ = _spread(8)
    assert out == [p for p in pairs if p in set(out)] and len(set(out)) == len(out)
    assert _spread(8, seed=3)[1] == _spread(8, seed=3)[1]
    # the last, partial round (big or mid gets the 8th pair) depends on the seed
    assert len({tuple(_spread(8, seed=s)[1]) for s in range(20)}) > 1
    # each group's pairs are taken in the order given (positive_pairs shuffled them)
    big = [p for p in pairs if GROUPS[p[0]] == "big"]
    assert [p for p in out if GROUPS[p[0]] == "big"] == big[:3] or [p for p in out if GROUPS[p[0]] == "big"] == big[:4]


def test_bad_arguments_are_refused():
    pairs = [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match="one group per pair"):
        spread_over_groups(pairs, ["a"], 1, seed=0)
    with pytest.raises(ValueError, match="n must be"):
        spread_over_groups(pairs, ["a", "b"], 3, seed=0)


def test_real_sets_spread_the_validation_pairs_over_the_groups(make_folder):
    root = make_folder({"big": 20, "mid": 10, "small": 10})
    by_group = build_settings("unet-dice", "smoke", overrides={"data.val_pairs": 3, "data.val_draw": "by_group"})
    fields, ds = real_sets(by_group, root)
    assert Counter(ds.group_of(a) for a, _ in fields["val"].pairs) == {"big": 1, "mid": 1, "small": 1}
    # the uniform draw of the same split's pairs: big holds 6 of its 8 pairs, so some draws miss a group
    draws = []
    for seed in range(8):
        uniform = build_settings("unet-dice", "smoke", seed=seed, overrides={"data.val_pairs": 3})
        draws.append(len({ds.group_of(a) for a, _ in real_sets(uniform, root)[0]["val"].pairs}))
    assert min(draws) < 3


def test_the_setting_is_checked_and_enters_the_run_key_only_when_set():
    with pytest.raises(ValueError, match="data.val_draw"):
        build_settings("unet-dice", "smoke", overrides={"data.val_draw": "stratified"})
    plain = build_settings("unet-dice", "smoke")
    assert run_key(build_settings("unet-dice", "smoke", overrides={"data.val_draw": "uniform"})) == run_key(plain)
    assert run_key(build_settings("unet-dice", "smoke", overrides={"data.val_draw": "by_group"})) != run_key(plain)


def test_the_cpu_profile_draws_by_group_and_the_others_uniformly():
    for name in EXPERIMENTS:
        assert build_settings(name, "cpu").data.val_draw == "by_group", name
        for profile in ("smoke", "paper", "gpu"):
            assert build_settings(name, profile).data.val_draw == "uniform", (name, profile)
