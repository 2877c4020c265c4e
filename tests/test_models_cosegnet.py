"""CoSegNet / CoSegNetBase (cosegnet §3.1-3.5, Tables 5-6)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cosegkit.models import CoSegNet, CoSegNetBase, count_parameters


def _pair(b: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g), torch.randn(b, 3, size, size, generator=g)


@pytest.fixture(scope="module")
def vgg_net() -> CoSegNet:
    torch.manual_seed(0)
    return CoSegNet(pretrained=False, metric_layer="cT9", encoder="vgg16")


def test_architecture_layout(vgg_net):
    enc_attrs = [n for n, _ in vgg_net.named_children() if n.startswith("enc")]
    assert enc_attrs == ["encoder"] and count_parameters(vgg_net.encoder) == 14_714_688
    convs = [m for m in vgg_net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13
    convt = list(vgg_net.decoder.layers.values())
    assert len(convt) == 13 and all(isinstance(m, torch.nn.ConvTranspose2d) for m in convt)
    assert all(m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (1, 1) for m in convt)
    widths = [m.out_channels for m in convt]
    assert widths == [512, 512, 512, 512, 512, 512, 256, 256, 256, 128, 128, 64, 1]
    assert vgg_net.decoder.upsample_before == {"cT1", "cT4", "cT7", "cT10", "cT12"}  # 5 NNI
    # metric FC128-ReLU-FC64 on GAP(cT9) (256), decision FC32-ReLU-FC1 on 128
    assert [m.in_features for m in vgg_net.metric if isinstance(m, torch.nn.Linear)] == [256, 128]
    assert [m.out_features for m in vgg_net.metric if isinstance(m, torch.nn.Linear)] == [128, 64]
    assert [(m.in_features, m.out_features) for m in vgg_net.decision if isinstance(m, torch.nn.Linear)] == [
        (128, 32),
        (32, 1),
    ]


def test_shapes_64(vgg_net):
    a, b = _pair(2, 64)
    with torch.no_grad():
        out = vgg_net(a, b)
    assert out["logits_a"].shape == out["logits_b"].shape == (2, 1, 64, 64)
    assert out["embedding_a"].shape == out["embedding_b"].shape == (2, 64)
    assert out["pooled_a"].shape == (2, 256)
    assert out["decision_logit"].shape == (2,)
    assert torch.allclose(vgg_net.metric_embedding(a), out["embedding_a"], atol=1e-5)


def test_shapes_224_batch1_and_cT9_is_256_at_56(vgg_net):
    sizes = {}

    def record(name):
        def hook(module, inputs, output):  # returns None: output unchanged
            sizes.setdefault(name, tuple(output.shape[1:]))

        return hook

    hooks = [layer.register_forward_hook(record(name)) for name, layer in vgg_net.decoder.layers.items()]
    a, b = _pair(1, 224)
    with torch.no_grad():
        out = vgg_net(a, b)
    for h in hooks:
        h.remove()
    assert out["logits_a"].shape == (1, 1, 224, 224) and out["decision_logit"].shape == (1,)
    assert out["pooled_a"].shape == (1, 256)  # GAP over cT9
    assert sizes["cT1"] == (512, 14, 14) and sizes["cT3"] == (512, 14, 14) and sizes["cT6"] == (512, 28, 28)
    assert sizes["cT9"] == (256, 56, 56) and sizes["cT11"] == (128, 112, 112)
    assert sizes["cT12"] == (64, 224, 224) and sizes["cT13"] == (1, 224, 224)


def test_base_shapes_and_1024_channel_input():
    torch.manual_seed(0)
    base = CoSegNetBase(pretrained=False)
    assert base.decoder.layers["cT1"].in_channels == 1024
    assert not hasattr(base, "metric") and not hasattr(base, "decision")
    a, b = _pair(2, 64)
    with torch.no_grad():
        out = base(a, b)
    assert set(out) == {"logits_a", "logits_b"} and out["logits_b"].shape == (2, 1, 64, 64)


@pytest.mark.parametrize("layer, dim", [("f", 512), ("cT3", 512), ("cT6", 512), ("cT9", 256), ("cT11", 128)])
def test_metric_layer_table6(layer, dim):
    torch.manual_seed(0)
    net = CoSegNet(metric_layer=layer, encoder="vgg16")
    assert net.metric[0].in_features == dim
    a, b = _pair(1, 32)
    with torch.no_grad():
        out = net(a, b)
    assert out["pooled_a"].shape == (1, dim) and out["logits_a"].shape == (1, 1, 32, 32)


def test_bad_arguments():
    with pytest.raises(ValueError, match="metric_layer"):
        CoSegNet(metric_layer="cT13", encoder="tiny")
    with pytest.raises(ValueError, match="48x64"):
        CoSegNet(encoder="tiny")(torch.randn(1, 3, 48, 64), torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="decoder_widths"):
        CoSegNet(encoder="tiny", decoder_widths=(8, 8, 8))


def test_lite0_cpu_profile_shapes():
    torch.manual_seed(0)
    net = CoSegNet(encoder="efficientnet_lite0")
    widths = [m.out_channels for m in net.decoder.layers.values()]
    assert widths == [128, 128, 128, 128, 128, 128, 64, 64, 64, 32, 32, 16, 1]  # width_mult 0.25 default
    assert net.input_mean == pytest.approx((127 / 255,) * 3)
    a, b = _pair(2, 64)
    with torch.no_grad():
        out = net(a, b)
    assert out["logits_a"].shape == (2, 1, 64, 64) and out["pooled_b"].shape == (2, 64)
    assert len(CoSegNet(encoder="efficientnet_lite0", width_mult=0.5).decoder.layers) == 13


@pytest.mark.parametrize("cls", [CoSegNet, CoSegNetBase])
def test_every_parameter_is_used(cls):
    torch.manual_seed(0)
    net = cls(encoder="efficientnet_lite0")
    out = net(*_pair(2, 64))
    sum(v.float().mean() for v in out.values() if v is not None).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


def _metric_decision_loss(net, anchor, pos, neg):
    fa, fp, fn = (net.metric_embedding(x) for x in (anchor, pos, neg))
    l2 = F.triplet_margin_loss(fa, fp, fn, margin=1.0)
    d_pos = net(anchor, pos)["decision_logit"]
    d_neg = net(anchor, neg)["decision_logit"]
    l3 = F.binary_cross_entropy_with_logits(torch.cat([d_pos, d_neg]), torch.tensor([1.0, 0.0]))
    return l2 + l3


def test_negative_pair_gives_no_gradient_after_cT9():
    torch.manual_seed(0)
    net = CoSegNet(encoder="tiny")  # same decoder/metric/decision structure, tiny encoder for speed
    anchor, neg = _pair(1, 64, seed=1)
    pos = anchor.flip(-1)
    after = net.post_metric_layers()
    assert after == ["cT10", "cT11", "cT12", "cT13"]

    def grads(layers):
        return [
            0.0 if p.grad is None else float(p.grad.abs().sum())
            for n in layers
            for p in net.decoder.layers[n].parameters()
        ]

    # (1) L2 + L3 only (w1 = 0 for negatives): cT10-13 receive nothing, cT9 and the encoder do
    _metric_decision_loss(net, anchor, pos, neg).backward()
    assert all(g == 0.0 for g in grads(after))
    assert all(g > 0 for g in grads(["cT9"])) and net.encoder.stages[0][0].weight.grad.abs().sum() > 0

    # (2) full loss with a mask term on the negative pair, made structural by positive_mask
    net.zero_grad(set_to_none=True)
    out = net(anchor, neg, positive_mask=torch.tensor([False]))
    target = torch.zeros_like(out["logits_a"])
    l1 = F.binary_cross_entropy_with_logits(out["logits_a"], target) + F.binary_cross_entropy_with_logits(
        out["logits_b"], target
    )
    l3 = F.binary_cross_entropy_with_logits(out["decision_logit"], torch.zeros(1))
    (l1 + l3).backward()
    assert all(g == 0.0 for g in grads(after))
    assert all(g > 0 for g in grads(["cT9"]))

    # (3) the same mask loss on a positive pair does train cT10-13
    net.zero_grad(set_to_none=True)
    out = net(anchor, pos, positive_mask=torch.tensor([True]))
    F.binary_cross_entropy_with_logits(out["logits_a"], torch.ones_like(out["logits_a"])).backward()
    assert all(g > 0 for g in grads(after))


@pytest.mark.parametrize("metric_layer", ["f", "cT9"])
def test_positive_mask_skips_negative_tails_and_keeps_the_triplet_loss(metric_layer):
    """With positive_mask the mask tail runs on the positive rows only; the loss and every gradient equal those of a
    full pass whose negative logits are detached (the old path), and the positive rows' logits are the full ones."""
    from cosegkit.losses import cosegnet_loss

    torch.manual_seed(0)
    net = CoSegNet(encoder="tiny", metric_layer=metric_layer, decoder_norm="group").train()
    a, b = _pair(4, 64, seed=5)
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    masks = (torch.rand(4, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).float() * labels.view(-1, 1, 1)

    def loss_and_grads(out):
        emb_b = out["embedding_b"]
        total, _ = cosegnet_loss(out["logits_a"], out["logits_b"], masks, masks, out["embedding_a"],
                                 torch.cat([emb_b[:2], emb_b[:2]]), torch.cat([emb_b[2:], emb_b[2:]]),
                                 out["decision_logit"], labels)
        net.zero_grad(set_to_none=True)
        total.backward()
        return total.detach(), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    full = net(a, b)
    keep = labels.bool().view(-1, 1, 1, 1)
    old = {**full, "logits_a": torch.where(keep, full["logits_a"], full["logits_a"].detach()),
           "logits_b": torch.where(keep, full["logits_b"], full["logits_b"].detach())}
    total_old, grads_old = loss_and_grads(old)
    new = net(a, b, positive_mask=labels.bool())
    assert torch.allclose(new["logits_a"][:2], full["logits_a"][:2].detach(), atol=1e-6)
    assert torch.count_nonzero(new["logits_a"][2:]) == 0 and new["logits_a"].shape == full["logits_a"].shape
    total_new, grads_new = loss_and_grads(new)
    assert torch.allclose(total_new, total_old, atol=1e-6)
    assert grads_new.keys() == grads_old.keys()
    for name, g in grads_old.items():
        assert torch.allclose(grads_new[name], g, atol=1e-5, rtol=1e-4), name
    # no positive row at all: zeros of the full shape, and L2/L3 still train the metric and decision networks
    none = net(a, b, positive_mask=torch.zeros(4, dtype=torch.bool))
    assert none["logits_a"].shape == full["logits_a"].shape and torch.count_nonzero(none["logits_b"]) == 0
    with pytest.raises(ValueError, match="positive_mask must have shape"):
        net(a, b, positive_mask=torch.ones(3, dtype=torch.bool))


def test_predict_gates_masks_with_decision():
    torch.manual_seed(0)
    net = CoSegNet(encoder="tiny").eval()
    a, b = _pair(2, 64)
    with torch.no_grad():
        net.decision[-1].bias.fill_(-100.0)  # decision "no common object"
        off = net.predict(a, b)
        net.decision[-1].bias.fill_(100.0)
        on = net.predict(a, b)
        probs = torch.sigmoid(net(a, b)["logits_a"])
    assert not off["decision"].any() and torch.count_nonzero(off["masks_a"]) == 0
    assert on["decision"].all() and torch.allclose(on["masks_a"], probs)


def test_predict_reports_each_sides_decision():
    a, b = _pair(2, 64, seed=3)
    for single in (False, True):
        torch.manual_seed(0)
        net = CoSegNet(encoder="tiny", single_image=single).eval()
        with torch.no_grad():
            out, raw = net.predict(a, b), net(a, b)
        logit_b = raw["decision_logit_b"] if single else raw["decision_logit"]
        assert torch.allclose(out["decision_prob_b"], torch.sigmoid(logit_b))
        assert torch.equal(out["decision_b"], out["decision_prob_b"] > 0.5)
        if not single:
            assert torch.equal(out["decision_prob_b"], out["decision_prob"])


def test_single_image_ignores_partner():
    a, b1 = _pair(2, 64, seed=1)
    _, b2 = _pair(2, 64, seed=2)
    for cls in (CoSegNet, CoSegNetBase):
        for single, should_match in [(True, True), (False, False)]:
            torch.manual_seed(0)
            net = cls(encoder="tiny", single_image=single).eval()
            with torch.no_grad():
                o1, o2 = net(a, b1), net(a, b2)
            keys = ["logits_a"] + (["decision_logit", "embedding_a"] if cls is CoSegNet else [])
            same = all(torch.equal(o1[k], o2[k]) for k in keys)
            assert same is should_match, (cls.__name__, single)


def test_three_training_steps_lower_the_loss():
    torch.manual_seed(0)
    net = CoSegNet(encoder="efficientnet_lite0").train()
    a, b = _pair(2, 64)
    masks = (torch.rand(2, 1, 64, 64) > 0.5).float()
    labels = torch.tensor([1.0, 0.0])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def loss_fn():
        out = net(a, b, positive_mask=labels.bool())
        l1 = F.binary_cross_entropy_with_logits(out["logits_a"], masks)
        l3 = F.binary_cross_entropy_with_logits(out["decision_logit"], labels)
        return l1 + l3

    losses = []
    for _ in range(3):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = loss_fn().item()
    assert math.isfinite(final) and final < losses[0]


def test_group_norm_decoder_is_scale_invariant():
    # GroupNorm before each ReLU: with zero convT biases, scaling the encoder features leaves the mask logits
    # unchanged (up to eps); without it (the paper's decoder) the logits scale with the input.
    torch.manual_seed(0)
    normed = CoSegNet(encoder="tiny", decoder_norm="group")
    plain = CoSegNet(encoder="tiny")
    for net in (normed, plain):
        for conv in net.decoder.layers.values():
            torch.nn.init.zeros_(conv.bias)
    assert len(normed.decoder.norms) == 12 and len(plain.decoder.norms) == 0
    assert all(isinstance(m, torch.nn.GroupNorm) for m in normed.decoder.norms.values())
    f = 100 * torch.randn(2, normed.encoder.out_channels[-1], 2, 2)  # large enough that GroupNorm's eps is moot
    with torch.no_grad():
        small, large = normed.decoder(f), normed.decoder(10 * f)
        assert small.abs().max() > 1e-3 and torch.allclose(small, large, rtol=1e-3, atol=1e-4)
        small, large = plain.decoder(f), plain.decoder(10 * f)
        assert small.abs().max() > 0 and torch.allclose(large, 10 * small, rtol=1e-3, atol=0)
    base = CoSegNetBase(encoder="tiny", decoder_norm="group")
    assert base(*_pair(1, 64))["logits_a"].shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="decoder norm must be one of none, group"):
        CoSegNet(encoder="tiny", decoder_norm="batch")


def test_difference_init_makes_the_decision_layer_read_the_difference_of_the_pair():
    from cosegkit.models.cosegnet import init_decision_as_difference

    torch.manual_seed(0)
    layer = torch.nn.Linear(128, 32)
    init_decision_as_difference(layer)
    fa, fb = torch.randn(5, 64), torch.randn(5, 64)
    hidden = torch.relu(layer(torch.cat([fa, fb], 1)))
    assert torch.relu(layer(torch.cat([fa, fa], 1))).max() < 1e-6  # identical pair: every unit silent
    u = layer.weight[0::2, :64]
    assert torch.allclose(hidden[:, 0::2] + hidden[:, 1::2], ((fa - fb) @ u.T).abs(), atol=1e-6)
    with pytest.raises(ValueError, match="even width"):
        init_decision_as_difference(torch.nn.Linear(127, 32))


def test_difference_init_learns_same_or_different_from_clustered_embeddings():
    """The decision task alone (fixed, class-clustered fs; L3 only): from the difference init a few hundred Adam
    steps separate positive from negative pairs."""
    from cosegkit.models.cosegnet import CoSegNet

    gen = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(6, 64, generator=gen)

    def pairs(n):
        ca = torch.randint(0, 6, (n,), generator=gen)
        same = torch.rand(n, generator=gen) < 0.5
        cb = torch.where(same, ca, (ca + torch.randint(1, 6, (n,), generator=gen)) % 6)
        noise = lambda: 0.5 * torch.randn(n, 64, generator=gen)  # noqa: E731
        return torch.cat([centres[ca] + noise(), centres[cb] + noise()], 1), same.float()

    torch.manual_seed(0)
    decision = CoSegNet(encoder="tiny", decision_init="difference").decision
    opt = torch.optim.Adam(decision.parameters(), lr=1e-2)
    for _ in range(300):
        x, y = pairs(32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(decision(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = pairs(2000)
    accuracy = ((decision(x).squeeze(1) > 0).float() == y).float().mean()
    assert accuracy > 0.9


@pytest.mark.parametrize("cls", [CoSegNet, CoSegNetBase])
def test_feature_dropout_on_f_acts_in_training_only(cls):
    torch.manual_seed(0)
    kw = dict(encoder="tiny", width_mult=0.25, decoder_norm="group")
    plain, dropped = cls(**kw), cls(**kw, feature_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, 64, 64, generator=g), torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        plain.eval(), dropped.eval()
        assert torch.equal(plain(a, b).logits_a, dropped(a, b).logits_a)
        for m in (plain, dropped):
            m.train()
            for bn in m.modules():
                if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                    bn.eval()
        assert not torch.allclose(plain(a, b).logits_a, dropped(a, b).logits_a)
        if cls is CoSegNet:
            assert not torch.allclose(plain.metric_embedding(a), dropped.metric_embedding(a))
    with pytest.raises(ValueError, match="feature_dropout"):
        cls(encoder="tiny", feature_dropout=1.5)
