"""Siamese U-Net with a correlation block (IS-Triplet §3.3, Fig. 1 and Fig. 3).

The co-segmentation framework of Gong et al. [34] with the correlation block of Li et al. (DOCS) [35]:
(1) a siamese encoder (one encoder, shared weights, applied to each image), (2) a correlation block between
the two deepest feature maps, (3) a siamese U-Net decoder (shared weights) with skip connections from every
encoder scale, (4) the output head:

- ``head="original"`` (Fig. 1a): the sixth decoder layer outputs 2-channel logits at half the input size;
- ``head="embedding"`` (Fig. 1b, the paper's modification): the sixth layer outputs a 64-channel pixel embedding
  at the input size (used by the IS-Triplet loss) and a new 1x1 conv turns it into 2-channel logits.

Decoder layout (the paper only fixes the "sixth deconvolution layer"): blocks 1-4 each upsample x2 (bilinear),
concatenate the encoder skip of that scale and apply two conv3x3-BN-ReLU (strides 16, 8, 4, 2); block 5 is one
conv3x3-BN-ReLU at stride 2; layer 6 is a conv3x3 to 2 logits at H/2 (original) or a 2x2 stride-2 transposed
convolution ("deconvolution") to ``embedding_dim`` channels at H (embedding, no activation), followed by the new
1x1 conv to 2 logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from ._utils import check_image_batch, check_pair
from .correlation import CorrelationBlock
from .encoders import Encoder, build_encoder

# Decoder widths (blocks 1-5). Narrow for efficientnet_lite0 so the model trains at several pairs/s on 2 CPU
# cores at 128-160 px; wider for the GPU encoders (ResNet-50 as in the paper).
DEFAULT_DECODER_CHANNELS = {
    "resnet50": (256, 128, 64, 32, 32),
    "vgg16": (256, 128, 64, 32, 32),
    "efficientnet_lite0": (96, 48, 32, 24, 16),
    "efficientnet_lite2": (96, 48, 32, 24, 16),
    "tiny": (32, 24, 16, 16, 8),
}


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
            self.layer6 = nn.ConvTranspose2d(decoder_channels[4], embedding_dim, 2, stride=2)
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
    """Siamese U-Net co-segmentation network with a correlation block (IS-Triplet §3.3, Fig. 1 / Fig. 3).

    Args:
        encoder: encoder name for :func:`build_encoder` ("resnet50" in the paper; "efficientnet_lite0" for the
            CPU profile; "vgg16", "tiny").
        head: "original" (2-channel logits at H/2 x W/2, Fig. 1a) or "embedding" (``embedding_dim``-channel pixel
            embedding at H x W, then a 1x1 conv to 2-channel logits, Fig. 1b).
        pretrained: ImageNet weights for the encoder (see :func:`build_encoder`).
        embedding_dim: embedding channels of the "embedding" head (64 in the paper).
        single_image: if True the correlation block correlates each image with itself, so nothing crosses the
            pair (single-image baseline); outputs for image A do not depend on image B.
        decoder_channels: widths of decoder blocks 1-5 (default per encoder: ``DEFAULT_DECODER_CHANNELS``).
        corr_topk_fraction: fraction of partner locations averaged in the correlation block.
        gate_skips: also multiply every skip connection by the correlation gate (bilinearly upsampled). Not in
            the paper: there only the deepest features are gated, and the decoder can segment from the ungated
            skips alone, ignoring the partner (see the README's synthetic benchmark).

    ``forward(image_a, image_b)`` -> dict(logits_a, logits_b, embeddings_a, embeddings_b); the embeddings are
    None for the original head. Inputs are (B, 3, H, W) with H, W multiples of 32, normalised with
    ``self.input_mean``/``self.input_std``.
    """

    def __init__(
        self,
        encoder: str = "resnet50",
        head: str = "original",
        pretrained: bool = False,
        embedding_dim: int = 64,
        single_image: bool = False,
        decoder_channels: Sequence[int] | None = None,
        corr_topk_fraction: float = 0.1,
        gate_skips: bool = False,
    ):
        super().__init__()
        if head not in ("original", "embedding"):
            raise ValueError(f"head must be 'original' or 'embedding', got {head!r}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        self.encoder: Encoder = build_encoder(encoder, pretrained).drop_classifier()
        if decoder_channels is None:
            decoder_channels = DEFAULT_DECODER_CHANNELS[encoder]
        self.decoder_channels = tuple(int(c) for c in decoder_channels)
        self.head = head
        self.single_image = bool(single_image)
        self.gate_skips = bool(gate_skips)
        self.correlation = CorrelationBlock(corr_topk_fraction)
        deep = self.encoder.out_channels[-1]
        self.decoder = UNetDecoder(
            self.encoder.out_channels,
            self.correlation.out_channels(deep),
            self.decoder_channels,
            head,
            embedding_dim,
        )
        self.input_mean = self.encoder.input_mean
        self.input_std = self.encoder.input_std

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> dict[str, torch.Tensor | None]:
        check_pair(image_a, image_b)
        # One encoder (siamese weight sharing); each image in its own pass so train-mode BN statistics of
        # image A never see image B (keeps single_image outputs independent of the partner).
        feats_a, feats_b = self.encoder(image_a), self.encoder(image_b)
        if self.single_image:
            deep_a, _ = self.correlation(feats_a[-1], feats_a[-1])
            deep_b, _ = self.correlation(feats_b[-1], feats_b[-1])
        else:
            deep_a, deep_b = self.correlation(feats_a[-1], feats_b[-1])
        logits_a, emb_a = self.decoder(deep_a, self._skips(feats_a[:-1], deep_a), tuple(image_a.shape[-2:]))
        logits_b, emb_b = self.decoder(deep_b, self._skips(feats_b[:-1], deep_b), tuple(image_b.shape[-2:]))
        return {"logits_a": logits_a, "logits_b": logits_b, "embeddings_a": emb_a, "embeddings_b": emb_b}

    def _skips(self, skips: Sequence[torch.Tensor], deep: torch.Tensor) -> list[torch.Tensor]:
        if not self.gate_skips:
            return list(skips)
        gate = deep[:, -1:]  # the correlation block appends its gate as the last channel
        return [s * F.interpolate(gate, size=s.shape[-2:], mode="bilinear", align_corners=False) for s in skips]

    def segment(self, image: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Single-image inference (self-correlation), the same path as ``single_image=True`` for one image."""
        check_image_batch(image, "image")
        feats = self.encoder(image)
        deep, _ = self.correlation(feats[-1], feats[-1])
        logits, emb = self.decoder(deep, self._skips(feats[:-1], deep), tuple(image.shape[-2:]))
        return {"logits": logits, "embeddings": emb}
