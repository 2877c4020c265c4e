"""Strict decoding of images and masks (cosegkit.data.items)."""

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

from cosegkit.data.items import Record, decode_image, decode_mask, load_item, sha256_file


def _save(path, arr, mode=None):
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def test_decode_image_rgb_and_greyscale(tmp_path):
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    out = decode_image(_save(tmp_path / "a.png", arr))
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, arr)
    grey = decode_image(_save(tmp_path / "g.png", np.full((3, 2), 7, np.uint8)))
    assert grey.shape == (3, 2, 3) and (grey == 7).all()


def test_truncated_and_garbage_images_fail_naming_the_file(tmp_path):
    path = write_image(tmp_path / "t.jpg", 64, 64, seed=1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"t\.jpg.*corrupt or truncated image"):
        decode_image(path)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"junk\.png.*corrupt or truncated"):
        decode_image(junk)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        decode_image(tmp_path / "nope.jpg")


def test_truncated_image_fails_even_if_pil_is_told_to_tolerate(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = write_image(tmp_path / "t.jpg", 64, 64, seed=1)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="truncated"):
        decode_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


@pytest.mark.parametrize("fg", [255, 1])
def test_mask_0_255_and_0_1_single_channel(tmp_path, fg):
    arr = np.array([[0, fg, fg], [0, 0, fg]], np.uint8)
    out = decode_mask(_save(tmp_path / "m.png", arr))
    assert out.dtype == bool
    np.testing.assert_array_equal(out, arr == fg)


def test_mask_bilevel_palette_and_identical_rgb(tmp_path):
    arr = np.array([[0, 255], [255, 0]], np.uint8)
    expected = arr == 255
    Image.fromarray(arr > 0).save(tmp_path / "b.png")  # mode "1"
    np.testing.assert_array_equal(decode_mask(tmp_path / "b.png"), expected)
    Image.fromarray(arr).convert("P").save(tmp_path / "p.png")
    np.testing.assert_array_equal(decode_mask(tmp_path / "p.png"), expected)
    _save(tmp_path / "rgb.png", np.repeat(arr[..., None], 3, axis=2))
    np.testing.assert_array_equal(decode_mask(tmp_path / "rgb.png"), expected)
    empty = decode_mask(_save(tmp_path / "e.png", np.zeros((2, 2), np.uint8)))
    assert not empty.any()


def test_non_binary_masks_are_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"m3\.png: mask is not binary \(values 0, 128, 255\)"):
        decode_mask(_save(tmp_path / "m3.png", np.array([[0, 128, 255]], np.uint8)))
    with pytest.raises(ValueError, match=r"mixed\.png: mask is not binary \(values 0, 1, 255\)"):
        decode_mask(_save(tmp_path / "mixed.png", np.array([[0, 1, 255]], np.uint8)))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    with pytest.raises(ValueError, match=r"red\.png: RGB mask whose three channels differ"):
        decode_mask(_save(tmp_path / "red.png", rgb))
    with pytest.raises(ValueError, match=r"rgba\.png: mask has mode 'RGBA'"):
        decode_mask(_save(tmp_path / "rgba.png", np.zeros((2, 2, 4), np.uint8)))


def test_load_item_checks_sizes_and_fills_fields(tmp_path):
    img = write_image(tmp_path / "x.jpg", 10, 12, seed=3)
    good = _save(tmp_path / "x.png", np.zeros((10, 12), np.uint8))
    item = load_item(Record("g", img, good, sha256_file(img)))
    assert item.image.shape == (10, 12, 3) and item.mask.shape == (10, 12)
    assert item.group == "g" and item.path == img and item.mask_path == good
    assert len(item.id) == 64
    bad = _save(tmp_path / "y.png", np.zeros((10, 11), np.uint8))
    with pytest.raises(ValueError, match=r"y\.png: mask is 11x10 \(WxH\) but its image .*x\.jpg is 12x10"):
        load_item(Record("g", img, bad, "0" * 64))
