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


def test_valid_folder(raw):
    before = _digest(raw)
    train, test, train_masks = ingest.scan(raw)
    assert list(train.columns) == [
        "image_id", "subject", "image", "image_path", "mask_path", "height", "width", "mask_area"]
    assert train["image_id"].tolist() == ["1_1", "1_2", "2_1", "10_3"]
    assert train["mask_area"].tolist() == [50 * 60, 0, 40 * 60, 0]
    assert test["image_id"].tolist() == ["1", "2", "10"]
    assert list(test.columns) == ["image_id", "image_path", "height", "width"]
    assert set(train["height"]) == {420} and set(train["width"]) == {580}
    decoded = rle.decode(train_masks["pixels"].iloc[0], SHAPE)
    np.testing.assert_array_equal(decoded, _mask(50) != 0)
    np.testing.assert_array_equal(ingest.load_masks(train_masks, ["2_1"])[0], _mask(40) != 0)
    assert _digest(raw) == before  # raw data untouched


def _expect_problem(raw, fragment, name):
    with pytest.raises(ingest.IngestError) as info:
        ingest.scan(raw)
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
        ingest.scan(tmp_path)


def test_all_problems_reported_together(raw):
    (raw / "train" / "1_1.tif").write_bytes(b"junk")
    (raw / "train" / "2_1_mask.tif").unlink()
    with pytest.raises(ingest.IngestError) as info:
        ingest.scan(raw)
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_read_resized_in_chunks_equals_resizing_the_whole_stack(tmp_path, chunk):
    from plexus.data.resize import resize_images, resize_masks

    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        paths.append(tmp_path / f"{i}.tif")
        write_tiff(paths[-1], rng.integers(0, 256, (42, 58), dtype=np.uint8))
    for resize in (lambda s: resize_images(s, (16, 24)), lambda s: resize_masks(s > 128, (16, 24))):
        np.testing.assert_array_equal(ingest.read_resized(paths, resize, threads=2, chunk=chunk),
                                      resize(ingest.read_stack(paths, threads=2)))
