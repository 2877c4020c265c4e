"""Siamese U-Net with co-attention (IS-Triplet §3.3, Fig. 1 and Fig. 3).

The co-segmentation framework of Gong et al. [34] with the correlation block of Li et al. (DOCS) [35]:
(1) a siamese encoder (one encoder, shared weights, applied to each image), (2) the co-attention between the two
deepest feature maps (:class:`~cosegkit.models.correlation.CoAttention`: Gong's spatial co-attention, from a
correlation volume over all location pairs, and channel co-attention, one channel-weight vector shared by both
images), (3) a siamese U-Net decoder (shared weights) with skip connections from every encoder scale, (4) the
output head:

- ``head="original"`` (Fig. 1a): the sixth decoder layer outputs 2-channel logits at half the input size;
- ``head="embedding"`` (Fig. 1b, the paper's modification): the sixth layer outputs a 64-channel pixel embedding
  at the input size (used by the IS-Triplet loss) and a new 1x1 conv turns it into 2-channel logits.

Decoder layout (the paper only fixes the "sixth deconvolution layer"): blocks 1-4 each upsample x2 (bilinear),
concatenate the encoder skip of that scale and apply two conv3x3-BN-ReLU (strides 16, 8, 4, 2); block 5 is one
conv3x3-BN-ReLU at stride 2; layer 6 is a conv3x3 to 2 logits at H/2 (original) or a 2x2 stride-2 transposed
convolution ("deconvolution") to ``embedding_dim`` channels at H (embedding, no activation), followed by the new
1x1 conv to 2 logits.

Where this departs from Gong et al.'s code [34]: their decoder is six 3x3 transposed convolutions (BN, ReLU) with
*additive* skips from the ResNet-50 stages at the stages' widths (1024, 512, 256, 64); ours concatenates the
skips and uses narrow widths (``DEFAULT_DECODER_CHANNELS``) so the model trains on 2 CPU cores. The co-attention
itself follows [34] (see the correlation module for the choices where the sources are ambiguous).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from ._utils import check_image_batch, check_pair
from .correlation import SPATIAL_MODES, CoAttention
from .encoders import Encoder, build_encoder
from .outputs import SegmentOutput, SiameseUNetOutput

# Decoder widths (blocks 1-5). Narrow for efficientnet_lite0 so the model trains at several pairs/s on 2 CPU
# cores at 128-160 px; wider for the GPU encoders (ResNet-50 as in the paper).
DEFAULT_DECODER_CHANNELS = {
    "resnet50": (256, 128, 64, 32, 32),
    "vgg16": (256, 128, 64, 32, 32),
    "efficientnet_lite0": (96, 48, 32, 24, 16),
    "efficientnet_lite2": (96, 48, 32, 24, 16),
    "tiny": (32, 24, 16, 16, 8),
}

# The partner grid of the co-attention's correlation volume: the deepest grid at each encoder's profile size
# (resnet50: paper profile, 448 px / 32 = 14; efficientnet_lite0/lite2: cpu profile, 192 px / 32 = 6; tiny: smoke
# profile, 64 px / 32 = 2), so at that size the volume is exactly the sources' (no pooling). The volume has
# p_h * p_w channels at every input size; vgg16 is given the paper profile's 448 px grid like resnet50.
DEFAULT_PARTNER_GRID = {"resnet50": 14, "vgg16": 14, "efficientnet_lite0": 6, "efficientnet_lite2": 6, "tiny": 2}


class Deconv2x2(nn.ConvTranspose2d):
    """A 2x2, stride-2 transposed convolution (the embedding head's layer 6) whose training pass runs as a 1x1
    convolution to ``4 * out_channels`` channels followed by ``pixel_shuffle(2)``: each output pixel has exactly one
    tap, so the two are the same map (out[n, o, 2i+a, 2j+b] = bias[o] + sum_c x[n, c, i, j] W[c, o, a, b]).

    Why: on the 2-core CPU the bf16 channels-last backward of ``ConvTranspose2d`` is slow; the 1x1 form's forward +
    backward took 94 against 142 ms (6 maps, 16 -> 64 channels, 128 -> 256 px; ``benchmarks/bench_deconv.py``).
    Its forward alone is about half as fast, so without gradient (evaluation, prediction) the transposed
    convolution runs.
    The training forward equals the transposed convolution bit for bit in the cpu profile's bf16 channels-last
    arithmetic and to float rounding in float32 (tested); gradients agree to rounding (the sums run in another
    order). Parameters and state-dict keys are ``nn.ConvTranspose2d``'s."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None or not torch.is_grad_enabled():
            return super().forward(x, output_size)
        # (C_in, C_out, 2, 2) -> (C_out * 4, C_in, 1, 1) in pixel_shuffle's channel order (o, a, b)
        weight = self.weight.permute(1, 2, 3, 0).reshape(self.out_channels * 4, self.in_channels, 1, 1)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.pixel_shuffle(F.conv2d(x, weight, bias), 2)


class _UpBlock(nn.Module):
    """x2 bilinear upsampling, concat skip, two conv3x3-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(Conv2dNormActivation(cin + cskip, cout, 3), Conv2dNormActivation(cout, cout, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Per-image U-Net decoder + head (shared by both images of the pair). See the module docstring."""

    def __init__(
        self,
        encoder_channels: Sequence[int],
        bottleneck_channels: int,
        decoder_channels: Sequence[int],
        head: str,
        embedding_dim: int = 64,
    ):
        super().__init__()
        if len(decoder_channels) != 5 or any(int(c) < 1 for c in decoder_channels):
            raise ValueError(f"decoder_channels must be 5 positive widths (blocks 1-5), got {decoder_channels}")
        if head not in ("original", "embedding"):
            raise ValueError(f"head must be 'original' or 'embedding', got {head!r}")
        skips = list(encoder_channels[:-1])[::-1]  # strides 16, 8, 4, 2
        cin, ups = bottleneck_channels, []
        for cskip, cout in zip(skips, decoder_channels[:4], strict=True):
            ups.append(_UpBlock(cin, cskip, cout))
            cin = cout
        self.ups = nn.ModuleList(ups)
        self.block5 = Conv2dNormActivation(cin, decoder_channels[4], 3)
        self.head = head
        if head == "original":
            self.layer6 = nn.Conv2d(decoder_channels[4], 2, 3, padding=1)
            self.classifier = None
        else:  # a stride-2 deconvolution to full size: cheap on CPU (16 -> 64 channels, 1 tap per output pixel)
            self.layer6 = Deconv2x2(decoder_channels[4], embedding_dim)
            self.classifier = nn.Conv2d(embedding_dim, 2, 1)

    def forward(
        self, bottleneck: torch.Tensor, skips: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = bottleneck
        for up, skip in zip(self.ups, list(skips)[::-1], strict=True):
            x = up(x, skip)
        x = self.layer6(self.block5(x))
        if self.classifier is None:
            return x, None
        if tuple(x.shape[-2:]) != tuple(out_size):  # cannot happen for sides that are multiples of 32
            raise ValueError(f"embedding size {tuple(x.shape[-2:])} != input size {tuple(out_size)}")
        return self.classifier(x), x




class SiameseUNet(nn.Module):
    """Siamese U-Net co-segmentation network with co-attention (IS-Triplet §3.3, Fig. 1 / Fig. 3; [34], [35]).

    Args:
        encoder: encoder name for :func:`build_encoder` ("resnet50" in the paper; "efficientnet_lite0" for the
            CPU profile; "vgg16", "tiny").
        head: "original" (2-channel logits at H/2 x W/2, Fig. 1a) or "embedding" (``embedding_dim``-channel pixel
            embedding at H x W, then a 1x1 conv to 2-channel logits, Fig. 1b).
        pretrained: ImageNet weights for the encoder (see :func:`build_encoder`).
        embedding_dim: embedding channels of the "embedding" head (64 in the paper).
        single_image: the honest single-image baseline, with the same parameters: each image attends to itself
            (channel weights from [f_A, f_A], spatial correlation of A with A), so outputs for image A do not
            depend on image B.
        decoder_channels: widths of decoder blocks 1-5 (default per encoder: ``DEFAULT_DECODER_CHANNELS``).
        coattention: spatial part of the co-attention: "gong" (Gong et al.'s volume of 1-channel maps, default),
            "docs" (the DOCS cosine correlation volume of the full features) or "match" (ours: the maximum and mean
            over the partner's grid of the cosine volume of projected features; see the correlation module).
        skip_attention: also multiply every skip connection by the image's spatial co-attention map (bilinearly
            upsampled to the skip's grid). Not in the sources, where the map weights the deepest features only and
            the decoder reads the skips unweighted; an option for the ablation of the synthetic pair benchmark.
        match_stride: "match" only: 32 computes the spatial map on the deepest grid; 16 on the stride-16 grid,
            from the stride-16 features concatenated with the (bilinearly upsampled) deepest ones, which see the
            objects' shapes at twice the resolution.
        partner_grid: the partner's deepest map is adaptive-average-pooled to this grid before correlating, so
            the volume has a fixed channel count and the model runs at any input size (default per encoder:
            ``DEFAULT_PARTNER_GRID``, the grid at that encoder's profile size).
        topk_fraction: fraction of locations averaged per channel for the channel co-attention.
        feature_dropout: probability of zeroing each channel of each encoder feature map while training
            (``F.dropout2d``, both images, every scale); 0 (default, as in the papers) for none. Not in the
            sources: with a frozen encoder, the decoder and co-attention overfit a few hundred training images.

    ``forward(image_a, image_b)`` -> :class:`~cosegkit.models.outputs.SiameseUNetOutput` (logits_a, logits_b,
    embedding_a, embedding_b); the embeddings are None for the original head. It is
    ``forward_features(encode(image_a), encode(image_b), size_a, size_b)``, so
    encoder features can be computed once and reused. Inputs are (B, 3, H, W) with H, W multiples of 32,
    normalised with ``self.input_mean``/``self.input_std``.
    """

    def __init__(
        self,
        encoder: str = "resnet50",
        head: str = "original",
        pretrained: bool = False,
        embedding_dim: int = 64,
        single_image: bool = False,
        decoder_channels: Sequence[int] | None = None,
        coattention: str = "gong",
        partner_grid: int | tuple[int, int] | None = None,
        topk_fraction: float = 0.5,
        skip_attention: bool = False,
        match_stride: int = 32,
        feature_dropout: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {feature_dropout!r}")
        self.feature_dropout = float(feature_dropout)
        if head not in ("original", "embedding"):
            raise ValueError(f"head must be 'original' or 'embedding', got {head!r}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if coattention not in SPATIAL_MODES:
            raise ValueError(f"coattention must be one of {', '.join(SPATIAL_MODES)}, got {coattention!r}")
        self.encoder: Encoder = build_encoder(encoder, pretrained).drop_classifier()
        if decoder_channels is None:
            decoder_channels = DEFAULT_DECODER_CHANNELS[encoder]
        if partner_grid is None:
            partner_grid = DEFAULT_PARTNER_GRID[encoder]
        self.decoder_channels = tuple(int(c) for c in decoder_channels)
        self.head = head
        self.single_image = bool(single_image)
        self.skip_attention = bool(skip_attention)
        if match_stride not in (16, 32) or (match_stride == 16 and coattention != "match"):
            raise ValueError(f"match_stride must be 32, or 16 with coattention='match', got {match_stride!r}")
        self.match_stride = int(match_stride)
        deep = self.encoder.out_channels[-1]
        match_in = deep + self.encoder.out_channels[-2] if match_stride == 16 else None
        self.coattention = CoAttention(deep, spatial=coattention, partner_grid=partner_grid,
                                       topk_fraction=topk_fraction, match_in_channels=match_in)
        self.decoder = UNetDecoder(
            self.encoder.out_channels,
            self.coattention.out_channels,
            self.decoder_channels,
            head,
            embedding_dim,
        )
        self.input_mean = self.encoder.input_mean
        self.input_std = self.encoder.input_std

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The shared encoder's five feature maps (strides 2-32) of one image batch."""
        check_image_batch(image, "image")
        return list(self.encoder(image))

    def _check_features(self, feats: Sequence[torch.Tensor], name: str) -> None:
        n = len(self.encoder.out_channels)
        if len(feats) != n or any(f.ndim != 4 for f in feats):
            raise ValueError(f"{name} must be the {n} feature maps of encode(), got {len(feats)} items")
        if feats[-1].shape[1] != self.coattention.in_channels:
            raise ValueError(f"{name}[-1] has {feats[-1].shape[1]} channels, expected {self.coattention.in_channels}")

    def forward_features(
        self,
        feats_a: Sequence[torch.Tensor],
        feats_b: Sequence[torch.Tensor],
        out_size_a: tuple[int, int],
        out_size_b: tuple[int, int],
    ) -> SiameseUNetOutput:
        """Co-attention, decoder and head on encoder features (:meth:`encode` of each image); out sizes = (H, W)."""
        self._check_features(feats_a, "feats_a")
        self._check_features(feats_b, "feats_b")
        if feats_a[-1].shape[0] != feats_b[-1].shape[0]:
            raise ValueError(f"feats_a and feats_b must have the same batch size, got {feats_a[-1].shape[0]} and "
                             f"{feats_b[-1].shape[0]}")
        feats_a, feats_b = self._drop(feats_a), self._drop(feats_b)
        if self.single_image:
            deep_a, _, map_a, _ = self._attend(feats_a, feats_a)
            deep_b, _, map_b, _ = self._attend(feats_b, feats_b)
        else:
            deep_a, deep_b, map_a, map_b = self._attend(feats_a, feats_b)
        logits_a, emb_a = self._decode(deep_a, map_a, feats_a[:-1], out_size_a)
        logits_b, emb_b = self._decode(deep_b, map_b, feats_b[:-1], out_size_b)
        return SiameseUNetOutput(logits_a, logits_b, emb_a, emb_b)

    def _drop(self, feats: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        if not (self.training and self.feature_dropout > 0):
            return feats
        return [F.dropout2d(f, self.feature_dropout) for f in feats]

    def _match_features(self, feats: Sequence[torch.Tensor]) -> torch.Tensor | None:
        if self.match_stride == 32:
            return None
        fine = feats[-2]
        deep = F.interpolate(feats[-1], size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([deep, fine], dim=1)

    def _attend(self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]):
        match_a = self._match_features(feats_a)
        match_b = match_a if feats_b is feats_a else self._match_features(feats_b)  # single image: build it once
        return self.coattention.attend(feats_a[-1], feats_b[-1], match_a, match_b)

    def _decode(self, deep: torch.Tensor, spatial_map: torch.Tensor, skips: Sequence[torch.Tensor],
                out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.skip_attention:
            skips = [s * F.interpolate(spatial_map, size=s.shape[-2:], mode="bilinear", align_corners=False)
                     for s in skips]
        return self.decoder(deep, skips, tuple(out_size))

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> SiameseUNetOutput:
        check_pair(image_a, image_b)
        # One encoder (siamese weight sharing); each image in its own pass so train-mode BN statistics of
        # image A never see image B (keeps single_image outputs independent of the partner).
        return self.forward_features(self.encode(image_a), self.encode(image_b),
                                     tuple(image_a.shape[-2:]), tuple(image_b.shape[-2:]))

    def segment_features(
        self, feats: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> SegmentOutput:
        """:meth:`segment` on encoder features of one image batch."""
        self._check_features(feats, "feats")
        deep, _, spatial_map, _ = self._attend(feats, feats)
        logits, emb = self._decode(deep, spatial_map, feats[:-1], out_size)
        return SegmentOutput(logits, emb)

    def segment(self, image: torch.Tensor) -> SegmentOutput:
        """Single-image inference (the image attends to itself), the same path as ``single_image=True``."""
        return self.segment_features(self.encode(image), tuple(image.shape[-2:]))
