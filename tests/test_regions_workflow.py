"""Task regions end to end: the tiny form of config/examples/regions.yaml (four channels, nested
tumour regions, a second rater, a label-trained and a region-trained model, every study), through
the same rules as every task.

Outputs are checked against independent recomputations from the raw files: the run-length rows
decoded back and nested into the label maps, the second rater's Dice from its mask files, and the
per-region decision applied to the OOF probabilities.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from plexus.io.rle import decode
from workflow_helpers import make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

REGIONS = ("complete", "core", "enhancing")
LABELS = {"complete": [1, 2, 3, 4], "core": [1, 3, 4], "enhancing": [4]}


@pytest.fixture(scope="module")
def regions_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("regions") / "plexus", "tiny_regions.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_every_output_of_every_stage(regions_run):
    results = regions_run / "results"
    paths = ["submission/main.csv", "submission/main.json", "tables/summary.csv", "tables/comparison.csv",
             "tables/pairwise.csv", "postprocess/main.json", "robustness/noise/scores.csv",
             "robustness/train_size/scores.csv", "robustness/missing_channel/scores.csv"]
    paths += [f"figures/tuning/{name}_regions.{ext}" for name in ("labels", "regions", "main")
              for ext in ("png", "pdf")]
    paths += [f"figures/qualitative/{model}.{ext}" for model in ("labels", "regions") for ext in ("png", "pdf")]
    paths += [f"figures/robustness/{study}.png" for study in ("noise", "train_size", "missing_channel")]
    paths += ["figures/comparison/models.png", "figures/comparison/pairwise.png"]
    for path in paths:
        assert (results / path).stat().st_size > 0, path
    # the region-trained model outputs one map per region, the label-trained one per label
    labels = np.load(results / "oof/labels/fold0.npz")
    regions = np.load(results / "oof/regions/fold0.npz")
    assert labels["prob"].shape[1] == 5 and regions["prob"].shape[1] == 3
    assert "prob_tta" in regions  # every task gets flip TTA


def test_submission_rows_decode_to_the_nested_label_maps(regions_run):
    results = regions_run / "results"
    test = pd.read_csv(results / "manifest/test.csv", dtype=str, keep_default_na=False)
    rows = pd.read_csv(results / "submission/main.csv", dtype=str, keep_default_na=False)
    assert len(rows) == 3 * len(test) and list(rows["region"].unique()) == list(REGIONS)
    for image_id, height, width in zip(test["image_id"], test["height"].astype(int), test["width"].astype(int)):
        own = rows[rows["image_id"] == image_id].set_index("region")
        masks = [decode(own.loc[name, "EncodedPixels"], (height, width)).astype(bool) for name in REGIONS]
        expected = np.zeros((height, width), np.uint8)
        for r in (0, 1, 2):  # outermost to innermost: complete, core, enhancing
            expected[masks[r]] = r + 1
        np.testing.assert_array_equal(np.asarray(Image.open(results / f"labelmaps/main/{image_id}.png")), expected)


def test_the_second_rater_is_scored_from_its_own_files_beside_every_model(regions_run):
    results = regions_run / "results"
    train = pd.read_csv(results / "manifest/train.csv", dtype=str, keep_default_na=False)
    rated = train[train["mask_rater2"] != ""]
    assert len(rated)
    table = pd.read_csv(results / "tables/summary.csv")
    for region in REGIONS:
        scores = []
        for first, second in zip(rated["mask"], rated["mask_rater2"]):
            a, b = (np.isin(np.asarray(Image.open(p)), LABELS[region]) for p in (first, second))
            both = a.sum() + b.sum()
            scores.append(1.0 if both == 0 else 2 * (a & b).sum() / both)
        row = table[(table["name"] == "rater2") & (table["region"] == region) & (table["metric"] == "dice")]
        assert row["scope"].item() == "rated" and row["mean"].item() == pytest.approx(np.mean(scores))
        assert row["n_images"].item() == len(rated)
        for name in ("labels", "regions", "main", "all_background"):  # beside it, on the same images
            same = table[(table["name"] == name) & (table["region"] == region) & (table["scope"] == "rated")
                         & (table["metric"] == "dice")]
            assert same["n_images"].item() == len(rated)


def test_decision_record_and_studies(regions_run):
    results = regions_run / "results"
    decision = json.loads((results / "postprocess/main.json").read_text())
    assert set(decision["pipeline"]["regions"]) == set(REGIONS)
    # flip TTA, then each region's dense CRF, its Otsu threshold or hysteresis (the default seed levels
    # 0.7, 0.8, 0.9: tried when Otsu was refused and a level is above a region's cutoff), its largest
    # component and filled holes, each under the keep rule
    kept = {d["candidate"]: d["kept"] for d in decision["decisions"]}
    cutoffs = [region["cutoff"] for region in decision["pipeline"]["regions"].values()]
    hysteresis = ["hysteresis"] if not kept["otsu"] and min(cutoffs) < 0.9 else []
    assert list(kept) == ["tta", "crf", "otsu", *hysteresis, "largest_component", "fill_holes"]
    assert decision["pipeline"]["crf"] == kept["crf"]
    assert (decision["crf_settings"] is not None) == kept["crf"]
    assert decision["pipeline"]["otsu"] == kept["otsu"]
    chosen = {d["candidate"]: d["setting"] for d in decision["decisions"]}.get("hysteresis", {})
    assert decision["pipeline"]["hysteresis_high"] == (chosen["hysteresis_high"] if kept.get("hysteresis") else None)
    assert decision["pipeline"]["largest_only"] == kept["largest_component"]
    assert decision["pipeline"]["fill_holes"] == kept["fill_holes"]
    assert 0 <= decision["cross_fitted_ci"][0] <= decision["cross_fitted_score"] <= decision["cross_fitted_ci"][1]
    per_image = pd.read_csv(results / "tuning/main/per_image.csv")
    assert set(per_image["region"]) == set(REGIONS) and per_image["dice"].between(0, 1).all()
    missing = pd.read_csv(results / "robustness/missing_channel/scores.csv")
    assert set(missing["removed"]) == {"none", "t1", "t1c", "t2", "flair"} and set(missing["class"]) == set(REGIONS)
    noise = pd.read_csv(results / "robustness/noise/scores.csv")
    assert set(noise["condition"]) == {"clean", "noisy"} and noise["dice"].between(0, 1).all()


ENSEMBLES = ['main']  # config/examples/regions.yaml's


def test_the_example_plans_its_whole_dag(tmp_path):
    """The README's command for the regions example (a dry run; its tiny form runs above)."""
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    jobs = planned_jobs(workdir, "--cores", "2", "--configfile", "config/examples/regions.yaml")
    rules = {rule for rule, _ in jobs}
    assert {"synthesize", "manifest", "tune", "postprocess", "submission", "summary_table", "comparison",
            "noise_scores", "train_size_scores", "missing_channel_scores", "figure_robustness"} <= rules
    # a panel per model and per ensemble (an ensemble's on its members' averaged maps)
    assert {w["model"] for rule, w in jobs if rule == "figure_qualitative"} == {"labels", "regions", *ENSEMBLES}


def test_every_tuning_and_decision_record_has_the_one_schema(regions_run):
    from workflow_helpers import assert_one_record_schema

    assert assert_one_record_schema(regions_run / "results", "regions") >= 2
