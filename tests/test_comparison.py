"""The comparison table (Table I) and the paired test, against direct computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plexus.evaluation.bootstrap import subject_draws
from plexus.report.comparison import comparison_table, display_table, pairwise_table, roc_auc


def _frame(n=30, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"image_id": [f"{i // 3}_{i % 3}" for i in range(n)], "subject": np.arange(n) // 3,
                          "true_area": np.where(rng.random(n) < 0.5, 0, 4000)})
    for column in ("untuned", "tuned", "postprocessed", "cross_fitted", "dice", "iou", "sensitivity", "precision"):
        frame[column] = np.clip(rng.random(n) + shift, 0, 1)
    frame["presence_score"] = np.where(frame["true_area"] > 0, 0.6, 0.4) + 0.3 * rng.standard_normal(n)
    return frame


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(1)
    labels = rng.random(50) < 0.4
    scores = np.round(rng.random(50), 1)  # ties
    pos, neg = scores[labels], scores[~labels]
    pairs = [(p > q) + 0.5 * (p == q) for p in pos for q in neg]
    assert roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    assert np.isnan(roc_auc(np.ones(3, bool), np.arange(3)))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_comparison_columns_equal_direct_means_and_intervals_resample_subjects():
    frame = _frame()
    table = comparison_table({"m": {"kind": "model", "members": ["m"], "parameters": 123, "per_image": frame}},
                             n_boot=200, seed=3)
    row = table.iloc[0]
    nerve = frame["true_area"] > 0
    assert row["dice"] == pytest.approx(frame.loc[nerve, "dice"].mean())
    assert row["kaggle_cross_fitted"] == pytest.approx(frame["cross_fitted"].mean())
    assert row["presence_auc"] == pytest.approx(roc_auc(nerve, frame["presence_score"]))
    assert row["parameters"] == 123 and row["n_subjects"] == 10
    # the interval of the untuned Kaggle Dice: the same subject draws, recomputed by hand
    subjects = np.unique(frame["subject"])
    means = [pd.concat([frame[frame["subject"] == subjects[g]] for g in draw])["untuned"].mean()
             for draw in subject_draws(len(subjects), 200, 3)]
    assert (row["kaggle_untuned_low"], row["kaggle_untuned_high"]) == pytest.approx(
        tuple(np.quantile(means, [0.025, 0.975])))
    for metric in ("dice", "iou", "kaggle_tuned", "presence_auc"):
        assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    cells = display_table(table)
    assert cells["dice"][0].startswith(f"{row['dice']:.3f} (")


def test_pairwise_difference_is_paired_and_flags_a_consistent_gain():
    a = _frame(seed=0)
    b = a.copy()
    b["cross_fitted"] = a["cross_fitted"] - 0.05  # b is worse by 0.05 on every image: a paired, certain gain
    noisy = _frame(seed=9)  # unrelated scores: wide interval
    table = pairwise_table({"a": a, "b": b, "c": noisy}, n_boot=300)
    ab = table[(table["a"] == "a") & (table["b"] == "b")].iloc[0]
    assert ab["difference"] == pytest.approx(0.05)
    assert ab["ci_low"] == pytest.approx(0.05) and ab["significant"]
    assert len(table) == 3
    shuffled = b.sample(frac=1, random_state=0)  # matched by image id, not by row
    again = pairwise_table({"a": a, "b": shuffled}, n_boot=300).iloc[0]
    assert again["difference"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="different images"):
        pairwise_table({"a": a, "b": b.iloc[:-1]})


def test_empty_baselines_score_an_all_empty_prediction_by_the_tables_conventions():
    from plexus.evaluation.metrics import per_image_metrics
    from plexus.report.comparison import empty_baselines

    frame = _frame()
    nerve = frame["true_area"].to_numpy() > 0
    baselines = empty_baselines(frame)
    empty = float((~nerve).mean())  # the summary table's empty_score: empty/empty scores 1
    assert [baselines[c] for c in ("kaggle_untuned", "kaggle_tuned", "kaggle_postprocessed",
                                   "kaggle_cross_fitted")] == pytest.approx([empty] * 4)
    zeros = np.zeros(len(frame))
    direct = per_image_metrics(zeros, zeros, frame["true_area"].to_numpy())
    assert baselines["kaggle_cross_fitted"] == pytest.approx(direct["kaggle_dice"].mean())
    assert (baselines["dice"], baselines["iou"], baselines["sensitivity"]) == (0.0, 0.0, 0.0)
    assert baselines["precision"] == 1.0  # nothing claimed: the per-image convention
    assert baselines["presence_auc"] == 0.5  # one score for every image
    only_nerves = empty_baselines(frame[nerve])
    assert only_nerves["kaggle_tuned"] == 0.0 and "presence_auc" not in only_nerves
    assert set(empty_baselines(frame[~nerve])) == {"kaggle_untuned", "kaggle_tuned", "kaggle_postprocessed",
                                                   "kaggle_cross_fitted"}


def test_unit_empty_baseline_is_the_results_tables_all_background_mean():
    from plexus.report.comparison import unit_empty_baseline
    from plexus.report.run_summary import baseline_score
    from plexus.report.tables import unit_table

    rng = np.random.default_rng(4)
    rows = [{"image_id": f"{i}", "subject": i // 2, "fold": i % 2, "region": region,
             "dice": rng.random(), "dice_cross_fitted": rng.random(), "dice_untuned": rng.random(),
             "true_area": int(rng.random() < 0.4) * 100}
            for i in range(12) for region in ("whole", "core", "enhancing")]
    frame = pd.DataFrame(rows)
    absent = (frame["true_area"] == 0).astype(float)
    expected = absent.groupby(frame["image_id"]).mean().mean()
    assert unit_empty_baseline(frame) == pytest.approx(expected)
    table = unit_table({"m": frame}, ["whole", "core", "enhancing"], "region", n_boot=20, seed=0)
    assert unit_empty_baseline(frame) == pytest.approx(baseline_score(table))  # the end-of-run summary's
    # a unit whose score is undefined on an image is left out of that image's mean, as in the score
    frame.loc[0, "dice"] = np.nan
    kept = frame.dropna(subset=["dice"])
    assert unit_empty_baseline(frame) == pytest.approx(
        (kept["true_area"] == 0).astype(float).groupby(kept["image_id"]).mean().mean())
