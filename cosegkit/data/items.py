"""Items, records and strict image/mask decoding shared by every loader.

A *record* is what a loader learns from listing folders (group, image path, mask path); an *item* is a decoded
record. Decoding is strict: a corrupt or truncated image, a mask that is not binary, or a mask whose size differs
from its image raises ``ValueError`` naming the file. Nothing is clamped or skipped.

Mask convention (chosen where the datasets differ): a mask is accepted when its pixel values are a subset of
{0, 255} or of {0, 1}; foreground is 255 (resp. 1). Mode "1" (bilevel), "L" and "P" (read through its palette,
i.e. the colours a viewer shows) are single-channel; "RGB" is accepted when its three channels are identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

__all__ = [
    "CosegItem",
    "Record",
    "Problem",
    "DatasetLayoutError",
    "IMAGE_EXTENSIONS",
    "sha256_file",
    "decode_image",
    "decode_mask",
    "load_item",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Files that operating systems drop into folders; they are ignored everywhere (as are dotfiles).
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
_IMAGE_MODES = frozenset({"RGB", "L", "P", "RGBA", "LA", "CMYK", "YCbCr", "1"})


@dataclass(frozen=True, eq=False)
class CosegItem:
    """One decoded image with its binary mask.

    image: (H, W, 3) uint8 RGB; mask: (H, W) bool (True = foreground of the group's class);
    group: group (class) name; id: sha256 hex of the image file bytes (byte-identical files share it);
    path: image file; mask_path: mask file (None for generated data).
    """

    image: np.ndarray
    mask: np.ndarray
    group: str
    id: str
    path: Path
    mask_path: Path | None = None


@dataclass(frozen=True)
class Record:
    """What a loader knows about one image without decoding it."""

    group: str
    path: Path
    mask_path: Path | None
    id: str


@dataclass(frozen=True)
class Problem:
    """One bad file. ``missing`` problems (absent file/folder) raise FileNotFoundError, others ValueError."""

    path: Path
    message: str
    missing: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DatasetLayoutError(ValueError):
    """A folder does not have the layout its loader expects; ``problems`` lists every bad path."""

    def __init__(self, root: Path, problems: list[Problem], limit: int = 20):
        self.root = Path(root)
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more (run `cosegkit data check` for all)")
        super().__init__(f"{len(self.problems)} problem(s) under {self.root}:\n  " + "\n  ".join(lines))


def raise_problems(root: Path, problems: list[Problem]) -> None:
    """Raise FileNotFoundError (anything missing) or DatasetLayoutError listing every problem."""
    if not problems:
        return
    err = DatasetLayoutError(root, problems)
    if any(p.missing for p in problems):
        raise FileNotFoundError(str(err)) from err
    raise err


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _strict_truncation():
    # A truncated JPEG must fail, not decode as grey: force PIL's global switch off while we decode.
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def _open(path: Path, data: bytes | None, what: str) -> Image.Image:
    with contextlib.suppress(OSError):  # a missing file is reported below
        if (len(data) if data is not None else path.stat().st_size) == 0:
            raise ValueError(f"{path}: corrupt or truncated {what} (empty file)")
    try:
        with _strict_truncation():
            im = Image.open(io.BytesIO(data) if data is not None else path)
            im.load()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file not found: {path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # PIL names the buffer (<_io.BytesIO object at 0x...>) when given bytes: name the file instead
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", str(path), str(e))
        raise ValueError(f"{path}: corrupt or truncated {what} ({reason})") from e
    return im


def decode_image(path: Path | str, data: bytes | None = None) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; ``data`` are the file bytes if already read."""
    path = Path(path)
    im = _open(path, data, "image")
    if im.mode not in _IMAGE_MODES:
        raise ValueError(f"{path}: unsupported image mode {im.mode!r}; expected 8-bit RGB, greyscale or palette")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def decode_mask(path: Path | str, data: bytes | None = None) -> np.ndarray:
    """Decode a binary mask to (H, W) bool; values must be {0,255} or {0,1} (see module docstring)."""
    path = Path(path)
    im = _open(path, data, "mask")
    if im.mode == "1":
        return np.asarray(im, dtype=bool)
    palette = im.mode == "P"
    if palette:
        im = im.convert("RGB")
    if im.mode not in ("L", "RGB"):
        raise ValueError(f"{path}: mask has mode {im.mode!r}; expected a single-channel (L/1/P) or RGB image")
    arr = np.asarray(im)
    if arr.ndim == 3:
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            if palette:
                raise ValueError(f"{path}: palette mask with colours that are not grey; expected a palette of "
                                 "black and white (or grey levels 0/1) only")
            raise ValueError(f"{path}: RGB mask whose three channels differ; expected identical channels")
        arr = arr[..., 0]
    counts = np.bincount(arr.ravel(), minlength=256)
    present = np.flatnonzero(counts)
    if set(present.tolist()) <= {0, 255}:
        return arr == 255
    if set(present.tolist()) <= {0, 1}:
        return arr == 1
    shown = ", ".join(str(v) for v in present[:8]) + (", ..." if len(present) > 8 else "")
    raise ValueError(f"{path}: mask is not binary (values {shown}); expected only 0/255 or only 0/1")


def load_item(record: Record) -> CosegItem:
    """Decode one record into a CosegItem, checking that mask and image have the same size."""
    image = decode_image(record.path)
    if record.mask_path is None:
        raise ValueError(f"{record.path}: no mask file recorded for this image")
    mask = decode_mask(record.mask_path)
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{record.mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {record.path} "
            f"is {image.shape[1]}x{image.shape[0]}"
        )
    return CosegItem(image=image, mask=mask, group=record.group, id=record.id, path=record.path,
                     mask_path=record.mask_path)
