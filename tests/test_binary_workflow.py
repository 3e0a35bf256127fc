"""A two-class dataset brought through ``data.format: folders`` runs task binary by default, end to
end: the cutoff x minimum-area (x presence) tuning with its figures, every post-processing
candidate under the bootstrap rule, the run-length submission and label maps at each test
image's own size in the dataset's mask values, and the robustness studies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from plexus.io import rle
from workflow_helpers import (
    BINARY_TEST,
    BINARY_TRAIN,
    binary_folders_config,
    binary_test_mask,
    make_workdir,
    planned_jobs,
    write_binary_folders,
)

pytestmark = pytest.mark.workflow

CANDIDATES = ["tta", "crf", "otsu", "hysteresis", "remove_small", "largest_component", "fill_holes"]


def test_a_two_class_folders_dataset_is_a_binary_study(binary_folders_run):
    results = binary_folders_run / "results"
    assert yaml.safe_load((results / "config.yaml").read_text())["task"] == "binary"
    for name in ("unet", "unet2head", "main"):
        for figure in ("tuning/{}_heatmap", "tuning/{}_min_area", "areas/{}"):
            assert (results / "figures" / f"{figure.format(name)}.png").stat().st_size > 0
    # the presence gate is tuned where a member has the presence head, and only there
    assert "presence_threshold" in json.loads((results / "tuning/unet2head/best.json").read_text())
    assert "presence_threshold" in json.loads((results / "tuning/main/best.json").read_text())
    assert "presence_threshold" not in json.loads((results / "tuning/unet/best.json").read_text())
    assert "presence_threshold" in pd.read_csv(results / "tuning/main/grid.csv").columns


def test_each_training_image_is_scored_against_its_own_mask_at_its_own_size(binary_folders_run):
    """Independent reference: the foreground pixels of each raw mask file, counted with Pillow."""
    raw = binary_folders_run / "results/raw/binary"
    per_image = pd.read_csv(binary_folders_run / "results/postprocess/unet_per_image.csv", dtype={"image_id": str})
    expected = {stem: int((np.asarray(Image.open(raw / "masks" / f"{stem}.png")) == 255).sum())
                for stem, _, _ in BINARY_TRAIN}
    assert dict(zip(per_image["image_id"], per_image["true_area"])) == expected
    assert len({size for _, size, _ in BINARY_TRAIN}) == 2  # two sizes, so a fixed grid would have failed


def test_every_candidate_is_tried_and_the_table_says_which_were_kept(binary_folders_run):
    results = binary_folders_run / "results"
    decisions = pd.read_csv(results / "postprocess/main.csv")
    assert decisions["candidate"].tolist() == CANDIDATES
    kept = decisions.loc[decisions["kept"], "candidate"].tolist()
    summary = pd.read_csv(results / "tables/summary.csv", dtype={"kept": str}, keep_default_na=False)
    assert summary.set_index("name").loc["main", "kept"] == ("+".join(kept) or "none")


def test_the_submission_and_label_maps_are_at_each_test_images_size(binary_folders_run):
    results = binary_folders_run / "results"
    frame = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False)
    assert sorted(frame["img"]) == sorted(stem for stem, _ in BINARY_TEST)  # "0007" and "1e5" stay text
    sizes = dict(BINARY_TEST)
    for image_id, pixels in zip(frame["img"], frame["pixels"]):
        mask = rle.decode(pixels, sizes[image_id])  # refuses runs beyond the image
        label = np.asarray(Image.open(results / "labelmaps/main" / f"{image_id}.png"))
        assert label.shape == sizes[image_id] and set(np.unique(label)) <= {0, 255}
        np.testing.assert_array_equal(label == 255, mask.astype(bool))


def test_a_labelled_test_set_scores_the_submitted_masks(binary_folders_run):
    """The held-out score of each entry is the mean Kaggle Dice of its label maps against the test
    masks, by hand; the masks entered no decision (the test manifest holds none)."""
    results = binary_folders_run / "results"
    table = pd.read_csv(results / "tables/heldout.csv").set_index("name")
    assert set(table.index) == {"unet", "unet2head", "main"}
    dice = []
    for k, (stem, size) in enumerate(BINARY_TEST):
        pred = np.asarray(Image.open(results / "labelmaps/main" / f"{stem}.png")) > 0
        truth = binary_test_mask(k, size) > 0
        total = pred.sum() + truth.sum()
        dice.append(1.0 if total == 0 else 2 * (pred & truth).sum() / total)
    assert table.loc["main", "heldout"] == pytest.approx(np.mean(dice), abs=1e-4)
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    assert (test["mask"] == "").all()


def test_the_noise_study_scores_a_binary_folders_study(binary_folders_run):
    """(The training-size study runs through the same binary stage in the nerve tiny run.)"""
    results = binary_folders_run / "results/robustness"
    noise = pd.read_csv(results / "noise/scores.csv")
    assert set(noise["sigma"]) == {0.0, 20.0} and noise["kaggle_dice"].between(0, 1).all()
    assert set(noise["condition"]) == {"clean", "noisy"}


def test_the_raw_folder_is_untouched(binary_folders_run, tmp_path):
    fresh = tmp_path / "raw"
    write_binary_folders(fresh)
    raw = binary_folders_run / "results/raw/binary"
    assert {p.relative_to(raw) for p in raw.rglob("*") if p.is_file()} == \
        {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    for path in fresh.rglob("*.png"):
        assert (raw / path.relative_to(fresh)).read_bytes() == path.read_bytes()


def test_kaggle_yaml_plans_its_models_candidates_and_gate_on_a_folders_dataset(tmp_path):
    """config/kaggle.yaml with only ``data:`` changed: every model, the two-head gate, every
    candidate and both studies are planned on a two-class folders dataset, with no config error."""
    workdir = make_workdir(tmp_path / "plexus", "tiny_binary.yaml")
    kaggle = yaml.safe_load((workdir / "config/kaggle.yaml").read_text())
    changed = binary_folders_config(kaggle)
    assert {k for k in kaggle if kaggle[k] != changed[k]} == {"data"}
    (workdir / "config/kaggle_folders.yaml").write_text(yaml.safe_dump(changed))
    write_binary_folders(workdir / changed["data"]["raw_dir"])
    jobs = planned_jobs(workdir, "--configfile", "config/kaggle_folders.yaml")
    trained = {(w["run"], w["fold"]) for rule, w in jobs if rule == "train"}
    models = set(kaggle["models"])
    assert {(m, str(k)) for m in models for k in range(kaggle["cv"]["n_folds"])} <= trained
    tuned = {w["name"] for rule, w in jobs if rule == "tune"}
    assert models | set(kaggle["ensembles"]) <= tuned
    assert {w["name"] for rule, w in jobs if rule == "figure_tuning"} == tuned
    assert {rule for rule, _ in jobs} >= {"postprocess", "submission", "noise_scores", "train_size_scores"}


def test_plexus_predict_reproduces_the_binary_submission(binary_folders_run, tmp_path):
    """The finished binary folders study applied to its own test folder: the same bytes."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    plexus = str(Path(sys.executable).with_name("plexus"))
    out = tmp_path / "applied"
    done = subprocess.run([plexus, "predict", "--results", "results", "--ensemble", "main", "--images",
                           "results/raw/binary/test", "--out", str(out)], cwd=binary_folders_run,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = binary_folders_run / "results"
    assert (out / "submission/main.csv").read_bytes() == (results / "submission/main.csv").read_bytes()
    labels = sorted((results / "labelmaps/main").glob("*.png"))
    assert [p.name for p in labels] == sorted(f"{stem}.png" for stem, _ in BINARY_TEST)
    for label in labels:
        assert (out / "labelmaps/main" / label.name).read_bytes() == label.read_bytes()
    shutil.rmtree(out)


def test_the_missing_channel_study_of_a_binary_multichannel_study(tmp_path):
    """tests/configs/tiny_multichannel.yaml as a binary study (its mask has one foreground class):
    the OOF predictions with each input channel removed, at the tuned setting. Independent
    expectation: with nothing removed, each fold's mean Kaggle Dice is the tuning's own per-image
    Dice of that fold (the same network on the same images)."""
    from workflow_helpers import read_config, snakemake, write_config

    workdir = make_workdir(tmp_path / "plexus", "tiny_multichannel.yaml")
    config = read_config(workdir)
    config["task"] = "binary"
    config["tuning"]["min_areas"] = config["tuning"].pop("min_sizes")  # binary's minimum is the whole mask's
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2", "results/robustness/missing_channel/scores.csv",
              "results/figures/robustness/missing_channel.png")
    results = workdir / "results"
    scores = pd.read_csv(results / "robustness/missing_channel/scores.csv")
    assert scores["removed"].unique().tolist() == ["none", "t1", "t2", "flair"]
    assert scores["kaggle_dice"].between(0, 1).all() and (scores["class"] == "lesion").all()
    tuned = pd.read_csv(results / "tuning/unet/per_image.csv").groupby("fold")["kaggle_dice"].mean()
    none = scores[scores["removed"] == "none"].set_index("fold")["kaggle_dice"]
    np.testing.assert_allclose(none.sort_index().to_numpy(), tuned.sort_index().to_numpy(), atol=1e-12)
    assert (results / "figures/robustness/missing_channel.png").stat().st_size > 1000
