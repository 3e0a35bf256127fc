"""Nuclei instance segmentation end to end: the tiny form of config/examples/nuclei.yaml.

Outputs are checked against recomputations from the raw files and the OOF probabilities: the
instance label maps of the sheet against the DSB2018 masks, the tuned per-image AP from the
OOF probabilities upsampled independently (torch), the submission decoded back to the written
test label maps, the table against the per-image scores.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from plexus.data.dsb2018 import instance_labels, scan_dsb2018
from plexus.evaluation.instances import average_precision
from plexus.postprocess.dsb_submission import decode_submission
from plexus.postprocess.instances import InstanceSettings
from workflow_helpers import make_workdir, planned_jobs, reuse_raw_data, snakemake

pytestmark = pytest.mark.workflow

NAMES = ("unet", "attn", "main")


@pytest.fixture(scope="module")
def nuclei_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("nuclei") / "plexus", "tiny_nuclei.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_every_output_is_there(nuclei_run):
    results = nuclei_run / "results"
    paths = ["submission/main.csv", "tables/summary.csv", "tables/summary.md",
             "figures/comparison/models.png", "figures/comparison/models.pdf",
             "tables/comparison.csv", "tables/pairwise.csv"]
    paths += [f"tuning/{name}/{file}" for name in NAMES for file in ("grid.csv", "best.json", "per_image.csv")]
    paths += [f"figures/tuning/{name}_surface.{ext}" for name in NAMES for ext in ("png", "pdf")]
    paths += [f"figures/qualitative/{model}.{ext}" for model in ("unet", "attn") for ext in ("png", "pdf")]
    paths += [f"figures/learning_curves/{model}.{ext}" for model in ("unet", "attn") for ext in ("png", "pdf")]
    for path in paths:
        assert (results / path).stat().st_size > 0, path
    assert (results / "labelmaps/main").is_dir()


def test_robustness_studies_score_mean_ap_at_the_tuned_candidate(nuclei_run):
    """The noise and training-size studies of the instances task (the same rules as every task's)."""
    results = nuclei_run / "results"
    noise = pd.read_csv(results / "robustness/noise/scores.csv")
    assert set(noise["condition"]) == {"clean", "noisy"} and set(noise["sigma"]) == {0.0, 40.0}
    assert set(noise["fold"]) == {0, 1} and noise["ap"].between(0, 1).all()
    # sigma 0 of the clean condition is the unet's own OOF predictions: its mean AP per fold is
    # the tuned per-image AP of the tuning table, averaged per fold
    tuned = pd.read_csv(results / "tuning/unet/per_image.csv").groupby("fold")["ap"].mean()
    clean = noise[(noise["condition"] == "clean") & (noise["sigma"] == 0)].set_index("fold")["ap"]
    np.testing.assert_allclose(clean.sort_index().to_numpy(), tuned.sort_index().to_numpy(), atol=1e-9)
    size = pd.read_csv(results / "robustness/train_size/scores.csv")
    assert set(size["run"]) == {"n0.5_s1", "full"}
    assert (size.loc[size["run"] == "full", "n_train"].min() > size.loc[size["run"] != "full", "n_train"].max())
    for study in ("noise", "train_size"):
        for ext in ("png", "pdf"):
            assert (results / f"figures/robustness/{study}.{ext}").stat().st_size > 1000


def test_sheet_label_maps_are_the_merged_masks(nuclei_run):
    results = nuclei_run / "results"
    train, test = scan_dsb2018(nuclei_run / "results/raw/nuclei")
    manifest = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False).set_index("image_id")
    assert sorted(manifest.index) == sorted(train["image_id"])
    for row in train.itertuples():
        labels = np.asarray(Image.open(manifest.loc[row.image_id, "instances"]))
        np.testing.assert_array_equal(labels, instance_labels(row.mask_paths, (row.height, row.width)))
        target = np.asarray(Image.open(manifest.loc[row.image_id, "mask"]))
        assert set(np.unique(target)) <= {0, 1, 2} and ((target > 0) == (labels > 0)).all()
        assert manifest.loc[row.image_id, "subject"] == f"{row.height}x{row.width}"
    folds = pd.read_csv(results / "splits/folds.csv", dtype=str)
    assert folds.groupby("subject")["fold"].nunique().max() == 1  # one size, one fold


def test_submission_decodes_to_the_written_label_maps(nuclei_run):
    results = nuclei_run / "results"
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    shapes = {row.image_id: (int(row.height), int(row.width)) for row in test.itertuples()}
    submission = pd.read_csv(results / "submission/main.csv", keep_default_na=False)
    assert list(submission.columns) == ["ImageId", "EncodedPixels"]
    decoded = decode_submission(submission, shapes)  # refuses overlapping runs
    maps = sorted((results / "labelmaps/main").glob("*.png"))
    assert [p.stem for p in maps] == sorted(shapes)
    for path in maps:
        label = np.asarray(Image.open(path))
        assert label.dtype == np.uint16 and label.shape == shapes[path.stem]
        np.testing.assert_array_equal(decoded[path.stem], label)
        rows = submission[submission["ImageId"] == path.stem]
        assert len(rows) == max(int(label.max()), 1)


def _mean_probs(results, members):
    probs = {}
    for model in members:
        for fold in (0, 1):
            with np.load(results / f"oof/{model}/fold{fold}.npz") as data:
                for image_id, prob in zip(data["image_id"], data["prob"]):
                    probs.setdefault(str(image_id), []).append(prob.astype(np.float32))
    return probs


@pytest.mark.parametrize("name,members", [("unet", ["unet"]), ("main", ["unet", "attn"])])
def test_tuned_ap_equals_a_recomputation_from_the_oof_probabilities(nuclei_run, name, members):
    results = nuclei_run / "results"
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False).set_index("image_id")
    per_image = pd.read_csv(results / f"tuning/{name}/per_image.csv", dtype={"image_id": str}).set_index("image_id")
    best = json.loads((results / f"tuning/{name}/best.json").read_text())
    settings = InstanceSettings.from_dict(best["settings"])
    probs = _mean_probs(results, members)
    assert sorted(probs) == sorted(per_image.index)
    for image_id, member_probs in probs.items():
        h, w = int(train.loc[image_id, "height"]), int(train.loc[image_id, "width"])
        up = [F.interpolate(torch.from_numpy(p)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
              for p in member_probs]
        mean = torch.stack(up).clamp(0, 1).mean(0).numpy()
        pred = settings.apply(1 - mean[0], boundary=mean[2] if best["boundary"] else None)
        true = np.asarray(Image.open(train.loc[image_id, "instances"])).astype(np.int32)
        ap, per_threshold = average_precision(true, pred)
        assert per_image.loc[image_id, "ap"] == pytest.approx(ap, abs=1e-6)
        assert per_image.loc[image_id, "ap_95"] == pytest.approx(per_threshold[-1], abs=1e-6)
        baseline = average_precision(true, InstanceSettings().apply(1 - mean[0]))[0]
        assert per_image.loc[image_id, "ap_baseline"] == pytest.approx(baseline, abs=1e-6)


def test_table_relations_and_the_tuning_grid(nuclei_run):
    results = nuclei_run / "results"
    table = pd.read_csv(results / "tables/summary.csv").set_index("name")
    assert list(table.index) == list(NAMES) and table.loc["main", "kind"] == "ensemble"
    for name in NAMES:
        per_image = pd.read_csv(results / f"tuning/{name}/per_image.csv")
        best = json.loads((results / f"tuning/{name}/best.json").read_text())
        grid = pd.read_csv(results / f"tuning/{name}/grid.csv")
        row = table.loc[name]
        for metric in ("ap_baseline", "ap", "ap_cross_fitted", "f1", "pixel_dice"):
            assert row[metric] == pytest.approx(per_image[metric].mean())
            assert row[f"{metric}_low"] <= row[metric] + 1e-12 and row[metric] <= row[f"{metric}_high"] + 1e-12
        # the baseline (cutoff 0.5 + components) is a grid entry, so tuning never does worse on OOF
        assert row["ap"] >= row["ap_baseline"] - 1e-12
        base = grid[grid["baseline"]]
        assert len(base) == 1 and base["method"].item() == "cutoff" and base["cutoff"].item() == 0.5
        assert not base["watershed"].item() and not base["boundary"].item() and base["min_size"].item() == 0
        assert grid["mean_ap"].max() == pytest.approx(best["score"]) == pytest.approx(row["ap"])
        assert grid["boundary"].any()  # the boundary class is on in tiny_nuclei.yaml
        assert row["n_groups"] == 4


def test_a_finished_nuclei_run_has_nothing_to_do(nuclei_run):
    assert planned_jobs(nuclei_run) == []


def test_overlapping_masks_fail_naming_the_image_and_files(tmp_path, nuclei_run):
    workdir = make_workdir(tmp_path / "plexus", "tiny_nuclei.yaml")
    raw = reuse_raw_data(nuclei_run, workdir, "results/raw/nuclei")
    train, _ = scan_dsb2018(raw)
    first = train.iloc[0]
    masks = sorted(first["mask_paths"])
    mask = np.asarray(Image.open(masks[0])).copy()
    mask[np.asarray(Image.open(masks[1])) > 0] = 255  # the first mask now covers the second
    Image.fromarray(mask).save(masks[0])
    result = snakemake(workdir, "--cores", "2", check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/convert.log").read_text()
    names = sorted(p.rsplit("/", 1)[-1] for p in masks[:2])
    assert f"image {first['image_id']}" in log and names[0] in log and names[1] in log and "overlap" in log
    assert not (workdir / "results/models").exists()


def test_the_example_and_the_real_config_plan_their_whole_dag(tmp_path):
    workdir = make_workdir(tmp_path / "plexus", "tiny_nuclei.yaml")
    jobs = planned_jobs(workdir, "--cores", "2", "--configfile", "config/examples/nuclei.yaml")
    rules = {rule for rule, _ in jobs}
    assert {"synthesize", "convert", "manifest", "folds", "preprocess", "train", "predict",
            "average_folds", "tune", "postprocess", "submission", "summary_table", "comparison",
            "figure_tuning", "figure_qualitative", "figure_learning_curves"} <= rules
    assert {w["name"] for rule, w in jobs if rule == "tune"} == {"unet", "main"}
    # real data: a DSB2018 folder in data/dsb2018 (a tiny stand-in here) plans the same rules, no generator
    from plexus.data.synthetic_nuclei import generate_nuclei

    generate_nuclei(workdir / "data/dsb2018", n_images=4, n_test=1, sizes=((64, 64),))
    jobs = planned_jobs(workdir, "--cores", "2", "--configfile", "config/dsb2018.yaml")
    rules = {rule for rule, _ in jobs}
    assert "synthesize" not in rules and {"convert", "tune", "submission"} <= rules
    assert sum(rule == "train" for rule, _ in jobs) == 2 * 5


def test_every_tuning_and_decision_record_has_the_one_schema(nuclei_run):
    from workflow_helpers import assert_one_record_schema

    assert assert_one_record_schema(nuclei_run / "results", "instances") >= 2
