"""The synthetic sheet datasets: layout, determinism, sheet round trip, values and the properties the tasks rely on."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from plexus.data.sheet import check_files, read_sheet
from plexus.data.synthetic_semantic import (
    MULTICHANNEL_VALUES,
    MULTICLASS_VALUES,
    SHEET_NAME,
    SUMMARY_NAME,
    generate_multichannel,
    generate_multiclass,
)
from plexus.io.images import read_image

CHANNELS = ("t1", "t2", "flair")
SMALL = dict(n_subjects=3, images_per_subject=4, n_test_subjects=1, test_images_per_subject=3)


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiclass")
    return root, generate_multiclass(root)  # the defaults


@pytest.fixture(scope="module")
def multichannel(tmp_path_factory):
    root = tmp_path_factory.mktemp("multichannel")
    return root, generate_multichannel(root)  # the defaults


def _tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _summary(root) -> dict:
    return json.loads((root / SUMMARY_NAME).read_text())


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


@pytest.mark.parametrize("generate", [generate_multiclass, generate_multichannel])
def test_deterministic_and_rerun_over_previous_output(tmp_path, generate):
    generate(tmp_path / "a", seed=5, **SMALL)
    generate(tmp_path / "b", seed=5, **SMALL)
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    generate(tmp_path / "a", seed=5, **SMALL)  # over its own previous output: allowed, same bytes
    assert _tree(tmp_path / "a") == first
    generate(tmp_path / "c", seed=6, **SMALL)
    assert _tree(tmp_path / "c") != first


@pytest.mark.parametrize("generate, channels", [(generate_multiclass, ("image",)),
                                                (generate_multichannel, CHANNELS)])
def test_sheet_reads_back_and_files_check(tmp_path, generate, channels):
    frame = generate(tmp_path, seed=1, **SMALL)
    sheet = read_sheet(tmp_path / SHEET_NAME, channels=channels)
    pd.testing.assert_frame_equal(frame, sheet)
    assert list(sheet.columns) == ["image_id", "subject", "split", *channels, "mask", "mask_rater2"]
    rated = sheet[sheet["mask_rater2"] != ""]
    assert len(rated) == round(0.5 * (sheet["split"] == "train").sum()) and set(rated["split"]) == {"train"}
    info = check_files(sheet, channels=channels, allow_missing_channels=len(channels) > 1, read_pixels=True)
    assert len(info) == len(sheet)
    raw = pd.read_csv(tmp_path / SHEET_NAME, sep="\t", dtype=str, keep_default_na=False)
    for column in (*channels, "mask"):  # paths relative to out_dir
        assert all(not cell.startswith("/") for cell in raw[column])
    train, test = sheet[sheet["split"] == "train"], sheet[sheet["split"] == "test"]
    assert len(train) == 12 and len(test) == 3
    assert all(re.fullmatch(r"s0[1-3]_00[1-4]", i) for i in train["image_id"])
    assert all(re.fullmatch(r"t01_00[1-3]", i) for i in test["image_id"])
    assert (train["subject"] == train["image_id"].str[:3]).all()
    assert (test["subject"] == "t01").all() and (test["mask"] == "").all() and (train["mask"] != "").all()
    summary = _summary(tmp_path)
    assert summary["images"] == {"train": 12, "test": 3}
    assert summary["arguments"]["seed"] == 1


def test_multiclass_files(multiclass):
    root, sheet = multiclass
    assert (sheet["split"] == "train").sum() == 96 and (sheet["split"] == "test").sum() == 12
    shapes = set()
    pixels = []
    for _, row in sheet.iterrows():
        image = read_image(row["image"])
        assert row["image"].endswith(".tif") and image.dtype == np.uint16 and image.ndim == 2
        shapes.add(image.shape)
        pixels.append(np.percentile(image, [1, 50, 99]))
        if row["mask"]:
            mask = read_image(row["mask"])
            assert mask.dtype == np.uint8 and mask.shape == image.shape
            assert set(np.unique(mask)) <= set(MULTICLASS_VALUES.values())
    assert len(shapes) == 3 and shapes <= {(96, 128), (128, 128), (112, 144)}
    p1, p50, p99 = np.median(pixels, axis=0)
    assert 2000 < p1 < p50 < p99 < 62000 and p99 - p1 > 15000
    for subject, part in sheet.groupby("subject"):
        assert len({read_image(p).shape for p in part["image"]}) == 1, subject


def test_multiclass_class_shares(multiclass):
    root, sheet = multiclass
    train = sheet[sheet["split"] == "train"]
    masks = [read_image(p) for p in train["mask"]]
    nerve = np.mean([(m == MULTICLASS_VALUES["nerve"]).any() for m in masks])
    artery = np.mean([(m == MULTICLASS_VALUES["artery"]).any() for m in masks])
    assert abs(nerve - 0.75) < 0.08 and abs(artery - 0.85) < 0.08
    summary = _summary(root)
    assert summary["class_image_share"]["nerve"] == pytest.approx(nerve)
    assert summary["class_image_share"]["artery"] == pytest.approx(artery)
    fractions = summary["class_pixel_fraction"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert 0.003 < fractions["nerve"] < 0.05 and 0.005 < fractions["artery"] < 0.06
    assert summary["missing_channels"] == {"train": {"image": 0}, "test": {"image": 0}}


def test_multiclass_not_solved_by_a_threshold(multiclass):
    _, sheet = multiclass
    train = sheet[sheet["split"] == "train"]
    images = [read_image(p) for p in train["image"]]
    arteries = [read_image(p) == MULTICLASS_VALUES["artery"] for p in train["mask"]]
    pooled_x, pooled_y = np.concatenate([i.ravel() for i in images]), np.concatenate([a.ravel() for a in arteries])
    best = max(_dice(pooled_y, pooled_x >= t) for t in np.quantile(pooled_x, np.linspace(0.8, 0.999, 60)))
    assert best < 0.7
    # even a threshold chosen for each image with its mask known
    per_image = [max(_dice(a, i >= t) for t in np.quantile(i, np.linspace(0.8, 0.999, 60)))
                 for i, a in zip(images, arteries) if a.any()]
    assert np.mean(per_image) < 0.8
    # but the artery is brighter than the rest of its image
    assert np.mean([i[a].mean() > i[~a].mean() for i, a in zip(images, arteries) if a.any()]) > 0.9


def test_multichannel_files_and_missing_channels(multichannel):
    root, sheet = multichannel
    shapes = set()
    lacking = 0
    for _, row in sheet.iterrows():
        image_id = row["image_id"]
        empty = [c for c in CHANNELS if not row[c]]
        assert len(empty) <= 1
        for c in CHANNELS:
            assert (root / c / f"{image_id}.png").exists() == (c not in empty)
        lacking += bool(empty)
        planes = [read_image(row[c]) for c in CHANNELS if row[c]]
        assert all(p.dtype == np.uint8 and p.shape == planes[0].shape for p in planes)
        shapes.add(planes[0].shape)
        if row["mask"]:
            mask = read_image(row["mask"])
            assert mask.dtype == np.uint8 and mask.shape == planes[0].shape
            assert set(np.unique(mask)) <= set(MULTICHANNEL_VALUES.values())
    assert shapes == {(96, 96), (112, 128)}
    summary = _summary(root)
    assert summary["rows_missing_a_channel"] == {"train": 10, "test": 1}  # round(0.1 * 96), round(0.1 * 12)
    assert lacking == 11
    counts = summary["missing_channels"]
    for split in ("train", "test"):
        part = sheet[sheet["split"] == split]
        assert counts[split] == {c: int((part[c] == "").sum()) for c in CHANNELS}


def test_multichannel_lesion_share_and_visibility(multichannel):
    root, sheet = multichannel
    train = sheet[sheet["split"] == "train"]
    masks = [read_image(p) == MULTICHANNEL_VALUES["lesion"] for p in train["mask"]]
    share = np.mean([m.any() for m in masks])
    assert 0.5 < share < 0.7  # about 40% of the images have no lesion
    assert _summary(root)["class_image_share"]["lesion"] == pytest.approx(share)
    inside = {c: [] for c in CHANNELS}
    outside = {c: [] for c in CHANNELS}
    for (_, row), lesion in zip(train.iterrows(), masks):
        if not lesion.any():
            continue
        for c in CHANNELS:
            if row[c]:
                plane = read_image(row[c]).astype(float)
                tissue = ~lesion & (plane > 40)  # the head, not the air around it
                inside[c].append(plane[lesion].mean())
                outside[c].append(plane[tissue].mean())
    flair_gain = np.array(inside["flair"]) - np.array(outside["flair"])
    assert (flair_gain > 0).all() and flair_gain.mean() > 30  # bright on flair
    assert np.mean(inside["t2"]) > np.mean(outside["t2"])  # bright on t2, fainter
    # flair alone is not enough: a threshold on it does not find the lesions
    flair = [read_image(r["flair"]) for _, r in train.iterrows() if r["flair"]]
    truth = [m for (_, r), m in zip(train.iterrows(), masks) if r["flair"]]
    x, y = np.concatenate([f.ravel() for f in flair]), np.concatenate([m.ravel() for m in truth])
    assert max(_dice(y, x >= t) for t in np.linspace(100, 250, 60)) < 0.6


def test_channel_subset_keeps_the_images(tmp_path):
    full = generate_multichannel(tmp_path / "full", missing_rate=0.0, seed=2, **SMALL)
    alone = generate_multichannel(tmp_path / "flair", channels=("flair",), missing_rate=0.0, seed=2, **SMALL)
    assert list(alone.columns) == ["image_id", "subject", "split", "flair", "mask", "mask_rater2"]
    assert not (tmp_path / "flair" / "t1").exists()
    for a, b in zip(full.itertuples(), alone.itertuples()):
        assert open(a.flair, "rb").read() == open(b.flair, "rb").read()
        if a.mask:
            assert open(a.mask, "rb").read() == open(b.mask, "rb").read()


def test_refuses_foreign_data(tmp_path):
    foreign = tmp_path / "data"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "sub" / "notes.txt").write_text("mine")
    for generate in (generate_multiclass, generate_multichannel):
        with pytest.raises(ValueError, match=re.escape(str(foreign))):
            generate(foreign, **SMALL)
    assert [p.name for p in foreign.rglob("*")] == ["sub", "notes.txt"]
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match=re.escape(str(file))):
        generate_multiclass(file, **SMALL)
    empty = tmp_path / "empty"
    (empty / "folder").mkdir(parents=True)  # only empty folders: written into
    generate_multiclass(empty, **SMALL)
    assert (empty / SUMMARY_NAME).is_file() and not (empty / ".synthetic_incomplete").exists()


def test_rerun_removes_stale_files(tmp_path):
    generate_multichannel(tmp_path, n_subjects=3, images_per_subject=4, n_test_subjects=1, test_images_per_subject=2)
    generate_multiclass(tmp_path, n_subjects=2, images_per_subject=3, n_test_subjects=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "masks", "masks_rater2", SHEET_NAME,
                                                          SUMMARY_NAME]
    assert len(list((tmp_path / "images").iterdir())) == 6 and len(list((tmp_path / "masks").iterdir())) == 6
    assert len(list((tmp_path / "masks_rater2").iterdir())) == 3  # the earlier run's second masks are gone
    sheet = read_sheet(tmp_path / SHEET_NAME)
    assert (sheet["split"] == "train").all() and len(sheet) == 6


@pytest.mark.parametrize("kwargs", [dict(n_subjects=0), dict(images_per_subject=1.5), dict(seed=-1),
                                    dict(sizes=()), dict(sizes=((20, 64),)), dict(sizes=((64,),))])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_multiclass(tmp_path / "out", **kwargs)


@pytest.mark.parametrize("kwargs", [dict(channels=("t1", "dwi")), dict(channels=("t1", "t1")), dict(channels=()),
                                    dict(channels=("flair",), missing_rate=0.1), dict(missing_rate=1.5)])
def test_bad_channel_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_multichannel(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_second_rater_moves_each_outline_by_one_pixel():
    from plexus.data.synthetic_semantic import rater2_mask

    yy, xx = np.mgrid[:40, :40]
    mask = np.zeros((40, 40), np.uint8)
    mask[(yy - 20) ** 2 + (xx - 20) ** 2 < 100] = 128
    mask[(yy - 20) ** 2 + (xx - 20) ** 2 < 16] = 255
    for seed in range(6):
        other = rater2_mask(mask, np.random.default_rng(seed))
        assert set(np.unique(other)) <= {0, 128, 255} and not np.array_equal(other, mask)
        for value in (128, 255):
            a, b = mask == value, other == value
            assert 0.5 < 2 * (a & b).sum() / (a.sum() + b.sum()) < 1
    missed = rater2_mask(mask, np.random.default_rng(0), omit=True)
    assert len(np.unique(missed)) < 3  # one class's only component missed
