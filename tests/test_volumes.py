"""Format volumes: volume sheets and layouts, slicing and its checks, putting slices back, per-volume scores."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from plexus.data import volumes as vol
from plexus.io.images import read_image
from plexus.io.volumes import from_slices, read_volume, write_label_volume
from plexus.stages.volumes import paint, stack_case, truth_units

CHANNELS = ["t1", "flair"]
# voxel axes (R, S, A): the axial (superior-inferior) axis is voxel axis 1, 2.5 mm
AFFINE = np.array([[1.0, 0, 0, -8], [0, 0, 1.0, -6], [0, 2.5, 0, -10], [0, 0, 0, 1]])


def _case(root, case, *, shape=(12, 6, 10), seed=0, label=True, affine=AFFINE, channels=CHANNELS):
    rng = np.random.default_rng(seed)
    head = np.zeros(shape, bool)
    head[2:-2, 1:-1, 2:-2] = True  # no tissue on the first and last slice of axis 1
    files = {}
    for c in channels:
        data = np.where(head, rng.uniform(100, 900, shape), 0).astype(np.float32)
        files[c] = root / f"{case}_{c}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[c])
    if label:
        labels = np.zeros(shape, np.uint8)
        labels[4:8, 2:4, 4:7] = 2
        labels[5:7, 2:3, 5:6] = 4
        files["mask"] = root / f"{case}_seg.nii.gz"
        nib.save(nib.Nifti1Image(labels, affine), files["mask"])
    return files


def _sheet(root, rows) -> str:
    frame = pd.DataFrame(rows, columns=["case", "split", *CHANNELS, "mask", "mask_rater2"], dtype=object).fillna("")
    path = root / "volumes.tsv"
    frame.to_csv(path, sep="\t", index=False)
    return str(path)


@pytest.fixture
def two_cases(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a, b = _case(raw, "c01", seed=1), _case(raw, "t01", seed=2, label=False)
    sheet = _sheet(raw, [{"case": "c01", "split": "train", "t1": a["t1"].name, "flair": a["flair"].name,
                          "mask": a["mask"].name},
                         {"case": "t01", "split": "test", "t1": b["t1"].name, "flair": b["flair"].name}])
    return raw, sheet, a


def test_normalise_is_the_z_score_of_the_nonzero_voxels_mapped_onto_16_bits():
    volume = np.array([[[0.0, 10.0, 20.0, 30.0, 0.0]]])
    values = np.array([10.0, 20.0, 30.0])
    z = (values - values.mean()) / values.std()
    expected = np.rint((z + vol.Z_RANGE) / (2 * vol.Z_RANGE) * 65534 + 1)
    out = vol.normalise(volume)
    assert out.dtype == np.uint16
    assert out[0, 0, 0] == 0 and out[0, 0, 4] == 0
    np.testing.assert_array_equal(out[0, 0, 1:4], expected)
    assert vol.normalise(np.zeros((2, 2, 2))).max() == 0


def test_slices_are_cut_along_the_axial_axis_and_put_back_exactly(two_cases, tmp_path):
    raw, sheet, files = two_cases
    frame = vol.volume_sheet(raw, "sheet", channels=CHANNELS, sheet="volumes.tsv", parts=("train",))
    out = tmp_path / "converted"
    sheet2d = vol.slice_stage(frame, channels=CHANNELS, axis="auto", slices="tissue", out_dir=out / "slices",
                              sheet_tsv=out / "sheet.tsv", index_json=out / "volumes.json")
    index = json.loads((out / "volumes.json").read_text())["cases"]["c01"]
    assert index["axis"] == 1  # the voxel axis along S-I, from the header
    assert index["slices"] == [1, 2, 3, 4] and index["n_slices"] == 6  # the two tissue-free ones left out
    assert sheet2d["image_id"].tolist() == [f"c01_{k:03d}" for k in (1, 2, 3, 4)]
    assert set(sheet2d["subject"]) == {"c01"}
    np.testing.assert_allclose(index["spacing"], [1.0, 2.5, 1.0])
    # every label slice is the label volume at that index of axis 1, in its own values
    labels = np.asarray(nib.load(files["mask"]).dataobj)
    masks = [read_image(p) for p in sheet2d["mask"]]
    for k, mask in zip(index["slices"], masks):
        np.testing.assert_array_equal(mask, labels[:, k, :])
    # the image slices are the normalised volume's
    t1 = vol.normalise(np.asarray(nib.load(files["t1"]).dataobj))
    np.testing.assert_array_equal(read_image(sheet2d["t1"].iloc[2]), t1[:, 3, :])
    # back: the kept slices stacked on the grid (the others empty) give the label volume again,
    # written with the scan's affine
    units = stack_case([(m == 2)[None] for m in masks], index, 1)
    np.testing.assert_array_equal(units[0], labels == 2)
    like = read_volume(files["t1"])
    write_label_volume(tmp_path / "back.nii.gz", paint(units, [2]), like)
    back = nib.load(tmp_path / "back.nii.gz")
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.where(labels == 2, 2, 0))
    np.testing.assert_array_equal(back.affine, nib.load(files["t1"]).affine)


def test_slices_all_keeps_every_slice_and_a_given_axis(two_cases, tmp_path):
    raw, sheet, _ = two_cases
    frame = vol.volume_sheet(raw, "sheet", channels=CHANNELS, sheet="volumes.tsv", parts=("test",))
    out = tmp_path / "c"
    sheet2d = vol.slice_stage(frame, channels=CHANNELS, axis=2, slices="all", out_dir=out, sheet_tsv=out / "s.tsv",
                              index_json=out / "v.json")
    index = json.loads((out / "v.json").read_text())["cases"]["t01"]
    assert index["axis"] == 2 and index["slices"] == list(range(10))
    assert len(sheet2d) == 10 and set(sheet2d["split"]) == {"test"} and set(sheet2d["mask"]) == {""}
    assert read_image(sheet2d["t1"].iloc[0]).shape == (12, 6)


def test_from_slices_inverts_to_slices_for_each_axis():
    from plexus.io.volumes import to_slices

    volume = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    for axis in range(3):
        np.testing.assert_array_equal(from_slices(to_slices(volume, axis), axis), volume)


def test_truth_units_read_the_label_volume_through_classes_and_regions(two_cases):
    from plexus.labels import region_matrix

    _, _, files = two_cases
    classes = {"background": 0, "edema": 2, "enhancing": 4}
    regions = {"complete": ["edema", "enhancing"], "enhancing": ["enhancing"]}
    units, valid = truth_units(str(files["mask"]), classes, None, region_matrix(regions, classes))
    labels = np.asarray(nib.load(files["mask"]).dataobj)
    np.testing.assert_array_equal(units[0], labels > 0)
    np.testing.assert_array_equal(units[1], labels == 4)
    assert valid.all()
    with pytest.raises(ValueError, match="seg.nii.gz"):  # a label value that is no class names the file
        truth_units(str(files["mask"]), {"background": 0, "edema": 2}, None, np.ones((1, 2), bool))


# --------------------------------------------------------------------------- bad input


def _sheet_of(raw, a, **cells):
    row = {"case": "c01", "split": "train", "t1": a["t1"].name, "flair": a["flair"].name, "mask": a["mask"].name}
    return _sheet(raw, [{**row, **cells}])


def _slice(raw, tmp_path):
    frame = vol.volume_sheet(raw, "sheet", channels=CHANNELS, sheet="volumes.tsv")
    out = tmp_path / "out"
    return vol.slice_stage(frame, channels=CHANNELS, out_dir=out, sheet_tsv=out / "s.tsv", index_json=out / "v.json")


def test_modalities_on_different_grids_are_refused_naming_the_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    moved = AFFINE.copy()
    moved[0, 3] += 5
    nib.save(nib.Nifti1Image(np.ones((12, 6, 10), np.float32), moved), raw / "other.nii.gz")
    _sheet_of(raw, a, flair="other.nii.gz")
    with pytest.raises(vol.VolumeSheetError, match=r"case c01: flair .*other\.nii\.gz is on another grid"):
        _slice(raw, tmp_path)
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_label_volume_of_another_shape_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    nib.save(nib.Nifti1Image(np.zeros((12, 6, 9), np.uint8), AFFINE), raw / "short_seg.nii.gz")
    _sheet_of(raw, a, mask="short_seg.nii.gz")
    with pytest.raises(vol.VolumeSheetError, match=r"short_seg\.nii\.gz: a label volume of shape \(12, 6, 9\)"):
        _slice(raw, tmp_path)


def test_a_4d_file_where_3d_is_expected_says_the_decathlon_layout(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    nib.save(nib.Nifti1Image(np.ones((12, 6, 10, 4), np.float32), AFFINE), raw / "stack.nii.gz")
    _sheet_of(raw, a, t1="stack.nii.gz")
    with pytest.raises(vol.VolumeSheetError, match=r"stack\.nii\.gz: a 4-D volume \(12, 6, 10, 4\).*decathlon"):
        _slice(raw, tmp_path)


def test_a_4d_file_read_as_channels_with_an_index(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    stack = np.stack([np.asarray(nib.load(a[c]).dataobj) for c in CHANNELS], axis=-1)
    nib.save(nib.Nifti1Image(stack, AFFINE), raw / "stack.nii.gz")
    _sheet_of(raw, a, t1="stack.nii.gz#0", flair="stack.nii.gz#1")
    sheet2d = _slice(raw, tmp_path)
    flair = vol.normalise(np.asarray(nib.load(a["flair"]).dataobj))
    np.testing.assert_array_equal(read_image(sheet2d["flair"].iloc[0]), flair[:, 1, :])


def test_an_unreadable_header_is_refused_naming_the_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    (raw / "broken.nii.gz").write_bytes(b"not a volume at all")
    _sheet_of(raw, a, flair="broken.nii.gz")
    with pytest.raises(vol.VolumeSheetError, match=r"case c01: flair: .*broken\.nii\.gz"):
        _slice(raw, tmp_path)


def test_sheet_problems_are_listed_by_row(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = _case(raw, "c01")
    _sheet(raw, [{"case": "c01", "split": "train", "t1": a["t1"].name, "flair": "missing.nii.gz", "mask": ""},
                 {"case": "c01", "split": "val", "t1": "x.png", "flair": ""}])
    with pytest.raises(vol.VolumeSheetError) as error:
        vol.volume_sheet(raw, "sheet", channels=CHANNELS, sheet="volumes.tsv")
    text = str(error.value)
    assert "row 2 (case 'c01'): a training case needs a label volume" in text
    assert "row 2 (case 'c01'): flair " in text and "missing.nii.gz: no such file" in text
    assert "row 3 (case 'c01'): case listed twice" in text
    assert "row 3 (case 'c01'): split 'val'" in text
    assert "x.png: not a volume" in text
    with pytest.raises(vol.VolumeSheetError, match="no column flair"):
        vol.read_volume_sheet(_sheet_without_flair(raw), CHANNELS)


def _sheet_without_flair(raw):
    path = raw / "bad.csv"
    pd.DataFrame({"case": ["c01"], "split": ["train"], "t1": ["a.nii.gz"], "mask": ["m.nii.gz"]}).to_csv(path,
                                                                                                        index=False)
    return path


# --------------------------------------------------------------------------- the 3-D minimum volume


def _blobs(rng, shape=(14, 12, 10), n=5):
    from scipy.ndimage import binary_dilation

    seeds = np.zeros(shape, bool)
    seeds[tuple(rng.integers(0, s, n) for s in shape)] = True
    return binary_dilation(seeds, iterations=int(rng.integers(0, 2))) | (rng.random(shape) > 0.97)


def test_volume_components_are_26_connected_and_the_size_rule_holds():
    from scipy import ndimage

    from plexus.postprocess.components import label_components, remove_small_components

    rng = np.random.default_rng(4)
    for _ in range(5):
        mask = _blobs(rng)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(labels.ravel())
        for min_size in (0, 2, 3, 7):
            expected = np.isin(labels, [k for k in range(1, n + 1) if sizes[k] >= max(min_size, 1)])
            np.testing.assert_array_equal(remove_small_components(mask, min_size), expected)
        assert int(label_components(mask).sizes.max()) == int(sizes[1:].max())
    corner = np.zeros((3, 3, 3), bool)
    corner[0, 0, 0] = corner[1, 1, 1] = True  # touching by a corner only: one object
    assert label_components(corner).labels.max() == 1


def test_dice_by_min_volume_equals_removing_then_scoring():
    from plexus.evaluation.volumes import dice
    from plexus.stages.volumes import dice_by_min_volume, min_voxels, remove_small_volumes

    rng = np.random.default_rng(5)
    spacing = (1.0, 2.5, 1.0)  # 2.5 mm^3 per voxel
    assert min_voxels(10, spacing) == 4 and min_voxels(7.5, spacing) == 3 and min_voxels(0, spacing) == 0
    grid = [0.0, 5.0, 10.0, 25.0]
    for _ in range(5):
        pred, truth = _blobs(rng), _blobs(rng)
        expected = [dice(remove_small_volumes(pred, g, spacing), truth) for g in grid]
        np.testing.assert_allclose(dice_by_min_volume(pred, truth, grid, spacing), expected, atol=1e-12)
    empty = np.zeros((4, 4, 4), bool)
    np.testing.assert_array_equal(dice_by_min_volume(empty, empty, grid, spacing), [1.0] * 4)


def test_training_slices_keep_the_foreground_and_a_drawn_share_of_the_rest():
    labels = np.zeros((10, 3, 3), np.uint8)
    labels[[2, 3, 7], 1, 1] = 4
    kept = np.arange(1, 10)  # slice 0 has no tissue
    trained = vol.training_slices(labels, kept, slices="foreground", empty_share=0.5, seed=0, case="c01")
    assert trained[[1, 2, 6]].all()  # slices 2, 3, 7
    assert trained.sum() == 3 + round(0.5 * 6)
    again = vol.training_slices(labels, kept, slices="foreground", empty_share=0.5, seed=0, case="c01")
    np.testing.assert_array_equal(trained, again)
    assert vol.training_slices(labels, kept, slices="tissue", empty_share=0.5, seed=0, case="c01").all()
    assert vol.training_slices(None, kept, slices="foreground", empty_share=0.0, seed=0, case="t01").all()
    only = vol.training_slices(labels, kept, slices="foreground", empty_share=0.0, seed=0, case="c01")
    assert np.flatnonzero(only).tolist() == [1, 2, 6]


def test_slices_foreground_marks_the_rows_training_reads(two_cases, tmp_path):
    raw, _, files = two_cases
    frame = vol.volume_sheet(raw, "sheet", channels=CHANNELS, sheet="volumes.tsv", parts=("train",))
    out = tmp_path / "c"
    sheet2d = vol.slice_stage(frame, channels=CHANNELS, slices="foreground", empty_share=0.0, out_dir=out,
                              sheet_tsv=out / "s.tsv", index_json=out / "v.json")
    labels = np.asarray(nib.load(files["mask"]).dataobj)
    expected = ["yes" if (labels[:, int(k), :] > 0).any() else "no" for k in sheet2d["slice"]]
    assert sheet2d["train_slice"].tolist() == expected and "no" in expected


def test_the_train_stage_reads_only_the_trained_rows(tmp_path, monkeypatch):
    import plexus.training.loop as loop
    from plexus.stages.train import train_stage

    seen = {}
    monkeypatch.setattr(loop, "train_model", lambda images, masks, train_idx, val_idx, *a, **k: seen.update(
        train=list(train_idx), val=list(val_idx)))
    ids = np.array([f"i{k}" for k in range(6)])
    np.savez(tmp_path / "train.npz", image_id=ids, images=np.zeros((6, 1, 8, 8), np.uint8),
             masks=np.zeros((6, 8, 8), np.uint8), classes=np.array(["background", "fg"]),
             trained=np.array([True, False, True, True, False, True]))
    pd.DataFrame({"image_id": ids, "subject": ["a", "a", "b", "b", "c", "c"], "fold": [0, 0, 1, 1, 1, 1]}).to_csv(
        tmp_path / "folds.csv", index=False)
    train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, {"arch": "unet", "input_size": [8, 8], "epochs": 1},
                tmp_path / "m", tmp_path / "c",
                run_name="unet")
    assert seen == {"train": [2, 3, 5], "val": [0, 1]}  # the fold's other rows, less those marked no


def test_the_volume_table_lists_every_entry_once(tmp_path):
    from plexus.stages.volumes import volume_table_stage

    unit = {"dice": 0.8, "dice_low": 0.7, "dice_high": 0.9, "dice_untuned": 0.75, "dice_cross_fitted": 0.78,
            "dice_cross_fitted_low": 0.6, "dice_cross_fitted_high": 0.85, "hd95_median": 2.0, "hd95_mean": 2.5,
            "hd95_undefined": 1, "n_cases": 8}
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"entries": {name: {"core": unit}, "rater2": {"core": {**unit, "dice": 0.9}}},
             "min_volume_mm3": {"core": 100.0}}))
    table = volume_table_stage(["a", "b"], [tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "t.csv",
                               tmp_path / "t.md")
    assert table["name"].tolist() == ["a", "b", "rater2"]
    assert table["min_volume_mm3"].tolist() == [100.0, 100.0, 0.0]
    assert "| a | core | 8 | 0.800 (0.700-0.900) | 0.780 (0.600-0.850) | 0.750 | 2.00 | 1 | 100 |" in (
        tmp_path / "t.md").read_text()


class _GivenMasks:
    """A task whose decided masks are given: two nested units (as regions), values 1 and 2."""

    def __init__(self, masks):
        self.masks = masks

    def units(self, settings):
        return ["outer", "inner"], np.array([[False, True, True], [False, False, True]])

    def unit_values(self, settings):
        return [1, 2]

    def decided_unit_masks(self, settings, members, manifest, image_ids, decision):
        yield from (self.masks[i] for i in image_ids)


def test_label_volumes_drop_small_3d_components_and_keep_the_scan_grid(tmp_path):
    from plexus.stages.volumes import label_volumes_stage

    shape = (6, 4, 5)  # axis 1 sliced, slices 1..3 kept
    outer = np.zeros(shape, bool)
    outer[1:4, 1:3, 1:4] = True  # 18 voxels = 45 mm^3
    outer[5, 3, 4] = True  # one voxel = 2.5 mm^3, dropped at 10 mm^3
    inner = np.zeros(shape, bool)
    inner[2, 2, 2] = True  # one voxel, kept: the inner unit's minimum is 0
    ids = {k: f"t01_{k:03d}" for k in (1, 2, 3)}
    masks = {ids[k]: np.stack([outer[:, k, :], inner[:, k, :]]) for k in ids}
    nib.save(nib.Nifti1Image(np.ones(shape, np.float32), AFFINE), tmp_path / "scan.nii.gz")
    index = {"cases": {"t01": {"split": "test", "axis": 1, "shape": list(shape), "slices": [1, 2, 3],
                               "image_ids": list(ids.values()), "spacing": [1.0, 2.5, 1.0],
                               "reference": str(tmp_path / "scan.nii.gz")}}}
    (tmp_path / "v.json").write_text(json.dumps(index))
    (tmp_path / "d.json").write_text(json.dumps({"pipeline": {}}))
    (tmp_path / "s.json").write_text(json.dumps({"min_volume_mm3": {"outer": 10.0, "inner": 0.0}}))
    pd.DataFrame({"image_id": list(ids.values()), "height": 6, "width": 5}).to_csv(tmp_path / "test.csv", index=False)
    written = label_volumes_stage(_GivenMasks(masks), {}, {}, decision_json=tmp_path / "d.json",
                                  test_csv=tmp_path / "test.csv", index_json=tmp_path / "v.json",
                                  out_dir=tmp_path / "out", volume_summary_json=tmp_path / "s.json")
    image = nib.load(written[0])
    expected = np.zeros(shape, np.uint8)
    expected[1:4, 1:3, 1:4] = 1
    expected[2, 2, 2] = 2
    np.testing.assert_array_equal(np.asarray(image.dataobj), expected)  # the lone outer voxel is gone
    np.testing.assert_array_equal(image.affine, AFFINE)
    assert written[0].endswith("t01.nii.gz")


def test_mha_cases_are_sliced_and_their_label_volumes_keep_spacing_origin_and_direction(tmp_path):
    import SimpleITK as sitk
    from volume_replicas import MHA_DIRECTION, MHA_ORIGIN, MHA_SPACING, write_mha_cases

    raw = tmp_path / "raw"
    cases = write_mha_cases(raw, ("case_001", "case_002"), shape=(16, 16, 8))
    pd.DataFrame([{"case": c, "split": "train", "ct": Path(f["image"]).name, "mask": Path(f["label"]).name}
                  for c, f in cases.items()]).to_csv(raw / "volumes.csv", index=False)
    frame = vol.volume_sheet(raw, "sheet", channels=["ct"], sheet="volumes.csv")
    out = tmp_path / "c"
    sheet2d = vol.slice_stage(frame, channels=["ct"], slices="all", out_dir=out, sheet_tsv=out / "s.tsv",
                              index_json=out / "v.json")
    index = json.loads((out / "v.json").read_text())["cases"]["case_001"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(cases["case_001"]["label"])).transpose(2, 1, 0)  # x, y, z
    axis = index["axis"]
    masks = [read_image(p) for p in sheet2d.loc[sheet2d["case"] == "case_001", "mask"]]
    np.testing.assert_array_equal(from_slices(np.stack(masks), axis), label)  # the slices put back: exact
    np.testing.assert_allclose(index["spacing"], MHA_SPACING)
    like = read_volume(cases["case_001"]["image"])
    write_label_volume(tmp_path / "back.mha", label.astype(np.uint8), like)
    back = sitk.ReadImage(str(tmp_path / "back.mha"))
    np.testing.assert_allclose(back.GetSpacing(), MHA_SPACING)
    np.testing.assert_allclose(back.GetOrigin(), MHA_ORIGIN)
    np.testing.assert_allclose(back.GetDirection(), MHA_DIRECTION)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back).transpose(2, 1, 0), label)


# --------------------------------------------------------------------------- every task's units


def _npz(path, ids, **arrays):
    np.savez(path, image_id=np.asarray(ids), **arrays)
    return str(path)


def _manifest(ids, h=6, w=8):
    return pd.DataFrame({"image_id": ids, "height": h, "width": w})


def test_binary_units_apply_the_cutoff_and_the_presence_gate(tmp_path):
    from plexus.tasks import load_task

    task = load_task("binary")
    settings = {"classes": {"background": 0, "tumour": 255}}
    assert task.units(settings)[0] == ["tumour"] and task.unit_values(settings) == [255]
    ids = ["a", "b", "c"]
    prob = np.stack([np.full((3, 4), 0.7), np.full((3, 4), 0.3), np.full((3, 4), 0.7)]).astype(np.float32)
    member = _npz(tmp_path / "m.npz", ids, prob=prob, presence=np.array([0.9, 0.9, 0.1]))
    decision = {"pipeline": {"cutoff": 0.5, "min_area": 0, "presence_threshold": 0.5}}
    masks = list(task.decided_unit_masks(settings, {"m": [member]}, _manifest(ids), ids, decision))
    assert [m.shape for m in masks] == [(1, 6, 8)] * 3  # at each image's own size
    assert masks[0].all() and not masks[1].any()  # 0.7 > 0.5; 0.3 is not
    assert not masks[2].any()  # gated: presence 0.1 < 0.5


def test_classes_units_are_each_class_of_the_decided_label_map(tmp_path):
    from plexus.tasks import load_task

    task = load_task("classes")
    settings = {"classes": {"background": 0, "nerve": 128, "artery": 255}, "ignore": {}}
    names, matrix = task.units(settings)
    assert names == ["nerve", "artery"] and matrix.tolist() == [[False, True, False], [False, False, True]]
    assert task.unit_values(settings) == [128, 255]
    ids = ["a", "b"]
    prob = np.zeros((2, 3, 3, 4), np.float32)
    prob[0, 1], prob[1, 2] = 0.8, 0.8  # a: nerve everywhere, b: artery
    prob[:, 0] = 0.1
    prob[0, 2] = prob[1, 1] = 0.1
    member = _npz(tmp_path / "m.npz", ids, prob=prob)
    decision = {"pipeline": {"classes": {"nerve": {"min_area": 0}, "artery": {"min_area": 0}}}}
    a, b = task.decided_unit_masks(settings, {"m": [member]}, _manifest(ids), ids, decision)
    assert a[0].all() and not a[1].any() and b[1].all() and not b[0].any()


def test_regions_units_are_each_regions_decided_mask(tmp_path):
    from plexus.tasks import load_task

    task = load_task("regions")
    classes = {"background": 0, "edema": 2, "enhancing": 4}
    settings = {"classes": classes, "regions": {"whole": ["edema", "enhancing"], "enhancing": ["enhancing"]},
                "modes": {"m": "labels"}}
    assert task.units(settings)[0] == ["whole", "enhancing"] and task.unit_values(settings) == [1, 2]
    ids = ["a"]
    prob = np.zeros((1, 3, 3, 4), np.float32)
    prob[0, 0], prob[0, 1], prob[0, 2] = 0.3, 0.4, 0.3  # whole 0.7, enhancing 0.3
    member = _npz(tmp_path / "m.npz", ids, prob=prob)
    decision = {"pipeline": {"regions": {"whole": {"cutoff": 0.5, "min_area": 0},
                                         "enhancing": {"cutoff": 0.5, "min_area": 0}}}}
    (mask,) = task.decided_unit_masks(settings, {"m": [member]}, _manifest(ids), ids, decision)
    assert mask[0].all() and not mask[1].any()


# --------------------------------------------------------------------------- more layouts


def _nifti(path, shape=(12, 6, 10), value=None, seed=0, dtype=np.float32):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).uniform(1, 9, shape) if value is None else np.full(shape, value)
    nib.save(nib.Nifti1Image(data.astype(dtype), AFFINE), path)
    return path


def test_nnunet_raw_format_one_file_per_case_and_channel(tmp_path):
    raw = tmp_path / "Dataset005_Prostate"
    (raw / "dataset.json").parent.mkdir(parents=True)
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T2", "1": "ADC"},
                                                  "labels": {"background": 0, "PZ": 1, "TZ": 2},
                                                  "numTraining": 2, "file_ending": ".nii.gz"}))
    for case in ("prostate_00", "prostate_01"):
        for index in (0, 1):
            _nifti(raw / "imagesTr" / f"{case}_{index:04d}.nii.gz", seed=index)
        _nifti(raw / "labelsTr" / f"{case}.nii.gz", value=1, dtype=np.uint8)
    _nifti(raw / "imagesTs" / "prostate_09_0000.nii.gz")
    _nifti(raw / "imagesTs" / "prostate_09_0001.nii.gz", seed=1)
    frame = vol.volume_sheet(raw, "nnunet", channels=["adc", "t2"])
    assert frame["case"].tolist() == ["prostate_00", "prostate_01", "prostate_09"]
    assert frame["split"].tolist() == ["train", "train", "test"]
    # each channel column is the file of its 4-digit index, by dataset.json's channel_names
    assert frame.loc[0, "adc"].endswith("imagesTr/prostate_00_0001.nii.gz")
    assert frame.loc[0, "t2"].endswith("imagesTr/prostate_00_0000.nii.gz")
    assert frame.loc[1, "mask"].endswith("labelsTr/prostate_01.nii.gz") and frame.loc[2, "mask"] == ""
    (raw / "labelsTr/prostate_01.nii.gz").unlink()
    with pytest.raises(vol.VolumeSheetError, match=r"prostate_01\.nii\.gz: missing, the label of training case"):
        vol.volume_sheet(raw, "nnunet", channels=["adc", "t2"])
    with pytest.raises(vol.VolumeSheetError, match=r"data.channels \['dwi'\] are not channel_names"):
        vol.volume_sheet(raw, "nnunet", channels=["dwi"])


def test_brats_2023_names_with_hyphens(tmp_path):
    raw = tmp_path / "BraTS2023"
    case = "BraTS-GLI-00000-000"
    for modality in ("t1c", "t1n", "t2f", "t2w"):
        _nifti(raw / case / f"{case}-{modality}.nii.gz")
    _nifti(raw / case / f"{case}-seg.nii.gz", value=3, dtype=np.uint8)
    frame = vol.volume_sheet(raw, "brats", channels=["t1c", "t1n", "t2f", "t2w"])
    assert frame.loc[0, "case"] == case and frame.loc[0, "split"] == "train"
    assert frame.loc[0, "t2f"].endswith(f"{case}-t2f.nii.gz") and frame.loc[0, "mask"].endswith(f"{case}-seg.nii.gz")
    assert vol.volume_sheet(raw, "brats", channels=["t1c", "t2f"]).columns.tolist()[2:4] == ["t1c", "t2f"]
    with pytest.raises(vol.VolumeSheetError, match=r"data.channels 't1ce': no case has a \{case\}_t1ce volume "
                                                   r"\(the cases' modalities: t1c, t1n, t2f, t2w\)"):
        vol.volume_sheet(raw, "brats", channels=["t1ce", "t2f"])
