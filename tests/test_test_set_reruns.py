"""Test-only changes rerun test-only jobs (issue 28, finding 1).

Adding, editing or removing one test image of a finished study reruns that image set's manifest
and arrays, the test predictions, their fold average and the submission: never a training job,
an OOF file or anything tuned on them. An edit to a training image still reruns training. Each
edit is planned (``snakemake -n``) on a copy of a finished run and the exact job list checked:
the default (Kaggle nerve layout, tests/configs/tiny.yaml, the session's ``tiny_run``) and a
``folders`` layout run here once. The fingerprint that tells the two image sets apart is checked
for every data format without Snakemake.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from plexus import runs
from plexus.data.fingerprint import part_fingerprint
from workflow_helpers import (
    FOLDERS_TEST_STEMS,
    FOLDERS_TRAIN_STEMS,
    copy_workdir,
    planned_jobs,
    read_config,
    rule_counts,
    snakemake,
)

pytestmark = pytest.mark.workflow


def _sorted(jobs):
    return sorted(jobs, key=lambda job: (job[0], sorted(job[1].items())))


def _keep_folder_time(path: Path, edit) -> None:
    """``edit()`` a file of ``path``'s folder and put the folder's mtime back (an in-place rewrite)."""
    before = os.stat(path.parent)
    edit()
    os.utime(path.parent, ns=(before.st_atime_ns, before.st_mtime_ns))


# -- the Kaggle nerve layout (the default; tiny.yaml) ---------------------------------------------

#: the jobs a test-image change plans on tiny.yaml: one input size, two models, ensemble main
KAGGLE_TEST_JOBS = _sorted([
    ("manifest_test", {}),
    ("preprocess", {"size": "32x48", "part": "test"}),
    ("predict", {"model": "unet"}), ("predict", {"model": "unet2head"}),
    ("average_folds", {"model": "unet"}), ("average_folds", {"model": "unet2head"}),
    ("submission", {"ensemble": "main"}),
    ("all", {}),
])


def _kaggle_test(raw: Path) -> list[Path]:
    return sorted((raw / "test").glob("*.tif"), key=lambda p: int(p.stem))


def _kaggle_add(raw: Path) -> None:
    image = tifffile.imread(_kaggle_test(raw)[0])
    tifffile.imwrite(raw / "test" / "9999.tif", 255 - image, compression="lzw")


def _kaggle_edit(raw: Path) -> None:
    path = _kaggle_test(raw)[0]
    image = tifffile.imread(path)
    _keep_folder_time(path, lambda: tifffile.imwrite(path, 255 - image, compression="lzw"))


def _kaggle_remove(raw: Path) -> None:
    _kaggle_test(raw)[-1].unlink()


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    return copy_workdir(tiny_run, tmp_path / "plexus")


@pytest.mark.parametrize("edit", [_kaggle_add, _kaggle_edit, _kaggle_remove])
def test_a_test_image_change_reruns_only_the_test_side(tiny_copy, edit):
    raw = tiny_copy / read_config(tiny_copy)["data"]["raw_dir"]
    assert planned_jobs(tiny_copy) == []
    edit(raw)
    assert _sorted(planned_jobs(tiny_copy)) == KAGGLE_TEST_JOBS


def test_a_training_mask_change_still_reruns_training(tiny_copy):
    raw = tiny_copy / read_config(tiny_copy)["data"]["raw_dir"]
    all_jobs = rule_counts(planned_jobs(tiny_copy, "--forceall"))
    mask = sorted((raw / "train").glob("*_mask.tif"))[0]
    array = tifffile.imread(mask)
    array[:10, :10] = 255 - array[:10, :10]
    _keep_folder_time(mask, lambda: tifffile.imwrite(mask, array, compression="lzw"))
    counts = rule_counts(planned_jobs(tiny_copy))
    # the whole study but the synthetic data itself: the training side, and the test side through it
    assert counts == all_jobs - rule_counts([("synthesize", {})])


# -- the folders layout --------------------------------------------------------------------------

TRAIN_STEMS, TEST_STEMS = FOLDERS_TRAIN_STEMS, FOLDERS_TEST_STEMS
rng = np.random.default_rng(28)


def _image() -> np.ndarray:
    return rng.integers(0, 256, (20, 24), dtype=np.uint8)


@pytest.fixture
def folders_copy(folders_run, tmp_path):
    return copy_workdir(folders_run, tmp_path / "plexus")


FOLDERS_TEST_JOBS = _sorted([
    ("manifest_test", {}),
    ("preprocess", {"size": "16x16", "part": "test"}),
    ("predict", {"model": "unet"}),
    ("average_folds", {"model": "unet"}),
    ("submission", {"ensemble": "main"}),
    ("all", {}),
])


def _folders_add(raw: Path) -> None:
    Image.fromarray(_image()).save(raw / "test" / "q9_1.png")


def _folders_edit(raw: Path) -> None:
    path = raw / "test" / f"{TEST_STEMS[0]}.png"
    _keep_folder_time(path, lambda: Image.fromarray(_image()).save(path))


def _folders_remove(raw: Path) -> None:
    (raw / "test" / f"{TEST_STEMS[-1]}.png").unlink()


@pytest.mark.parametrize("edit", [_folders_add, _folders_edit, _folders_remove])
def test_a_test_image_change_of_a_folders_study_reruns_only_the_test_side(folders_copy, edit):
    raw = folders_copy / "results/raw/folders"
    assert planned_jobs(folders_copy) == []
    edit(raw)
    assert _sorted(planned_jobs(folders_copy)) == FOLDERS_TEST_JOBS


def test_an_added_test_image_is_submitted_and_nothing_else_changes(folders_copy):
    """The planned jobs run: the new image is in the test manifest, the arrays and the submission,
    and the OOF predictions and tuned decisions are the very files they were."""
    raw, results = folders_copy / "results/raw/folders", folders_copy / "results"
    kept = [results / "oof/unet/fold0.npz", results / "tuning/main/best.json", results / "postprocess/main.json",
            results / "models/unet/fold0/model.pt", results / "preprocessed/16x16/train.npz"]
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in kept}
    _folders_add(raw)
    snakemake(folders_copy, "--cores", "2")
    assert planned_jobs(folders_copy) == []
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in kept} == before
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    assert sorted(test["image_id"]) == sorted([*TEST_STEMS, "q9_1"])
    submission = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False)
    assert "q9_1" in set(submission["image_id"])
    assert (results / "labelmaps/main/q9_1.png").is_file()


def test_a_training_image_change_of_a_folders_study_reruns_training(folders_copy):
    raw = folders_copy / "results/raw/folders"
    all_jobs = rule_counts(planned_jobs(folders_copy, "--forceall"))
    path = raw / "images" / f"{TRAIN_STEMS[0]}.png"
    _keep_folder_time(path, lambda: Image.fromarray(_image()).save(path))
    assert rule_counts(planned_jobs(folders_copy)) == all_jobs


# -- what each image set's fingerprint covers, for every data format -------------------------------


def _config(data: dict) -> dict:
    return {"data": {"raw_dir": "raw", "sheet": "sheet.tsv", "synthetic": {"enabled": False}, **data}}


def _fingerprints(config: dict, where: Path) -> dict:
    raw = where / config["data"]["raw_dir"]
    parts = runs.raw_parts({**config, "data": {**config["data"], "raw_dir": str(raw)}})
    return {part: part_fingerprint(raw, part, spec)["sha256"] for part, spec in parts.items()}


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _changes(config: dict, where: Path, edit) -> set[str]:
    before = _fingerprints(config, where)
    edit()
    after = _fingerprints(config, where)
    return {part for part in before if before[part] != after[part]}


@pytest.mark.parametrize("data,train_file,test_file", [
    ({"format": "kaggle_nerve"}, "train/1_1.tif", "test/1.tif"),
    ({"format": "dsb2018"}, "stage1_train/a/images/a.png", "stage1_test/b/images/b.png"),
    ({"format": "folders", "folders": {"images": "images", "masks": "masks", "test": "test"}}, "masks/a.png",
     "test/b.png"),
], ids=["kaggle_nerve", "dsb2018", "folders"])
def test_each_folder_layout_fingerprints_its_two_image_sets_apart(tmp_path, data, train_file, test_file):
    config, raw = _config(data), tmp_path / "raw"
    _write(raw / train_file)
    _write(raw / test_file)
    _write(raw / "sheet.tsv")  # a folders dataset's sheet path: in neither set
    assert _changes(config, tmp_path, lambda: _write(raw / test_file, "edited")) == {"test"}
    assert _changes(config, tmp_path, lambda: _write(raw / f"{test_file}.new.png")) == {"test"}
    assert _changes(config, tmp_path, lambda: (raw / f"{test_file}.new.png").unlink()) == {"test"}
    assert _changes(config, tmp_path, lambda: _write(raw / train_file, "edited")) == {"train"}
    assert _changes(config, tmp_path, lambda: _write(raw / "sheet.tsv", "other")) == set()


def test_a_sheet_fingerprints_each_sets_rows_and_the_files_they_name(tmp_path):
    config = _config({"format": "sheet", "channels": ["image"]})
    raw = tmp_path / "raw"
    for name in ("a.png", "a_mask.png", "t.png", "u.png"):
        _write(raw / "img" / name)
    sheet = raw / "sheet.tsv"
    rows = ["image_id\tsubject\tsplit\timage\tmask", "a\ts1\ttrain\timg/a.png\timg/a_mask.png",
            "t\tt1\ttest\timg/t.png\t"]
    sheet.write_text("\n".join(rows) + "\n")
    assert _changes(config, tmp_path, lambda: _write(raw / "img" / "t.png", "edited")) == {"test"}
    assert _changes(config, tmp_path, lambda: sheet.write_text("\n".join([*rows, "u\tt1\ttest\timg/u.png\t"]) + "\n")) \
        == {"test"}
    assert _changes(config, tmp_path, lambda: sheet.write_text("\n".join(rows) + "\n")) == {"test"}  # removed again
    assert _changes(config, tmp_path, lambda: _write(raw / "img" / "u.png", "no row names it")) == set()
    assert _changes(config, tmp_path, lambda: _write(raw / "img" / "a_mask.png", "edited")) == {"train"}
    assert _changes(config, tmp_path, lambda: sheet.write_text("\n".join([rows[0].replace("mask", "mask\tnote"),
                                                                           rows[1] + "\t", rows[2] + "\t"]) + "\n")) \
        == {"train", "test"}  # the header is both sets'


def test_each_image_set_has_its_own_manifest_inputs_and_outputs():
    nerve = {"data": {"format": "kaggle_nerve", "raw_dir": "raw/", "synthetic": {"enabled": True}}}
    assert runs.dataset_inputs(nerve, "train") == ["raw/train"]
    assert runs.dataset_inputs(nerve, "test") == ["raw/test"]
    assert set(runs.manifest_outputs(nerve, "train")) == {"train", "summary", "sheet", "masks"}
    assert set(runs.manifest_outputs(nerve, "test")) == {"test"}
    nuclei = {"data": {"format": "dsb2018", "raw_dir": "raw", "synthetic": {"enabled": True}}}
    assert runs.dataset_inputs(nuclei, "test") == [runs.CONVERTED_TEST["sheet"]]
    assert runs.converted_inputs(nuclei, "test") == {"test": "raw/stage1_test"}
    sheet = {"data": {"format": "sheet", "raw_dir": "raw", "sheet": "sheet.tsv", "synthetic": {"enabled": True}}}
    assert runs.dataset_inputs(sheet, "train") == runs.dataset_inputs(sheet, "test") == []  # the fingerprints
