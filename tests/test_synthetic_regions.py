"""The synthetic nested-region (brain-tumour-like) dataset: sheet, labels, nesting, channel visibility,
shares, missing channels, the second rater, determinism and subjects."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from plexus.data.sheet import check_files, read_sheet
from plexus.data.synthetic_regions import (
    REGION_CLASSES,
    REGIONS,
    SHEET_NAME,
    SUMMARY_NAME,
    generate_regions,
)
from plexus.io.images import read_image

CHANNELS = ["t1", "t1c", "t2", "flair"]
SMALL = dict(n_subjects=3, images_per_subject=4, n_test_subjects=1, test_images_per_subject=2)
NEC, EDEMA, NON, ENH = 1, 2, 3, 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    frame = generate_regions(root)  # the defaults: 8 x 6 train, 2 x 3 test images
    return root, frame


@pytest.fixture(scope="module")
def train(dataset):
    """``[(row, {channel: float image or None}, label map)]`` of the train rows."""
    _, frame = dataset
    out = []
    for _, row in frame[frame["split"] == "train"].iterrows():
        planes = {c: read_image(row[c]).astype(float) if row[c] else None for c in CHANNELS}
        out.append((row, planes, read_image(row["mask"])))
    return out


def _tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _region(labels: np.ndarray, region: str) -> np.ndarray:
    return np.isin(labels, [REGION_CLASSES[name] for name in REGIONS[region]])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _head(planes: dict) -> np.ndarray:
    """The head outline seen on the first available channel: everything not dark air."""
    plane = next(p for p in planes.values() if p is not None)
    return ndimage.binary_fill_holes(plane > 50)


def test_constants():
    assert REGION_CLASSES == {"background": 0, "necrosis": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
    assert REGIONS == {"complete": ["necrosis", "edema", "non_enhancing", "enhancing"],
                       "core": ["necrosis", "non_enhancing", "enhancing"], "enhancing": ["enhancing"]}


def test_sheet_reads_back_and_files_exist(dataset):
    root, frame = dataset
    sheet = read_sheet(root / SHEET_NAME, channels=CHANNELS)
    pd.testing.assert_frame_equal(frame, sheet)
    assert list(sheet.columns) == ["image_id", "subject", "split", *CHANNELS, "mask", "mask_rater2"]
    info = check_files(sheet, channels=CHANNELS, allow_missing_channels=True, read_pixels=True)
    assert (info["height"] == 64).all() and (info["width"] == 64).all()
    assert (info[[f"{c}_bits" for c in CHANNELS]].max(axis=1) == 8).all()
    raw = pd.read_csv(root / SHEET_NAME, sep="\t", dtype=str, keep_default_na=False)
    assert list(raw.columns) == list(sheet.columns)
    for column in (*CHANNELS, "mask", "mask_rater2"):  # relative to raw_dir
        assert not any(cell.startswith("/") for cell in raw[column])
    assert list(raw["split"]) == ["train"] * 48 + ["test"] * 6  # train rows, then test rows
    train, test = raw[raw["split"] == "train"], raw[raw["split"] == "test"]
    assert (test["mask"] == "").all() and (test["mask_rater2"] == "").all() and (train["mask"] != "").all()
    for cell in raw["mask_rater2"]:
        if cell:
            assert (root / cell).is_file() and cell.startswith("masks_rater2/")
    for _, row in train.iterrows():
        assert row["mask"] == f"masks/{row['image_id']}.png"
        for c in CHANNELS:
            assert row[c] in ("", f"{c}/{row['image_id']}.png")
    summary = json.loads((root / SUMMARY_NAME).read_text())
    assert summary["dataset"] == "regions" and summary["images"] == {"train": 48, "test": 6}
    assert summary["classes"] == REGION_CLASSES and summary["regions"] == REGIONS


def test_labels_and_images(train):
    for _, planes, labels in train:
        assert labels.dtype == np.uint8 and labels.shape == (64, 64)
        assert set(np.unique(labels)) <= {0, 1, 2, 3, 4}
        for plane in planes.values():
            if plane is not None:
                assert plane.shape == labels.shape
    values = set().union(*(set(np.unique(labels)) for _, _, labels in train))
    assert values == {0, 1, 2, 3, 4}  # every label occurs somewhere


def test_edema_halo_surrounds_the_core(train):
    lesions = surrounded = 0
    for _, _, labels in train:
        complete, core = _region(labels, "complete"), _region(labels, "core")
        assert not (core & ~complete).any()  # nesting of the label map
        assert not (_region(labels, "enhancing") & ~core).any()
        components, n = ndimage.label(complete)
        for k in range(1, n + 1):
            part = core & (components == k)
            if not part.any():
                continue
            lesions += 1
            halo = ndimage.binary_dilation(part) & ~part
            surrounded += bool((labels[halo] == EDEMA).all())
        if complete.any():
            assert (labels == EDEMA).sum() > core.sum() * 0.3  # a real halo, not a thin line
    assert lesions >= 30
    assert surrounded / lesions >= 0.9


def test_lesion_make_up(train):
    """Nested make-up: enhancing rims around necrosis in some lesions, non-enhancing cores in others."""
    rims = 0
    for _, _, labels in train:
        necrosis = labels == NEC
        if necrosis.any():
            # the necrotic centre does not touch the edema: the rim or patches lie between
            assert not (ndimage.binary_dilation(necrosis) & (labels == EDEMA)).any()
            rims += 1
    assert rims >= 5
    assert sum((labels == NON).any() and not (labels == ENH).any() for _, _, labels in train) >= 3


def test_channel_visibility(train):
    means = {c: {k: [] for k in ("brain", NEC, EDEMA, NON, ENH)} for c in CHANNELS}
    for _, planes, labels in train:
        if not labels.any():
            continue
        lesion = labels > 0
        ring = ndimage.binary_dilation(lesion, iterations=5) & ~lesion  # the brain around the lesion
        for c, plane in planes.items():
            if plane is None:
                continue
            means[c]["brain"].append(plane[ring].mean())
            for label in (NEC, EDEMA, NON, ENH):
                if (labels == label).any():
                    means[c][label].append(plane[labels == label].mean())
    m = {c: {k: float(np.mean(v)) for k, v in d.items()} for c, d in means.items()}
    # edema: bright on flair and t2, faint on t1 and t1c
    assert m["flair"][EDEMA] > m["flair"]["brain"] + 60
    assert m["t2"][EDEMA] > m["t2"]["brain"] + 40
    assert abs(m["t1"][EDEMA] - m["t1"]["brain"]) < 25 and abs(m["t1c"][EDEMA] - m["t1c"]["brain"]) < 25
    # enhancing: bright on t1c only
    assert m["t1c"][ENH] > m["t1c"]["brain"] + 50 and m["t1c"][ENH] > m["t1c"][NEC] + 80
    assert m["t1c"][ENH] > m["t1"][ENH] + 50
    assert m["t1c"][ENH] > max(m["t1c"][EDEMA], m["t1c"][NON]) + 50
    # necrosis: dark on t1 and t1c, bright on t2
    assert m["t1"][NEC] < m["t1"]["brain"] - 30 and m["t1c"][NEC] < m["t1c"]["brain"] - 30
    assert m["t2"][NEC] > m["t2"]["brain"] + 50
    # non-enhancing: moderately bright on t2 and flair, below edema on flair
    assert m["t2"]["brain"] + 20 < m["t2"][NON] and m["flair"]["brain"] + 30 < m["flair"][NON] < m["flair"][EDEMA]
    # every image: flair is brighter on its edema than around the lesion
    for _, planes, labels in train:
        if (labels == EDEMA).sum() >= 10 and planes["flair"] is not None:
            ring = ndimage.binary_dilation(labels > 0, iterations=5) & (labels == 0)
            assert planes["flair"][labels == EDEMA].mean() > planes["flair"][ring].mean() + 30


def test_not_solved_by_one_threshold(train):
    """t1c shows other bright things (meninges, vessels) than the enhancing tumour."""
    pairs = [(planes["t1c"], labels == ENH) for _, planes, labels in train if planes["t1c"] is not None]
    x = np.concatenate([p.ravel() for p, _ in pairs])
    y = np.concatenate([e.ravel() for _, e in pairs])
    assert max(_dice(y, x >= t) for t in np.linspace(120, 250, 40)) < 0.8
    pairs = [(planes["flair"], _region(labels, "complete")) for _, planes, labels in train
             if planes["flair"] is not None]
    x = np.concatenate([p.ravel() for p, _ in pairs])
    y = np.concatenate([e.ravel() for _, e in pairs])
    assert max(_dice(y, x >= t) for t in np.linspace(100, 250, 40)) < 0.9


def test_empty_share(dataset, train):
    root, _ = dataset
    empty = sum(not labels.any() for _, _, labels in train)
    assert abs(empty - 0.25 * 48) <= 1
    summary = json.loads((root / SUMMARY_NAME).read_text())
    assert summary["lesion_images"]["train"] == 48 - empty
    none = generate_regions(root.parent / "no_empty", empty_share=0.0, **SMALL)
    assert all(read_image(p).any() for p in none.loc[none["split"] == "train", "mask"])


def test_missing_channels(dataset):
    root, frame = dataset
    summary = json.loads((root / SUMMARY_NAME).read_text())
    for split, n in (("train", 48), ("test", 6)):
        part = frame[frame["split"] == split]
        empty = (part[CHANNELS] == "").sum(axis=1)
        assert empty.max() <= 1  # never more than one, so never all four
        assert int(empty.sum()) == round(0.1 * n)
        assert summary["missing_channels"][split] == {c: int((part[c] == "").sum()) for c in CHANNELS}
        assert summary["rows_missing_a_channel"][split] == round(0.1 * n)
    for _, row in frame.iterrows():
        for c in CHANNELS:
            assert (root / c / f"{row['image_id']}.png").is_file() == bool(row[c])
    full = generate_regions(root.parent / "full", missing_share=0.0, **SMALL)
    assert (full[CHANNELS] != "").all().all()


def test_rater2(dataset, train):
    root, _ = dataset
    rated = [(row, labels, read_image(root / row["mask_rater2"])) for row, _, labels in train if row["mask_rater2"]]
    assert len(rated) == 24  # round(0.5 * 48)
    assert len(list((root / "masks_rater2").iterdir())) == 24
    with_lesion = [(row, a, b) for row, a, b in rated if a.any()]
    assert len(with_lesion) >= 12
    differing = [bool((a != b).any()) for _, a, b in with_lesion]
    assert np.mean(differing) >= 0.9
    dices = []
    for _, a, b in rated:
        assert b.dtype == np.uint8 and b.shape == a.shape and set(np.unique(b)) <= {0, 1, 2, 3, 4}
        if not a.any():
            assert not b.any()  # nothing to disagree on
            continue
        complete = _region(b, "complete")
        assert not (_region(b, "core") & ~complete).any()
        dices.append(_dice(_region(a, "complete"), complete))
        assert dices[-1] > 0.4  # a perturbation, not another image's mask
    assert 0.6 < np.mean(dices) < 0.99
    core = np.mean([_dice(_region(a, "core"), _region(b, "core")) for _, a, b in with_lesion])
    assert 0.5 < core < 0.99
    summary = json.loads((root / SUMMARY_NAME).read_text())["rater2"]
    assert summary["rated"] == 24 and summary["rated_with_lesion"] == len(with_lesion)
    assert summary["mean_dice"]["complete"] == pytest.approx(np.mean(dices))
    assert 1 <= len(summary["omissions"]) <= max(2, round(len(with_lesion) / 8) + 1)
    none = generate_regions(root.parent / "one_rater", rater2_share=0.0, **SMALL)
    assert (none["mask_rater2"] == "").all() and not (root.parent / "one_rater" / "masks_rater2").exists()


def test_deterministic(tmp_path):
    generate_regions(tmp_path / "a", seed=5, **SMALL)
    generate_regions(tmp_path / "b", seed=5, **SMALL)
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    generate_regions(tmp_path / "a", seed=5, **SMALL)  # over its own previous output
    assert _tree(tmp_path / "a") == first
    generate_regions(tmp_path / "c", seed=6, **SMALL)
    other = _tree(tmp_path / "c")
    assert other != first
    images = [k for k in other if k.split("/")[0] in CHANNELS]  # (empty masks may coincide)
    assert images and not any(first.get(k) == other[k] for k in images)


def test_rerun_removes_stale_files(tmp_path):
    generate_regions(tmp_path, seed=1, **SMALL)
    assert (tmp_path / "masks_rater2").is_dir() and (tmp_path / "t1c").is_dir()
    generate_regions(tmp_path, seed=1, rater2_share=0.0, n_subjects=1, images_per_subject=2, n_test_subjects=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*CHANNELS, "masks", SHEET_NAME, SUMMARY_NAME])
    assert all(len(list((tmp_path / c).iterdir())) <= 2 for c in CHANNELS)


def test_subjects_share_anatomy(dataset):
    _, frame = dataset
    heads = {}
    for _, row in frame.iterrows():
        planes = {c: read_image(row[c]) if row[c] else None for c in CHANNELS}
        heads.setdefault(row["subject"], []).append(_head(planes))
    assert len(heads) == 10
    for subject, masks in heads.items():
        assert all((m == masks[0]).all() for m in masks), subject  # one head outline per subject
        assert 0.35 < masks[0].mean() < 0.8
    firsts = [m[0] for m in heads.values()]
    assert all(not (a == b).all() for i, a in enumerate(firsts) for b in firsts[i + 1:])
    train = set(frame.loc[frame["split"] == "train", "subject"])
    test = set(frame.loc[frame["split"] == "test", "subject"])
    assert len(train) == 8 and len(test) == 2 and not train & test
    assert all(frame.loc[frame["subject"] == s, "split"].nunique() == 1 for s in train | test)


@pytest.mark.parametrize("kwargs", [dict(n_subjects=0), dict(seed=-1), dict(size=(20, 64)),
                                    dict(missing_share=1.5), dict(empty_share=-0.1), dict(rater2_share="x")])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_regions(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_data(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError):
        generate_regions(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
