"""The DSB2018 importer on a synthetic folder, and one broken file at a time."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from plexus.data.dsb2018 import Dsb2018Error, instance_labels, read_image, scan_dsb2018
from plexus.data.synthetic_nuclei import generate_nuclei

SIZES = ((40, 48), (48, 40))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("dsb")
    summary = generate_nuclei(root, n_images=4, n_test=2, sizes=SIZES, seed=1)
    return root, summary


@pytest.fixture
def root(pristine, tmp_path):
    """A private copy to break."""
    copy = tmp_path / "dsb"
    shutil.copytree(pristine[0], copy)
    return copy


def _first(root, split="stage1_train"):
    return sorted((root / split).iterdir())[0]


def _error(root) -> Dsb2018Error:
    with pytest.raises(Dsb2018Error) as caught:
        scan_dsb2018(root)
    return caught.value


def test_scan_finds_everything(pristine):
    root, summary = pristine
    train, test = scan_dsb2018(root)
    assert list(train.columns) == ["image_id", "image_path", "mask_paths", "height", "width", "channels"]
    assert list(test.columns) == ["image_id", "image_path", "height", "width", "channels"]
    records = {r["image_id"]: r for r in summary["stage1_train"]}
    assert sorted(records) == train["image_id"].tolist()
    assert len(test) == 2
    for row in train.itertuples():
        record = records[row.image_id]
        assert (row.height, row.width, row.channels) == (record["height"], record["width"], record["channels"])
        assert len(row.mask_paths) == record["nuclei"]
        assert row.mask_paths == sorted(row.mask_paths)
        assert row.image_path.endswith(f"{row.image_id}/images/{row.image_id}.png")


def test_labels_round_trip_to_the_masks(pristine):
    train, _ = scan_dsb2018(pristine[0])
    for row in train.itertuples():
        labels = instance_labels(row.mask_paths, (row.height, row.width))
        assert labels.dtype == np.int32 and labels.max() == len(row.mask_paths)
        for k, path in enumerate(sorted(row.mask_paths), start=1):
            np.testing.assert_array_equal(labels == k, np.asarray(Image.open(path)) > 0)


def test_read_image_gives_three_channels(pristine, tmp_path):
    train, test = scan_dsb2018(pristine[0])
    for row in train.itertuples():
        image = read_image(row.image_path)
        assert image.dtype == np.uint8 and image.shape == (row.height, row.width, 3)
        np.testing.assert_array_equal(image, np.asarray(Image.open(row.image_path))[..., :3])
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, axis=2))
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])  # alpha dropped, not composited


def test_missing_test_split_gives_an_empty_table(root):
    shutil.rmtree(root / "stage1_test")
    train, test = scan_dsb2018(root)
    assert len(train) == 4 and len(test) == 0


def test_missing_train_split(tmp_path):
    assert "stage1_train" in str(_error(tmp_path))


def test_missing_images_folder(root):
    sample = _first(root)
    shutil.rmtree(sample / "images")
    error = _error(root)
    assert len(error.problems) == 1 and f"{sample}: no images/ folder" in str(error)


def test_missing_masks_folder(root):
    sample = _first(root)
    shutil.rmtree(sample / "masks")
    assert f"{sample}: no masks/ folder" in str(_error(root))


def test_image_named_wrong(root):
    sample = _first(root)
    wrong = sample / "images" / "image.png"
    (sample / "images" / f"{sample.name}.png").rename(wrong)
    error = _error(root)
    assert str(wrong) in str(error) and f"images/{sample.name}.png" in str(error)


def test_unreadable_png(root):
    sample = _first(root, "stage1_test")
    path = sample / "images" / f"{sample.name}.png"
    path.write_bytes(path.read_bytes()[:60])  # truncated
    error = _error(root)
    assert str(path) in str(error) and "unreadable PNG" in str(error)
    path.write_bytes(b"not a png at all")
    assert f"{path}: not a PNG file" in str(_error(root))


def test_mask_shape_differs(root):
    sample = _first(root)
    mask = sorted((sample / "masks").iterdir())[0]
    Image.fromarray(np.full((5, 7), 255, np.uint8)).save(mask)
    error = _error(root)
    assert str(mask) in str(error) and "mask shape (5, 7) differs" in str(error)


def test_mask_not_binary(root):
    sample = _first(root)
    mask = sorted((sample / "masks").iterdir())[0]
    values = np.asarray(Image.open(mask)).copy()
    values[np.nonzero(values)[0][0], np.nonzero(values)[1][0]] = 128
    Image.fromarray(values).save(mask)
    error = _error(root)
    assert str(mask) in str(error) and "not binary" in str(error) and "128" in str(error)
    Image.fromarray(np.stack([values] * 3, axis=2)).save(mask)  # an RGB mask
    assert "single-channel" in str(_error(root))


def test_empty_mask(root):
    sample = _first(root)
    mask = sorted((sample / "masks").iterdir())[-1]
    shape = np.asarray(Image.open(mask)).shape
    Image.fromarray(np.zeros(shape, np.uint8)).save(mask)
    assert f"{mask}: empty mask" in str(_error(root))


def test_overlapping_masks_name_the_image_both_files_and_the_pixel_count(root):
    sample = _first(root)
    first, second = sorted((sample / "masks").iterdir())[:2]
    a, b = np.asarray(Image.open(first)) > 0, np.asarray(Image.open(second)) > 0
    shared = a.copy()
    shared[:, :] = False
    shared[np.nonzero(a)[0][:5], np.nonzero(a)[1][:5]] = True  # 5 pixels of the first mask
    Image.fromarray(np.where(b | shared, 255, 0).astype(np.uint8)).save(second)
    expected = f"image {sample.name}: masks {first.name} and {second.name} overlap in 5 pixel(s)"
    with pytest.raises(Dsb2018Error, match="overlap") as caught:
        instance_labels([second, first], a.shape)  # any order in: sorted by name
    assert expected in str(caught.value)
    assert expected in str(_error(root))  # the scan checks it too


def test_all_problems_are_reported_together_and_long_lists_are_cut(root):
    samples = sorted((root / "stage1_train").iterdir())
    masks = [m for s in samples for m in sorted((s / "masks").iterdir())]
    for mask in masks:
        Image.fromarray(np.zeros(np.asarray(Image.open(mask)).shape, np.uint8)).save(mask)
    for sample in (root / "stage1_test").iterdir():
        shutil.rmtree(sample / "images")
    count = len(masks) + 2
    assert count > 20
    error = _error(root)
    assert isinstance(error, ValueError)
    assert len(error.problems) == count
    message = str(error)
    assert message.startswith(f"{count} problem(s) in {root}:")
    assert message.count("\n  - ") == 20 and f"... and {count - 20} more" in message
