"""Co-segmentation models: encoders, the siamese U-Net of IS-Triplet §3.3 and CoSegNet (cosegnet §3).

Public API: :func:`build_encoder`, :class:`SiameseUNet`, :class:`CoSegNet`, :class:`CoSegNetBase`,
:func:`count_parameters`.
"""

from ._utils import count_parameters
from .correlation import CoAttention, channel_weights, correlation_volume, correlation_volumes
from .cosegnet import CoSegNet, CoSegNetBase
from .encoders import ENCODER_NAMES, Encoder, build_encoder
from .siamese_unet import SiameseUNet

__all__ = [
    "ENCODER_NAMES",
    "CoSegNet",
    "CoSegNetBase",
    "CoAttention",
    "Encoder",
    "SiameseUNet",
    "build_encoder",
    "channel_weights",
    "correlation_volume",
    "correlation_volumes",
    "count_parameters",
]
