"""Joint image/mask transforms (torchvision.transforms.v2 + tv_tensors.Mask) and mapping predictions back.

Each image of a pair is transformed jointly with its own mask(s), so the geometry stays aligned; the two images
of a pair get independent random draws. Masks are resized with nearest-neighbour interpolation (torchvision
forces it for `tv_tensors.Mask`) and are untouched by colour jitter and normalisation, so they stay binary.
CoSegNet §4.1 resizes every input to 224 x 224; evaluation maps predictions back to each image's original size
(`resize_to_original`), where the metrics are computed.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PairTransform", "resize_to_original"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_EXTRA_MASK_KEYS = ("objects",)  # synthetic pairs also carry objects_a/objects_b, transformed like the masks


def _size2(size) -> tuple[int, int]:
    s = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(s) != 2 or not all(isinstance(v, int | np.integer) and v > 0 for v in s):
        raise ValueError(f"size must be a positive int or (H, W) of positive ints, got {size!r}")
    return int(s[0]), int(s[1])


class PairTransform:
    """Callable on a `PairSample` -> dict of tensors.

    Output: image_a, image_b float32 (3, H, W) normalised with ``mean``/``std``; mask_a, mask_b float32 (H, W)
    in {0, 1}; label float32 scalar; orig_size_a, orig_size_b (H, W) tuples; group_a, group_b passed through;
    objects_a/objects_b (synthetic data) transformed like the masks when present.

    ``train=True`` adds a random horizontal flip (probability ``flip_p``) and colour jitter (``jitter``:
    brightness, contrast, saturation, hue; None for none) after the resize; ``train=False`` only resizes and normalises.
    ``cache_views`` (default True) keeps the outputs of read-only arrays when there is no jitter (see the module
    docstring); False runs the v2 pipeline on every call (same outputs, slower).
    """

    def __init__(self, size: int | Sequence[int] = 224, train: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 flip_p: float = 0.5, jitter: Sequence[float] | None = (0.4, 0.4, 0.4, 0.05),
                 cache_views: bool = True):
        self.size = _size2(size)
        self.train = bool(train)
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean and std must have 3 entries (std > 0), got {mean!r}, {std!r}")
        resize = v2.Resize(self.size, antialias=True)
        to_float = [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
                    v2.Normalize(mean=list(mean), std=list(std))]
        steps: list = [resize]
        if self.train:
            steps.append(v2.RandomHorizontalFlip(flip_p))
            if jitter is not None:  # None: flip only (two views per image; see data.augment)
                steps.append(v2.ColorJitter(*jitter))
        self.transform = v2.Compose(steps + to_float)
        self.flip_p = float(flip_p)
        # the two views (plain, mirrored) of read-only arrays: id -> (weakref to the array, {flipped: tensor});
        # None when colour jitter makes every output new, or with cache_views=False
        self._views: dict[int, tuple] | None = {} if cache_views and not (self.train and jitter is not None) else None
        self._view_steps = v2.Compose([resize, *to_float])

    def __getstate__(self) -> dict:  # DataLoader workers get an empty view cache of their own
        state = dict(self.__dict__)
        if state["_views"] is not None:
            state["_views"] = {}
        return state

    def _view(self, array: np.ndarray, flipped: bool, as_mask: bool) -> torch.Tensor | None:
        """The cached output of a read-only `array` (mirrored if `flipped`), computed on first use; None for a
        writable array (not cached). The tensor is shared by every later call: callers stack or copy it."""
        if array.flags.writeable:
            return None
        entry = self._views.get(id(array))
        if entry is None or entry[0]() is not array:  # a new array, or another one at a freed one's address
            entry = self._views[id(array)] = (weakref.ref(array), {})
        views = entry[1]
        if flipped not in views:
            if False not in views:
                views[False] = self._plain(array, as_mask)
            views[flipped] = views[False].flip(-1) if flipped else views[False]
        return views[flipped]

    def _plain(self, array: np.ndarray, as_mask: bool) -> torch.Tensor:
        if as_mask:
            mask = tv_tensors.Mask(torch.from_numpy(np.asarray(array, dtype=np.uint8)))
            return self._view_steps(mask).as_subclass(torch.Tensor).float()
        img = tv_tensors.Image(torch.from_numpy(np.require(array, requirements=("C", "W"))).permute(2, 0, 1))
        return self._view_steps(img).as_subclass(torch.Tensor)

    def _one(self, image: np.ndarray, masks: list[np.ndarray], where: str):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{where}: expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        for m in masks:
            if m.shape != image.shape[:2]:
                raise ValueError(f"{where}: mask shape {m.shape} differs from image shape {image.shape[:2]}")
        if self._views is not None:
            # v2.RandomHorizontalFlip's draw: one torch.rand(1) per call, flip unless it is >= p
            flipped = bool(torch.rand(1) < self.flip_p) if self.train else False
            cached = [self._view(a, flipped, as_mask) for a, as_mask in ((image, False), *((m, True) for m in masks))]
            if all(c is not None for c in cached):
                return cached[0], cached[1:]
            out = [self._plain(a, as_mask) for a, as_mask in ((image, False), *((m, True) for m in masks))]
            out = [o.flip(-1) if flipped else o for o in out]
            return out[0], out[1:]
        # Cached decodes are read-only; torch.from_numpy needs a writable array (np.require copies only then).
        img = tv_tensors.Image(torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1))
        tms = [tv_tensors.Mask(torch.from_numpy(np.asarray(m, dtype=np.uint8))) for m in masks]
        out = self.transform(img, *tms)
        return out[0].as_subclass(torch.Tensor), [m.as_subclass(torch.Tensor).float() for m in out[1:]]

    def __call__(self, sample: dict) -> dict:
        out: dict = {}
        for side in ("a", "b"):
            keys = [f"mask_{side}"] + [f"{k}_{side}" for k in _EXTRA_MASK_KEYS if f"{k}_{side}" in sample]
            masks = [np.asarray(sample[k]) for k in keys]
            for k, m in zip(keys, masks, strict=True):
                if m.dtype != np.bool_ and not np.isin(m, (0, 1)).all():
                    raise ValueError(f"{k} must be binary (bool or 0/1), got values {np.unique(m)[:5]}")
            image = np.asarray(sample[f"image_{side}"])
            img, tms = self._one(image, masks, f"image_{side}")
            out[f"image_{side}"] = img
            out.update(zip(keys, tms, strict=True))
            out[f"orig_size_{side}"] = (int(image.shape[0]), int(image.shape[1]))
            if f"group_{side}" in sample:
                out[f"group_{side}"] = sample[f"group_{side}"]
        out["label"] = torch.tensor(float(sample["label"]), dtype=torch.float32)
        return out


def resize_to_original(pred, size: Sequence[int], threshold: float = 0.5) -> np.ndarray:
    """Map a (H', W') prediction back to ``size`` = (H, W) as a bool numpy mask.

    Boolean or integer predictions (masks) use nearest-exact interpolation; floating predictions are treated
    as probabilities: bilinearly resized, then thresholded (``> threshold``).
    """
    h, w = _size2(tuple(int(v) for v in size))
    t = pred.detach().cpu() if isinstance(pred, torch.Tensor) else torch.from_numpy(np.asarray(pred))
    if t.ndim != 2:
        raise ValueError(f"pred must be a 2-D (H, W) map, got shape {tuple(t.shape)}")
    x = t[None, None]
    if t.dtype == torch.bool or not t.is_floating_point():
        if not t.dtype == torch.bool and not torch.isin(t, torch.tensor([0, 1], dtype=t.dtype)).all():
            raise ValueError("integer pred must contain only 0 and 1; pass probabilities as floats")
        y = F.interpolate(x.float(), size=(h, w), mode="nearest-exact")
        return y[0, 0].numpy() > 0.5
    y = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False)
    return y[0, 0].numpy() > threshold
