"""The synthetic 3-D volume (brain-tumour-like NIfTI) dataset: sheet, files, orientation, nesting, slices,
background, second rater, summary, determinism, arguments and reruns; and the published-layout replicas
of tests/volume_replicas.py.

Expectations are independent of the generator's code: the orientation is checked from voxel steps in
world space, the in-plane growth by shifting arrays, the counts by recounting the files.
"""

from __future__ import annotations

import csv
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from volume_replicas import (
    MHA_DIRECTION,
    MHA_SPACING,
    write_brats2021,
    write_decathlon_brain,
    write_mha_cases,
)

from plexus.data.synthetic_volumes import CHANNELS, REGION_CLASSES, generate_volumes

SHAPE, SPACING = (24, 8, 24), (1.0, 2.5, 1.0)
TINY = dict(n_cases=3, n_test_cases=1, shape=SHAPE)
COLUMNS = ["case", "split", "t1", "t1c", "t2", "flair", "mask", "mask_rater2"]
NEC, EDEMA, NON, ENH = 1, 2, 3, 4


def _sheet(root) -> list[dict[str, str]]:
    with open(root / "volumes.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _array(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def _tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _shift(mask: np.ndarray, d0: int, d2: int) -> np.ndarray:
    """``mask`` moved by ``d0`` voxels along axis 0 and ``d2`` along axis 2, zero-filled."""
    out = np.zeros_like(mask)
    n0, n2 = mask.shape[0], mask.shape[2]
    out[max(d0, 0):n0 + min(d0, 0), :, max(d2, 0):n2 + min(d2, 0)] = \
        mask[max(-d0, 0):n0 + min(-d0, 0), :, max(-d2, 0):n2 + min(-d2, 0)]
    return out


def _inplane_grow(mask: np.ndarray, n: int) -> np.ndarray:
    """Every voxel within ``n`` steps (city-block) of ``mask`` in the same slice (axis 1 fixed)."""
    out = np.zeros_like(mask)
    for d0 in range(-n, n + 1):
        for d2 in range(-(n - abs(d0)), n - abs(d0) + 1):
            out |= _shift(mask, d0, d2)
    return out


def _inplane_shrink(mask: np.ndarray, n: int) -> np.ndarray:
    return ~_inplane_grow(~mask, n)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("volumes")
    return root, generate_volumes(root, **TINY)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The defaults: 8 train and 2 test cases of 64 x 20 x 64 voxels."""
    root = tmp_path_factory.mktemp("volumes_full")
    return root, generate_volumes(root)


@pytest.fixture(scope="module", params=["tiny", "full"])
def labelled(request):
    """``(root, [(case, truth labels)])`` of every labelled case (train and test) of each dataset."""
    root, _ = request.getfixturevalue(request.param)
    out = [(row["case"], _array(root / row["mask"])) for row in _sheet(root) if row["mask"]]
    out += [(p.name.split("_")[0], _array(p)) for p in sorted((root / "test_labels").iterdir())]
    return root, out


def test_sheet_columns_rows_and_files(tiny):
    root, _ = tiny
    rows = _sheet(root)
    with open(root / "volumes.tsv", newline="") as handle:
        assert handle.readline().rstrip("\n").split("\t") == COLUMNS
    assert [(r["case"], r["split"]) for r in rows] == [("c01", "train"), ("c02", "train"), ("c03", "train"),
                                                       ("t01", "test")]
    listed = set()
    for row in rows:
        case = row["case"]
        for name in CHANNELS:
            path = root / "cases" / case / f"{case}_{name}.nii.gz"
            assert row[name] in ("", f"cases/{case}/{case}_{name}.nii.gz")
            assert path.is_file() == bool(row[name])  # a listed file exists, an unlisted one does not
        if row["split"] == "train":
            assert row["mask"] == f"cases/{case}/{case}_seg.nii.gz"
        else:
            assert row["mask"] == row["mask_rater2"] == ""
        assert row["mask_rater2"] in ("", f"cases/{case}/{case}_seg_rater2.nii.gz")
        listed |= {row[c] for c in COLUMNS[2:] if row[c]}
    for path in listed:
        assert (root / path).is_file() and "\\" not in path
    on_disk = {str(p.relative_to(root).as_posix()) for p in (root / "cases").rglob("*") if p.is_file()}
    assert on_disk == listed  # no file the sheet does not name
    # round(0.25 * 4) = 1 case lacks exactly one modality; round(0.5 * 3) = 2 second-rater cases
    assert sum(not row[c] for row in rows for c in CHANNELS) == 1
    assert sum(bool(row["mask_rater2"]) for row in rows) == 2
    # the test labels are written but never referenced
    assert sorted(p.name for p in (root / "test_labels").iterdir()) == ["t01_seg.nii.gz"]
    assert "test_labels" not in (root / "volumes.tsv").read_text()


def test_orientation_and_geometry(tiny):
    root, _ = tiny
    for path in sorted((root / "cases").rglob("*.nii.gz")) + sorted((root / "test_labels").iterdir()):
        image = nib.load(path)
        affine = image.affine
        assert nib.aff2axcodes(affine) == ("R", "S", "A")
        assert np.allclose(image.header.get_zooms(), SPACING)
        assert image.shape == SHAPE
        # one voxel step along each axis, in world mm (RAS+): axis 0 -> right, 1 -> superior, 2 -> anterior
        steps = affine[:3, :3].T
        assert np.allclose(steps, [[1, 0, 0], [0, 0, 2.5], [0, 1, 0]])
        centre = affine @ [*(np.array(SHAPE) - 1) / 2, 1]
        assert np.allclose(centre[:3], 0)
        # the qform stores a float32 quaternion: equal to within float32 rounding
        assert np.allclose(image.get_qform(), affine, atol=1e-5) and np.array_equal(image.get_sform(), affine)
        assert int(image.header["qform_code"]) > 0 and int(image.header["sform_code"]) > 0
        kind = path.name.split("_", 1)[1]
        assert image.get_data_dtype() == (np.uint8 if kind.startswith("seg") else np.float32)


def test_modalities_and_labels_share_the_grid(tiny):
    root, _ = tiny
    for row in _sheet(root):
        paths = [root / row[c] for c in (*CHANNELS, "mask", "mask_rater2") if row[c]]
        images = [nib.load(p) for p in paths]
        assert len({im.shape for im in images}) == 1
        assert all(np.array_equal(im.affine, images[0].affine) for im in images)


def test_label_values_and_nesting(labelled):
    root, cases = labelled
    seen = set()
    for case, labels in cases:
        values = set(np.unique(labels).tolist())
        assert values <= {0, 1, 2, 3, 4}, case
        seen |= values
        complete = labels > 0
        core = np.isin(labels, [NEC, NON, ENH])
        # edema surrounds the core by at least two voxels in every slice
        assert not (_inplane_grow(core, 2) & ~complete).any(), case
        # necrosis lies inside the enhancing rim shell: never next to edema or background, in 3-D
        necrosis = labels == NEC
        if necrosis.any():
            padded = np.pad(necrosis, 1)
            for axis in range(3):
                for step in (-1, 1):
                    neighbours = np.roll(padded, step, axis)[1:-1, 1:-1, 1:-1]
                    assert np.isin(labels[neighbours], [NEC, NON, ENH]).all(), case
    if root.name.startswith("volumes_full"):
        assert seen == {0, 1, 2, 3, 4}  # the default set shows every label


def test_empty_and_lesion_slices(labelled):
    root, cases = labelled
    summary = json.loads((root / "synthetic_summary.json").read_text())
    empty = [case for case, labels in cases if not labels.any()]
    assert len(empty) == summary["arguments"]["empty_cases"] == 1
    assert empty[0].startswith("c") and empty == summary["empty_cases"]
    for case, labels in cases:
        if case in empty:
            continue
        per_slice = labels.any(axis=(0, 2))
        assert per_slice.sum() >= 2 and not per_slice.all(), case  # several slices, never all


def test_background_is_exactly_zero(labelled):
    root, cases = labelled
    by_case = dict(cases)
    for row in _sheet(root):
        volumes = {c: _array(root / row[c]) for c in CHANNELS if row[c]}
        heads = [v != 0 for v in volumes.values()]
        head = heads[0]
        for name, volume in volumes.items():
            assert volume.dtype == np.float32
            assert np.array_equal(volume != 0, head), (row["case"], name)  # one head outline on every modality
            assert volume.min() == 0 and volume[head].min() >= 1 and 300 < volume.max() < 2000
        assert 0.2 < head.mean() < 0.9
        corners = head[[0, -1]][:, :, [0, -1]]
        assert not corners.any()
        assert not (by_case[row["case"]] > 0)[~head].any()  # every lesion inside the head


def test_second_rater(tiny):
    root, _ = tiny
    rated = [row for row in _sheet(root) if row["mask_rater2"]]
    assert rated
    for row in rated:
        truth, other = _array(root / row["mask"]), _array(root / row["mask_rater2"])
        assert truth.any() and not np.array_equal(truth, other)
        assert set(np.unique(other).tolist()) <= {0, 1, 2, 3, 4}
        complete, complete2 = truth > 0, other > 0
        assert _dice(complete, complete2) > 0.6
        # moved by at most one voxel in the axial plane
        assert not (complete2 & ~_inplane_grow(complete, 1)).any()
        assert not (_inplane_shrink(complete, 1) & ~complete2).any()
        core2 = np.isin(other, [NEC, NON, ENH])
        assert not (core2 & ~complete2).any()


def test_summary_matches_the_files(tiny):
    root, summary = tiny
    assert json.loads((root / "synthetic_summary.json").read_text()) == summary
    rows = _sheet(root)
    train = [row for row in rows if row["split"] == "train"]
    counts = sum(np.bincount(_array(root / row["mask"]).ravel(), minlength=5) for row in train)
    assert summary["label_voxels"] == {name: int(counts[value]) for name, value in REGION_CLASSES.items()}
    assert sum(summary["label_voxels"].values()) == len(train) * np.prod(SHAPE)
    assert summary["cases"] == {"train": 3, "test": 1}
    assert summary["missing_modalities"] == {row["case"]: c for row in rows for c in CHANNELS if not row[c]}
    assert summary["rater2_cases"] == [row["case"] for row in rows if row["mask_rater2"]]
    assert summary["lesion_cases"] == {"train": 2, "test": 1}
    assert summary["arguments"]["shape"] == list(SHAPE) and summary["axcodes"] == ["R", "S", "A"]
    for row in train:
        labels = _array(root / row["mask"])
        assert summary["lesion_slices"][row["case"]] == np.flatnonzero(labels.any(axis=(0, 2))).tolist()


def test_reruns_are_byte_identical_and_seeded(tiny, tmp_path):
    root, _ = tiny
    again = tmp_path / "again"
    generate_volumes(again, **TINY)
    assert _tree(again) == _tree(root)
    other = tmp_path / "other"
    generate_volumes(other, **TINY, seed=1)
    first = _array(root / "cases/c01/c01_t2.nii.gz")
    assert not np.array_equal(_array(other / "cases/c01/c01_t2.nii.gz"), first)


def test_rerun_cleans_only_its_own_files(tmp_path):
    root = tmp_path / "raw"
    generate_volumes(root, **TINY)
    (root / "cases" / "c03" / "notes.txt").write_text("kept")
    generate_volumes(root, n_cases=2, n_test_cases=0, shape=SHAPE, missing_share=0, rater2_share=0)
    assert sorted(p.name for p in (root / "cases").iterdir()) == ["c01", "c02", "c03"]
    assert [p.name for p in (root / "cases" / "c03").iterdir()] == ["notes.txt"]
    assert not (root / "test_labels").exists()
    assert not list(root.rglob("*rater2*")) and not list(root.rglob("t01*"))
    assert [row["case"] for row in _sheet(root)] == ["c01", "c02"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.txt").write_text("not ours")
    with pytest.raises(ValueError, match="refusing"):
        generate_volumes(foreign, **TINY)


@pytest.mark.parametrize(("argument", "value"), [
    ("n_cases", 0), ("n_test_cases", -1), ("shape", (24, 8)), ("shape", (24, 4, 24)), ("shape", (12, 8, 12)),
    ("spacing", (1.0, 0.0, 1.0)),
    ("spacing", (1.0, float("nan"), 1.0)), ("empty_cases", 4), ("missing_share", 1.5), ("rater2_share", -0.1),
    ("seed", -1),
])
def test_bad_arguments(tmp_path, argument, value):
    with pytest.raises(ValueError, match=argument):
        generate_volumes(tmp_path / "raw", **{**TINY, argument: value})
    assert not (tmp_path / "raw").exists()


# --- the published-layout replicas ------------------------------------------------------------


def test_brats2021_replica(tmp_path):
    written = write_brats2021(tmp_path, case_ids=("BraTS2021_00001", "BraTS2021_00002"))
    expected = [tmp_path / case / f"{case}_{kind}.nii.gz" for case in ("BraTS2021_00001", "BraTS2021_00002")
                for kind in ("flair", "t1", "t1ce", "t2", "seg")]
    assert written == [str(p) for p in expected] and all(p.is_file() for p in expected)
    for path in expected:
        image = nib.load(path)
        assert image.shape == (16, 16, 8) and nib.aff2axcodes(image.affine) == ("R", "A", "S")
        assert np.allclose(image.header.get_zooms(), 1.0)
        data = np.asarray(image.dataobj)
        if path.name.endswith("_seg.nii.gz"):
            assert set(np.unique(data).tolist()) == {0, 1, 2, 4}
        else:
            assert data[0, 0, 0] == 0 and (data > 0).mean() > 0.2


def test_decathlon_brain_replica(tmp_path):
    written = write_decathlon_brain(tmp_path)
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert written["dataset_json"] == str(tmp_path / "dataset.json")
    assert {"name", "description", "tensorImageSize", "modality", "labels", "numTraining", "numTest", "training",
            "test"} <= set(dataset)
    assert dataset["modality"] == {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    assert dataset["labels"] == {"0": "background", "1": "edema", "2": "non-enhancing tumor",
                                 "3": "enhancing tumour"}
    assert dataset["training"] == [{"image": f"./imagesTr/BRATS_00{i}.nii.gz",
                                    "label": f"./labelsTr/BRATS_00{i}.nii.gz"} for i in (1, 2, 3)]
    assert dataset["test"] == ["./imagesTs/BRATS_101.nii.gz"]
    assert (dataset["numTraining"], dataset["numTest"]) == (3, 1)
    for entry in dataset["training"]:
        image, label = nib.load(tmp_path / entry["image"]), nib.load(tmp_path / entry["label"])
        assert image.shape == (16, 16, 8, 4) and label.shape == (16, 16, 8)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) == {0, 1, 2, 3}
    assert nib.load(tmp_path / dataset["test"][0]).shape == (16, 16, 8, 4)
    assert written["images_ts"] == [str(tmp_path / "imagesTs" / "BRATS_101.nii.gz")]
    assert not (tmp_path / "labelsTs").exists()


def test_mha_replica(tmp_path):
    written = write_mha_cases(tmp_path, ("case_001", "case_002"), (16, 16, 8))
    assert written == {case: {"image": str(tmp_path / f"{case}.mha"), "label": str(tmp_path / f"{case}_seg.mha")}
                       for case in ("case_001", "case_002")}
    for paths in written.values():
        image, label = sitk.ReadImage(paths["image"]), sitk.ReadImage(paths["label"])
        for item in (image, label):
            assert item.GetSize() == (16, 16, 8)
            assert np.allclose(item.GetDirection(), MHA_DIRECTION)
            assert not np.allclose(item.GetDirection(), np.eye(3).ravel())
            assert np.allclose(item.GetSpacing(), MHA_SPACING)
        assert set(np.unique(sitk.GetArrayFromImage(label)).tolist()) == {0, 1, 2, 3}
        assert sitk.GetArrayFromImage(image).min() == 0
