"""check_dataset reports and the `data check` / `data fetch` CLI handlers."""

import argparse

import numpy as np
import pytest
from conftest import mask_fraction, write_mask
from PIL import Image

from cosegkit.data import check_dataset
from cosegkit.data.cli import add_data_subcommands, main


def test_clean_folder_summary(make_folder):
    root = make_folder({"cat": 3, "dog": 2})
    report = check_dataset(root)
    assert report.ok and report.problems == []
    assert [(g.name, g.images, g.valid) for g in report.groups] == [("cat", 3, 3), ("dog", 2, 2)]
    expected_cat = np.mean([mask_fraction(seed=k) for k in range(3)])
    assert report.groups[0].mean_fg == pytest.approx(expected_cat)
    assert report.n_valid == 5 and report.shared_images == 0
    text = report.format()
    assert "5 valid items in 2 groups" in text and "OK: no problems found" in text
    assert f"{expected_cat:7.3f}" in text


def test_every_bad_file_is_listed(make_folder):
    root = make_folder({"cat": 6, "dog": 1})
    img = root / "cat/images/img_000.jpg"
    img.write_bytes(img.read_bytes()[:-300])  # truncated
    write_mask(root / "cat/masks/img_001.png", h=10, w=10)  # other size
    Image.fromarray(np.array([[0, 3], [255, 0]], np.uint8)).save(root / "cat/masks/img_002.png")  # not binary
    (root / "cat/masks/img_003.png").unlink()  # missing
    (root / "cat/masks/img_004.png").write_bytes(b"garbage")  # corrupt mask
    report = check_dataset(root)
    assert not report.ok
    bad = {p.name: msg for p, msg in report.problems}
    assert set(bad) == {"img_000.jpg", "img_001.png", "img_002.png", "img_003.jpg", "img_004.png"}
    assert "corrupt or truncated image" in bad["img_000.jpg"]
    assert bad["img_001.png"].startswith("mask is 10x10 (WxH) but its image img_001.jpg is 32x24")
    assert "not binary (values 0, 3, 255)" in bad["img_002.png"]
    assert bad["img_003.jpg"].startswith("missing mask")
    assert "corrupt or truncated mask" in bad["img_004.png"]
    cat = report.groups[0]
    assert (cat.name, cat.images, cat.valid) == ("cat", 5, 1)  # img_003 has no mask, so is not an item
    text = report.format()
    assert "FAILED: 5 bad file(s)" in text and str(root / "cat/images/img_000.jpg") in text


def test_check_other_layout_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'voc'"):
        check_dataset(tmp_path, name="voc")
    (tmp_path / "empty").mkdir()
    report = check_dataset(tmp_path / "empty")
    assert not report.ok and "empty folder" in report.problems[0][1]


def test_cli_check_exit_codes(make_folder, capsys):
    root = make_folder({"cat": 2})
    assert main(["data", "check", str(root)]) == 0
    assert "2 valid items in 1 groups" in capsys.readouterr().out
    (root / "cat/masks/img_000.png").unlink()
    assert main(["data", "check", str(root)]) == 2
    out = capsys.readouterr().out
    assert "FAILED: 1 bad file(s)" in out and "img_000.jpg: missing mask" in out
    assert main(["data", "check", str(root / "absent")]) == 2
    assert "dataset root not found" in capsys.readouterr().err


def test_cli_registers_under_a_parent_parser(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="cosegkit")
    add_data_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "fetch", "icoseg", "--root", str(tmp_path)])
    assert args.handler(args) == 2  # no registered SHA-256 and none given: refused before any download
    err = capsys.readouterr().err
    assert "refusing to download and extract an unverified archive" in err
    assert "--sha256 is required" in err and "registers no SHA-256" in err
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "fetch", "icoseg"])  # --root is required


def test_check_voc_when_available(voc_root):
    report = check_dataset(voc_root)
    assert report.ok, report.format()
    assert report.n_valid == 824 and len(report.groups) == 20
    assert report.shared_images == 174  # 78 images under two classes + 6 under three, in this copy
    person = next(g for g in report.groups if g.name == "Person")
    assert person.images == 93 and person.mean_fg == pytest.approx(0.10, abs=0.005)


def test_palette_mask_is_not_called_rgb_and_empty_file_is_named(make_folder):
    from cosegkit.data.items import decode_image, decode_mask

    root = make_folder({"cat": 3})
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 1 shows red: not a grey mask
    pal.save(root / "cat/masks/img_000.png")
    empty = root / "cat/images/img_001.jpg"
    empty.write_bytes(b"")
    bad = {p.name: msg for p, msg in check_dataset(root).problems}
    assert "palette" in bad["img_000.png"] and "RGB" not in bad["img_000.png"]
    assert "empty file" in bad["img_001.jpg"] and "BytesIO" not in bad["img_001.jpg"]
    with pytest.raises(ValueError) as e:
        decode_image(empty, b"")
    assert str(empty) in str(e.value) and "BytesIO" not in str(e.value)
    with pytest.raises(ValueError, match="palette"):
        decode_mask(root / "cat/masks/img_000.png")


def test_cli_check_exits_2_on_bad_input(make_folder, capsys):
    root = make_folder({"cat": 2})
    (root / "cat/masks/img_000.png").write_bytes(b"garbage")
    assert main(["data", "check", str(root)]) == 2
    assert main(["data", "check", str(root / "absent")]) == 2
    capsys.readouterr()
