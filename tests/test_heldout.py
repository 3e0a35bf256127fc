"""A labelled test set scored (issue 28): the test masks are checked and kept apart by the test
manifest, the held-out per-image scores and table on hand-made inputs, and (workflow) a finished
``folders`` study whose test set gets masks: only the test side and ``heldout`` run, nothing decided on
the training images changes, and ``plexus predict --masks`` gives the numbers of ``heldout.csv``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus import runs
from plexus.data.importers import LayoutError, folders
from plexus.data.sheet import SheetError
from plexus.evaluation import heldout
from plexus.evaluation.bootstrap import bootstrap_ci
from plexus.stages.data import manifest_stage
from plexus.study import heldout as study_heldout
from workflow_helpers import FOLDERS_TEST_STEMS as TEST_STEMS
from workflow_helpers import copy_workdir, planned_jobs, read_config, snakemake, write_config

CLASSES = {"background": 0, "a": 128, "b": 255}


def _png(path: Path, array) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


# -- per-image scores, by hand -------------------------------------------------------------------


def test_the_classes_score_is_the_mean_class_dice_at_the_image_size(tmp_path):
    # class a: pred 4 pixels, truth 2 of them + 2 more -> Dice 2*2/(4+4) = 0.5
    # class b: in neither map -> 1 (the empty/empty convention); mean (0.5 + 1) / 2 = 0.75
    pred = np.zeros((3, 5), np.uint8)
    pred[0, :4] = 128
    true = np.zeros((3, 5), np.uint8)
    true[0, 2:4] = 128
    true[1, :2] = 128
    score = heldout.image_score("classes", {"classes": CLASSES}, _png(tmp_path / "p.png", pred),
                                _png(tmp_path / "t.png", true))
    assert score == pytest.approx(0.75)
    # b predicted on 1 pixel the truth does not have: Dice 0 -> mean 0.25
    pred[2, 4] = 255
    assert heldout.image_score("classes", {"classes": CLASSES}, _png(tmp_path / "p.png", pred),
                               tmp_path / "t.png") == pytest.approx(0.25)


def test_ignored_truth_pixels_count_nowhere(tmp_path):
    classes, ignore = {"background": 0, "a": 1}, {"void": 3}
    pred = np.array([[1, 1, 0, 0]])
    true = np.array([[1, 3, 3, 0]])  # the second a-pixel of the prediction lies on void: not counted
    score = heldout.image_score("classes", {"classes": classes, "ignore": ignore}, _png(tmp_path / "p.png", pred),
                                _png(tmp_path / "t.png", true))
    assert score == pytest.approx(1.0)


def test_the_binary_score_is_the_kaggle_dice(tmp_path):
    pred = np.zeros((4, 4), np.uint8)
    pred[:2, :2] = 255
    true = np.zeros((4, 4), np.uint8)
    true[:2, :1] = 255
    assert heldout.image_score("binary", {}, _png(tmp_path / "p.png", pred), _png(tmp_path / "t.png", true)) \
        == pytest.approx(2 * 2 / (4 + 2))
    empty = _png(tmp_path / "e.png", np.zeros((4, 4)))
    assert heldout.image_score("binary", {}, empty, empty) == 1.0


def test_a_label_map_and_mask_of_different_sizes_is_an_error_naming_both(tmp_path):
    pred, true = _png(tmp_path / "p.png", np.zeros((4, 4))), _png(tmp_path / "t.png", np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"p\.png: the label map is 4x4, its test mask .*t\.png 4x5"):
        heldout.image_score("classes", {"classes": CLASSES}, pred, true)


def test_score_labelmaps_reads_each_images_map_and_gives_subjectless_images_their_own(tmp_path):
    maps = tmp_path / "maps"
    _png(maps / "x.png", np.full((2, 2), 128))
    _png(maps / "y.png", np.zeros((2, 2)))
    truth = pd.DataFrame({"image_id": ["x", "y"], "subject": ["s1", ""],
                          "mask": [str(_png(tmp_path / "tx.png", np.full((2, 2), 128))),
                                   str(_png(tmp_path / "ty.png", np.full((2, 2), 255)))]})
    frame = heldout.score_labelmaps("classes", {"classes": CLASSES}, maps, truth)
    assert frame.to_dict("list") == {"image_id": ["x", "y"], "subject": ["s1", "y"], "score": [1.0, 0.5]}
    (maps / "y.png").unlink()
    with pytest.raises(FileNotFoundError, match="y.png: no label map of test image 'y'"):
        heldout.score_labelmaps("classes", {"classes": CLASSES}, maps, truth)


def test_the_regions_score_reads_each_regions_submitted_row(tmp_path):
    """Regions whole = {a, b} and core = {b}, void ignored. Truth row: a a b b void 0; submitted
    whole: pixels 1-5 (1-based, column-major), core: pixel 4 only, by hand:
    whole: pred {1,2,3,4} on valid pixels (5 is void), truth {1,2,3,4}: Dice 1;
    core: pred {4}, truth {3,4}: Dice 2*1/(1+2) = 2/3; the mean 5/6."""
    from plexus.io.rle import encode

    classes, ignore = {"background": 0, "a": 1, "b": 2}, {"void": 3}
    settings = {"classes": classes, "ignore": ignore,
                "submission": {"regions": {"whole": ["a", "b"], "core": ["b"]}}}
    truth_png = _png(tmp_path / "t.png", np.array([[1, 1, 2, 2, 3, 0]]))
    whole, core = np.zeros((1, 6), bool), np.zeros((1, 6), bool)
    whole[0, :5], core[0, 3] = True, True
    submission = tmp_path / "submission.csv"
    pd.DataFrame({"image_id": ["0007", "0007"], "region": ["whole", "core"],
                  "EncodedPixels": [encode(whole), encode(core)]}).to_csv(submission, index=False)
    truth = pd.DataFrame({"image_id": ["0007"], "subject": ["s"], "mask": [str(truth_png)]})
    frame = heldout.score_labelmaps("regions", settings, tmp_path / "no_maps", truth, submission)
    assert frame["image_id"].tolist() == ["0007"] and frame["score"].item() == pytest.approx(5 / 6)
    # an empty region in both: 1, as the tuning scores it
    pd.DataFrame({"image_id": ["0007", "0007"], "region": ["whole", "core"],
                  "EncodedPixels": [encode(whole), ""]}).to_csv(submission, index=False)
    no_b = _png(tmp_path / "t2.png", np.array([[1, 1, 1, 1, 3, 0]]))
    score = heldout.score_labelmaps("regions", settings, tmp_path, truth.assign(mask=str(no_b)), submission)
    assert score["score"].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no row of test image 'y'"):
        heldout.score_labelmaps("regions", settings, tmp_path, truth.assign(image_id="y"), submission)


# -- the table -----------------------------------------------------------------------------------


def test_the_table_puts_the_held_out_mean_and_ci_beside_the_estimate():
    per_image = {"unet": pd.DataFrame({"image_id": list("abcd"), "subject": ["s1", "s1", "s2", "s3"],
                                       "score": [1.0, 0.5, 0.25, 0.75]}),
                 "main": pd.DataFrame({"image_id": list("abcd"), "subject": ["s1", "s1", "s2", "s3"],
                                       "score": [1.0, 1.0, 0.5, 0.5]})}
    decisions = {"unet": {"members": ["unet"], "score_name": "mean Dice", "cross_fitted_score": 0.7,
                          "cross_fitted_ci": [0.6, 0.8]},
                 "main": {"members": ["unet"], "score_name": "mean Dice", "cross_fitted_score": 0.7,
                          "cross_fitted_ci": [0.65, 0.75]}}
    table = heldout.heldout_table(per_image, decisions, {"unet": "model", "main": "ensemble"}, n_boot=200, seed=3)
    assert list(table.columns) == list(heldout.TABLE_COLUMNS)
    unet, main = table.iloc[0], table.iloc[1]
    assert (unet["name"], unet["kind"], unet["score"], unet["n_images"], unet["n_subjects"]) == \
        ("unet", "model", "mean Dice", 4, 3)
    assert unet["heldout"] == pytest.approx(0.625) and main["heldout"] == pytest.approx(0.75)
    assert unet["difference"] == pytest.approx(0.625 - 0.7) and main["difference"] == pytest.approx(0.05)
    ci = bootstrap_ci(per_image["unet"], value="score", n_boot=200, seed=3)
    assert (unet["heldout_low"], unet["heldout_high"]) == (round(ci["low"], 4), round(ci["high"], 4))
    assert (main["cross_fitted_low"], main["cross_fitted_high"]) == (0.65, 0.75)
    md = heldout.heldout_markdown(table)
    assert "| unet | model | 4 | 3 | 0.625 [" in md and "| 0.700 [0.600, 0.800] | -0.075 |" in md
    study_heldout.heldout_figure(table)  # draws


# -- the test manifest: masks checked, kept apart ---------------------------------------------------


def _sheet_dataset(tmp_path: Path, test_mask: np.ndarray | None) -> dict:
    raw = tmp_path / "raw"
    rows = ["image_id\tsubject\tsplit\timage\tmask"]
    for i in range(2):
        _png(raw / f"i{i}.png", np.full((4, 6), 40 * i))
        _png(raw / f"m{i}.png", np.where(np.arange(24).reshape(4, 6) < 6 * i, 128, 0))
        rows.append(f"i{i}\ts{i}\ttrain\ti{i}.png\tm{i}.png")
    _png(raw / "t.png", np.full((4, 6), 7))
    cell = ""
    if test_mask is not None:
        _png(raw / "tm.png", test_mask)
        cell = "tm.png"
    rows.append(f"t\tq\ttest\tt.png\t{cell}")
    (raw / "sheet.tsv").write_text("\n".join(rows) + "\n")
    return {"format": "sheet", "raw_dir": str(raw), "sheet": "sheet.tsv", "channels": ["image"],
            "allow_missing_channels": False, "color": "auto", "max_snapped_share": 0.05}


def _manifests(tmp_path: Path, data: dict, labelled: bool) -> dict:
    """The jobs of the workflow: the manifest of each image set (which never read the test masks),
    then, for a labelled test set, the test_masks job."""
    out = {k: tmp_path / "m" / f"{k}.{ext}" for k, ext in
           (("sheet", "tsv"), ("train", "csv"), ("summary", "json"), ("test", "csv"), ("test_masks", "csv"))}
    manifest_stage(data, CLASSES, out, part="train")
    manifest_stage(data, CLASSES, out, part="test", train_csv=out["train"], summary_json=out["summary"])
    if labelled:
        manifest_stage({**data, "test_masks": True}, CLASSES, out, part="test_masks", test_csv=out["test"],
                       summary_json=out["summary"])
    return out


def _config(data: dict, labelled: bool) -> dict:
    return {"data": {**data, "test_masks": labelled, "synthetic": {"enabled": False}}}


def test_a_labelled_test_set_writes_its_masks_apart_and_test_csv_as_without_them(tmp_path):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 1:4] = 255
    out = _manifests(tmp_path / "with", _sheet_dataset(tmp_path / "with", mask), True)
    truth = pd.read_csv(out["test_masks"], dtype=str, keep_default_na=False)
    assert list(truth.columns) == list(heldout.TRUTH_COLUMNS)
    assert truth.loc[0, "image_id"] == "t" and truth.loc[0, "mask"].endswith("tm.png")
    assert (truth.loc[0, "mask_area"], truth.loc[0, "mask_classes"]) == ("6", "b")
    plain = _manifests(tmp_path / "without", _sheet_dataset(tmp_path / "without", None), False)
    assert not plain["test_masks"].exists()
    with_masks = out["test"].read_text().replace(str(tmp_path / "with"), "")
    # no mask, no area: the prediction never sees them
    assert with_masks == plain["test"].read_text().replace(str(tmp_path / "without"), "")


def test_a_test_mask_without_data_test_masks_is_an_error_at_the_start(tmp_path):
    data = _sheet_dataset(tmp_path, np.zeros((4, 6)))
    with pytest.raises(SheetError, match=r"row 4 \(t\), column mask: a test row has a mask, but data.test_masks"):
        heldout.check_test_mask_cells(_config(data, False))
    heldout.check_test_mask_cells(_config(data, True))  # fits


def test_data_test_masks_needs_a_mask_on_every_test_row(tmp_path):
    data = _sheet_dataset(tmp_path, None)
    with pytest.raises(SheetError, match=r"row 4 \(t\), column mask: data.test_masks is set, so every test row"):
        heldout.check_test_mask_cells(_config(data, True))
    heldout.check_test_mask_cells(_config(data, False))
    with pytest.raises(SheetError, match=r"row 4 \(t\), column mask: data.test_masks is set, so every test row"):
        _manifests(tmp_path, data, True)  # the test_masks job says it too


def test_the_start_check_numbers_rows_as_the_sheet_does_and_leaves_other_problems_to_the_manifest(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "sheet.csv").write_text("image_id,split,image,mask\na,train,a.png,am.png\n\nb,test,b.png,bm.png\n"
                                   "c,test,c.png,\nd,test,d.png,dm.png,\n")
    config = {"data": {"format": "sheet", "raw_dir": str(raw), "sheet": "sheet.csv", "test_masks": False}}
    with pytest.raises(SheetError) as error:
        heldout.check_test_mask_cells(config)
    assert [p.split(",")[0] for p in error.value.problems] == ["row 4 (b)", "row 6 (d)"]
    (raw / "sheet.csv").write_text("no,header,here\n")
    heldout.check_test_mask_cells(config)  # the manifest job names a bad header
    config["data"]["format"] = "folders"
    heldout.check_test_mask_cells(config)  # a folders layout has no cells


@pytest.mark.parametrize("mask,problem", [
    (np.zeros((5, 6)), r"row 4 \(t\), column mask: .*tm\.png: the mask is 5x6, the image is 4x6"),
    (np.full((4, 6), 77), r"tm\.png.*77"),
], ids=["size", "value"])
def test_a_bad_test_mask_is_named_by_the_test_manifest(tmp_path, mask, problem):
    with pytest.raises(SheetError, match=problem):
        _manifests(tmp_path, _sheet_dataset(tmp_path, mask), True)


def test_the_folders_layout_reads_a_test_masks_folder(tmp_path):
    for folder, stem in (("images", "p1_1"), ("masks", "p1_1"), ("test", "q1_1"), ("test", "q1_2")):
        _png(tmp_path / folder / f"{stem}.png", np.zeros((3, 3)))
    sheet = folders(tmp_path)
    assert (sheet["split"] == "test").sum() == 2 and (sheet.loc[sheet["split"] == "test", "mask"] == "").all()
    _png(tmp_path / "test_masks" / "q1_1_mask.png", np.zeros((3, 3)))
    with pytest.raises(LayoutError, match=r"q1_2\.png: test image without a mask"):
        folders(tmp_path, test_masks="test_masks")
    _png(tmp_path / "test_masks" / "q1_2.png", np.zeros((3, 3)))
    _png(tmp_path / "test_masks" / "q9.png", np.zeros((3, 3)))
    with pytest.raises(LayoutError, match=r"q9\.png: test mask without a test image"):
        folders(tmp_path, test_masks="test_masks")
    (tmp_path / "test_masks" / "q9.png").unlink()
    test = folders(tmp_path, test_masks="test_masks").query("split == 'test'")
    assert [Path(m).name for m in test["mask"]] == ["q1_1_mask.png", "q1_2.png"]


def test_the_switch_adds_the_files_and_keeps_the_test_masks_in_a_record_of_their_own():
    config = {"data": {"format": "folders", "raw_dir": "raw", "sheet": "sheet.tsv", "test_masks": True,
                       "synthetic": {"enabled": False},
                       "folders": {"images": "images", "masks": "masks", "test": "test", "test_masks": "tm"}}}
    assert runs.manifest_outputs(config, "test") == {"test": "results/manifest/test.csv"}
    assert runs.raw_parts(config) == {"train": {"folders": None, "exclude": ["sheet.tsv", "test", "tm"]},
                                      "test": {"folders": ["test"]}}
    assert runs.test_masks_part(config) == {"folders": ["tm"]}
    assert "results/tables/heldout.md" in runs.heldout_targets(config)
    labelled = runs.raw_parts(config)
    config["data"]["test_masks"] = False
    assert runs.heldout_targets(config) == [] and runs.test_masks_part(config) is None
    assert runs.raw_parts(config) == labelled  # the switch changes neither image set's record
    assert runs.manifest_data(config) == runs.manifest_data({"data": {**config["data"], "test_masks": True}})


def test_a_sheets_test_masks_are_in_their_own_record_and_not_the_test_images(tmp_path):
    from plexus.data.fingerprint import part_fingerprint

    mask = np.zeros((4, 6), np.uint8)
    data = _sheet_dataset(tmp_path, mask)
    config = _config(data, True)
    parts, masks = runs.raw_parts(config), runs.test_masks_part(config)
    raw = data["raw_dir"]
    before = {name: part_fingerprint(raw, "test" if name != "train" else "train", spec)["sha256"]
              for name, spec in (("train", parts["train"]), ("test", parts["test"]), ("masks", masks))}

    def after():
        return {name: part_fingerprint(raw, "test" if name != "train" else "train", spec)["sha256"]
                for name, spec in (("train", parts["train"]), ("test", parts["test"]), ("masks", masks))}

    _png(Path(raw) / "tm.png", np.full((4, 6), 255))  # a test mask rewritten
    changed = after()
    assert [k for k in before if before[k] != changed[k]] == ["masks"]
    _png(Path(raw) / "t.png", np.full((4, 6), 9))  # a test image rewritten
    assert [k for k in before if changed[k] != after()[k]] == ["test"]
    # an unlabelled sheet's test record is the same as it was before the masks had their own
    plain = _sheet_dataset(tmp_path / "plain", None)
    spec = runs.raw_parts(_config(plain, False))["test"]
    assert part_fingerprint(plain["raw_dir"], "test", spec) == part_fingerprint(plain["raw_dir"], "test",
                                                                                {"sheet": spec["sheet"]})


def test_a_task_without_a_held_out_score_is_a_config_error():
    config = {"data": {"format": "sheet", "test_masks": True}}
    assert heldout.config_errors(config, "classes") == []
    assert heldout.config_errors(config, "regions") == []
    assert heldout.config_errors(config, "instances") == [
        "data.test_masks: task 'instances' has no held-out score (tasks: binary, classes, regions)"]
    assert "carries no test masks" in heldout.config_errors({"data": {"format": "kaggle_nerve", "test_masks": True}},
                                                            "binary")[0]


# -- the workflow: a finished folders study gets test masks ------------------------------------------

#: what labelling the test set (or editing a test mask) plans: the test masks job and heldout; no prediction,
#: nothing trained or decided
HELDOUT_JOBS = sorted(["test_masks", "heldout", "all"])
README_COMMAND = ("plexus predict --results results --ensemble main --images results/raw/folders "
                  "--masks results/raw/folders/test_masks --out applied")


def _test_mask(i: int) -> np.ndarray:
    mask = np.zeros((20, 24), np.uint8)
    mask[4 + i:12 + i, 5:14] = 255
    return mask


def _decided_files(results: Path) -> dict[Path, bytes]:
    """Every file trained, predicted out of fold, tuned or decided on the training images."""
    return {p: p.read_bytes() for folder in ("models", "oof", "tuning", "postprocess", "preprocessed")
            for p in sorted((results / folder).rglob("*")) if p.is_file() and "test" not in p.name}


@pytest.fixture(scope="module")
def labelled_run(folders_run, tmp_path_factory):
    """The finished folders study with masks for its test images (data.test_masks), run again: only the
    jobs the masks touch run."""
    workdir = copy_workdir(folders_run, tmp_path_factory.mktemp("heldout") / "plexus")
    raw, results = workdir / "results/raw/folders", workdir / "results"
    for i, stem in enumerate(TEST_STEMS):
        _png(raw / "test_masks" / f"{stem}.png", _test_mask(i))
    config = read_config(workdir)
    config["data"]["test_masks"] = True
    write_config(workdir, config)
    before = _decided_files(results)
    assert sorted({rule for rule, _ in planned_jobs(workdir)}) == HELDOUT_JOBS
    snakemake(workdir, "--cores", "2")
    return workdir, before


@pytest.mark.workflow
def test_a_labelled_test_set_is_scored_and_nothing_decided_changes(labelled_run):
    workdir, before = labelled_run
    results = workdir / "results"
    assert _decided_files(results) == before  # byte for byte: the masks entered no training or decision
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    assert (test["mask"] == "").all() and (test["mask_area"] == "0").all()
    table = pd.read_csv(results / "tables/heldout.csv")
    assert table["name"].tolist() == ["unet", "main"] and table["kind"].tolist() == ["model", "ensemble"]
    assert (table["n_images"] == 3).all() and (table["n_subjects"] == 2).all()
    # the held-out score is the per-image mean Dice of the submitted label maps, by hand
    truth = {stem: _test_mask(i) > 0 for i, stem in enumerate(TEST_STEMS)}
    dice = []
    for stem in TEST_STEMS:
        pred = np.asarray(Image.open(results / f"labelmaps/main/{stem}.png")) > 0
        total = pred.sum() + truth[stem].sum()
        dice.append(1.0 if total == 0 else 2 * (pred & truth[stem]).sum() / total)
    main = table.set_index("name").loc["main"]
    assert main["heldout"] == pytest.approx(np.mean(dice), abs=1e-4)
    decision = json.loads((results / "postprocess/main.json").read_text())
    assert main["cross_fitted"] == pytest.approx(decision["cross_fitted_score"], abs=1e-4)
    assert main["difference"] == pytest.approx(main["heldout"] - main["cross_fitted"], abs=2e-4)
    assert (results / "tables/heldout.md").read_text().startswith("Held-out mean Dice")
    assert (results / "figures/heldout/estimate_vs_heldout.png").stat().st_size > 0


@pytest.mark.workflow
def test_a_poisoned_test_mask_reruns_only_the_test_side(labelled_run, tmp_path):
    workdir = copy_workdir(labelled_run[0], tmp_path / "plexus")
    for stem in TEST_STEMS:
        _png(workdir / "results/raw/folders/test_masks" / f"{stem}.png", np.full((20, 24), 255))
    assert sorted({rule for rule, _ in planned_jobs(workdir)}) == HELDOUT_JOBS


@pytest.mark.workflow
def test_plexus_predict_masks_gives_the_numbers_of_heldout_csv(labelled_run, tmp_path):
    workdir = copy_workdir(labelled_run[0], tmp_path / "plexus")
    plexus = str(Path(sys.executable).with_name("plexus"))
    done = subprocess.run([plexus, *README_COMMAND.split()[1:]], cwd=workdir, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    ours = pd.read_csv(workdir / "applied/heldout.csv")
    study = pd.read_csv(workdir / "results/tables/heldout.csv").set_index("name").loc[["main"]].reset_index()
    pd.testing.assert_frame_equal(ours, study)
    per_image = pd.read_csv(workdir / "applied/heldout_per_image.csv")
    expected = pd.read_csv(workdir / "results/tables/heldout_per_image.csv").query("name == 'main'")
    pd.testing.assert_frame_equal(per_image, expected.reset_index(drop=True))
    assert "held-out mean Dice" in done.stderr


def test_the_readme_shows_the_command_the_test_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert README_COMMAND in readme
