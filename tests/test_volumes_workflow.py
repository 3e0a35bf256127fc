"""Format volumes end to end: the tiny form of config/examples/volumes.yaml (NIfTI cases sliced along
their header's axial axis, nested regions, a second rater), and the README's BraTS and Decathlon rows
on tiny replicas of those layouts.

Expectations are independent of the slicing code: the second rater's Dice and HD95 are computed here
from the NIfTI files with numpy and a brute-force distance matrix; the per-volume truth counts equal
the 2-D tuning's per-slice counts summed over each case; the test label volumes equal the 2-D label
maps of the submission stacked by hand.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.spatial.distance import cdist
from volume_replicas import write_brats2021, write_decathlon_brain

from plexus.io.images import read_image
from plexus.io.rle import decode
from workflow_helpers import REPO, make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

UNITS = {"complete": [1, 2, 3, 4], "core": [1, 3, 4], "enhancing": [4]}


@pytest.fixture(scope="module")
def volumes_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("volumes") / "plexus", "tiny_volumes.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def _surface_points(mask, spacing):
    from scipy.ndimage import binary_erosion

    edge = mask & ~binary_erosion(mask, border_value=0)  # face connectivity: scipy's default structure
    return np.argwhere(edge) * np.asarray(spacing)


def _brute_hd95(a, b, spacing) -> float:
    pa, pb = _surface_points(a, spacing), _surface_points(b, spacing)
    distances = cdist(pa, pb)
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


def test_outputs_and_cases_never_straddle_folds(volumes_run):
    results = volumes_run / "results"
    for path in ("volumes/main/scores.csv", "volumes/main/summary.json", "volumes/labels/summary.json",
                 "submission/main.csv", "robustness/missing_channel/scores.csv",
                 "figures/robustness/missing_channel.png", "tables/summary.csv"):
        assert (results / path).stat().st_size > 0, path
    assert yaml.safe_load((results / "config.yaml").read_text())["task"] == "regions"
    sheet = pd.read_csv(results / "converted/sheet.tsv", sep="\t", dtype=str, keep_default_na=False)
    folds = pd.read_csv(results / "splits/folds.csv", dtype=str, keep_default_na=False)
    merged = folds.merge(sheet[["image_id", "case"]], on="image_id")
    assert len(merged) == len(folds) == len(sheet)
    assert (merged["subject"] == merged["case"]).all()  # the subject is the case
    assert merged.groupby("case")["fold"].nunique().max() == 1  # no case's slices straddle folds
    index = json.loads((results / "converted/volumes.json").read_text())["cases"]
    assert {c["axis"] for c in index.values()} == {1}  # the synthetic headers put S-I on voxel axis 1


def test_second_rater_scores_equal_an_independent_computation(volumes_run):
    results = volumes_run / "results"
    raw = volumes_run / "results/raw/volumes"
    vsheet = pd.read_csv(raw / "volumes.tsv", sep="\t", dtype=str, keep_default_na=False)
    scores = pd.read_csv(results / "volumes/main/scores.csv", dtype={"case": str})
    rated = vsheet[vsheet["mask_rater2"] != ""]
    assert len(rated) and set(scores.loc[scores["entry"] == "rater2", "case"]) == set(rated["case"])
    for row in rated.itertuples():
        truth_img, rater_img = nib.load(raw / row.mask), nib.load(raw / row.mask_rater2)
        truth, rater = np.asarray(truth_img.dataobj), np.asarray(rater_img.dataobj)
        spacing = truth_img.header.get_zooms()[:3]
        for unit, labels in UNITS.items():
            t, r = np.isin(truth, labels), np.isin(rater, labels)
            got = scores[(scores["case"] == row.case) & (scores["entry"] == "rater2") & (scores["unit"] == unit)]
            dice = 1.0 if not (t.any() or r.any()) else 2 * (t & r).sum() / (t.sum() + r.sum())
            assert got["dice"].item() == pytest.approx(dice, abs=1e-12)
            if t.any() and r.any():
                assert got["hd95"].item() == pytest.approx(_brute_hd95(r, t, spacing), abs=1e-9)


def test_volume_truth_counts_equal_the_slices_counts_summed_per_case(volumes_run):
    results = volumes_run / "results"
    scores = pd.read_csv(results / "volumes/main/scores.csv", dtype={"case": str})
    per_slice = pd.read_csv(results / "tuning/main/per_image.csv", dtype={"subject": str})
    slices = per_slice.groupby(["subject", "region"])[["true_area"]].sum()
    mine = scores[scores["entry"] == "main"].set_index(["case", "unit"])
    for (case, unit), row in mine.iterrows():
        assert row["truth_voxels"] == slices.loc[(case, unit), "true_area"]
    # the summary's mean Dice is the mean over cases
    summary = json.loads((results / "volumes/main/summary.json").read_text())
    for unit in UNITS:
        assert summary["entries"]["main"][unit]["dice"] == pytest.approx(
            mine.xs(unit, level="unit")["dice"].mean(), abs=1e-12)


def test_test_label_volumes_are_the_label_maps_stacked_on_the_scan_grid(volumes_run):
    from scipy import ndimage

    results = volumes_run / "results"
    raw = volumes_run / "results/raw/volumes"
    index = json.loads((results / "converted/test/volumes.json").read_text())["cases"]
    min_volumes = json.loads((results / "volumes/main/summary.json").read_text())["min_volume_mm3"]
    assert index and list(min_volumes) == list(UNITS)
    submission = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False).set_index("image_id")
    for case, entry in index.items():
        written = nib.load(results / "volumes/main/test" / f"{case}.nii.gz")
        scan = nib.load(raw / "cases" / case / f"{case}_t1.nii.gz")
        np.testing.assert_array_equal(written.affine, scan.affine)
        assert written.header.get_sform(coded=True)[1] == scan.header.get_sform(coded=True)[1]
        # the submission's run-length row of every slice and region, stacked along the slice axis
        plane = (entry["shape"][0], entry["shape"][2])
        rows = submission.loc[entry["image_ids"]]
        expected = np.zeros(entry["shape"], np.uint8)
        stacked_maps = np.zeros(entry["shape"], np.uint8)
        voxel = float(np.prod(entry["spacing"]))
        for r, unit in enumerate(UNITS, start=1):
            region = np.zeros(entry["shape"], bool)
            for k, image_id in zip(entry["slices"], entry["image_ids"]):
                region[:, k, :] = decode(rows.loc[(rows.index == image_id) & (rows["region"] == unit),
                                                  "EncodedPixels"].item(), plane)
            # without its 26-connected components below the tuned volume, painted from the outermost in
            labels, n = ndimage.label(region, structure=np.ones((3, 3, 3), bool))
            sizes = np.bincount(labels.ravel())
            big = [k for k in range(1, n + 1) if sizes[k] * voxel >= min_volumes[unit] - 1e-9]
            expected[np.isin(labels, big)] = r
        np.testing.assert_array_equal(np.asarray(written.dataobj), expected)
        # with nothing removed, the volume would be the 2-D label maps stacked
        for k, image_id in zip(entry["slices"], entry["image_ids"]):
            stacked_maps[:, k, :] = read_image(results / "labelmaps/main" / f"{image_id}.png")
        assert set(np.unique(np.asarray(written.dataobj))) <= set(np.unique(stacked_maps))


def test_the_minimum_volume_is_tuned_on_the_cases_and_cross_fitted(volumes_run):
    results = volumes_run / "results"
    summary = json.loads((results / "volumes/main/summary.json").read_text())
    scores = pd.read_csv(results / "volumes/main/scores.csv", dtype={"case": str})
    mine = scores[scores["entry"] == "main"]
    for unit in UNITS:
        grid = summary["grid"][unit]
        best = int(np.argmax(np.round(grid["dice"], 12)))
        assert summary["min_volume_mm3"][unit] == grid["min_volume_mm3"][best]
        rows = mine[mine["unit"] == unit]
        assert rows["dice"].mean() == pytest.approx(grid["dice"][best], abs=1e-12)
        assert rows["dice_untuned"].mean() == pytest.approx(grid["dice"][0], abs=1e-12)  # 0 mm^3: nothing removed
        assert rows["dice"].mean() >= rows["dice_untuned"].mean() - 1e-12
    table = pd.read_csv(results / "tables/volumes.csv", dtype={"name": str})
    assert set(table["name"]) == {"labels", "main", "rater2"}


def test_a_new_test_case_reruns_only_the_test_side_and_predict_says_so(volumes_run):
    from plexus.study.apply import StudyError, load_study

    with pytest.raises(StudyError, match="a study of 3-D volumes.*test rows"):
        load_study(volumes_run / "results")
    sheet_path = volumes_run / "results/raw/volumes/volumes.tsv"
    before = sheet_path.read_text()
    vsheet = pd.read_csv(sheet_path, sep="\t", dtype=str, keep_default_na=False)
    new = vsheet[vsheet["split"] == "test"].iloc[[0]].assign(case="t99")
    pd.concat([vsheet, new]).to_csv(sheet_path, sep="\t", index=False)
    try:
        rules = {rule for rule, _ in planned_jobs(volumes_run, "--cores", "2")}
    finally:
        sheet_path.write_text(before)
    assert {"convert_test", "manifest_test", "label_volumes", "submission"} <= rules
    assert not rules & {"convert", "manifest", "train", "predict_oof", "tune", "postprocess", "volume_scores"}


# --------------------------------------------------------------------------- the README's layouts

BRATS = {"format": "volumes", "channels": ["flair", "t1", "t1ce", "t2"], "volumes": {"layout": "brats"}}
BRATS_CLASSES = {"background": 0, "necrotic": 1, "edema": 2, "enhancing": 4}
BRATS_REGIONS = {"whole": ["necrotic", "edema", "enhancing"], "core": ["necrotic", "enhancing"],
                 "enhancing": ["enhancing"]}
DECATHLON = {"format": "volumes", "channels": ["flair", "t1w", "t1gd", "t2w"], "volumes": {"layout": "decathlon"}}
DECATHLON_CLASSES = {"background": 0, "edema": 1, "non_enhancing": 2, "enhancing": 3}
DECATHLON_REGIONS = {"whole": ["edema", "non_enhancing", "enhancing"], "core": ["non_enhancing", "enhancing"],
                     "enhancing": ["enhancing"]}


def _layout_run(tmp_path, raw, data: dict, classes: dict, regions: dict):
    """The README row's config on a replica, through the stages of the convert, convert_test, manifest,
    manifest_test, folds and preprocess jobs (called here as those jobs call them)."""
    from plexus import runs
    from plexus.config import validate_config
    from plexus.data.volumes import convert_stage
    from plexus.stages.data import folds_stage, manifest_stage, preprocess_stage

    config = yaml.safe_load((REPO / "tests/configs/tiny_volumes.yaml").read_text())
    config.update(task="regions", classes=classes, regions=regions,
                  data={**data, "raw_dir": str(raw), "synthetic": {"enabled": False}})
    config = validate_config(config)
    results = tmp_path / "results"
    files = {part: {k: str(tmp_path / v) for k, v in runs.CONVERTED_FILES["volumes"][part].items()}
             for part in ("train", "test")}
    for part, out in files.items():
        settings = runs.conversion_settings(config, part)
        convert_stage(settings["data"], part, sheet_tsv=out["sheet"], images_dir=out["images"],
                      index_json=out["index"], background=settings["background"])
    manifest = {k: str(results / "manifest" / f"{k}.{ext}")
                for k, ext in (("train", "csv"), ("test", "csv"), ("summary", "json"), ("sheet", "tsv"))}
    manifest_stage(config["data"], classes, manifest, part="train", inputs=[files["train"]["sheet"]])
    manifest_stage(config["data"], classes, manifest, part="test", inputs=[files["test"]["sheet"]],
                   train_csv=manifest["train"], summary_json=manifest["summary"])
    folds_stage(manifest["train"], results / "splits/folds.csv", 2, 42)
    preprocess_stage("train", manifest["train"], manifest["summary"], "32x32",
                     results / "preprocessed/32x32/train.npz", classes=classes, regions=regions)
    return results


def test_brats_folders_read_as_they_come(tmp_path):
    raw = tmp_path / "BraTS2021"
    cases = ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003"]
    write_brats2021(raw, cases, shape=(16, 16, 8))
    (raw / cases[-1] / f"{cases[-1]}_seg.nii.gz").unlink()  # a validation case: no labels
    results = _layout_run(tmp_path, raw, BRATS, BRATS_CLASSES, BRATS_REGIONS)
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    assert sorted(train["subject"].unique()) == cases[:-1] and set(test["subject"]) == {cases[-1]}
    # sliced along voxel axis 2 (S-I of an identity-like affine), the label slices in BraTS's values
    index = json.loads((results / "converted/volumes.json").read_text())["cases"]
    seg = np.asarray(nib.load(raw / cases[0] / f"{cases[0]}_seg.nii.gz").dataobj)
    first = index[cases[0]]
    assert first["axis"] == 2
    for k, path in zip(first["slices"], train.loc[train["subject"] == cases[0], "mask"]):
        np.testing.assert_array_equal(read_image(path), seg[:, :, k])
    arrays = np.load(results / "preprocessed/32x32/train.npz")
    assert arrays["images"].shape[1] == 4 and set(np.unique(arrays["masks"])) <= {0, 1, 2, 3}


def test_decathlon_4d_images_read_as_channels(tmp_path):
    raw = tmp_path / "Task01_BrainTumour"
    write_decathlon_brain(raw, train_ids=("BRATS_001", "BRATS_002", "BRATS_003"), test_ids=("BRATS_101",),
                          shape=(16, 16, 8))
    results = _layout_run(tmp_path, raw, DECATHLON, DECATHLON_CLASSES, DECATHLON_REGIONS)
    sheet = pd.read_csv(results / "converted/sheet.tsv", sep="\t", dtype=str, keep_default_na=False)
    image = np.asarray(nib.load(raw / "imagesTr/BRATS_002.nii.gz").dataobj)
    row = sheet[sheet["case"] == "BRATS_002"].iloc[0]
    k = int(row["slice"])
    # each modality column is its channel of the 4-D file, by dataset.json's names (T1w is channel 1)
    from plexus.data.volumes import normalise

    np.testing.assert_array_equal(read_image(row["t1w"]), normalise(image[..., 1])[:, :, k])
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    assert set(test["subject"]) == {"BRATS_101"}
