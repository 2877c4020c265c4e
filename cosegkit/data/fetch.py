"""`fetch_dataset`: download an official archive, verify its SHA-256 and extract it safely.

* Only ``urllib`` is used (``http(s)://`` and ``file://`` URLs).
* An archive is extracted only after its SHA-256 matches. Where the registry does not know the hash (``None``),
  the caller must pass one (``--sha256``); unverified archives are never extracted. At present no source has
  a registered hash (none could be checked against a trusted copy of the official archives), so ``--sha256`` is
  always required.
* Extraction refuses, before writing anything, any member with an absolute path, a path that resolves outside
  the target folder (``../``), or that is a symlink, hardlink or device/FIFO; the error names the member.
* A marker file ``.cosegkit-fetch-<name>.json`` in ``root`` records a completed fetch; fetching again is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["DatasetSource", "SOURCES", "fetch_dataset", "marker_path", "safe_extract", "UnsafeArchiveError"]


@dataclass(frozen=True)
class DatasetSource:
    url: str
    sha256: str | None  # None: unknown here, the user must pass --sha256
    loader: str  # name for load_dataset
    citation: str
    note: str = ""


SOURCES: dict[str, DatasetSource] = {
    "internet": DatasetSource(
        url="http://people.csail.mit.edu/mrub/ObjectDiscovery/ObjectDiscovery-data.zip",
        sha256=None, loader="internet",
        citation="Rubinstein, Joulin, Kopf & Liu, Unsupervised Joint Object Discovery and Segmentation in "
                 "Internet Images, CVPR 2013",
        note="Data/<Class>[100]/ with GroundTruth/; load with InternetDataset(root, subset='100'|'full')."),
    "msrc": DatasetSource(
        url="http://people.csail.mit.edu/mrub/ObjectDiscovery/ObjectDiscovery-data.zip",
        sha256=None, loader="msrc",
        citation="Rubinstein et al., CVPR 2013 (MSRC co-segmentation subset, same release as 'internet')",
        note="MSRC/<class>/*.bmp with GroundTruth/; load with MSRCCoseg(root)."),
    "icoseg": DatasetSource(
        url="http://chenlab.ece.cornell.edu/projects/touch-coseg/CMU_Cornell_iCoseg_dataset.zip",
        sha256=None, loader="icoseg",
        citation="Batra, Kowdle, Parikh, Luo & Chen, iCoseg: Interactive Co-segmentation with Intelligent "
                 "Scribble Guidance, CVPR 2010",
        note="images/<group>/ and ground_truth/<group>/; load with ICoseg(root)."),
    "sbcoseg": DatasetSource(
        url="http://www.iscbit.org/source/MLMR-COS.zip",
        sha256=None, loader="sbcoseg",
        citation="Yu, Liu, Wang & Han, A new challenging image dataset with simple background for evaluating "
                 "and developing co-segmentation algorithms, Signal Processing: Image Communication 83, 2020",
        note="URL as given in the paper's abstract; layout assumed, see SBCoseg's docstring."),
}


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target folder or is a link/special file."""


def marker_path(root: Path | str, name: str) -> Path:
    return Path(root) / f".cosegkit-fetch-{name}.json"


def _download(url: str, dest: Path, chunk: int = 1 << 20) -> str:
    """Stream ``url`` to ``dest``; return the SHA-256 hex digest of the bytes."""
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 (http/file)
        while block := resp.read(chunk):
            h.update(block)
            out.write(block)
    return h.hexdigest()


def _member_target(target: Path, name: str, archive: Path) -> Path:
    pure = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: absolute path")
    dest = (target / pure).resolve()
    if dest != target and target not in dest.parents:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: resolves outside {target}")
    return dest


def safe_extract(archive: Path | str, target: Path | str) -> list[Path]:
    """Extract a zip or tar (any compression) into ``target`` after checking every member; return the files.

    Raises UnsafeArchiveError naming the first unsafe member (nothing is written then), ValueError if the file
    is neither a zip nor a tar archive.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            plan = []
            for info in zf.infolist():
                dest = _member_target(target, info.filename, archive)
                kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip stores no Unix file type
                if kind == stat.S_IFLNK:
                    raise UnsafeArchiveError(f"{archive}: refusing member {info.filename!r}: symbolic link")
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeArchiveError(f"{archive}: refusing member {info.filename!r}: special file")
                plan.append((info, dest))
            for info, dest in plan:
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                written.append(dest)
        return written
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            plan = []
            for m in tf.getmembers():
                dest = _member_target(target, m.name, archive)
                if m.issym() or m.islnk():
                    kind = "symbolic link" if m.issym() else "hard link"
                    raise UnsafeArchiveError(f"{archive}: refusing member {m.name!r}: {kind} to {m.linkname!r}")
                if not (m.isfile() or m.isdir()):
                    raise UnsafeArchiveError(f"{archive}: refusing member {m.name!r}: special file")
                plan.append((m, dest))
            for m, dest in plan:
                if m.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                with src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                written.append(dest)
        return written
    raise ValueError(f"{archive}: not a zip or tar archive")


def fetch_dataset(name: str, root: Path | str, url: str | None = None, sha256: str | None = None) -> Path:
    """Download dataset ``name`` (one of SOURCES) into ``root``, verify its SHA-256 and extract it there.

    ``url`` overrides the registry URL (e.g. a mirror or a ``file://`` path); ``sha256`` the expected hash,
    required where the registry has none. Returns ``root``. If ``root`` already holds the marker of a completed
    fetch of ``name``, returns at once without network access (ValueError if ``sha256`` contradicts it).
    """
    key = str(name).lower()
    if key not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; fetchable datasets: {', '.join(SOURCES)}")
    source = SOURCES[key]
    root = Path(root)
    marker = marker_path(root, key)
    expected = (sha256 or source.sha256 or "").strip().lower() or None
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if marker.is_file():
        done = json.loads(marker.read_text())
        if expected is not None and done.get("sha256") != expected:
            raise ValueError(f"{marker}: {key} was already fetched with sha256 {done.get('sha256')}, not "
                             f"{expected}; remove {root} (or the marker) to fetch again")
        return root
    if expected is None:
        raise ValueError(
            f"no SHA-256 is known for {key!r} ({url or source.url}): cosegkit registers no SHA-256 for any source, "
            "because no hash of the official archives could be checked against a trusted copy, so --sha256 is "
            "required; refusing to download and extract an unverified archive. Compute the hash from a copy you "
            "trust with `sha256sum FILE` and pass it with --sha256 (fetch_dataset(..., sha256=...)).")
    root.mkdir(parents=True, exist_ok=True)
    src_url = url or source.url
    part = root / f".cosegkit-download-{key}.part"
    try:
        got = _download(src_url, part)
        if got != expected:
            raise ValueError(f"SHA-256 mismatch for {src_url}: expected {expected}, got {got}; "
                             "the archive was deleted and nothing was extracted")
        files = safe_extract(part, root)
    finally:
        if part.exists():
            part.unlink()
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": key, "url": src_url, "sha256": expected, "files": len(files),
                               "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))
    os.replace(tmp, marker)
    return root
