import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from plexus.data import ingest
from plexus.io import rle
from plexus.io.tiff import write_tiff

SHAPE = (420, 580)


def _image(seed):
    return np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)


def _mask(area_rows=0):
    m = np.zeros(SHAPE, dtype=np.uint8)
    m[100:100 + area_rows, 200:260] = 255
    return m


@pytest.fixture
def raw(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for s, i, rows in [(1, 1, 50), (1, 2, 0), (2, 1, 40), (10, 3, 0)]:
        write_tiff(tmp_path / "train" / f"{s}_{i}.tif", _image(s * 100 + i))
        write_tiff(tmp_path / "train" / f"{s}_{i}_mask.tif", _mask(rows))
    for n in (2, 1, 10):
        write_tiff(tmp_path / "test" / f"{n}.tif", _image(n))
    return tmp_path


def _digest(folder: Path):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _data(raw) -> dict:
    """The config's data section of a Kaggle-layout folder (the keys the manifest reads)."""
    return {"raw_dir": str(raw), "format": "kaggle_nerve", "channels": ["image"], "allow_missing_channels": False,
            "color": "auto", "max_snapped_share": 0.05}


def _manifests(raw, out):
    """The manifest jobs of both image sets, as the workflow runs them; their files read back."""
    from plexus.config import KAGGLE_CLASSES
    from plexus.io.contracts import read_manifest, read_table
    from plexus.stages.data import manifest_stage

    files = {"train": out / "train.csv", "test": out / "test.csv", "summary": out / "summary.json",
             "sheet": out / "sheet.tsv", "masks": out / "train_masks.csv"}
    manifest_stage(_data(raw), KAGGLE_CLASSES, files, part="train", threads=1)
    manifest_stage(_data(raw), KAGGLE_CLASSES, files, part="test", threads=1, train_csv=files["train"],
                   summary_json=files["summary"])
    return read_manifest(files["train"]), read_manifest(files["test"]), read_table(files["masks"]), files


def test_valid_folder_gets_the_manifest_every_format_has(raw, tmp_path):
    import json

    before = {part: _digest(raw / part) for part in ("train", "test")}
    train, test, train_masks, files = _manifests(raw, tmp_path / "manifest")
    # the one manifest schema (plexus.data.dataset), as a folders or sheet dataset's
    assert list(train.columns) == ["image_id", "subject", "split", "image", "mask", "height", "width",
                                   "present_image", "mask_area", "mask_classes"]
    assert list(test.columns) == list(train.columns)
    assert train["image_id"].tolist() == ["1_1", "1_2", "2_1", "10_3"]
    assert train["subject"].tolist() == ["1", "1", "2", "10"]
    assert train["mask_area"].tolist() == [50 * 60, 0, 40 * 60, 0]
    assert train["mask_classes"].tolist() == ["nerve", "", "nerve", ""]
    assert train["image"].tolist() == [str((raw / "train" / f"{i}.tif").absolute()) for i in train["image_id"]]
    assert test["image_id"].tolist() == ["1", "2", "10"]  # by number, as Kaggle numbers its test images
    assert test["mask"].tolist() == ["", "", ""]
    assert set(train["height"]) == {420} and set(train["width"]) == {580}
    summary = json.loads(files["summary"].read_text())
    assert summary["classes"] == ["background", "nerve"] and summary["input_channels"] == ["image"]
    assert summary["sizes"] == ["420x580"] and summary["images_with_class"] == {"nerve": 2}
    # Kaggle's run-length table of the training masks, beside it
    assert train_masks.columns.tolist() == ["subject", "img", "pixels"]
    assert (train_masks["subject"] + "_" + train_masks["img"]).tolist() == train["image_id"].tolist()
    np.testing.assert_array_equal(rle.decode(train_masks["pixels"].iloc[0], SHAPE), _mask(50) != 0)
    np.testing.assert_array_equal(ingest.load_masks(train_masks, ["2_1"])[0], _mask(40) != 0)
    assert train_masks["pixels"].iloc[1] == ""
    assert {part: _digest(raw / part) for part in ("train", "test")} == before  # raw data untouched


def test_the_arrays_are_every_formats_arrays_and_equal_resizing_by_hand(raw, tmp_path):
    """Images ``(N, 1, h, w)`` resized by the one resize, masks the class indices of the resized
    one-hot maps: with two classes, the foreground where its antialiased bilinear map is above 0.5
    (computed here with torch directly)."""
    import torch
    import torch.nn.functional as F

    from plexus.config import KAGGLE_CLASSES
    from plexus.io.contracts import read_npz
    from plexus.io.tiff import read_tiff
    from plexus.stages.data import preprocess_stage

    train, _, _, files = _manifests(raw, tmp_path / "manifest")
    for part in ("train", "test"):
        preprocess_stage(part, files[part], files["summary"], "16x24", tmp_path / f"{part}.npz",
                         classes=KAGGLE_CLASSES if part == "train" else None, threads=1)
    arrays = read_npz(tmp_path / "train.npz")
    stack = np.stack([read_tiff(p) for p in train["image"]])
    expected = F.interpolate(torch.from_numpy(stack.astype(np.float32))[:, None], size=(16, 24), mode="bilinear",
                             align_corners=False, antialias=True).round().clamp(0, 255).to(torch.uint8).numpy()
    assert arrays["images"].dtype == np.uint8 and arrays["images"].shape == (4, 1, 16, 24)
    np.testing.assert_array_equal(arrays["images"], expected)
    masks = np.stack([read_tiff(p) for p in train["mask"]]) > 0
    foreground = F.interpolate(torch.from_numpy(masks.astype(np.float32))[:, None], size=(16, 24), mode="bilinear",
                               align_corners=False, antialias=True)[:, 0].numpy() > 0.5
    np.testing.assert_array_equal(arrays["masks"], foreground.astype(np.uint8))
    assert arrays["masks"].any() and arrays["classes"].tolist() == ["background", "nerve"]
    assert read_npz(tmp_path / "test.npz")["images"].shape == (3, 1, 16, 24)


def _expect_problem(raw, fragment, name):
    with pytest.raises(ingest.IngestError) as info:
        ingest.check_layout(raw)
    message = str(info.value)
    assert name in message and fragment in message, message


def test_unreadable_tiff(raw):
    (raw / "train" / "1_1.tif").write_bytes(b"not a tiff at all")
    _expect_problem(raw, "unreadable TIFF", "1_1.tif")


def test_image_without_mask(raw):
    (raw / "train" / "2_1_mask.tif").unlink()
    _expect_problem(raw, "image without a mask", "2_1.tif")


def test_mask_without_image(raw):
    (raw / "train" / "2_1.tif").unlink()
    _expect_problem(raw, "mask without an image", "2_1_mask.tif")


def test_wrong_shape(raw):
    write_tiff(raw / "test" / "2.tif", np.zeros((420, 579), dtype=np.uint8))
    _expect_problem(raw, "shape (420, 579)", "2.tif")


def test_wrong_dtype(raw):
    tifffile.imwrite(raw / "train" / "1_2.tif", np.zeros(SHAPE, dtype=np.uint16))
    _expect_problem(raw, "dtype uint16", "1_2.tif")


def test_rgb_is_wrong_shape(raw):
    tifffile.imwrite(raw / "train" / "1_2.tif", np.zeros((*SHAPE, 3), dtype=np.uint8))
    _expect_problem(raw, "shape (420, 580, 3)", "1_2.tif")


@pytest.mark.parametrize("second_page_shape", [SHAPE, (10, 10)])
def test_multi_page_tiff_is_rejected_by_name(raw, second_page_shape):
    """A stack of pages (same or other size) is never read as its first page."""
    path = raw / "train" / "1_1_mask.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(_mask(50))
        tif.write(np.zeros(second_page_shape, dtype=np.uint8))
    _expect_problem(raw, "multi-page TIFF (2 pages)", "1_1_mask.tif")


def test_mask_not_binary(raw):
    m = _mask(10)
    m[0, 0] = 7
    write_tiff(raw / "train" / "1_1_mask.tif", m)
    _expect_problem(raw, "mask is not binary", "1_1_mask.tif")


@pytest.mark.parametrize(
    "folder,name", [("train", "1-4.tif"), ("train", "a_1.tif"), ("test", "x.tif"), ("train", "0_1.tif")]
)
def test_malformed_name(raw, folder, name):
    write_tiff(raw / folder / name, _image(0))
    _expect_problem(raw, "malformed name", name)


def test_missing_folder(tmp_path):
    with pytest.raises(ingest.IngestError, match="folder not found"):
        ingest.check_layout(tmp_path)


def test_all_problems_reported_together(raw):
    (raw / "train" / "1_1.tif").write_bytes(b"junk")
    (raw / "train" / "2_1_mask.tif").unlink()
    with pytest.raises(ingest.IngestError) as info:
        ingest.check_layout(raw)
    assert len(info.value.problems) == 2
