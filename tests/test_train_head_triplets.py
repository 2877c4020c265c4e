"""CoSegNet's extra head triplets (data.head_triplets): pairs that train only the metric and decision networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosegkit.losses import cosegnet_loss
from cosegkit.tasks import build_run_data
from cosegkit.tasks.cosegnet import CoSegNetTask, collate_triplets
from cosegkit.train import build_settings, train
from cosegkit.train.data import TrainSamples
from cosegkit.train.modeling import build_model, train_transform
from cosegkit.train.run_cache import run_key, run_slug


def _smoke(experiment="cosegnet", **overrides):
    return build_settings(experiment, "smoke", overrides={"progress": False, **overrides})


def test_items_carry_valid_extra_triplets_pure_in_seed_epoch_index():
    s = _smoke(**{"data.head_triplets": 3})
    data = build_run_data(s)
    samples = data.epoch_samples(0)
    assert samples == build_run_data(_smoke()).epoch_samples(0)  # the main triplets are drawn as without extras
    for i in range(len(samples)):
        specs = data.extra_triplet_specs(0, i)
        assert len(specs) == 3 and specs == data.extra_triplet_specs(0, i)
        for k, k2, side in specs:
            assert (k2, side) in data.synthetic_negatives[k]  # the negative shares no category with the pair
    assert any(data.extra_triplet_specs(1, i) != data.extra_triplet_specs(0, i) for i in range(len(samples)))
    model = build_model(s.model)
    item = TrainSamples(data, samples, 0, train_transform(s, model))[0]
    assert set(item) == {"pos", "neg", "extra_pos", "extra_neg"}
    assert item["extra_pos"]["image_a"].shape == (3, *item["pos"]["image_a"].shape)
    assert item["extra_pos"]["label"].tolist() == [1.0] * 3 and item["extra_neg"]["label"].tolist() == [0.0] * 3
    assert torch.count_nonzero(item["extra_neg"]["mask_a"]) == 0
    plain = TrainSamples(build_run_data(_smoke()), samples, 0, train_transform(s, model))[0]
    for part in ("pos", "neg"):  # the main pairs are transformed exactly as without extras
        for key, value in plain[part].items():
            assert torch.equal(item[part][key], value)


def test_the_extra_term_is_eq1_without_the_mask_term_and_trains_no_decoder():
    s = _smoke(**{"data.head_triplets": 2})
    data = build_run_data(s)
    model = build_model(s.model).train()
    tf = train_transform(s, model)
    samples = TrainSamples(data, data.epoch_samples(0), 0, tf)
    batch = collate_triplets([samples[0], samples[1]])
    task = CoSegNetTask()
    total, terms = task.loss(model, batch, s, None, None)
    main_only = {"pos": batch["pos"], "neg": batch["neg"]}
    main_total, _ = task.loss(model, main_only, s, None, None)
    # the extra term by hand: eq. 1 with w1 = 0 over the 2 x 2 extra triplets, from the model's own embeddings
    flat = {p: {k: v.flatten(0, 1) for k, v in batch[p].items()} for p in ("extra_pos", "extra_neg")}
    xa = torch.cat([flat["extra_pos"]["image_a"], flat["extra_neg"]["image_a"]])
    xb = torch.cat([flat["extra_pos"]["image_b"], flat["extra_neg"]["image_b"]])
    labels = torch.cat([flat["extra_pos"]["label"], flat["extra_neg"]["label"]])
    out = model(xa, xb, positive_mask=torch.zeros(8, dtype=torch.bool))
    emb_p, emb_n = out.embedding_b[:4], out.embedding_b[4:]
    zeros = torch.zeros(8, *xa.shape[-2:])
    ls = s.loss
    extra, _ = cosegnet_loss(out.logits_a, out.logits_b, zeros, zeros, out.embedding_a, torch.cat([emb_p, emb_p]),
                             torch.cat([emb_n, emb_n]), out.decision_logit, labels, margin=ls.triplet_margin,
                             positive_weights=(0.0, *ls.positive_weights[1:]), negative_weights=ls.negative_weights)
    assert total.item() == pytest.approx(main_total.item() + extra.item(), rel=1e-5)
    assert terms["loss_l3_extra"].item() > 0
    # swapping the extra pairs' labels changes only the extra term (its L3 reads them)
    swapped = {**batch, "extra_pos": {**batch["extra_pos"], "label": batch["extra_pos"]["label"] * 0},
               "extra_neg": {**batch["extra_neg"], "label": batch["extra_neg"]["label"] * 0 + 1}}
    assert task.loss(model, swapped, s, None, None)[0].item() != pytest.approx(total.item(), rel=1e-6)
    # the extras add no gradient to the decoder layers after the metric layer, and do add one to the decision network
    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    with_extra, without = grads(total), grads(main_total)
    tail = [f"decoder.layers.{n}." for n in model.post_metric_layers()]
    tail_names = [n for n in without if any(n.startswith(t) for t in tail)]
    assert tail_names and all(torch.allclose(with_extra[n], without[n], atol=1e-7) for n in tail_names)
    assert not torch.allclose(with_extra["decision.0.weight"], without["decision.0.weight"])


def test_profiles_give_extras_and_size_to_cosegnets_claim_rows_only_and_keys_hold_at_zero():
    cpu = {e: build_settings(e, "cpu") for e in ("cosegnet", "cosegnet-single-image", "cosegnet-f",
                                                  "cosegnet-ct9", "cosegnet-base")}
    from cosegkit.train.profiles import get_profile

    heads = get_profile("cpu").cosegnet_claim_head_triplets
    assert heads > 0
    assert cpu["cosegnet"].data.head_triplets == cpu["cosegnet-single-image"].data.head_triplets == heads
    assert cpu["cosegnet-f"].data.head_triplets == cpu["cosegnet-ct9"].data.head_triplets == 0
    assert cpu["cosegnet-base"].data.head_triplets == 0
    # the claim rows (and CoSegNet-base beside them) at the profile's size, Table 6's rows at the ablation size
    ablation = get_profile("cpu").cosegnet_ablation_image_size
    assert ablation is not None and ablation != cpu["cosegnet"].data.image_size
    assert cpu["cosegnet-f"].data.image_size == cpu["cosegnet-ct9"].data.image_size == ablation
    assert cpu["cosegnet-base"].data.image_size == cpu["cosegnet-single-image"].data.image_size \
        == cpu["cosegnet"].data.image_size
    assert run_key(cpu["cosegnet"]) != run_key(cpu["cosegnet-f"])  # Table 6's f row is a run of its own
    assert f"head{heads}" in run_slug(cpu["cosegnet"]) and "head" not in run_slug(cpu["cosegnet-f"])
    # a setting at its default (0) leaves the key as it was before the setting existed
    s = _smoke()
    from cosegkit.train.settings import settings_to_dict

    record = settings_to_dict(s)
    assert record["data"]["head_triplets"] == 0 and run_key(s) == run_key(_smoke(**{"data.head_triplets": 0}))
    assert run_key(s) != run_key(_smoke(**{"data.head_triplets": 1}))


def test_bad_head_triplets_are_refused():
    with pytest.raises(ValueError, match="data.head_triplets must be an int >= 0, got -1"):
        _smoke(**{"data.head_triplets": -1})
    for bad in (1.5, True):  # caught by the override's type check, naming the setting
        with pytest.raises(ValueError, match="data.head_triplets"):
            _smoke(**{"data.head_triplets": bad})
    with pytest.raises(ValueError, match="cosegnet-base has neither"):
        build_run_data(_smoke("cosegnet-base", **{"data.head_triplets": 2}))


def test_real_data_extras_are_triplets_and_a_run_trains(rectangles_folder, tmp_path):
    root = rectangles_folder
    extra = {"data.head_triplets": 2, "data.test_negative_pairs": 2}
    data = build_run_data(_smoke(**extra), root)
    ds = data.dataset
    for i in range(4):
        for a, p, n in data.extra_triplet_specs(0, i):
            assert a in data.train_idx and p in data.train_idx and n in data.train_idx
            assert ds.group_of(a) == ds.group_of(p) != ds.group_of(n) and a != p
    run = train("cosegnet", "smoke", tmp_path / "real", data_root=root,
                overrides={"progress": False, "epochs": 1, **extra})
    assert np.isfinite(run.history[0]["loss_l3_extra"])
