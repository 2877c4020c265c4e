"""SiameseUNet (IS-Triplet §3.3): shapes, correlation block values, weight sharing, single-image mode, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cosegkit.models import SiameseUNet, build_encoder, count_parameters
from cosegkit.models.correlation import CorrelationBlock, correlation_scores


def _pair(b: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g), torch.randn(b, 3, size, size, generator=g)


def test_shapes_64_both_heads():
    torch.manual_seed(0)
    a, b = _pair(2, 64)
    with torch.no_grad():
        emb = SiameseUNet(encoder="efficientnet_lite0", head="embedding", pretrained=False)(a, b)
        orig = SiameseUNet(encoder="efficientnet_lite0", head="original", pretrained=False)(a, b)
    for s in "ab":
        assert emb[f"embeddings_{s}"].shape == (2, 64, 64, 64)
        assert emb[f"logits_{s}"].shape == (2, 2, 64, 64)
        assert orig[f"logits_{s}"].shape == (2, 2, 32, 32)  # Fig. 1a: 2 channels at half the input size
        assert orig[f"embeddings_{s}"] is None


def test_shapes_64_resnet50_paper_encoder():
    torch.manual_seed(0)
    a, b = _pair(2, 64)
    with torch.no_grad():
        out = SiameseUNet(encoder="resnet50", head="embedding", pretrained=False)(a, b)
    assert out["embeddings_a"].shape == (2, 64, 64, 64) and out["logits_b"].shape == (2, 2, 64, 64)


def test_shapes_224_and_rectangular():
    torch.manual_seed(0)
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding").eval()
    a, b = _pair(1, 224)
    with torch.no_grad():
        out = model(a, b)
        rect = model(torch.randn(1, 3, 96, 160), torch.randn(1, 3, 64, 128))  # sizes may differ within a pair
    assert out["embeddings_a"].shape == (1, 64, 224, 224) and out["logits_b"].shape == (1, 2, 224, 224)
    assert rect["logits_a"].shape == (1, 2, 96, 160) and rect["embeddings_b"].shape == (1, 64, 64, 128)


def test_input_size_not_multiple_of_32_is_rejected():
    model = SiameseUNet(encoder="tiny", head="embedding")
    with pytest.raises(ValueError, match="100x64"):
        model(torch.randn(1, 3, 100, 64), torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="image_b"):
        model(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match="batch size"):
        model(torch.randn(2, 3, 64, 64), torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="head"):
        SiameseUNet(encoder="tiny", head="deep")


def test_correlation_scores_hand_computed():
    # A: 1x2 locations with unit vectors e1 and (e1+e2)/sqrt2; B: 1x3 locations e1, e2, -e1.
    fa = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    fb = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]]).view(1, 2, 1, 3)
    r = 1 / math.sqrt(2)
    # cosine volume C = [[1, 0, -1], [r, r, -r]]
    s_a, s_b = correlation_scores(fa, fb, topk_fraction=0.5)  # k_b = ceil(1.5) = 2, k_a = ceil(1.0) = 1
    torch.testing.assert_close(s_a.view(-1), torch.tensor([(1 + 0) / 2, (r + r) / 2]))
    torch.testing.assert_close(s_b.view(-1), torch.tensor([1.0, r, -r]))
    s_a1, _ = correlation_scores(fa, fb, topk_fraction=1.0)  # mean over all partner locations
    torch.testing.assert_close(s_a1.view(-1), torch.tensor([0.0, r / 3]))
    block = CorrelationBlock(topk_fraction=0.5)
    out_a, out_b = block(fa, fb)
    gate = torch.sigmoid(10 * torch.tensor([0.5, r]) - 5)
    torch.testing.assert_close(out_a[0, 2, 0], gate)  # appended attention channel
    torch.testing.assert_close(out_a[0, :2, 0], fa[0, :, 0] * gate)  # gated features
    assert out_b.shape == (1, 3, 1, 3)
    with pytest.raises(ValueError, match="topk_fraction"):
        correlation_scores(fa, fb, topk_fraction=0.0)


def test_siamese_weight_sharing_single_encoder():
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding")
    # exactly one set of encoder weights: the model is encoder + correlation (2 scalars) + one decoder
    assert count_parameters(model) == (
        count_parameters(model.encoder) + count_parameters(model.correlation) + count_parameters(model.decoder)
    )
    # the ImageNet classifier head is dropped (unused by forward)
    assert count_parameters(model.encoder) == count_parameters(
        build_encoder("efficientnet_lite0", False).drop_classifier()
    )
    with pytest.raises(ValueError, match="drop_classifier"):
        model.encoder.classify(torch.zeros(1, 3, 32, 32))
    assert count_parameters(model.correlation) == 2
    calls = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    a, b = _pair(2, 64)
    out = model(a, b)
    assert len(calls) == 2  # the same module encodes both images
    # a loss on image B alone reaches the (shared) encoder and decoder
    out["logits_b"].sum().backward()
    assert model.encoder.stem[0].weight.grad.abs().sum() > 0
    assert model.decoder.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("head", ["original", "embedding"])
def test_every_parameter_is_used(head):
    # DistributedDataParallel(find_unused_parameters=False) needs a gradient for every parameter
    model = SiameseUNet(encoder="efficientnet_lite0", head=head)
    out = model(*_pair(2, 64))
    sum(v.float().mean() for v in out.values() if v is not None).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("train_mode", [False, True])
def test_single_image_outputs_ignore_partner(train_mode):
    torch.manual_seed(0)
    a, b1 = _pair(2, 64, seed=1)
    _, b2 = _pair(2, 64, seed=2)
    for single, should_match in [(True, True), (False, False)]:
        torch.manual_seed(0)
        model = SiameseUNet(encoder="efficientnet_lite0", head="embedding", single_image=single)
        model.train(train_mode)
        with torch.no_grad():
            o1, o2 = model(a, b1), model(a, b2)
        same = torch.equal(o1["embeddings_a"], o2["embeddings_a"]) and torch.equal(o1["logits_a"], o2["logits_a"])
        assert same is should_match
    seg = model.segment(a)
    assert seg["embeddings"].shape == (2, 64, 64, 64)


def test_three_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding").train()
    a, b = _pair(2, 64)
    ma = (torch.rand(2, 64, 64) > 0.5).long()
    mb = (torch.rand(2, 64, 64) > 0.5).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        out = model(a, b)
        loss = F.cross_entropy(out["logits_a"], ma) + F.cross_entropy(out["logits_b"], mb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        out = model(a, b)
        final = (F.cross_entropy(out["logits_a"], ma) + F.cross_entropy(out["logits_b"], mb)).item()
    assert final < losses[0]
    assert all(math.isfinite(x) for x in losses)


def test_gate_skips_multiplies_every_skip_by_the_gate_and_keeps_single_image_blind():
    torch.manual_seed(0)
    a, b1 = _pair(2, 64, seed=1)
    _, b2 = _pair(2, 64, seed=2)
    torch.manual_seed(0)
    gated = SiameseUNet(encoder="tiny", head="embedding", gate_skips=True).eval()
    torch.manual_seed(0)
    plain = SiameseUNet(encoder="tiny", head="embedding").eval()
    with torch.no_grad():
        feats = gated.encoder(a)
        deep, _ = gated.correlation(feats[-1], gated.encoder(b1)[-1])
        skips = gated._skips(feats[:-1], deep)
        for s, g in zip(feats[:-1], skips, strict=True):
            ratio = g / s
            gate = torch.nn.functional.interpolate(deep[:, -1:], size=s.shape[-2:], mode="bilinear")
            assert torch.allclose(ratio[s.abs() > 1e-3], gate.expand_as(s)[s.abs() > 1e-3], atol=1e-5)
        assert not torch.equal(gated(a, b1)["logits_a"], plain(a, b1)["logits_a"])  # same weights, gated skips
    torch.manual_seed(0)
    blind = SiameseUNet(encoder="tiny", head="embedding", gate_skips=True, single_image=True).eval()
    with torch.no_grad():
        assert torch.equal(blind(a, b1)["logits_a"], blind(a, b2)["logits_a"])
