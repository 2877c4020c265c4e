"""`CosegFolder`: the generic `<root>/<group>/images` + `<root>/<group>/masks` layout, and the base class and
folder-listing helpers that the official-layout loaders (`official.py`) share.

Listing is strict (nothing is silently skipped): an image without a mask, a mask without an image, a file with an
unknown extension, an empty folder or a group folder without `images/` are all reported, each naming the path.
Dotfiles and OS litter (Thumbs.db, desktop.ini) are ignored; so are plain files directly under the root (e.g. a
README or SOURCE.md), since only folders can be groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cosegkit.data.items import (
    IGNORED_FILES,
    IMAGE_EXTENSIONS,
    CosegItem,
    Problem,
    Record,
    load_item,
    raise_problems,
    sha256_file,
)

__all__ = ["CosegDataset", "CosegFolder", "Entry"]

Entry = tuple[str, Path, Path | None]  # (group, image path, mask path)


def is_ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def list_dir(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if not is_ignored(p))


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_dir():
        raise NotADirectoryError(f"{what} is not a directory: {path}")
    return path


def scan_image_dir(
    group: str,
    image_dir: Path,
    mask_dir: Path,
    problems: list[Problem],
    image_exts: Sequence[str] = IMAGE_EXTENSIONS,
    subdirs_allowed: Sequence[str] = (),
) -> list[Entry]:
    """Pair every image in ``image_dir`` with ``mask_dir/<stem>.png``; append a Problem for anything off.

    ``subdirs_allowed`` names sub-folders of ``image_dir`` that are expected (e.g. ``GroundTruth`` when masks
    live inside the image folder); any other sub-folder or non-image file is reported.
    """
    entries: list[Entry] = []
    allowed = {s.lower() for s in subdirs_allowed}
    images: dict[str, Path] = {}
    for p in list_dir(image_dir):
        if p.is_dir():
            if p.name.lower() not in allowed:
                problems.append(Problem(p, f"unexpected folder inside image folder of group {group!r}"))
            continue
        if p.suffix.lower() not in image_exts:
            problems.append(Problem(p, f"not an image (extension {p.suffix!r}; expected one of {image_exts})"))
            continue
        if p.stem in images:
            problems.append(Problem(p, f"two images share the stem {p.stem!r} (other: {images[p.stem].name})"))
            continue
        images[p.stem] = p
    if not images:
        problems.append(Problem(image_dir, f"empty folder: no images ({'/'.join(image_exts)}) for group "
                                           f"{group!r}", missing=True))
        return entries
    masks: dict[str, Path] = {}
    if not mask_dir.is_dir():
        problems.append(Problem(mask_dir, f"mask folder missing for group {group!r}", missing=True))
    else:
        for p in list_dir(mask_dir):
            if p.is_dir() or p.suffix.lower() != ".png":
                problems.append(Problem(p, "not a .png mask file"))
                continue
            masks[p.stem] = p
        for stem in sorted(set(masks) - set(images)):
            problems.append(Problem(masks[stem], "mask without an image of the same stem"))
    for stem in sorted(images):
        mask = masks.get(stem)
        if mask is None and mask_dir.is_dir():
            problems.append(Problem(images[stem], f"missing mask: expected {mask_dir / (stem + '.png')}",
                                    missing=True))
        if mask is not None:
            entries.append((group, images[stem], mask))
    return entries


class CosegDataset(Sequence):
    """Base class: a list of (group, image, mask) entries, decoded lazily into `CosegItem`s.

    Subclasses implement the classmethod ``scan(root, **options) -> (entries, problems)``; the constructor
    raises FileNotFoundError / ValueError listing every problem. ``check_dataset`` calls ``scan`` directly
    so that it can report problems instead of stopping at the first.
    """

    def __init__(self, root: Path | str, **options):
        self.root = Path(root)
        entries, problems = self.scan(self.root, **options)
        raise_problems(self.root, problems)
        self._entries: list[Entry] = entries
        self._ids: dict[int, str] = {}
        self.groups: list[str] = sorted({g for g, _, _ in entries})

    @classmethod
    def scan(cls, root: Path, **options) -> tuple[list[Entry], list[Problem]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._entries)

    def _index(self, i: int) -> int:
        n = len(self._entries)
        if not isinstance(i, int | np.integer):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for dataset of {n} images")
        return j

    def group_of(self, i: int) -> str:
        return self._entries[self._index(i)][0]

    def path_of(self, i: int) -> Path:
        return self._entries[self._index(i)][1]

    def id_of(self, i: int) -> str:
        """sha256 of the image file bytes (computed once, no decoding)."""
        j = self._index(i)
        if j not in self._ids:
            self._ids[j] = sha256_file(self._entries[j][1])
        return self._ids[j]

    def record(self, i: int) -> Record:
        group, path, mask = self._entries[self._index(i)]
        return Record(group=group, path=path, mask_path=mask, id=self.id_of(i))

    @property
    def records(self) -> list[Record]:
        return [self.record(i) for i in range(len(self))]

    def __getitem__(self, i: int) -> CosegItem:
        return load_item(self.record(i))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, images={len(self)}, groups={len(self.groups)})"


class CosegFolder(CosegDataset):
    """Generic layout ``<root>/<group>/images/<stem>.{jpg,jpeg,png,bmp}`` + ``<root>/<group>/masks/<stem>.png``.

    Every sub-folder of ``root`` is a group and must contain ``images/`` and ``masks/``; every image needs a
    mask with the same stem. Masks are binary PNGs (0/255 or 0/1). ``len()`` counts images; ``ds[i]`` decodes
    image ``i`` into a `CosegItem`. This is the layout of the PASCAL-VOC co-segmentation copy the project uses.
    """

    @classmethod
    def scan(cls, root: Path) -> tuple[list[Entry], list[Problem]]:
        root = require_dir(root, "dataset root")
        problems: list[Problem] = []
        entries: list[Entry] = []
        group_dirs = [p for p in list_dir(root) if p.is_dir()]
        if not group_dirs:
            problems.append(Problem(root, "empty folder: expected group folders <root>/<group>/images/*.jpg "
                                          "with <root>/<group>/masks/*.png", missing=True))
        for gdir in group_dirs:
            image_dir, mask_dir = gdir / "images", gdir / "masks"
            if not image_dir.is_dir():
                problems.append(Problem(image_dir, f"group folder {gdir.name!r} has no images/ sub-folder "
                                                   "(expected <group>/images/*.jpg and <group>/masks/*.png)",
                                        missing=True))
                continue
            for extra in list_dir(gdir):
                if extra.name not in ("images", "masks"):
                    problems.append(Problem(extra, f"unexpected entry in group folder {gdir.name!r} "
                                                   "(expected only images/ and masks/)"))
            entries += scan_image_dir(gdir.name, image_dir, mask_dir, problems)
        return entries, problems
