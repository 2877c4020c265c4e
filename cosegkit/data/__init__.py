"""Data layer: loaders for the co-segmentation benchmarks, checks, splits, pairs, transforms and a synthetic set.

A `PairSample` is a plain dict: image_a, image_b ((H, W, 3) uint8 RGB), mask_a, mask_b ((H, W) bool, the common
object only; all False for a negative pair), label (1 positive / 0 negative), group_a, group_b (str).
"""

from cosegkit.data.check import CheckReport, GroupSummary, check_dataset
from cosegkit.data.fetch import SOURCES, DatasetSource, UnsafeArchiveError, fetch_dataset, safe_extract
from cosegkit.data.folder import CosegDataset, CosegFolder
from cosegkit.data.items import CosegItem, DatasetLayoutError, Record, decode_image, decode_mask
from cosegkit.data.official import (
    INTERNET_CLASSES,
    LOADERS,
    MSRC_CLASSES,
    SBCOSEG_SUBSETS,
    ICoseg,
    InternetDataset,
    MSRCCoseg,
    SBCoseg,
    load_dataset,
)
from cosegkit.data.pairs import RealPairs, cosegnet_triplets, negative_pairs, positive_pairs
from cosegkit.data.splits import split_indices
from cosegkit.data.synthetic import SyntheticCoseg

PairSample = dict  # see the module docstring for its keys

# Transforms need torch/torchvision (seconds to import); load them on first use so `cosegkit data check` stays
# fast.
_LAZY = {"IMAGENET_MEAN", "IMAGENET_STD", "PairTransform", "resize_to_original"}


def __getattr__(name: str):
    if name in _LAZY:
        from cosegkit.data import transforms

        return getattr(transforms, name)
    raise AttributeError(f"module 'cosegkit.data' has no attribute {name!r}")

__all__ = [
    "CheckReport",
    "CosegDataset",
    "CosegFolder",
    "CosegItem",
    "DatasetLayoutError",
    "DatasetSource",
    "GroupSummary",
    "ICoseg",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERNET_CLASSES",
    "InternetDataset",
    "LOADERS",
    "MSRCCoseg",
    "MSRC_CLASSES",
    "PairSample",
    "PairTransform",
    "RealPairs",
    "Record",
    "SBCOSEG_SUBSETS",
    "SBCoseg",
    "SOURCES",
    "SyntheticCoseg",
    "UnsafeArchiveError",
    "check_dataset",
    "cosegnet_triplets",
    "decode_image",
    "decode_mask",
    "fetch_dataset",
    "load_dataset",
    "negative_pairs",
    "positive_pairs",
    "resize_to_original",
    "safe_extract",
    "split_indices",
]
