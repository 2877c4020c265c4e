"""SiameseUNet (IS-Triplet §3.3): shapes, co-attention values (Gong et al. [34], DOCS [35]), weight sharing,
single-image mode, the encode / forward_features split, gradients, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cosegkit.losses import dice_loss
from cosegkit.models import SiameseUNet, build_encoder, count_parameters
from cosegkit.models.correlation import (
    SPATIAL_MODES,
    CoAttention,
    channel_weights,
    correlation_volume,
    correlation_volumes,
    topk_channel_pool,
)
from cosegkit.models.siamese_unet import DEFAULT_PARTNER_GRID, Deconv2x2
from cosegkit.train.modeling import build_model, set_train_mode
from cosegkit.train.settings import COATTENTION, ModelSettings


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
        assert emb[f"embedding_{s}"].shape == (2, 64, 64, 64)
        assert emb[f"logits_{s}"].shape == (2, 2, 64, 64)
        assert orig[f"logits_{s}"].shape == (2, 2, 32, 32)  # Fig. 1a: 2 channels at half the input size
        assert orig[f"embedding_{s}"] is None


def test_shapes_64_resnet50_paper_encoder():
    torch.manual_seed(0)
    a, b = _pair(2, 64)
    with torch.no_grad():
        out = SiameseUNet(encoder="resnet50", head="embedding", pretrained=False)(a, b)
    assert out["embedding_a"].shape == (2, 64, 64, 64) and out["logits_b"].shape == (2, 2, 64, 64)


def test_shapes_224_and_rectangular():
    torch.manual_seed(0)
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding").eval()
    a, b = _pair(1, 224)
    with torch.no_grad():
        out = model(a, b)
        rect = model(torch.randn(1, 3, 96, 160), torch.randn(1, 3, 64, 128))  # sizes may differ within a pair
    assert out["embedding_a"].shape == (1, 64, 224, 224) and out["logits_b"].shape == (1, 2, 224, 224)
    assert rect["logits_a"].shape == (1, 2, 96, 160) and rect["embedding_b"].shape == (1, 64, 64, 128)


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


    with pytest.raises(ValueError, match="coattention"):
        SiameseUNet(encoder="tiny", coattention="gate")


# --- the correlation volume (DOCS [35]) -------------------------------------------------------------------------

# A and B: 2x2 grids of 2-d features, locations row-major (0: top-left, 1: top-right, 2: bottom-left, 3: ...).
_A = [(1.0, 0.0), (0.0, 2.0), (1.0, 1.0), (-1.0, 0.0)]
_B = [(0.0, 1.0), (3.0, 0.0), (1.0, -1.0), (2.0, 2.0)]


def _grid_2x2(vectors) -> torch.Tensor:
    return torch.tensor(vectors).T.reshape(1, 2, 2, 2)  # (N=1, C=2, h=2, w=2)


def test_correlation_volume_hand_computed_2x2():
    fa, fb = _grid_2x2(_A), _grid_2x2(_B)
    r = 1 / math.sqrt(2)
    # cosine C[i][j] between A's location i and B's location j, by hand
    cos = torch.tensor([
        [0.0, 1.0, r, r],
        [1.0, 0.0, -r, r],
        [r, r, 0.0, 1.0],
        [0.0, -1.0, -r, -r],
    ])
    vol_ab = correlation_volume(fa, fb)
    assert vol_ab.shape == (1, 4, 2, 2)  # h_B * w_B channels on A's grid
    # channel j at A's location (y, x) = C[2y + x][j]
    torch.testing.assert_close(vol_ab[0, :, 0, 1], cos[1])  # A's top-right location against every B location
    torch.testing.assert_close(vol_ab[0, 3], cos[:, 3].view(2, 2))  # B's bottom-right location, as a map on A
    torch.testing.assert_close(vol_ab[0], cos.T.reshape(4, 2, 2))
    # the symmetric volume: A's locations as channels on B's grid
    vol_ab2, vol_ba = correlation_volumes(fa, fb)
    torch.testing.assert_close(vol_ab2, vol_ab)
    torch.testing.assert_close(vol_ba[0], cos.reshape(4, 2, 2))
    # without normalisation: plain inner products (Gong's volume of 1-channel maps is this, with C = 1)
    dot = torch.tensor([
        [0.0, 3.0, 1.0, 2.0],
        [2.0, 0.0, -2.0, 4.0],
        [1.0, 3.0, 0.0, 4.0],
        [0.0, -3.0, -1.0, -2.0],
    ])
    torch.testing.assert_close(correlation_volume(fa, fb, normalize=False)[0], dot.T.reshape(4, 2, 2))
    s_a, s_b = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]), torch.tensor([[[[2.0, 0.0], [-1.0, 4.0]]]])
    outer = correlation_volume(s_a, s_b, normalize=False)
    torch.testing.assert_close(outer[0, 3], 4.0 * s_a[0, 0])  # channel j = s_A * s_B(j)
    with pytest.raises(ValueError, match="equal B and C"):
        correlation_volume(fa, fb[:, :1])


def test_correlation_volume_partner_grid_pools_the_partner_only():
    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(2, 3, 3, 5, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    vol = correlation_volume(fa, fb, partner_grid=2)
    assert vol.shape == (2, 4, 3, 5)  # 2 * 2 partner cells on A's own 3x5 grid
    pooled = fb.view(2, 3, 2, 2, 2, 2).mean(dim=(3, 5))  # 2x2 blocks averaged by hand
    torch.testing.assert_close(vol, correlation_volume(fa, pooled))
    torch.testing.assert_close(correlation_volume(fa, fb, partner_grid=(4, 4)), correlation_volume(fa, fb))
    assert correlation_volume(fa, fb[:, :, :1, :1], partner_grid=(2, 3)).shape == (2, 6, 3, 5)  # stretched
    with pytest.raises(ValueError, match="partner_grid"):
        correlation_volume(fa, fb, partner_grid=0)


@pytest.mark.parametrize("spatial", ["gong", "docs"])
def test_coattention_volume_has_a_fixed_channel_count_at_two_input_sizes(spatial):
    torch.manual_seed(0)
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding", coattention=spatial).eval()
    assert DEFAULT_PARTNER_GRID["efficientnet_lite0"] == 6  # the deepest grid at the cpu profile's 192 px
    for size_a, size_b in [(192, 192), (160, 96)]:
        a, b = torch.randn(1, 3, size_a, size_a), torch.randn(1, 3, size_b, size_b)
        with torch.no_grad():
            deep_a, deep_b = model.encode(a)[-1], model.encode(b)[-1]
            vol_a, vol_b = model.coattention.volumes(deep_a, deep_b)
            out = model(a, b)
        assert vol_a.shape == (1, 36, size_a // 32, size_a // 32)
        assert vol_b.shape == (1, 36, size_b // 32, size_b // 32)
        assert out["logits_a"].shape == (1, 2, size_a, size_a) and out["logits_b"].shape == (1, 2, size_b, size_b)
    # at the profile size the partner is not pooled: the volume is exactly the sources' one
    deep, partner = torch.randn(2, 320, 6, 6), torch.randn(2, 320, 6, 6)
    assert model.coattention.partner_grid == (6, 6)
    torch.testing.assert_close(correlation_volume(deep, partner, (6, 6)), correlation_volume(deep, partner))


def test_match_spatial_map_reads_the_max_and_mean_over_the_partner_hand_computed():
    # "match": per location of A, [max_j, mean_j] of the cosine volume of projected features, conv3x3, BN, sigmoid
    torch.manual_seed(0)
    att = CoAttention(4, spatial="match", match_channels=3).eval()
    fa, fb = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 2, 5)  # the partner's grid is not pooled
    vol_a, vol_b = att.volumes(fa, fb)
    assert vol_a.shape == (2, 10, 3, 3) and vol_b.shape == (2, 9, 2, 5)
    pa, pb = F.normalize(att.project(fa), dim=1), F.normalize(att.project(fb), dim=1)
    i, j = (1, 2), (0, 3)  # location i of A, location j of B
    expected_ij = (pa[1, :, i[0], i[1]] * pb[1, :, j[0], j[1]]).sum()
    torch.testing.assert_close(vol_a[1, j[0] * 5 + j[1], i[0], i[1]], expected_ij)
    scores = torch.stack([vol_a.amax(dim=1), vol_a.mean(dim=1)], dim=1)
    expected = torch.sigmoid(att.spatial_bn(att.spatial_conv(scores)))
    m_a, m_b = att.spatial_maps(fa, fb)
    torch.testing.assert_close(m_a, expected)
    assert m_b.shape == (2, 1, 2, 5)


def test_match_spatial_map_ignores_where_the_match_is_in_the_partner():
    # The maximum over B's locations does not care where in B a match sits: permuting B's cells leaves A's map
    # unchanged. Gong's and DOCS's conv over the volume's channels weights each partner cell on its own: it moves.
    torch.manual_seed(0)
    fa, fb = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    perm = torch.randperm(16)
    fb_moved = fb.flatten(2)[:, :, perm].view_as(fb)
    for spatial, invariant in [("match", True), ("docs", False), ("gong", False)]:
        torch.manual_seed(1)
        att = CoAttention(8, spatial=spatial, partner_grid=4).eval()
        with torch.no_grad():
            m_a, _ = att.spatial_maps(fa, fb)
            m_a_moved, _ = att.spatial_maps(fa, fb_moved)
        assert torch.allclose(m_a, m_a_moved, atol=1e-6) is invariant, spatial


@pytest.mark.parametrize("single", [False, True])
def test_skip_attention_weights_every_skip_by_the_upsampled_spatial_map(single):
    torch.manual_seed(0)
    model = SiameseUNet(encoder="tiny", head="embedding", coattention="match", skip_attention=True,
                        single_image=single).eval()
    plain = SiameseUNet(encoder="tiny", head="embedding", coattention="match", single_image=single).eval()
    plain.load_state_dict(model.state_dict())
    a, b = _pair(2, 64, seed=5)
    with torch.no_grad():
        fa, fb = model.encode(a), model.encode(b)
        deep_a, _, m_a, _ = model.coattention.attend(fa[-1], (fa if single else fb)[-1])
        skips = [s * F.interpolate(m_a, size=s.shape[-2:], mode="bilinear", align_corners=False) for s in fa[:-1]]
        logits_a, _ = model.decoder(deep_a, skips, (64, 64))
        out, out_plain = model(a, b), plain(a, b)
    torch.testing.assert_close(out["logits_a"], logits_a)
    assert not torch.allclose(out["logits_a"], out_plain["logits_a"])  # the option changes what the decoder reads


def test_match_stride_16_computes_the_map_on_the_stride_16_grid():
    torch.manual_seed(0)
    model = SiameseUNet(encoder="tiny", head="original", coattention="match", skip_attention=True,
                        match_stride=16).eval()
    a, b = _pair(2, 64, seed=6)
    with torch.no_grad():
        fa, fb = model.encode(a), model.encode(b)
        up = [F.interpolate(f[-1], size=f[-2].shape[-2:], mode="bilinear", align_corners=False) for f in (fa, fb)]
        m_a, m_b = model.coattention.spatial_maps(torch.cat([up[0], fa[-2]], 1), torch.cat([up[1], fb[-2]], 1))
        deep_a, _, map_a, _ = model.coattention.attend(fa[-1], fb[-1], torch.cat([up[0], fa[-2]], 1),
                                                       torch.cat([up[1], fb[-2]], 1))
    assert m_a.shape[-2:] == fa[-2].shape[-2:] == (4, 4)  # stride 16 at 64 px
    torch.testing.assert_close(map_a, m_a)
    w = model.coattention.channel_weights(fa[-1], fb[-1])
    torch.testing.assert_close(deep_a, fa[-1] * w * F.adaptive_avg_pool2d(m_a, fa[-1].shape[-2:]))
    with pytest.raises(ValueError, match="match_stride"):
        SiameseUNet(encoder="tiny", coattention="gong", match_stride=16)
    with pytest.raises(ValueError, match="model.match_stride"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, coattention="docs", match_stride=16)


# --- the channel co-attention (Gong et al. [34]) ----------------------------------------------------------------


def test_topk_channel_pool_hand_computed():
    feat = torch.tensor([[1.0, 5.0, 3.0, 2.0], [-4.0, -1.0, -2.0, -3.0]]).view(1, 2, 2, 2)
    torch.testing.assert_close(topk_channel_pool(feat, 0.5), torch.tensor([[(5 + 3) / 2, (-1 - 2) / 2]]))
    torch.testing.assert_close(topk_channel_pool(feat, 0.3), torch.tensor([[(5 + 3) / 2, (-1 - 2) / 2]]))  # ceil
    torch.testing.assert_close(topk_channel_pool(feat, 1.0), torch.tensor([[11 / 4, -10 / 4]]))
    with pytest.raises(ValueError, match="topk_fraction"):
        topk_channel_pool(feat, 0.0)


def test_channel_weights_hand_computed_from_both_images():
    # C = 1, hidden 2: z = [p_A, p_B]; h = tanh(W1 z + b1); w = sigmoid(W2 h + b2)
    w1, b1 = torch.tensor([[1.0, 0.0], [0.5, -1.0]]), torch.tensor([0.0, 0.25])
    w2, b2 = torch.tensor([[2.0, -1.0]]), torch.tensor([0.1])
    p_a, p_b = torch.tensor([[0.4]]), torch.tensor([[0.2]])
    h = [math.tanh(0.4), math.tanh(0.5 * 0.4 - 0.2 + 0.25)]
    expected = 1 / (1 + math.exp(-(2 * h[0] - h[1] + 0.1)))
    torch.testing.assert_close(channel_weights(p_a, p_b, w1, b1, w2, b2), torch.tensor([[expected]]))
    swapped = 1 / (1 + math.exp(-(2 * math.tanh(0.2) - math.tanh(0.1 - 0.4 + 0.25) + 0.1)))
    torch.testing.assert_close(channel_weights(p_b, p_a, w1, b1, w2, b2), torch.tensor([[swapped]]))  # order = [A, B]


@pytest.mark.parametrize("spatial", SPATIAL_MODES)
def test_coattention_channel_weights_are_shared_by_both_images(spatial):
    torch.manual_seed(0)
    block = CoAttention(6, spatial=spatial, partner_grid=3).train()
    g = torch.Generator().manual_seed(1)
    fa, fb = torch.rand(2, 6, 3, 3, generator=g) + 0.5, torch.rand(2, 6, 4, 2, generator=g) + 0.5
    out_a, out_b = block(fa, fb)
    w = block.channel_weights(fa, fb)
    m_a, m_b = block.spatial_maps(fa, fb)
    assert w.shape == (2, 6, 1, 1) and m_a.shape == (2, 1, 3, 3) and m_b.shape == (2, 1, 4, 2)
    # the same per-channel factor multiplies image A and image B: w(A, B), not w(A, A) and w(B, B)
    torch.testing.assert_close(out_a / (fa * m_a), w.expand_as(fa))
    torch.testing.assert_close(out_b / (fb * m_b), w.expand_as(fb))
    assert not torch.allclose(w, block.channel_weights(fa, fa)) and not torch.allclose(w, block.channel_weights(fb, fb))
    torch.testing.assert_close(out_a, fa * w * m_a)
    assert block.out_channels == 6


def test_coattention_spatial_map_follows_the_sources_layers():
    # gong: conv3x3-BN-ReLU to 1 channel per image, outer-product volume, BN, ReLU, conv3x3 to 1, BN, sigmoid
    torch.manual_seed(0)
    block = CoAttention(4, spatial="gong", partner_grid=2).eval()
    with torch.no_grad():
        for bn in (block.volume_bn, block.spatial_bn, block.reduce[1]):  # non-trivial eval statistics
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    fa, fb = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        s_a, s_b = block.reduce(fa), block.reduce(fb)
        vol_a = correlation_volume(s_a, s_b, 2, normalize=False)
        vol_b = correlation_volume(s_b, s_a, 2, normalize=False)
        expect = [torch.sigmoid(block.spatial_bn(block.spatial_conv(F.relu(block.volume_bn(v)))))
                  for v in (vol_a, vol_b)]
        m_a, m_b = block.spatial_maps(fa, fb)
    torch.testing.assert_close(m_a, expect[0])
    torch.testing.assert_close(m_b, expect[1])
    assert block.reduce[0].out_channels == 1 and block.spatial_conv.in_channels == 4
    docs = CoAttention(4, spatial="docs", partner_grid=2)
    assert docs.reduce is None  # docs: the cosine volume of the full features
    torch.testing.assert_close(docs.volumes(fa, fb)[0], correlation_volume(fa, fb, 2))
    with pytest.raises(ValueError, match="spatial"):
        CoAttention(4, spatial="gate")


# --- the model ---------------------------------------------------------------------------------------------------


def test_siamese_weight_sharing_single_encoder():
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding")
    # exactly one set of encoder weights: the model is encoder + co-attention + one decoder
    assert count_parameters(model) == (
        count_parameters(model.encoder) + count_parameters(model.coattention) + count_parameters(model.decoder)
    )
    # the ImageNet classifier head is dropped (unused by forward)
    assert count_parameters(model.encoder) == count_parameters(
        build_encoder("efficientnet_lite0", False).drop_classifier()
    )
    with pytest.raises(ValueError, match="drop_classifier"):
        model.encoder.classify(torch.zeros(1, 3, 32, 32))
    calls = []
    model.encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    a, b = _pair(2, 64)
    out = model(a, b)
    assert len(calls) == 2  # the same module encodes both images
    # a loss on image B alone reaches the (shared) encoder and decoder
    out["logits_b"].sum().backward()
    assert model.encoder.stem[0].weight.grad.abs().sum() > 0
    assert model.decoder.classifier.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("head,spatial,single", [("original", "gong", False), ("embedding", "gong", False),
                                                 ("embedding", "docs", False), ("embedding", "gong", True),
                                                 ("original", "match", False), ("embedding", "match16", False)])
def test_every_parameter_is_used(head, spatial, single):
    # DistributedDataParallel(find_unused_parameters=False) needs a gradient for every parameter
    model = SiameseUNet(encoder="efficientnet_lite0", head=head, coattention=spatial[:5], single_image=single,
                        skip_attention=spatial.startswith("match"), match_stride=16 if spatial == "match16" else 32)
    out = model(*_pair(2, 64))
    sum(v.float().mean() for v in out.values() if v is not None).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("spatial,skip_attention,match_stride",
                         [(m, False, 32) for m in SPATIAL_MODES] + [("match", True, 32), ("match", True, 16)])
@pytest.mark.parametrize("train_mode", [False, True])
def test_single_image_outputs_ignore_partner(train_mode, spatial, skip_attention, match_stride):
    torch.manual_seed(0)
    a, b1 = _pair(2, 64, seed=1)
    _, b2 = _pair(2, 64, seed=2)
    for single, should_match in [(True, True), (False, False)]:
        torch.manual_seed(0)
        # pretrained: a random EfficientNet in eval mode gives deepest features of ~1e-8, too small to move Gong's
        # (not scale-invariant) channel MLP in float32
        model = SiameseUNet(encoder="efficientnet_lite0", head="embedding", single_image=single, coattention=spatial,
                            pretrained=True, skip_attention=skip_attention, match_stride=match_stride)
        model.train(train_mode)
        with torch.no_grad():
            o1, o2 = model(a, b1), model(a, b2)
        same = torch.equal(o1["embedding_a"], o2["embedding_a"]) and torch.equal(o1["logits_a"], o2["logits_a"])
        assert same is should_match
    seg = model.segment(a)
    assert seg["embedding"].shape == (2, 64, 64, 64)


def test_single_image_mode_attends_each_image_to_itself():
    torch.manual_seed(0)
    model = SiameseUNet(encoder="tiny", head="embedding", single_image=True).eval()
    a, b = _pair(2, 64, seed=3)
    with torch.no_grad():
        fa, fb = model.encode(a), model.encode(b)
        out = model.forward_features(fa, fb, (64, 64), (64, 64))
        self_a, _ = model.coattention(fa[-1], fa[-1])  # channel weights from [f_A, f_A], volume of A with A
        logits_a, _ = model.decoder(self_a, fa[:-1], (64, 64))
        seg = model.segment(b)
    torch.testing.assert_close(out["logits_a"], logits_a)
    torch.testing.assert_close(seg["logits"], out["logits_b"])  # segment() is the single-image path


@pytest.mark.parametrize("single", [False, True])
def test_forward_is_forward_features_of_encode(single):
    torch.manual_seed(0)
    model = SiameseUNet(encoder="tiny", head="embedding", single_image=single).train()
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 96, 64)
    torch.manual_seed(1)
    out = model(a, b)
    torch.manual_seed(1)
    feats_a, feats_b = model.encode(a), model.encode(b)
    assert [f.shape[1] for f in feats_a] == model.encoder.out_channels
    split = model.forward_features(feats_a, feats_b, (64, 96), (96, 64))
    assert out.keys() == split.keys() == {"logits_a", "logits_b", "embedding_a", "embedding_b"}
    for k in out:
        torch.testing.assert_close(out[k], split[k])
    seg = model.segment(a)
    seg_split = model.segment_features(model.encode(a), (64, 96))
    for k in seg:
        torch.testing.assert_close(seg[k], seg_split[k])
    with pytest.raises(ValueError, match="feats_b"):
        model.forward_features(feats_a, feats_b[:-1], (64, 96), (96, 64))
    with pytest.raises(ValueError, match="batch size"):
        model.forward_features(feats_a, [f[:1] for f in feats_b], (64, 96), (96, 64))


@pytest.mark.parametrize("spatial", SPATIAL_MODES)
def test_dice_loss_reaches_the_coattention_and_the_partner(spatial):
    # Every co-attention parameter gets a gradient from a Dice loss on image A alone, and so do image B's deepest
    # features, through the shared channel weights and A's correlation volume, with a norm comparable to that
    # reaching A's own deepest features (measured: 0.93 gong, 0.14 docs; the retired two-scalar gate gave 0.002).
    # The cpu profile's setting: pretrained EfficientNet-Lite0 with frozen BN, the rest in train mode, 160 px.
    torch.manual_seed(0)
    model = SiameseUNet(encoder="efficientnet_lite0", head="embedding", coattention=spatial, pretrained=True)
    set_train_mode(model, "encoder")
    a, b = _pair(3, 160, seed=4)
    mask = torch.zeros(3, 160, 160, dtype=torch.long)
    mask[:, 40:120, 50:110] = 1
    with torch.no_grad():
        feats_a, feats_b = model.encode(a), model.encode(b)
    deep_a = feats_a[-1].clone().requires_grad_(True)
    deep_b = feats_b[-1].clone().requires_grad_(True)
    out = model.forward_features([*feats_a[:-1], deep_a], [*feats_b[:-1], deep_b], (160, 160), (160, 160))
    dice_loss(out["logits_a"], mask, mode="multiclass").backward()
    grads = {n: p.grad for n, p in model.coattention.named_parameters()}
    assert [n for n, g in grads.items() if g is None or not g.abs().sum() > 0] == []
    assert deep_b.grad is not None and deep_b.grad.norm() > 0.05 * deep_a.grad.norm()


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


def test_model_settings_coattention_is_checked_and_built():
    assert COATTENTION == SPATIAL_MODES
    assert ModelSettings(family="unet", encoder="tiny", pretrained=False).coattention == "gong"
    with pytest.raises(ValueError, match="model.coattention"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, coattention="gate")
    model = build_model(ModelSettings(family="unet", encoder="tiny", pretrained=False, coattention="docs"))
    assert model.coattention.spatial == "docs" and model.coattention.reduce is None
    assert build_model(ModelSettings(family="unet", encoder="tiny", pretrained=False)).coattention.spatial == "gong"
    built = build_model(ModelSettings(family="unet", encoder="tiny", pretrained=False, coattention="match",
                                      skip_attention=True))
    assert built.coattention.spatial == "match" and built.skip_attention is True


def test_feature_dropout_acts_in_training_only():
    """feature_dropout zeroes whole channels of the encoder features while training; in eval mode the model
    computes exactly what the same weights compute without it."""
    torch.manual_seed(0)
    plain = SiameseUNet(encoder="tiny", head="original", coattention="match", skip_attention=True, match_stride=16)
    dropped = SiameseUNet(encoder="tiny", head="original", coattention="match", skip_attention=True, match_stride=16,
                          feature_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    a, b = _pair(2, 64)
    plain.eval(), dropped.eval()
    with torch.no_grad():
        assert torch.equal(plain(a, b).logits_a, dropped(a, b).logits_a)
    set_train_mode(plain, "all"), set_train_mode(dropped, "all")  # BN in eval: only dropout can differ
    with torch.no_grad():
        assert not torch.allclose(plain(a, b).logits_a, dropped(a, b).logits_a)
        feats = dropped.encode(a)
        kept = dropped._drop(feats)
    for f, k in zip(feats, kept, strict=True):
        zeroed = (k == 0).flatten(2).all(-1)  # (B, C): channels dropped as a whole
        assert zeroed.any() and not zeroed.all()
        assert torch.allclose(k[~zeroed], 2 * f[~zeroed])  # survivors scaled by 1 / (1 - p)
    with pytest.raises(ValueError, match="feature_dropout"):
        SiameseUNet(encoder="tiny", feature_dropout=1.0)
    with pytest.raises(ValueError, match="model.feature_dropout"):
        ModelSettings(family="unet", encoder="tiny", pretrained=False, feature_dropout=-0.1)


@pytest.mark.parametrize("amp", [False, True])
def test_deconv2x2_is_the_transposed_convolution(amp):
    """The embedding head's layer 6 computes ConvTranspose2d(k=2, s=2): its training forward bit for bit in the cpu
    profile's bf16 channels-last arithmetic and to float rounding in float32, its gradients to rounding, and its
    forward without gradient is the transposed convolution itself; a wrong tap order computes something else."""
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(5, 7, 2, stride=2)
    layer = Deconv2x2(5, 7)
    layer.load_state_dict(ref.state_dict())
    assert set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(3, 5, 6, 8)
    if amp:
        ref, layer = ref.to(memory_format=torch.channels_last), layer.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(3, 7, 12, 16)
    outs, grads = [], []
    for module in (ref, layer):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = module(xi)
        y.float().backward(grad)
        outs.append(y.detach().float())
        grads.append((xi.grad, module.weight.grad, module.bias.grad))
    if amp:
        assert torch.equal(outs[0], outs[1])
    else:
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-6)
    tol = 2e-2 if amp else 1e-5
    for a, b in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        assert torch.equal(layer(x).float(), ref(x).float())
    # the (o, a, b) channel order matters: a layer whose taps are transposed computes something else
    swapped = Deconv2x2(5, 7)
    swapped.load_state_dict({"weight": ref.weight.transpose(2, 3).contiguous(), "bias": ref.bias})
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        assert not torch.equal(swapped(x).float(), outs[0])


def test_embedding_head_uses_deconv2x2():
    model = SiameseUNet(encoder="tiny", pretrained=False, head="embedding")
    assert isinstance(model.decoder.layer6, Deconv2x2)
