"""Official-layout loaders on fixtures generated in each layout, and their wrong-layout messages."""

import pytest
from conftest import write_image, write_mask

from cosegkit.data import ICoseg, InternetDataset, MSRCCoseg, SBCoseg, load_dataset


def _pair(folder, mask_folder, stem, seed, ext=".jpg", fmt=None, fg=255):
    write_image(folder / f"{stem}{ext}", seed=seed, fmt=fmt)
    write_mask(mask_folder / f"{stem}.png", seed=seed, fg=fg)


def _internet(root, n100=2, nfull=3):
    for c, cls in enumerate(("Airplane", "Car", "Horse")):
        for k in range(n100):
            d = root / "Data" / f"{cls}100"
            _pair(d, d / "GroundTruth", f"{k:04d}", 10 * c + k)
        for k in range(nfull):
            d = root / "Data" / cls
            _pair(d, d / "GroundTruth", f"{k:04d}", 100 + 10 * c + k)
    return root


def test_internet_subsets_and_top_level_folder(tmp_path):
    root = _internet(tmp_path / "ObjectDiscovery-data")
    ds = InternetDataset(root)
    assert len(ds) == 6 and ds.groups == ["Airplane", "Car", "Horse"]
    assert ds[0].path.parent.name == "Airplane100" and ds[0].mask_path.parent.name == "GroundTruth"
    assert len(InternetDataset(root, subset="full")) == 9
    assert len(InternetDataset(root / "Data", subset="full")) == 9  # root may be Data/ itself
    assert len(InternetDataset(tmp_path)) == 6  # or the folder an archive unpacked into
    assert len(load_dataset("internet", root, subset="full", classes=["Car"])) == 3
    with pytest.raises(ValueError, match="subset must be '100' or 'full'"):
        InternetDataset(root, subset="200")


def test_internet_outlier_empty_mask_is_an_item_but_missing_mask_is_an_error(tmp_path):
    root = _internet(tmp_path / "d")
    write_mask(root / "Data/Car100/GroundTruth/0000.png", fg=0)  # outlier: all-black mask
    ds = InternetDataset(root)
    assert not ds[2].mask.any()
    (root / "Data/Car100/GroundTruth/0001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Car100/0001\.jpg: missing mask: expected .*GroundTruth/0001"):
        InternetDataset(root)


def test_internet_wrong_layout_says_what_it_expected(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"does not look like the Internet dataset \(Data/<Class>100"):
        InternetDataset(tmp_path)
    root = _internet(tmp_path / "x")
    import shutil

    shutil.rmtree(root / "Data/Horse100")
    with pytest.raises(FileNotFoundError, match=r"Horse100: class folder missing: expected Horse100/\*\.jpg"):
        InternetDataset(root)


def test_msrc_case_insensitive_and_restricted_to_cosegnet_classes(tmp_path):
    root = tmp_path / "rel"
    for c, cls in enumerate(("Cow", "PLANE", "car", "sheep", "bird", "cat", "dog", "tree")):
        d = root / "MSRC" / cls
        for k in range(2):
            _pair(d, d / "GroundTruth", f"{k}_s", 10 * c + k, ext=".bmp", fmt="BMP", fg=1)
    ds = MSRCCoseg(root)
    assert ds.groups == sorted(["cow", "plane", "car", "sheep", "bird", "cat", "dog"])
    assert len(ds) == 14 and ds[0].path.suffix == ".bmp" and ds[0].mask.any()
    assert len(MSRCCoseg(root, classes=["Cow"])) == 2
    assert "tree" in MSRCCoseg(root, classes=None).groups
    with pytest.raises(FileNotFoundError, match=r"horse: class folder missing"):
        MSRCCoseg(root, classes=["cow", "horse"])
    with pytest.raises(FileNotFoundError, match=r"does not look like the MSRC co-segmentation release"):
        MSRCCoseg(tmp_path / "rel" / "MSRC" / "tree")


def test_icoseg_official_nesting_and_errors(tmp_path):
    base = tmp_path / "CMU_Cornell_iCoseg_dataset" / "dataset_public"
    for g, group in enumerate(("Alaskan Brown Bear", "Kite Panda")):
        for k in range(3):
            _pair(base / "images" / group, base / "ground_truth" / group, f"{k}", 10 * g + k)
    ds = ICoseg(tmp_path)
    assert ds.groups == ["Alaskan Brown Bear", "Kite Panda"] and len(ds) == 6
    assert ds[4].mask_path.parent.name == "Kite Panda"
    assert len(ICoseg(base, groups=["kite panda"])) == 3
    (base / "ground_truth" / "Kite Panda" / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"Kite Panda/1\.jpg: missing mask"):
        ICoseg(base)
    with pytest.raises(FileNotFoundError, match=r"does not look like iCoseg \(images/<group>/\*\.jpg with "
                                                r"ground_truth/<group>/\*\.png\)"):
        ICoseg(base / "images")


def test_sbcoseg_assumed_layout(tmp_path):
    root = tmp_path / "MLMR-COS"
    for s, subset in enumerate(("ECFB", "TR", "MH", "SD", "Normal")):
        for g in range(2):
            d = root / subset / f"group{g}"
            for k in range(2):
                _pair(d, d / "GroundTruth", f"{k}", 100 * s + 10 * g + k)
    ds = SBCoseg(tmp_path)
    assert len(ds) == 20 and len(ds.groups) == 10 and "ECFB/group0" in ds.groups
    assert SBCoseg(root, subset="tr").groups == ["TR/group0", "TR/group1"]
    assert len(SBCoseg(root, subset=["MH", "SD"])) == 8
    with pytest.raises(ValueError, match="unknown SBCoseg subset 'XX'; valid: ECFB, TR, MH, SD, Normal"):
        SBCoseg(root, subset="XX")
    (root / "Extra").mkdir()
    with pytest.raises(ValueError, match=r"Extra: unexpected folder; expected only subsets"):
        SBCoseg(root)
    with pytest.raises(FileNotFoundError, match=r"does not look like SBCoseg \(<subset>/<group>/\*\.jpg"):
        SBCoseg(root / "TR")
