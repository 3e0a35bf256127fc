"""``plexus predict`` (issue 28): a finished study applied to images through the console command, as a
user runs it (the venv's ``plexus`` script). On the study's own test images it gives back the
workflow's submission and label maps byte for byte, and the fold and mean probabilities bit for bit;
an unknown ensemble, a missing network and images of the wrong channel count are one-line errors
raised before any work.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from workflow_helpers import REPO, copy_workdir, snakemake

pytestmark = pytest.mark.workflow

PLEXUS = str(Path(sys.executable).with_name("plexus"))
README_SECTION = "## Apply a finished study to new images"


def plexus(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PLEXUS, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def readme_command() -> list[str]:
    """The ``plexus predict`` command of the README's section on applying a study."""
    text = (REPO / "README.md").read_text()
    assert README_SECTION in text
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("plexus predict ")]
    assert lines, "the README's section shows no plexus predict command"
    return shlex.split(lines[0].split("#", 1)[0])


def assert_same_outputs(results: Path, out: Path, name: str = "main") -> None:
    """The submission (CSV and JSON) and every label map, byte for byte."""
    for suffix in (".csv", ".json"):
        assert (out / "submission" / f"{name}{suffix}").read_bytes() == \
            (results / "submission" / f"{name}{suffix}").read_bytes(), suffix
    theirs = sorted(p.name for p in (results / "labelmaps" / name).iterdir() if not p.name.startswith("."))
    ours = sorted(p.name for p in (out / "labelmaps" / name).iterdir())
    assert ours == theirs and ours
    for file in ours:
        assert (out / "labelmaps" / name / file).read_bytes() == (results / "labelmaps" / name / file).read_bytes()


def assert_same_probs(results: Path, out: Path, members, folds) -> None:
    """Each member's fold and mean test probabilities equal the workflow's, bit for bit (every array
    ``plexus predict`` stored; the workflow's jobs may hold ``*_tta`` ones beside them)."""
    for member in members:
        for stem in [f"fold{k}" for k in folds] + ["mean"]:
            with np.load(results / "test_probs" / member / f"{stem}.npz") as theirs, \
                    np.load(out / "test_probs" / member / f"{stem}.npz") as ours:
                assert ours.files and set(ours.files) <= set(theirs.files)
                for key in ours.files:
                    np.testing.assert_array_equal(ours[key], theirs[key], err_msg=f"{member} {stem} {key}")


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("plexus predict: error: "), result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# -------------------------------------------------------------------------- task binary (Kaggle layout)


@pytest.fixture(scope="module")
def study(tiny_run, tmp_path_factory):
    """A copy of the finished tiny binary study (tests/configs/tiny.yaml)."""
    return copy_workdir(tiny_run, tmp_path_factory.mktemp("predict") / "plexus")


def test_the_readme_command_reproduces_the_submission_and_label_maps_byte_for_byte(study):
    command = readme_command()
    assert command[:2] == ["plexus", "predict"]
    result = subprocess.run([PLEXUS, *command[1:]], cwd=study, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = study / command[command.index("--out") + 1]
    assert_same_outputs(study / "results", out)
    assert result.stdout == ""  # progress goes to stderr
    assert "plexus predict: [4/4] unet2head fold 1" in result.stderr
    record = json.loads((out / "predict.json").read_text())
    assert record["members"] == ["unet", "unet2head"] and record["n_images"] == 8


def test_a_decision_with_tta_gate_and_post_processing_is_applied_as_the_workflow_applies_it(study, tmp_path):
    """A decision that uses TTA, a presence gate and per-image post-processing (the tiny study's own
    keeps none): the workflow's submission job reruns on it, the command must agree with it."""
    work = copy_workdir(study, tmp_path / "plexus")
    results = work / "results"
    means = [np.load(results / "test_probs" / m / "mean.npz") for m in ("unet", "unet2head")]
    average = np.mean([m["prob_tta"].astype(np.float32) for m in means], axis=0)
    presence = means[1]["presence_tta"]
    decision_json = results / "postprocess" / "main.json"
    decision = json.loads(decision_json.read_text())
    decision["pipeline"].update(
        tta=True, cutoff=float(np.quantile(average.reshape(len(average), -1), 0.9, axis=1).min()), min_area=10,
        presence_threshold=float(np.median(presence)), fill_holes=True, largest_only=True)
    decision_json.write_text(json.dumps(decision, indent=2, sort_keys=True) + "\n")
    snakemake(work, "--cores", "1", "results/submission/main.csv")
    rows = (results / "submission" / "main.csv").read_text().splitlines()[1:]
    assert any(not row.endswith(",") for row in rows) and any(row.endswith(",") for row in rows)
    result = plexus(work, "predict", "--results", "results", "--ensemble", "main", "--images",
                    "results/raw/synthetic/test", "--out", str(tmp_path / "out"), "--keep-probs")
    assert result.returncode == 0, result.stderr
    assert "(+ hflip)" in result.stderr
    assert_same_outputs(results, tmp_path / "out")
    assert_same_probs(results, tmp_path / "out", ["unet", "unet2head"], [0, 1])


def test_an_unknown_ensemble_is_an_error_listing_the_known_ones(study, tmp_path):
    result = plexus(study, "predict", "--ensemble", "mian", "--images", "results/raw/synthetic/test",
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "unknown ensemble 'mian'", "ensembles: main", "models: unet, unet2head")
    assert not (tmp_path / "out").exists()


def test_a_missing_network_is_named_before_any_work(study, tmp_path):
    model = study / "results/models/unet2head/fold1/model.pt"
    model.rename(model.with_suffix(".moved"))
    try:
        result = plexus(study, "predict", "--ensemble", "main", "--images", "results/raw/synthetic/test",
                        "--out", str(tmp_path / "out"))
    finally:
        model.with_suffix(".moved").rename(model)
    assert_one_line_error(result, "results/models/unet2head/fold1/model.pt", "model unet2head, fold 1")
    assert not (tmp_path / "out").exists()


def test_images_of_the_wrong_channel_count_are_refused_before_any_work(study, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    gray = tifffile.imread(next((study / "results/raw/synthetic/test").glob("*.tif")))
    tifffile.imwrite(images / "1.tif", gray)
    tifffile.imwrite(images / "2.tif", np.repeat(gray[..., None], 3, axis=2), photometric="rgb")
    result = plexus(study, "predict", "--ensemble", "main", "--images", str(images), "--out", str(tmp_path / "out"))
    line = assert_one_line_error(result, str(images / "2.tif"), "3 channel(s)", "trained on 1")
    assert "1.tif" not in line.replace("2.tif", "")
    assert not (tmp_path / "out").exists()


def test_the_output_folder_may_not_be_the_studys_results(study):
    result = plexus(study, "predict", "--ensemble", "main", "--images", "results/raw/synthetic/test",
                    "--out", "results")
    assert_one_line_error(result, "the study's own results folder")


# -------------------------------------------------------------------------- task classes (a sample sheet)


@pytest.fixture(scope="module")
def classes_study(multiclass_run, tmp_path_factory):
    """A copy of the finished tiny_multiclass.yaml study (three classes, 16-bit images of mixed sizes, a
    sheet dataset; conftest.multiclass_run): the workflow's own test set to compare with."""
    return copy_workdir(multiclass_run, tmp_path_factory.mktemp("predict_classes") / "plexus")


def test_a_classes_study_applied_to_its_sheet_reproduces_its_submission(classes_study, tmp_path):
    out = tmp_path / "out"
    result = plexus(classes_study, "predict", "--ensemble", "main", "--images", "results/raw/multiclass/sheet.tsv",
                    "--out", str(out), "--keep-probs")
    assert result.returncode == 0, result.stderr
    results = classes_study / "results"
    assert_same_outputs(results, out)
    assert_same_probs(results, out, ["unet", "attn"], [0, 1])
    # the label maps at each image's own size, in the class values
    for path in (out / "labelmaps" / "main").iterdir():
        assert set(np.unique(np.asarray(Image.open(path)))) <= {0, 128, 255}


def test_a_folder_of_images_gets_label_maps_named_by_their_stems(classes_study, tmp_path):
    images = tmp_path / "new images"
    images.mkdir()
    test = sorted((classes_study / "results/raw/multiclass/images").iterdir())[:2]
    for i, path in enumerate(test):
        (images / f"scan ({i}){path.suffix}").write_bytes(path.read_bytes())
    result = plexus(classes_study, "predict", "--ensemble", "main", "--images", str(images),
                    "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out/labelmaps/main").iterdir()) == ["scan_0.png", "scan_1.png"]
    rows = (tmp_path / "out/submission/main.csv").read_text().splitlines()
    assert rows[0] == "image_id,class,EncodedPixels" and len(rows) == 1 + 2 * 2


def test_rgb_images_for_a_gray_study_are_refused(classes_study, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(images / "rgb.png")
    result = plexus(classes_study, "predict", "--ensemble", "main", "--images", str(images),
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "rgb.png", "3 channel(s) (RGB)", "trained on 1 (gray) in column image")
    assert not (tmp_path / "out").exists()


def test_a_sheet_without_test_rows_is_refused(classes_study, tmp_path):
    sheet = classes_study / "results/raw/multiclass/sheet.tsv"
    rows = [line.split("\t") for line in sheet.read_text().splitlines()]
    split, paths = rows[0].index("split"), [rows[0].index(c) for c in ("image", "mask")]
    train = [rows[0]] + [[str(sheet.parent / c) if i in paths and c else c for i, c in enumerate(row)]
                         for row in rows[1:] if row[split] == "train"]
    train_only = tmp_path / "train_only.tsv"
    train_only.write_text("".join("\t".join(row) + "\n" for row in train))
    result = plexus(classes_study, "predict", "--ensemble", "main", "--images", str(train_only),
                    "--out", str(tmp_path / "out"))
    assert_one_line_error(result, str(train_only), "no test rows")


def _recorded_study(tmp_path: Path, config: dict, sha: str | None = None) -> Path:
    import yaml

    from plexus.provenance import config_hash

    results = tmp_path / "results"
    (results / "manifest").mkdir(parents=True)
    (results / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (results / "provenance.json").write_text(json.dumps({"config_sha256": sha or config_hash(config)}))
    (results / "manifest/summary.json").write_text(json.dumps({"channels": ["image"], "depths": {"image": 1}}))
    return results


def test_a_config_recorded_before_a_new_schema_default_gets_it_and_a_tampered_one_is_refused(tmp_path):
    import yaml

    from plexus.config import validate_config
    from plexus.study.apply import StudyError, load_study

    config = validate_config(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text()))
    del config["summary"]["seed"]  # as if the schema had gained this default after the run
    study = load_study(_recorded_study(tmp_path / "old", config))
    assert study.config["summary"]["seed"] == 0 and study.task_name == "binary"
    with pytest.raises(StudyError, match="differs from config_sha256"):
        load_study(_recorded_study(tmp_path / "tampered", config, sha="0" * 64))


def test_the_command_is_documented():
    contracts = (REPO / "docs/contracts.md").read_text()
    assert "plexus predict" in contracts and "results/config.yaml" in contracts
    assert re.search(r"^plexus = \"plexus\.cli:main\"$", (REPO / "pyproject.toml").read_text(), re.M)


def test_the_quick_start_applies_the_study_with_the_tested_command():
    """The quick start's plexus predict line is the section's (run by the tests above), from the venv."""
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in quick.splitlines() if "plexus predict " in line and line.strip().startswith(".")]
    assert len(lines) == 1 and lines[0].startswith(".venv/bin/plexus predict ")
    assert shlex.split(lines[0])[1:] == readme_command()[1:]
