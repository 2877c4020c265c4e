"""Losses of the four papers, pytorch-metric-learning style: pure tensor functions + thin ``nn.Module`` wrappers.

* :mod:`~cosegkit.losses.segmentation`: Dice, cross-entropy and focal losses of the 2-class head.
* :mod:`~cosegkit.losses.is_triplet`: IS-Triplet pixel triplet loss (is_triplet_coseg.txt, eqs. 2-5).
* :mod:`~cosegkit.losses.cosegnet`: CoSegNet objective L1 + L2 + L3 (cosegnet.txt, eqs. 1-4).
* :mod:`~cosegkit.losses.discriminative`: discriminative loss (discriminative_loss.txt, Sec. 2).
* :mod:`~cosegkit.losses.group_loss`: Group Loss at sample and pixel level (group_loss.txt).
"""

from cosegkit.losses.cosegnet import CoSegNetLoss, cosegnet_loss, cosegnet_triplet_loss, select_semihard_negatives
from cosegkit.losses.discriminative import DiscriminativeLoss, discriminative_loss
from cosegkit.losses.group_loss import (
    GroupLoss,
    PixelGroupLoss,
    correlation_similarity,
    group_loss,
    pixel_group_loss,
    replicator_dynamics,
)
from cosegkit.losses.is_triplet import (
    ISTripletLoss,
    LambdaSchedule,
    combined_is_triplet_objective,
    is_triplet_from_sets,
    is_triplet_loss,
)
from cosegkit.losses.segmentation import (
    SEGMENTATION_LOSSES,
    DiceLoss,
    FocalLoss,
    SegCrossEntropyLoss,
    build_segmentation_loss,
    cross_entropy_loss,
    dice_loss,
    focal_loss,
    segmentation_loss,
)

__all__ = [
    "SEGMENTATION_LOSSES",
    "CoSegNetLoss",
    "DiceLoss",
    "DiscriminativeLoss",
    "FocalLoss",
    "GroupLoss",
    "ISTripletLoss",
    "LambdaSchedule",
    "PixelGroupLoss",
    "SegCrossEntropyLoss",
    "build_segmentation_loss",
    "combined_is_triplet_objective",
    "correlation_similarity",
    "cosegnet_loss",
    "cosegnet_triplet_loss",
    "select_semihard_negatives",
    "cross_entropy_loss",
    "dice_loss",
    "discriminative_loss",
    "focal_loss",
    "group_loss",
    "is_triplet_from_sets",
    "is_triplet_loss",
    "pixel_group_loss",
    "replicator_dynamics",
    "segmentation_loss",
]
