"""Tests of the synthetic Kaggle-like dataset (plexus.data.synthetic)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from plexus.data.synthetic import generate_dataset
from plexus.io.tiff import read_tiff

SMALL = dict(n_subjects=4, images_per_subject=6, n_test_subjects=2, test_images_per_subject=4)
H, W = 420, 580


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "raw"
    return out, generate_dataset(out, seed=7, **SMALL)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    """The default-size dataset (240 train + 48 test images), generated once."""
    out = tmp_path_factory.mktemp("default")
    summary = generate_dataset(out)
    ids = sorted(summary["mask_area"], key=lambda k: tuple(map(int, k.split("_"))))
    images = {k: read_tiff(out / "train" / f"{k}.tif") for k in ids}
    masks = {k: read_tiff(out / "train" / f"{k}_mask.tif") > 0 for k in ids}
    return out, summary, images, masks


def _layout(image):
    """Coarse anatomy of an image (speckle and small shifts smoothed away), z-scored."""
    x = image.astype(np.float32).reshape(H // 5, 5, W // 5, 5).mean(axis=(1, 3))
    x = ndimage.gaussian_filter(x, 2)[::2, ::2]
    return (x - x.mean()) / x.std()


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_names_and_format(small):
    out, summary = small
    train = sorted(p.name for p in (out / "train").iterdir())
    expected = sorted(f"{s}_{i}{suffix}.tif"
                      for s in range(1, 5) for i in range(1, 7) for suffix in ("", "_mask"))
    assert train == expected
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(f"{n}.tif" for n in range(1, 9))
    assert (out / "synthetic_summary.json").is_file()
    for path in [*(out / "train").iterdir(), *(out / "test").iterdir()]:
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) == 1
            page = tif.pages[0]
            assert page.compression == 5, f"{path.name} is not LZW"
            array = page.asarray()
        assert array.shape == (H, W) and array.dtype == np.uint8, path.name
        if path.name.endswith("_mask.tif"):
            assert set(np.unique(array)) <= {0, 255}, path.name
        else:
            assert array.std() > 20, f"{path.name} looks blank"


def test_summary_matches_files(small):
    out, summary = small
    assert json.loads((out / "synthetic_summary.json").read_text()) == json.loads(json.dumps(summary))
    areas = {p.name[: -len("_mask.tif")]: int(np.count_nonzero(read_tiff(p)))
             for p in (out / "train").glob("*_mask.tif")}
    assert summary["mask_area"] == areas
    assert summary["n_train"] == 24 and summary["n_test"] == 8
    assert summary["n_nonempty"] == sum(a > 0 for a in areas.values())
    assert summary["fraction_nonempty"] == pytest.approx(summary["n_nonempty"] / 24)
    for s, info in summary["subjects"].items():
        assert info["n_images"] == 6
        assert info["n_nonempty"] == sum(areas[f"{s}_{i}"] > 0 for i in range(1, 7))
        assert 1 <= info["n_visible"] and info["n_nonempty"] <= info["n_visible"]
    assert sorted(summary["test_subject"], key=int) == [str(n) for n in range(1, 9)]
    assert sorted(set(summary["test_subject"].values())) == ["T1", "T2"]
    images = np.stack([read_tiff(p) for p in (out / "train").glob("*_[0-9].tif")])
    assert summary["intensity"]["mean"] == pytest.approx(images.mean())
    assert summary["intensity"]["std"] == pytest.approx(images.std())


def test_same_seed_is_byte_identical_and_other_seed_differs(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    generate_dataset(again, seed=7, **SMALL)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    generate_dataset(other, seed=8, **SMALL)
    a, b = _files(out), _files(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if not k.endswith("_mask.tif") and k.endswith(".tif"))


def test_threads_write_the_same_files_and_summary(small, tmp_path):
    """Subjects rendered in parallel: every frame has its own seed, so nothing may change."""
    out, summary = small
    parallel = tmp_path / "parallel"
    assert generate_dataset(parallel, seed=7, threads=3, **SMALL) == summary
    assert _files(parallel) == _files(out)  # the TIFFs and synthetic_summary.json, byte for byte


def test_overwrites_its_files_and_leaves_others(small, tmp_path):
    out, _ = small
    target = tmp_path / "raw"
    (target / "train").mkdir(parents=True)
    (target / "train" / "1_1.tif").write_bytes(b"stale")
    (target / "train" / "notes.txt").write_text("keep me")
    generate_dataset(target, seed=7, **SMALL)
    assert (target / "train" / "1_1.tif").read_bytes() == (out / "train" / "1_1.tif").read_bytes()
    assert (target / "train" / "notes.txt").read_text() == "keep me"
    assert not list(target.rglob("*.tmp*")), "temporary files left behind"


@pytest.mark.parametrize("kwargs", [dict(seed=-1), dict(seed=1.5), dict(n_subjects=0),
                                    dict(images_per_subject=0), dict(n_test_subjects=-1)])
def test_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_dataset(tmp_path, **{**SMALL, **kwargs})


def test_default_label_statistics(default):
    out, summary, images, masks = default
    assert summary["n_train"] == 240 and summary["n_test"] == 48
    assert len(list((out / "test").glob("*.tif"))) == 48
    areas = np.array([m.sum() for m in masks.values()])
    nonempty = areas[areas > 0]
    assert 0.30 <= len(nonempty) / len(areas) <= 0.55
    assert nonempty.min() >= 2000 and nonempty.max() <= 20000
    assert 5000 <= np.median(nonempty) <= 9500
    rates = [np.mean([masks[f"{s}_{i}"].any() for i in range(1, 25)]) for s in range(1, 11)]
    assert max(rates) - min(rates) > 0.3
    assert min(rates) > 0, "every subject has at least one non-empty mask"
    assert 1 <= summary["n_label_noise"] <= 10


def test_default_intensity_statistics(default):
    _, summary, images, _ = default
    hist = sum(np.bincount(x.ravel(), minlength=256) for x in images.values())
    levels = np.arange(256)
    mean = (hist * levels).sum() / hist.sum()
    std = np.sqrt((hist * (levels - mean) ** 2).sum() / hist.sum())
    cdf = np.cumsum(hist) / hist.sum()
    assert 75 <= mean <= 110
    assert 45 <= std <= 70
    assert 60 <= np.searchsorted(cdf, 0.5) <= 95  # median
    assert np.searchsorted(cdf, 0.01) <= 20  # 1st percentile: anechoic vessels, dark fascicles
    assert 0.001 < hist[255] / hist.sum() < 0.10  # saturated fascia
    one = images["1_1"]
    assert summary["intensity"]["mean"] == pytest.approx(mean)
    assert one.mean() > 60 and one.std() > 40
    # speckle grain of a few pixels: neighbours correlate, pixels 8 apart much less
    img = images["1_1"].astype(np.float32)
    img -= ndimage.gaussian_filter(img, 8)

    def corr(dx):
        return np.corrcoef(img[:, :-dx].ravel(), img[:, dx:].ravel())[0, 1]
    assert corr(1) > 0.5 and corr(8) < 0.2


def test_masks_are_compact_upper_blobs(default):
    _, _, _, masks = default
    for key, m in masks.items():
        if not m.any():
            continue
        _, n = ndimage.label(m)
        assert n == 1, key
        ys, xs = np.nonzero(m)
        fill = m.sum() / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1))
        assert 0.6 < fill < 0.95, key  # ellipse-like: pi/4 of its box
        assert 60 <= np.ptp(xs) + 1 <= 200 and 40 <= np.ptp(ys) + 1 <= 160, key
        assert ys.mean() < 0.6 * H, key


def test_nerve_is_dark_honeycomb_in_bright_rim(default):
    _, _, images, masks = default
    stats = []
    for key, m in masks.items():
        if not m.any():
            continue
        smooth = ndimage.gaussian_filter(images[key].astype(np.float32), 3)
        inner = ndimage.binary_erosion(m, iterations=8)
        ring = ndimage.binary_dilation(m, iterations=4) & ~ndimage.binary_erosion(m, iterations=4)
        stats.append((smooth[ring].mean(), smooth[inner].mean(), np.percentile(smooth[inner], 5)))
    ring, inner, dark = np.array(stats).T
    assert (ring > inner).mean() > 0.9
    assert np.median(ring - inner) > 20
    assert (dark < 0.5 * ring).mean() > 0.8  # dark fascicles inside


def test_subjects_have_their_own_anatomy(default):
    _, _, images, masks = default

    def small(k):
        return _layout(images[k])

    # frames of one subject are near-duplicates; frames of different subjects are not
    same, other = [], []
    for s in range(1, 11):
        a = small(f"{s}_1")
        same.append(np.median([np.mean(a * small(f"{s}_{i}")) for i in range(2, 8)]))
        other.append(max(np.mean(a * small(f"{t}_2")) for t in range(1, 11) if t != s))
    assert min(same) > max(other)
    assert np.median(same) > 0.7
    # the nerve stays near the same place within a subject
    for s in range(1, 11):
        centres = [np.argwhere(masks[f"{s}_{i}"]).mean(0) for i in range(1, 25) if masks[f"{s}_{i}"].any()]
        if len(centres) > 1:
            assert np.ptp(np.array(centres), axis=0).max() < 40, s


def test_test_images_come_from_unseen_subjects(default):
    out, summary, images, _ = default

    small = _layout
    train = np.stack([small(images[f"{s}_1"]) for s in range(1, 11)])
    groups = {}
    for n, t in summary["test_subject"].items():
        groups.setdefault(t, []).append(int(n))
    assert sorted(groups) == ["T1", "T2", "T3"] and all(len(v) == 16 for v in groups.values())
    for numbers in groups.values():
        # numbers do not reveal the subject: not one consecutive run
        assert max(numbers) - min(numbers) + 1 > len(numbers)
        a, b = (small(read_tiff(out / "test" / f"{n}.tif")) for n in numbers[:2])
        within = np.mean(a * b)
        assert within > (train * a).mean(axis=(1, 2)).max()


def test_file_names_have_no_padding(small):
    out, _ = small
    for p in (out / "train").iterdir():
        assert re.fullmatch(r"[1-9]\d*_[1-9]\d*(_mask)?\.tif", p.name)
