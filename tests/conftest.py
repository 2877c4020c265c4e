"""Shared fixtures: tiny generated datasets in every supported layout, and the optional real VOC folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, h: int = 24, w: int = 32, seed: int = 0, fmt: str | None = None) -> Path:
    """A random RGB image (distinct bytes per seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_mask(path: Path, h: int = 24, w: int = 32, seed: int = 0, fg: int = 255, mode: str = "L") -> Path:
    """A binary mask with a left-half foreground block whose width depends on ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((h, w), dtype=np.uint8)
    arr[:, : 4 + seed % (w // 2)] = fg
    im = Image.fromarray(arr)
    if mode == "RGB":
        im = im.convert("RGB")
    elif mode == "1":
        im = Image.fromarray(arr > 0)
    im.save(path)
    return path


def mask_fraction(h: int = 24, w: int = 32, seed: int = 0) -> float:
    return (4 + seed % (w // 2)) / w


SHARED_VOC_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pascal_voc_coseg"


@pytest.fixture
def make_folder(tmp_path):
    """Factory: ``make_folder({"cat": 3, "dog": 2}, name="ds")`` -> root of a CosegFolder layout.

    Image ``k`` of group number ``g`` uses seed ``100 * g + k`` (all images distinct); masks follow write_mask.
    """

    def make(groups: dict[str, int], name: str = "ds", h: int = 24, w: int = 32) -> Path:
        root = tmp_path / name
        for g, (group, n) in enumerate(sorted(groups.items())):
            for k in range(n):
                seed = 100 * g + k
                write_image(root / group / "images" / f"img_{k:03d}.jpg", h, w, seed)
                write_mask(root / group / "masks" / f"img_{k:03d}.png", h, w, seed)
        return root

    return make


@pytest.fixture
def voc_root() -> Path:
    """The real PASCAL-VOC co-segmentation folder: $COSEGKIT_VOC_ROOT, else the workplace's shared copy beside the
    checkout (tests may name it; the package never does). Skips when neither exists."""
    value = os.environ.get("COSEGKIT_VOC_ROOT") or str(SHARED_VOC_ROOT)
    if not Path(value).is_dir():
        pytest.skip("set COSEGKIT_VOC_ROOT to the PASCAL-VOC co-segmentation folder to run this test")
    return Path(value)


@pytest.fixture(scope="session")
def rectangles_folder(tmp_path_factory):
    """3 groups x 10 images (a coloured rectangle on noise): 6 of each in the 3:1:1 training split."""
    root = tmp_path_factory.mktemp("coseg")
    rng = np.random.default_rng(0)
    for group in ("red", "green", "blue"):
        (root / group / "images").mkdir(parents=True)
        (root / group / "masks").mkdir()
        for i in range(10):
            image = rng.integers(0, 120, size=(64, 64, 3), dtype=np.uint8)
            mask = np.zeros((64, 64), dtype=bool)
            mask[10:30, 12 + 2 * i:44] = True
            image[mask] = 200
            Image.fromarray(image).save(root / group / "images" / f"img_{i}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(root / group / "masks" / f"img_{i}.png")
    return root
