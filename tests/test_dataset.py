"""plexus.data.dataset: a sample sheet -> manifests (every file checked) -> arrays at a model size."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from plexus.data.dataset import build_manifest, load_arrays
from plexus.data.sheet import SheetError, read_sheet

CLASSES = {"background": 0, "nerve": 128, "artery": 255}


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _dataset(tmp_path, *, bad_value=False, missing=False, mask_shape=None):
    """Two train images of different sizes (one 16-bit TIFF channel + one 8-bit PNG channel), one test image."""
    rng = np.random.default_rng(0)
    rows = ["image_id\tsubject\tsplit\tct\tpet\tmask"]
    for i, (h, w) in enumerate([(20, 30), (24, 16)]):
        tifffile.imwrite(tmp_path / f"ct{i}.tif", rng.integers(0, 60000, (h, w), dtype=np.uint16))
        _png(tmp_path / f"pet{i}.png", rng.integers(0, 255, (h, w), dtype=np.uint8))
        mask = np.zeros(mask_shape or (h, w), np.uint8)
        mask[2:8, 3:9] = 128
        mask[10:14, 1:5] = 255
        if bad_value and i == 1:
            mask[0, 0] = 7
        _png(tmp_path / f"m{i}.png", mask)
        pet = "" if missing and i == 1 else f"pet{i}.png"
        rows.append(f"s{i}\tp{i}\ttrain\tct{i}.tif\t{pet}\tm{i}.png")
    tifffile.imwrite(tmp_path / "ct9.tif", rng.integers(0, 60000, (18, 18), dtype=np.uint16))
    _png(tmp_path / "pet9.png", rng.integers(0, 255, (18, 18), dtype=np.uint8))
    rows.append("t9\tq9\ttest\tct9.tif\tpet9.png\t")
    (tmp_path / "sheet.tsv").write_text("\n".join(rows) + "\n")
    return read_sheet(tmp_path / "sheet.tsv", channels=("ct", "pet"))


def test_manifest_keeps_each_image_size_and_counts_classes(tmp_path):
    sheet = _dataset(tmp_path)
    train, test, summary = build_manifest(sheet, channels=["ct", "pet"], classes=CLASSES)
    assert train[["height", "width"]].values.tolist() == [[20, 30], [24, 16]]
    assert test[["height", "width"]].values.tolist() == [[18, 18]]
    assert train["mask_area"].tolist() == [36 + 16, 36 + 16]
    assert train["mask_classes"].tolist() == ["nerve;artery"] * 2
    assert summary["input_channels"] == ["ct", "pet"] and summary["sizes"] == ["18x18", "20x30", "24x16"]


def test_a_mask_value_outside_the_classes_names_the_row_file_and_value(tmp_path):
    sheet = _dataset(tmp_path, bad_value=True)
    with pytest.raises(SheetError) as error:
        build_manifest(sheet, channels=["ct", "pet"], classes=CLASSES)
    message = str(error.value)
    assert "row 3 (s1)" in message and "m1.png" in message and "7" in message and "128" in message


def test_a_mask_of_another_size_and_a_missing_channel_are_errors(tmp_path):
    sheet = _dataset(tmp_path, mask_shape=(20, 30))
    with pytest.raises(SheetError, match=r"row 3 \(s1\), column mask: .*m1.png: the mask is 20x30, the image is 24x16"):
        build_manifest(sheet, channels=["ct", "pet"], classes=CLASSES)
    missing = _dataset(tmp_path / "b", missing=True) if (tmp_path / "b").mkdir() is None else None
    with pytest.raises(SheetError, match=r"row 3 \(s1\), column pet: empty"):
        build_manifest(missing, channels=["ct", "pet"], classes=CLASSES)
    build_manifest(missing, channels=["ct", "pet"], classes=CLASSES, allow_missing_channels=True)


def test_arrays_stack_channels_in_native_depth_and_resize_class_maps(tmp_path):
    sheet = _dataset(tmp_path, missing=True)
    train, test, summary = build_manifest(sheet, channels=["ct", "pet"], classes=CLASSES,
                                          allow_missing_channels=True)
    out = load_arrays(train, depths=summary["depths"], size=(10, 15), classes=CLASSES)
    assert out["images"].shape == (2, 2, 10, 15) and out["images"].dtype == np.uint16
    assert out["present"].tolist() == [[True, True], [True, False]]
    assert not out["images"][1, 1].any()  # the missing channel is zeros
    assert out["masks"].shape == (2, 10, 15) and set(np.unique(out["masks"])) <= {0, 1, 2}
    # 20x30 -> 10x15 halves each side: the nerve square at rows 2:8, columns 3:9 fills cells 1-3 x 2-3;
    # cells 1 and 4 of the columns are half nerve, half background, a tie the background (lower class) wins
    expected = np.zeros((10, 15), bool)
    expected[1:4, 2:4] = True
    np.testing.assert_array_equal(out["masks"][0] == 1, expected)
    same = load_arrays(train, depths=summary["depths"], size=(20, 30), classes=CLASSES)
    ct = tifffile.imread(tmp_path / "ct0.tif")
    np.testing.assert_array_equal(same["images"][0, 0], ct)  # at its own size an image is unchanged
    assert list(same["classes"]) == list(CLASSES)
    test_arrays = load_arrays(test, depths=summary["depths"], size=(10, 15))
    assert "masks" not in test_arrays and test_arrays["height"].tolist() == [18]
