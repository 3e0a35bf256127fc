"""The workflow end to end on tests/configs/tiny.yaml, then what reruns after each kind of edit.

Snakemake 9 reruns a job when its output is older than an input, or when its
params, input set, software environment or code changed. Each rule's params hold
exactly the settings it uses (plus a hash of the plexus modules it runs), so an
edit reruns exactly the stages that depend on it. These tests pin that down with
``snakemake -n`` after a complete run.
"""

from __future__ import annotations

import copy
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from workflow_helpers import (
    make_workdir,
    planned_jobs,
    read_config,
    rule_counts,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow

FIGURE_RULES = {"figure_tuning", "figure_learning_curves", "figure_qualitative",
                "figure_robustness", "comparison"}
GPU_RULES = {"train", "predict", "predict_oof", "predict_noisy"}


def _jobs_after(workdir, edit):
    """Plan the jobs after ``edit(config)``, then restore the config."""
    original = read_config(workdir)
    edited = copy.deepcopy(original)
    edit(edited)
    write_config(workdir, edited)
    try:
        return planned_jobs(workdir)
    finally:
        write_config(workdir, original)


def test_default_dag_outputs(tiny_run):
    sub = pd.read_csv(tiny_run / "results/submission/main.csv", keep_default_na=False)
    assert list(sub.columns) == ["img", "pixels"]
    assert sub["img"].tolist() == sorted(sub["img"])
    summary = json.loads((tiny_run / "results/submission/main.json").read_text())
    assert summary["rows"] == len(sub) == 8
    assert summary["empty"] == int((sub["pixels"] == "").sum())
    grid = pd.read_csv(tiny_run / "results/tuning/main/grid.csv")
    # the ensemble has a two-head member: its presence gate is tuned jointly (3 thresholds)
    assert list(grid.columns) == ["cutoff", "min_area", "presence_threshold", "score", "score_fold0", "score_fold1"]
    assert len(grid) == 5 * 5 * 3
    assert "presence_threshold" not in pd.read_csv(tiny_run / "results/tuning/unet/grid.csv")
    best = json.loads((tiny_run / "results/tuning/unet/best.json").read_text())
    assert best["score"] == pytest.approx(grid_max(tiny_run, "unet"))
    assert best["score"] >= best["untuned_score"]  # (0.5, 0) is a grid point: tuning cannot lose
    folds = pd.read_csv(tiny_run / "results/splits/folds.csv")
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()
    noise = pd.read_csv(tiny_run / "results/robustness/noise/scores.csv")
    assert len(noise) == 2 * 2 * 2  # condition x sigma x fold
    sizes = pd.read_csv(tiny_run / "results/robustness/train_size/scores.csv", dtype={"size": str})
    assert set(sizes["size"]) == {"0.5", "full"}
    for ext in ("png", "pdf"):
        for name in ("tuning/main_heatmap", "tuning/unet_min_area", "areas/main", "learning_curves/unet",
                     "qualitative/unet2head", "qualitative/main", "robustness/noise", "robustness/train_size"):
            assert (tiny_run / f"results/figures/{name}.{ext}").stat().st_size > 1000
    assert "| main | ensemble | unet+unet2head |" in (tiny_run / "results/tables/summary.md").read_text()
    for name in ("unet", "unet2head", "main"):
        decided = json.loads((tiny_run / f"results/postprocess/{name}.json").read_text())
        tuned = pd.read_csv(tiny_run / f"results/tuning/{name}/per_image.csv")
        per_image = pd.read_csv(tiny_run / f"results/postprocess/{name}_per_image.csv")
        # two implementations agree: the streaming histogram counts and PostProcess.apply per image
        np.testing.assert_allclose(per_image["tuned"], tuned["kaggle_dice"])
        assert decided["tuned_score"] == pytest.approx(best_score(tiny_run, name))
        kept = [d for d in decided["decisions"] if d["kept"]]
        assert all(d["ci_low"] > 0 for d in kept)
        assert len(decided["folds"]) == 2 and 0 <= decided["cross_fitted_score"] <= 1
    comparison = pd.read_csv(tiny_run / "results/tables/comparison.csv")
    assert list(comparison["name"]) == ["unet", "unet2head", "main"]
    for name in ("unet", "unet2head", "main"):
        row = comparison.set_index("name").loc[name]
        per_image = pd.read_csv(tiny_run / f"results/postprocess/{name}_per_image.csv")
        assert row["kaggle_cross_fitted"] == pytest.approx(per_image["cross_fitted"].mean())
        assert row["kaggle_cross_fitted_low"] <= row["kaggle_cross_fitted"] <= row["kaggle_cross_fitted_high"]
        # the untuned column is the plain cutoff 0.5, as tuning's untuned score
        assert row["kaggle_untuned"] == pytest.approx(best_json(tiny_run, name)["untuned_score"], abs=1e-9)
    assert comparison.set_index("name").loc["main", "parameters"] == comparison["parameters"][:2].sum()
    assert len(pd.read_csv(tiny_run / "results/tables/pairwise.csv")) == 3
    # flip TTA: the models' OOF files hold it, the robustness runs' do not; tta is decided on OOF
    assert "prob_tta" in np.load(tiny_run / "results/oof/unet/fold0.npz").files
    assert "prob_tta" not in np.load(tiny_run / "results/oof/unet--n0.5-s1/fold0.npz").files
    assert "presence_tta" in np.load(tiny_run / "results/test_probs/unet2head/mean.npz").files
    decided = json.loads((tiny_run / "results/postprocess/unet.json").read_text())
    assert decided["decisions"][0]["candidate"] == "tta"
    assert summary["pipeline"] == json.loads((tiny_run / "results/postprocess/main.json").read_text())["pipeline"]
    provenance = json.loads((tiny_run / "results/provenance.json").read_text())
    assert provenance["training_devices"] == ["cpu"]
    assert len(provenance["config_sha256"]) == 64 and "torch" in provenance["packages"]


def best_json(workdir, name):
    return json.loads((workdir / f"results/tuning/{name}/best.json").read_text())


def best_score(workdir, name):
    return json.loads((workdir / f"results/tuning/{name}/best.json").read_text())["score"]


def grid_max(workdir, name):
    return pd.read_csv(workdir / f"results/tuning/{name}/grid.csv")["score"].max()


def test_nothing_changed_runs_nothing(tiny_run):
    assert planned_jobs(tiny_run) == []


def test_tuning_grid_change(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["tuning"]["cutoffs"].update(num=6))
    assert set(rule_counts(jobs)) == {
        "tune", "postprocess", "submission", "figure_tuning", "figure_qualitative",
        "summary_table", "noise_scores", "train_size_scores", "figure_robustness", "comparison",
        "run_summary", "all"}
    assert rule_counts(jobs)["tune"] == 3


def test_postprocess_option_change(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["postprocess"].update(component_sizes=[300]))
    # the qualitative panels draw the decided pipeline, so they follow it
    assert set(rule_counts(jobs)) == {"postprocess", "submission", "summary_table", "comparison",
                                      "figure_qualitative", "run_summary", "all"}
    assert rule_counts(jobs)["postprocess"] == 3


def test_figure_style_change(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["figures"].update(dpi=72))
    assert set(rule_counts(jobs)) == FIGURE_RULES | {"all"}


def test_ensemble_membership_change(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["ensembles"].update(main=["unet"]))
    assert sorted(jobs, key=str) == sorted([
        ("tune", {"name": "main"}), ("postprocess", {"name": "main"}), ("submission", {"ensemble": "main"}),
        ("figure_tuning", {"name": "main"}), ("figure_qualitative", {"model": "main"}),  # its panel: new members
        ("summary_table", {}), ("comparison", {}), ("run_summary", {}), ("all", {})], key=str)


def test_one_model_setting_change(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["models"]["unet2head"].update(epochs=3))
    counts = rule_counts(jobs)
    # one prediction job per image set: both folds, OOF (predict_oof) and test (predict)
    assert counts["train"] == 2 and counts["predict"] == 1 and counts["predict_oof"] == 1
    assert set(counts) == {"train", "predict", "predict_oof", "average_folds", "tune", "postprocess", "submission",
                           "figure_tuning", "figure_learning_curves", "figure_qualitative",
                           "summary_table", "comparison", "run_summary", "all"}
    touched = {value for _, wildcards in jobs for value in wildcards.values()}
    assert "unet" not in touched  # the other model, and the robustness runs built on it, are untouched
    assert {"unet2head", "main"} <= touched


def test_tta_flips_change_reruns_the_models_predictions_only(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c.setdefault("predict", {}).update(tta=["hflip", "vflip"]))
    counts = rule_counts(jobs)
    assert "train" not in counts and "predict_noisy" not in counts
    assert counts["predict"] == counts["predict_oof"] == 2  # one job per model and image set, all its folds
    # not the robustness runs, which store no flip-averaged maps
    assert {wildcards["model"] for rule, wildcards in jobs if rule == "predict"} == {"unet", "unet2head"}
    assert {wildcards["run"] for rule, wildcards in jobs if rule == "predict_oof"} == {"unet", "unet2head"}


def test_noise_sigma_added(tiny_run):
    jobs = _jobs_after(tiny_run, lambda c: c["robustness"]["noise"].update(sigmas=[0, 20, 40]))
    assert sorted(jobs, key=str) == sorted([
        ("predict_noisy", {"sigma": "40"}),  # both training conditions, in one job
        ("noise_scores", {}), ("figure_robustness", {"study": "noise"}), ("all", {})], key=str)


def test_figures_rebuild_from_results_alone(tiny_run):
    shutil.rmtree(tiny_run / "results/figures")
    jobs = planned_jobs(tiny_run, "figures")
    assert set(rule_counts(jobs)) == FIGURE_RULES | {"figures"}
    assert not GPU_RULES & set(rule_counts(jobs))
    snakemake(tiny_run, "--cores", "2", "figures")
    assert (tiny_run / "results/figures/robustness/noise.pdf").exists()
    assert planned_jobs(tiny_run) == []


def test_report_builds(tiny_run):
    snakemake(tiny_run, "--report", "results/report.html")
    html = (tiny_run / "results/report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for caption_words in ("Mean out-of-fold Kaggle Dice", "Learning curves", "Gaussian noise", "bootstrap"):
        assert caption_words in html


@pytest.mark.parametrize("edit,key", [
    (lambda c: c["cv"].update(n_fold=3), "n_fold"),
    (lambda c: c["models"]["unet"].update(lr=-1), "lr"),
    (lambda c: c["tuning"].update(cutoff={"start": 0, "stop": 1, "num": 3}), "cutoff"),
    (lambda c: c["ensembles"].update(main=["unet", "unet3"]), "unet3"),
    (lambda c: c["models"]["unet"].update(input_size=[30, 48]), "input_size"),
    # finding 6 of issue 9: out-of-range tuning grids were accepted and training planned
    (lambda c: c["tuning"]["cutoffs"].update(stop=1.5), "tuning.cutoffs.stop"),
    (lambda c: c["tuning"]["min_areas"].update(start=-500), "tuning.min_areas.start"),
    (lambda c: c["tuning"]["cutoffs"].update(start=0.9, stop=0.1), "tuning.cutoffs"),
])
def test_bad_config_fails_fast_naming_the_key(tmp_path, edit, key):
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    config = read_config(workdir)
    edit(config)
    write_config(workdir, config)
    started = time.perf_counter()
    result = snakemake(workdir, "-n", check=False)
    elapsed = time.perf_counter() - started
    assert result.returncode != 0
    assert key in result.stdout + result.stderr
    assert not (workdir / "results").exists()
    print(f"config error reported in {elapsed:.2f} s")


def test_synthetic_never_overwrites_foreign_raw_data(tmp_path):
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    real = tmp_path / "kaggle"
    (real / "train").mkdir(parents=True)
    (real / "train" / "1_1.tif").write_bytes(b"someone's real data")
    config = read_config(workdir)
    config["data"]["raw_dir"] = str(real)  # synthetic.enabled left true by mistake
    write_config(workdir, config)
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "data.synthetic.enabled" in result.stdout + result.stderr
    assert (real / "train" / "1_1.tif").read_bytes() == b"someone's real data"


def test_every_tuning_and_decision_record_has_the_one_schema(tiny_run):
    from workflow_helpers import assert_one_record_schema

    assert assert_one_record_schema(tiny_run / "results", "binary") >= 2
