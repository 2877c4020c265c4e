"""Loaders for the official release layouts of the co-segmentation benchmarks, and `load_dataset`.

Every loader returns the same `Sequence[CosegItem]` interface as `CosegFolder`. Folder and class names are
matched case-insensitively. If ``root`` does not have the expected layout but holds exactly one sub-folder that
does (archives that unpack into a top-level folder), that sub-folder is used. A wrong layout raises
FileNotFoundError saying what was expected where.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cosegkit.data.folder import CosegDataset, CosegFolder, Entry, list_dir, require_dir, scan_image_dir
from cosegkit.data.items import Problem

__all__ = [
    "InternetDataset",
    "MSRCCoseg",
    "ICoseg",
    "SBCoseg",
    "load_dataset",
    "LOADERS",
    "INTERNET_CLASSES",
    "MSRC_CLASSES",
    "SBCOSEG_SUBSETS",
]

INTERNET_CLASSES = ("Airplane", "Car", "Horse")
MSRC_CLASSES = ("cow", "plane", "car", "sheep", "bird", "cat", "dog")
SBCOSEG_SUBSETS = ("ECFB", "TR", "MH", "SD", "Normal")


def _child(parent: Path, name: str) -> Path | None:
    """The sub-folder of ``parent`` called ``name`` (case-insensitive), or None."""
    if not parent.is_dir():
        return None
    for p in list_dir(parent):
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _locate(root: Path, looks_right: Callable[[Path], bool], expected: str) -> Path:
    root = require_dir(root, "dataset root")
    if looks_right(root):
        return root
    subdirs = [p for p in list_dir(root) if p.is_dir()]
    if len(subdirs) == 1 and looks_right(subdirs[0]):
        return subdirs[0]
    found = ", ".join(p.name for p in subdirs[:10]) or "nothing"
    raise FileNotFoundError(f"{root}: does not look like {expected} (found: {found})")


class InternetDataset(CosegDataset):
    """Internet dataset of Rubinstein et al., CVPR 2013 ("Unsupervised joint object discovery and segmentation
    in internet images"), as released in ObjectDiscovery-data.zip.

    Layout (``root`` is the folder holding ``Data/``, or ``Data/`` itself)::

        Data/<Class>100/*.jpg               subset="100": the 100-image subsets used by CoSegNet (§4.4)
        Data/<Class>100/GroundTruth/*.png
        Data/<Class>/*.jpg                  subset="full": the full crawled sets
        Data/<Class>/GroundTruth/*.png

    with Class in Airplane, Car, Horse. Group names are the class names for both subsets.

    Choice: every image must have a GroundTruth mask with the same stem. In the official release outlier images
    (no airplane/car/horse) have an empty (all-black) mask rather than no mask, so a missing mask is an error,
    not an outlier; outliers load as items with an all-False mask.
    """

    @classmethod
    def scan(cls, root: Path, subset: str = "100",
             classes: Sequence[str] = INTERNET_CLASSES) -> tuple[list[Entry], list[Problem]]:
        if subset not in ("100", "full"):
            raise ValueError(f"subset must be '100' or 'full', got {subset!r}")
        if not classes:
            raise ValueError(f"classes must name at least one of {INTERNET_CLASSES}")
        suffix = "100" if subset == "100" else ""
        expected = "the Internet dataset (Data/<Class>100/*.jpg with Data/<Class>100/GroundTruth/*.png)"
        data = _locate(Path(root), lambda p: _child(p, "Data") is not None
                       or _child(p, f"{classes[0]}{suffix}") is not None, expected)
        data = _child(data, "Data") or data
        problems: list[Problem] = []
        entries: list[Entry] = []
        for name in classes:
            folder = _child(data, name + suffix)
            if folder is None:
                problems.append(Problem(data / (name + suffix), f"class folder missing: expected {name}{suffix}/"
                                        f"*.jpg with {name}{suffix}/GroundTruth/*.png", missing=True))
                continue
            gt = _child(folder, "GroundTruth") or folder / "GroundTruth"
            entries += scan_image_dir(name, folder, gt, problems, subdirs_allowed=("GroundTruth",))
        return entries, problems

    def __init__(self, root: Path | str, subset: str = "100", classes: Sequence[str] = INTERNET_CLASSES):
        super().__init__(root, subset=subset, classes=tuple(classes))
        self.subset = subset


class MSRCCoseg(CosegDataset):
    """The MSRC co-segmentation classes used by CoSegNet §4.3 (cow, plane, car, sheep, bird, cat, dog; 10 images
    each in the evaluation of Vicente et al. 2010 / Rubinstein et al. 2013), in Rubinstein's release layout::

        MSRC/<class>/*.bmp
        MSRC/<class>/GroundTruth/*.png

    ``root`` is the folder holding ``MSRC/`` or ``MSRC/`` itself. Class folders are matched case-insensitively
    and group names are the lower-case class names. ``classes`` restricts to those classes (default: the seven
    CoSegNet classes); ``classes=None`` loads every class folder present.
    """

    @classmethod
    def scan(cls, root: Path, classes: Sequence[str] | None = MSRC_CLASSES) -> tuple[list[Entry], list[Problem]]:
        expected = "the MSRC co-segmentation release (MSRC/<class>/*.bmp with MSRC/<class>/GroundTruth/*.png)"
        wanted = MSRC_CLASSES if classes is None else classes
        data = _locate(Path(root), lambda p: _child(p, "MSRC") is not None
                       or any(_child(p, c) is not None for c in wanted), expected)
        data = _child(data, "MSRC") or data
        problems: list[Problem] = []
        entries: list[Entry] = []
        if classes is None:
            folders = [(p.name.lower(), p) for p in list_dir(data) if p.is_dir()]
        else:
            folders = []
            for name in classes:
                folder = _child(data, name)
                if folder is None:
                    problems.append(Problem(data / name, f"class folder missing: expected {name}/*.bmp with "
                                            f"{name}/GroundTruth/*.png (case-insensitive)", missing=True))
                else:
                    folders.append((name.lower(), folder))
        for group, folder in folders:
            gt = _child(folder, "GroundTruth") or folder / "GroundTruth"
            entries += scan_image_dir(group, folder, gt, problems, subdirs_allowed=("GroundTruth",))
        return entries, problems

    def __init__(self, root: Path | str, classes: Sequence[str] | None = MSRC_CLASSES):
        super().__init__(root, classes=None if classes is None else tuple(classes))


class ICoseg(CosegDataset):
    """iCoseg (Batra et al., CVPR 2010), official CMU_Cornell_iCoseg_dataset layout::

        images/<group>/*.jpg
        ground_truth/<group>/*.png

    ``root`` is the folder holding ``images/`` and ``ground_truth/`` (``dataset_public/`` in the official zip);
    the zip's own ``CMU_Cornell_iCoseg_dataset/dataset_public`` nesting is also found. ``groups`` restricts to
    some groups (default: all 38).
    """

    @classmethod
    def scan(cls, root: Path, groups: Sequence[str] | None = None) -> tuple[list[Entry], list[Problem]]:
        def looks_right(p: Path) -> bool:
            return _child(p, "images") is not None and _child(p, "ground_truth") is not None

        root = require_dir(Path(root), "dataset root")
        base = root
        for candidate in (root, _child(root, "dataset_public"),
                          _child(_child(root, "CMU_Cornell_iCoseg_dataset") or root, "dataset_public")):
            if candidate is not None and looks_right(candidate):
                base = candidate
                break
        base = _locate(base, looks_right, "iCoseg (images/<group>/*.jpg with ground_truth/<group>/*.png)")
        images, gts = _child(base, "images"), _child(base, "ground_truth")
        problems: list[Problem] = []
        entries: list[Entry] = []
        group_dirs = [p for p in list_dir(images) if p.is_dir()]
        if groups is not None:
            by_name = {p.name.lower(): p for p in group_dirs}
            group_dirs = []
            for g in groups:
                if g.lower() in by_name:
                    group_dirs.append(by_name[g.lower()])
                else:
                    problems.append(Problem(images / g, "group folder missing", missing=True))
        elif not group_dirs:
            problems.append(Problem(images, "empty folder: expected images/<group>/*.jpg", missing=True))
        for p in list_dir(images):
            if not p.is_dir():
                problems.append(Problem(p, "unexpected file: expected only group folders in images/"))
        if groups is None:
            for p in list_dir(gts):
                if p.is_dir() and _child(images, p.name) is None:
                    problems.append(Problem(p, "ground-truth group without an images/ folder of that name"))
        for gdir in group_dirs:
            mask_dir = _child(gts, gdir.name) or gts / gdir.name
            entries += scan_image_dir(gdir.name, gdir, mask_dir, problems)
        return entries, problems

    def __init__(self, root: Path | str, groups: Sequence[str] | None = None):
        super().__init__(root, groups=None if groups is None else tuple(groups))


class SBCoseg(CosegDataset):
    """SBCoseg (Yu, Liu, Wang & Han, "A new challenging image dataset with simple background for evaluating and
    developing co-segmentation algorithms", Signal Processing: Image Communication 83, 2020): 889 groups of 18
    images in five subsets (ECFB easily-confused fore/background, TR transparent regions, MH minor holes,
    SD shadows, Normal), released as MLMR-COS.zip.

    ASSUMED layout (the release's folder structure could not be verified from here)::

        <subset>/<group>/*.jpg
        <subset>/<group>/GroundTruth/*.png

    Group names are ``"<subset>/<group>"`` so that equal group names in different subsets stay distinct.
    ``subset`` selects one subset name or a sequence of them (case-insensitive); ``None`` loads every one of the
    five subsets present (at least one must be). Other top-level folders are reported as problems.
    """

    @classmethod
    def scan(cls, root: Path, subset: str | Sequence[str] | None = None) -> tuple[list[Entry], list[Problem]]:
        canon = {s.lower(): s for s in SBCOSEG_SUBSETS}
        wanted = [subset] if isinstance(subset, str) else list(subset) if subset is not None else None
        for s in wanted or ():
            if s.lower() not in canon:
                raise ValueError(f"unknown SBCoseg subset {s!r}; valid: {', '.join(SBCOSEG_SUBSETS)}")
        expected = ("SBCoseg (<subset>/<group>/*.jpg with <subset>/<group>/GroundTruth/*.png, subset in "
                    f"{', '.join(SBCOSEG_SUBSETS)})")
        base = _locate(Path(root), lambda p: any(_child(p, s) is not None for s in SBCOSEG_SUBSETS), expected)
        problems: list[Problem] = []
        entries: list[Entry] = []
        if wanted is None:
            subset_dirs = []
            for p in list_dir(base):
                if not p.is_dir():
                    continue
                if p.name.lower() in canon:
                    subset_dirs.append((canon[p.name.lower()], p))
                else:
                    problems.append(Problem(p, f"unexpected folder; expected only subsets {SBCOSEG_SUBSETS}"))
        else:
            subset_dirs = []
            for s in wanted:
                p = _child(base, s)
                if p is None:
                    problems.append(Problem(base / canon[s.lower()], "subset folder missing", missing=True))
                else:
                    subset_dirs.append((canon[s.lower()], p))
        for name, sdir in subset_dirs:
            group_dirs = [p for p in list_dir(sdir) if p.is_dir()]
            if not group_dirs:
                problems.append(Problem(sdir, "empty folder: expected <group>/*.jpg", missing=True))
            for gdir in group_dirs:
                gt = _child(gdir, "GroundTruth") or gdir / "GroundTruth"
                entries += scan_image_dir(f"{name}/{gdir.name}", gdir, gt, problems,
                                          subdirs_allowed=("GroundTruth",))
        return entries, problems

    def __init__(self, root: Path | str, subset: str | Sequence[str] | None = None):
        super().__init__(root, subset=subset if subset is None or isinstance(subset, str) else tuple(subset))
        self.subset = subset


LOADERS: dict[str, type[CosegDataset]] = {
    "folder": CosegFolder,
    "internet": InternetDataset,
    "msrc": MSRCCoseg,
    "icoseg": ICoseg,
    "sbcoseg": SBCoseg,
}


def load_dataset(name: str, root: Path | str, **options) -> CosegDataset:
    """Load dataset ``name`` (one of LOADERS: folder, internet, msrc, icoseg, sbcoseg) from ``root``.

    ``options`` go to the loader (e.g. ``subset="full"`` for internet). Unknown name -> ValueError.
    """
    key = str(name).lower()
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(LOADERS)}")
    return LOADERS[key](root, **options)
