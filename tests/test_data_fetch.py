"""fetch_dataset against a local http.server serving archives built by the tests."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from functools import partial

import pytest

from cosegkit.data import fetch_dataset, safe_extract
from cosegkit.data.fetch import UnsafeArchiveError, marker_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """(serve_dir, base_url, requests) for an HTTP server on 127.0.0.1 with an ephemeral port."""
    serve = tmp_path / "served"
    serve.mkdir()
    handler = type("H", (_QuietHandler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(serve)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield serve, f"http://127.0.0.1:{httpd.server_address[1]}", handler.requests
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _good_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Data/Car100/0001.jpg", b"jpeg bytes")
        zf.writestr("Data/Car100/GroundTruth/0001.png", b"png bytes")
        zf.writestr("Data/Empty/", b"")
    return path


def _good_tgz(path):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("images/g/1.jpg", b"img"), ("ground_truth/g/1.png", b"mask")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_good_zip_is_verified_extracted_and_refetch_is_a_noop(server, tmp_path):
    serve, base, requests = server
    archive = _good_zip(serve / "good.zip")
    sha = _sha(archive)
    root = tmp_path / "internet"
    out = fetch_dataset("internet", root, url=f"{base}/good.zip", sha256=sha)
    assert out == root
    assert (root / "Data/Car100/0001.jpg").read_bytes() == b"jpeg bytes"
    assert (root / "Data/Car100/GroundTruth/0001.png").read_bytes() == b"png bytes"
    assert (root / "Data/Empty").is_dir()
    assert marker_path(root, "internet").is_file()
    assert not list(root.glob(".cosegkit-download-*"))  # the archive is not kept
    assert requests == ["/good.zip"]
    archive.unlink()  # a re-fetch must not touch the network
    assert fetch_dataset("internet", root, url=f"{base}/good.zip", sha256=sha) == root
    assert fetch_dataset("internet", root) == root
    assert requests == ["/good.zip"]
    with pytest.raises(ValueError, match="was already fetched with sha256"):
        fetch_dataset("internet", root, sha256="0" * 64)


def test_good_tar_gz(server, tmp_path):
    serve, base, _ = server
    archive = _good_tgz(serve / "good.tar.gz")
    root = fetch_dataset("icoseg", tmp_path / "icoseg", url=f"{base}/good.tar.gz", sha256=_sha(archive))
    assert (root / "images/g/1.jpg").read_bytes() == b"img"
    assert (root / "ground_truth/g/1.png").read_bytes() == b"mask"


def test_sha_mismatch_extracts_nothing(server, tmp_path):
    serve, base, _ = server
    archive = _good_zip(serve / "good.zip")
    root = tmp_path / "r"
    with pytest.raises(ValueError, match=f"SHA-256 mismatch for {base}/good.zip: expected {'a' * 64}, got "
                                         f"{_sha(archive)}"):
        fetch_dataset("internet", root, url=f"{base}/good.zip", sha256="A" * 64)
    assert sorted(p.name for p in root.iterdir()) == []  # no archive, no files, no marker


def test_unknown_sha_is_refused_before_download(server, tmp_path):
    _, base, requests = server
    with pytest.raises(ValueError, match=r"no SHA-256 is known for 'sbcoseg'.*--sha256"):
        fetch_dataset("sbcoseg", tmp_path / "r", url=f"{base}/x.zip")
    assert requests == []
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        fetch_dataset("sbcoseg", tmp_path / "r", sha256="xyz")
    with pytest.raises(ValueError, match="unknown dataset 'voc'; fetchable datasets: internet, msrc"):
        fetch_dataset("voc", tmp_path / "r")


def test_zip_with_parent_traversal_is_refused(server, tmp_path):
    serve, base, _ = server
    archive = serve / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("../evil", b"pwned")
    root = tmp_path / "r"
    with pytest.raises(UnsafeArchiveError, match=r"refusing member '\.\./evil': resolves outside"):
        fetch_dataset("internet", root, url=f"{base}/evil.zip", sha256=_sha(archive))
    assert not (tmp_path / "evil").exists()
    assert not (root / "ok.txt").exists()  # checked before anything is written
    assert not marker_path(root, "internet").exists()


def test_tar_with_symlink_is_refused(server, tmp_path):
    serve, base, _ = server
    archive = serve / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        link = tarfile.TarInfo("images/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeArchiveError, match=r"refusing member 'images/link': symbolic link to '/etc/passwd'"):
        fetch_dataset("icoseg", tmp_path / "r", url=f"{base}/link.tar.gz", sha256=_sha(archive))
    assert not (tmp_path / "r/images/link").exists()


def test_safe_extract_other_unsafe_members(tmp_path):
    hard = tmp_path / "hard.tar"
    with tarfile.open(hard, "w") as tf:
        info = tarfile.TarInfo("a/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = "a/target"
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="'a/hard': hard link"):
        safe_extract(hard, tmp_path / "out1")
    absolute = tmp_path / "abs.tar"
    with tarfile.open(absolute, "w") as tf:
        info = tarfile.TarInfo("/tmp/abs-evil")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeArchiveError, match="'/tmp/abs-evil': absolute path"):
        safe_extract(absolute, tmp_path / "out2")
    zlink = tmp_path / "link.zip"
    with zipfile.ZipFile(zlink, "w") as zf:
        info = zipfile.ZipInfo("sub/link")
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="'sub/link': symbolic link"):
        safe_extract(zlink, tmp_path / "out3")
    sneaky = tmp_path / "sneaky.zip"
    with zipfile.ZipFile(sneaky, "w") as zf:
        zf.writestr("a/../../b", b"x")
    with pytest.raises(UnsafeArchiveError, match="resolves outside"):
        safe_extract(sneaky, tmp_path / "out4")
    not_archive = tmp_path / "plain.bin"
    not_archive.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a zip or tar archive"):
        safe_extract(not_archive, tmp_path / "out5")


def test_file_url(tmp_path):
    archive = _good_zip(tmp_path / "local.zip")
    root = fetch_dataset("msrc", tmp_path / "m", url=archive.as_uri(), sha256=_sha(archive))
    assert (root / "Data/Car100/0001.jpg").is_file()
