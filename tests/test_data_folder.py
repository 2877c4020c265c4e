"""CosegFolder (generic layout) and load_dataset dispatch."""

import shutil

import numpy as np
import pytest
from conftest import mask_fraction, write_image, write_mask

from cosegkit.data import CosegFolder, DatasetLayoutError, load_dataset
from cosegkit.data.items import sha256_file


def test_reads_layout_groups_items_and_ids(make_folder):
    root = make_folder({"dog": 2, "cat": 3})
    (root / "SOURCE.md").write_text("plain files at the root are documentation, not groups")
    ds = CosegFolder(root)
    assert len(ds) == 5
    assert ds.groups == ["cat", "dog"]
    assert [ds.group_of(i) for i in range(5)] == ["cat"] * 3 + ["dog"] * 2
    item = ds[3]
    assert item.group == "dog" and item.path.name == "img_000.jpg" and item.mask_path.name == "img_000.png"
    assert item.image.dtype == np.uint8 and item.image.shape == (24, 32, 3)
    assert item.mask.dtype == bool and item.mask.mean() == pytest.approx(mask_fraction(seed=100))
    assert item.id == sha256_file(item.path) == ds.id_of(3) == ds.records[3].id
    assert ds[-1].path == ds.path_of(4)
    with pytest.raises(IndexError):
        ds[5]
    assert load_dataset("folder", root).groups == ["cat", "dog"]
    assert load_dataset("FOLDER", root).groups == ["cat", "dog"]


def test_byte_identical_images_share_an_id(make_folder):
    root = make_folder({"bike": 1, "person": 1})
    shutil.copy(root / "bike/images/img_000.jpg", root / "person/images/img_001.jpg")
    write_mask(root / "person/masks/img_001.png", seed=5)
    ds = CosegFolder(root)
    assert ds.id_of(0) == ds.id_of(2) != ds.id_of(1)


def test_unknown_dataset_name_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'pascal'.*folder, internet, msrc, icoseg, sbcoseg"):
        load_dataset("pascal", tmp_path)


def test_missing_root_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        CosegFolder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty folder: expected group folders <root>/<group>/images"):
        CosegFolder(tmp_path / "empty")


def test_group_without_images_folder_says_what_was_expected(make_folder):
    root = make_folder({"cat": 1})
    (root / "dog" / "pics").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"dog/images: group folder 'dog' has no images/ sub-folder"):
        CosegFolder(root)


def test_empty_images_folder(make_folder):
    root = make_folder({"cat": 1})
    (root / "dog" / "images").mkdir(parents=True)
    (root / "dog" / "masks").mkdir()
    with pytest.raises(FileNotFoundError, match=r"dog/images: empty folder: no images"):
        CosegFolder(root)


def test_missing_mask_orphan_mask_and_stray_file_are_all_listed(make_folder):
    root = make_folder({"cat": 3})
    (root / "cat/masks/img_001.png").unlink()
    write_mask(root / "cat/masks/img_999.png")
    (root / "cat/images/notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as err:
        CosegFolder(root)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "img_001.jpg: missing mask: expected" in msg and "masks/img_001.png" in msg
    assert "img_999.png: mask without an image of the same stem" in msg
    assert "notes.txt: not an image (extension '.txt'" in msg


def test_non_missing_problems_raise_layout_error(make_folder):
    root = make_folder({"cat": 2})
    (root / "cat/images/readme.txt").write_text("x")
    with pytest.raises(DatasetLayoutError, match="readme.txt: not an image"):
        CosegFolder(root)


def test_bad_files_fail_on_access_naming_the_file(make_folder):
    root = make_folder({"cat": 3})
    write_mask(root / "cat/masks/img_000.png", h=20, w=32)  # wrong size
    img = root / "cat/images/img_001.jpg"
    img.write_bytes(img.read_bytes()[:100])  # truncated
    from PIL import Image

    Image.fromarray(np.full((24, 32), 7, np.uint8)).save(root / "cat/masks/img_002.png")  # non-binary
    ds = CosegFolder(root)  # listing is fine; decoding is not
    with pytest.raises(ValueError, match=r"img_000\.png: mask is 32x20 \(WxH\) but its image .* is 32x24"):
        ds[0]
    with pytest.raises(ValueError, match=r"img_001\.jpg: corrupt or truncated image"):
        ds[1]
    with pytest.raises(ValueError, match=r"img_002\.png: mask is not binary \(values 7\)"):
        ds[2]


def test_other_image_extensions_and_hidden_files(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "g/images/a.png", seed=1)
    write_image(root / "g/images/b.bmp", seed=2, fmt="BMP")
    write_mask(root / "g/masks/a.png")
    write_mask(root / "g/masks/b.png", mode="RGB")
    (root / "g/images/.DS_Store").write_text("x")
    (root / "g/images/Thumbs.db").write_text("x")
    ds = CosegFolder(root)
    assert [r.path.name for r in ds.records] == ["a.png", "b.bmp"]
    assert ds[1].mask.any()


def test_voc_folder_when_available(voc_root):
    ds = CosegFolder(voc_root)
    assert len(ds) == 824 and len(ds.groups) == 20
    item = ds[0]
    assert item.image.shape[:2] == item.mask.shape and item.mask.any()
