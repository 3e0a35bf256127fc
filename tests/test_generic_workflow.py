"""The generic workflow end to end: tiny forms of config/examples/multiclass.yaml (three classes,
16-bit images of mixed sizes) and multichannel.yaml (three channels, some rows missing one).

Outputs are checked against independent recomputations from the raw files: label maps at each
image's own size, the run-length table decoded back, the untuned per-image Dice recomputed from
the OOF probabilities and the mask files, the all-background baseline from the masks alone.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from plexus.io.images import read_image
from plexus.io.rle import decode
from workflow_helpers import make_workdir, planned_jobs, reuse_raw_data, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def multichannel_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("multichannel") / "plexus", "tiny_multichannel.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def _class_index(path, values):
    mask = np.asarray(Image.open(path))
    index = np.zeros(mask.shape, np.uint8)
    for i, value in enumerate(values):
        index[mask == value] = i
    return index


def test_label_maps_and_run_length_table_are_at_each_images_own_size(multiclass_run):
    results = multiclass_run / "results"
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    table = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False)
    assert len(table) == 2 * len(test) and set(table["class"]) == {"nerve", "artery"}
    for _, row in test.iterrows():
        image = read_image(row["image"])
        label = np.asarray(Image.open(results / f"labelmaps/main/{row['image_id']}.png"))
        assert label.shape == image.shape  # the original size, whatever the model's
        assert set(np.unique(label)) <= {0, 128, 255}
        for cls, value in (("nerve", 128), ("artery", 255)):
            rle = table[(table["image_id"] == row["image_id"]) & (table["class"] == cls)]["EncodedPixels"].item()
            np.testing.assert_array_equal(decode(rle, label.shape), label == value)


def test_untuned_scores_equal_a_recomputation_from_the_oof_probabilities(multiclass_run):
    results = multiclass_run / "results"
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False).set_index("image_id")
    per_image = pd.read_csv(results / "tuning/main/per_image.csv", dtype={"image_id": str})
    probs = {}
    for model in ("unet", "attn"):
        for fold in (0, 1):
            with np.load(results / f"oof/{model}/fold{fold}.npz") as data:
                for image_id, prob in zip(data["image_id"], data["prob"]):
                    probs.setdefault(str(image_id), []).append(prob.astype(np.float32))
    assert len(probs) == len(train)
    for image_id, members in probs.items():
        h, w = int(train.loc[image_id, "height"]), int(train.loc[image_id, "width"])
        up = [F.interpolate(torch.from_numpy(p)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
              for p in members]
        pred = torch.stack(up).mean(0).argmax(0).numpy()
        true = _class_index(train.loc[image_id, "mask"], [0, 128, 255])
        for c, cls in ((1, "nerve"), (2, "artery")):
            p, t = pred == c, true == c
            dice = 1.0 if not (p.any() or t.any()) else 2 * (p & t).sum() / (p.sum() + t.sum())
            got = per_image[(per_image["image_id"] == image_id) & (per_image["class"] == cls)]["dice_untuned"]
            assert got.item() == pytest.approx(dice, abs=1e-6)


def test_class_table_has_the_all_background_baseline_and_tuning_is_per_class(multiclass_run):
    results = multiclass_run / "results"
    table = pd.read_csv(results / "tables/summary.csv")
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False)
    for cls, value in (("nerve", 128), ("artery", 255)):
        absent = np.mean([not (np.asarray(Image.open(m)) == value).any() for m in train["mask"]])
        row = table[(table["name"] == "all_background") & (table["class"] == cls) & (table["metric"] == "dice")
                    & (table["scope"] == "all")]
        assert row["mean"].item() == pytest.approx(absent)
        # the example's second rater, recomputed from its files, beside every model on its images
        rated = train[train["mask_rater2"] != ""]
        scores = []
        for first, second in zip(rated["mask"], rated["mask_rater2"]):
            a, b = (np.asarray(Image.open(p)) == value for p in (first, second))
            scores.append(1.0 if a.sum() + b.sum() == 0 else 2 * (a & b).sum() / (a.sum() + b.sum()))
        human = table[(table["name"] == "rater2") & (table["class"] == cls) & (table["metric"] == "dice")]
        assert human["scope"].item() == "rated" and human["mean"].item() == pytest.approx(np.mean(scores))
        same = table[(table["scope"] == "rated") & (table["class"] == cls) & (table["metric"] == "dice")]
        assert set(same["n_images"]) == {len(rated)}
    assert set(table["name"]) == {"unet", "attn", "main", "all_background", "rater2"}
    best = json.loads((results / "tuning/unet/best.json").read_text())
    assert set(best["classes"]) == {"nerve", "artery"}
    grid = pd.read_csv(results / "tuning/unet/grid.csv")
    assert sorted(grid["min_area"].unique()) == [0, 50, 100, 150, 200]
    for cls, chosen in best["classes"].items():
        scores = grid[grid["class"] == cls].set_index("min_area")["dice"]
        assert scores[chosen["min_area"]] == pytest.approx(scores.max())


def test_the_class_map_candidates_are_tried_and_the_labelmaps_apply_what_was_kept(multiclass_run):
    """tta, then the K-label dense CRF, each class's Otsu threshold or hysteresis (tried when Otsu was
    refused), largest component and filled holes, each decided under the bootstrap rule; the submitted
    label maps are the decision's: recomputed here from the test means."""
    from plexus.tasks.classes import decided_labels

    results = multiclass_run / "results"
    decisions = pd.read_csv(results / "postprocess/main.csv")
    decided = json.loads((results / "postprocess/main.json").read_text())
    kept = dict(zip(decisions["candidate"], decisions["kept"]))
    hysteresis = [] if kept["otsu"] else ["hysteresis"]  # the default levels 0.7, 0.8, 0.9, all above 1/3
    assert decisions["candidate"].tolist() == ["tta", "crf", "otsu", *hysteresis, "largest_component", "fill_holes"]
    assert decided["pipeline"]["crf"] == kept["crf"]
    assert (decided["crf_settings"] is not None) == kept["crf"]
    assert decided["pipeline"]["otsu"] == kept["otsu"]
    assert (decided["pipeline"]["hysteresis_high"] is not None) == bool(kept.get("hysteresis"))
    assert decided["pipeline"]["largest_only"] == kept["largest_component"]
    assert decided["pipeline"]["fill_holes"] == kept["fill_holes"]
    classes = {"background": 0, "nerve": 128, "artery": 255}
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    key = "prob_tta" if decided["pipeline"]["tta"] else "prob"
    means = [np.load(results / f"test_probs/{m}/mean.npz") for m in decided["members"]]
    ids = means[0]["image_id"].astype(str)
    for image_id, label in zip(ids, decided_labels([m[key] for m in means], test, ids, decided["pipeline"], classes,
                                                                decided["crf_settings"])):
        expected = np.asarray([0, 128, 255], np.uint8)[label]
        np.testing.assert_array_equal(np.asarray(Image.open(results / f"labelmaps/main/{image_id}.png")), expected)


def test_robustness_studies_and_figures(multiclass_run, multichannel_run):
    noise = pd.read_csv(multiclass_run / "results/robustness/noise/scores.csv")
    assert len(noise) == 2 * 2 * 2 * 2  # conditions x sigmas x folds x classes
    assert set(noise["sigma"]) == {0.0, 5000.0}
    size = pd.read_csv(multiclass_run / "results/robustness/train_size/scores.csv")
    assert set(size["run"]) == {"n0.5_s1", "full"}
    full = size[size["run"] == "full"]
    assert (full["n_train"] > size[size["run"] != "full"]["n_train"].max()).all()
    missing = pd.read_csv(multichannel_run / "results/robustness/missing_channel/scores.csv")
    assert set(missing["removed"]) == {"none", "t1", "t2", "flair"} and set(missing["class"]) == {"lesion"}
    for run, kinds in ((multiclass_run, ["comparison/models", "robustness/noise", "robustness/train_size"]),
                       (multichannel_run, ["comparison/models", "robustness/missing_channel"])):
        for kind in kinds + ["comparison/pairwise"]:
            for ext in ("png", "pdf"):
                assert (run / f"results/figures/{kind}.{ext}").stat().st_size > 1000


def test_missing_channels_are_zero_and_flagged_in_the_arrays(multichannel_run):
    results = multichannel_run / "results"
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False)
    with np.load(results / "preprocessed/32x32/train.npz") as data:
        present, images = data["present"], data["images"]
        assert list(data["image_id"]) == list(train["image_id"])
    expected = np.stack([(train[c] != "").to_numpy() for c in ("t1", "t2", "flair")], axis=1)
    np.testing.assert_array_equal(present, expected)
    assert (~present).any() and not images[~present].any()
    labels = list((results / "labelmaps/main").glob("*.png"))
    assert labels and all(set(np.unique(np.asarray(Image.open(p)))) <= {0, 255} for p in labels)


def test_a_finished_generic_run_has_nothing_to_do(multichannel_run):
    assert planned_jobs(multichannel_run) == []


def test_bad_mask_value_fails_before_training_naming_the_file(tmp_path, multichannel_run):
    workdir = make_workdir(tmp_path / "plexus", "tiny_multichannel.yaml")
    raw = reuse_raw_data(multichannel_run, workdir, "results/raw/multichannel")
    sheet = pd.read_csv(raw / "sheet.tsv", sep="\t", dtype=str, keep_default_na=False)
    first = raw / sheet.loc[0, "mask"]
    mask = np.asarray(Image.open(first)).copy()
    mask[0, 0] = 9
    Image.fromarray(mask).save(first)
    result = snakemake(workdir, "--cores", "2", check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/manifest.log").read_text()
    assert f"row 2 ({sheet.loc[0, 'image_id']})" in log and first.name in log and "9" in log
    assert not (workdir / "results/models").exists()


def test_example_configs_plan_their_whole_dag(tmp_path):
    """The README's commands for the two examples (a dry run here; their tiny forms run above)."""
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    for name, rules in (("multiclass", {"synthesize", "submission", "noise_scores",
                                        "train_size_scores"}),
                        ("multichannel", {"synthesize", "submission", "missing_channel_scores"})):
        jobs = planned_jobs(workdir, "--cores", "2", "--configfile", f"config/examples/{name}.yaml")
        assert rules <= {rule for rule, _ in jobs}


def test_every_tuning_and_decision_record_has_the_one_schema(multiclass_run):
    from workflow_helpers import assert_one_record_schema

    assert assert_one_record_schema(multiclass_run / "results", "classes") >= 2
