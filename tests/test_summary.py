import numpy as np
import pandas as pd
import pytest

from plexus.evaluation.bootstrap import bootstrap_ci, paired_difference_ci, subject_draws
from plexus.report.tables import TABLE_COLUMNS, results_table, to_markdown


def _one_big_subject():
    """Subject 0: 100 images scoring 0; subjects 1..9: one image scoring 1 each."""
    subjects = [0] * 100 + list(range(1, 10))
    scores = [0.0] * 100 + [1.0] * 9
    return pd.DataFrame({"subject": subjects, "kaggle_dice": scores})


def test_bootstrap_resamples_subjects_not_images():
    frame = _one_big_subject()
    image_mean = 9 / 109
    ci = bootstrap_ci(frame, n_boot=2000, seed=0)
    assert ci["mean"] == pytest.approx(image_mean)
    assert ci["n_groups"] == 10 and ci["n_images"] == 109
    # an image-level bootstrap would give about 0.083 +- 0.05; subjects make it wide
    assert ci["high"] - ci["low"] > 0.3
    assert ci["low"] <= image_mean <= ci["high"]
    # image-level reference for contrast: much narrower
    rng = np.random.default_rng(0)
    values = frame["kaggle_dice"].to_numpy()
    image_means = values[rng.integers(len(values), size=(2000, len(values)))].mean(1)
    lo, hi = np.quantile(image_means, [0.025, 0.975])
    assert hi - lo < 0.15


def test_bootstrap_identical_scores_collapse():
    frame = pd.DataFrame({"subject": np.repeat(np.arange(7), np.arange(1, 8)), "kaggle_dice": 0.625})
    ci = bootstrap_ci(frame, n_boot=500, seed=3)
    assert ci["mean"] == pytest.approx(0.625)
    assert ci["low"] == pytest.approx(0.625) and ci["high"] == pytest.approx(0.625)


def test_bootstrap_deterministic_for_seed():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"subject": rng.integers(0, 20, 300), "kaggle_dice": rng.random(300)})
    assert bootstrap_ci(frame, seed=5, n_boot=300) == bootstrap_ci(frame, seed=5, n_boot=300)
    assert bootstrap_ci(frame, seed=5, n_boot=300) != bootstrap_ci(frame, seed=6, n_boot=300)


def test_bootstrap_matches_bruteforce_loop():
    rng = np.random.default_rng(2)
    n = 200
    frame = pd.DataFrame({
        "subject": rng.choice([3, 11, 7, 42, 5, 19, 23], size=n),
        "kaggle_dice": np.where(rng.random(n) < 0.4, 1.0, rng.random(n)),
    })
    n_boot, seed, level = 400, 9, 0.9
    ci = bootstrap_ci(frame, n_boot=n_boot, seed=seed, level=level)

    subjects = sorted(frame["subject"].unique())
    by_subject = {s: frame.loc[frame["subject"] == s, "kaggle_dice"].tolist() for s in subjects}
    draws = np.random.default_rng(seed).integers(len(subjects), size=(n_boot, len(subjects)))
    np.testing.assert_array_equal(draws, subject_draws(len(subjects), n_boot, seed))
    means = []
    for row in draws:
        values = []
        for k in row:
            values.extend(by_subject[subjects[k]])
        means.append(sum(values) / len(values))
    lo, hi = np.quantile(means, [0.05, 0.95])
    assert ci["low"] == pytest.approx(lo, abs=1e-12)
    assert ci["high"] == pytest.approx(hi, abs=1e-12)
    assert ci["mean"] == pytest.approx(frame["kaggle_dice"].mean())


def test_bootstrap_fast_on_full_size():
    import time

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"subject": rng.integers(1, 48, 5635), "kaggle_dice": rng.random(5635)})
    start = time.perf_counter()
    bootstrap_ci(frame, n_boot=2000)
    assert time.perf_counter() - start < 2.0


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError):
        bootstrap_ci(pd.DataFrame({"subject": [], "kaggle_dice": []}))
    with pytest.raises(ValueError):
        bootstrap_ci(pd.DataFrame({"subject": [1], "kaggle_dice": [0.5]}), level=1.0)


def _entries():
    a = pd.DataFrame({"image_id": ["1_1", "1_2", "2_1", "3_1"], "subject": [1, 1, 2, 3],
                      "kaggle_dice": [1.0, 0.5, 0.0, 0.5]})
    b = pd.DataFrame({"image_id": ["1_1", "2_1"], "subject": [1, 2], "kaggle_dice": [0.25, 0.25]})
    return {
        "unet": {"kind": "model", "members": ["unet"], "per_image": a,
                 "best": {"cutoff": 0.45, "min_area": 3000, "score": 0.6123, "untuned_score": 0.55,
                          "empty_score": 0.52, "members": ["unet"], "n_images": 4}},
        "all": {"kind": "ensemble", "members": ["unet", "two|head"], "per_image": b,
                "best": {"cutoff": 0.5, "min_area": 0, "score": 0.25, "untuned_score": 0.2,
                         "empty_score": 0.5}},
    }


def test_results_table_columns_and_values():
    entries = _entries()
    table = results_table(entries, n_boot=200, seed=4)
    assert list(table.columns) == TABLE_COLUMNS
    assert table["name"].tolist() == ["unet", "all"]
    assert table["kind"].tolist() == ["model", "ensemble"]
    assert table["members"].tolist() == ["unet", "unet+two|head"]
    row = table.iloc[0]
    assert row["tuned_score"] == pytest.approx(0.6123)
    assert row["untuned_score"] == pytest.approx(0.55)
    assert row["empty_score"] == pytest.approx(0.52)
    assert row["cutoff"] == pytest.approx(0.45) and row["min_area"] == 3000
    assert row["n_images"] == 4 and row["n_subjects"] == 3
    ci = bootstrap_ci(entries["unet"]["per_image"], n_boot=200, seed=4)
    assert row["ci_low"] == pytest.approx(ci["low"]) and row["ci_high"] == pytest.approx(ci["high"])
    assert table.iloc[1]["ci_low"] == pytest.approx(0.25) and table.iloc[1]["ci_high"] == pytest.approx(0.25)
    assert table.iloc[1]["n_images"] == 2 and table.iloc[1]["n_subjects"] == 2


def test_to_markdown():
    table = results_table(_entries(), n_boot=100)
    text = to_markdown(table)
    lines = text.strip().splitlines()
    assert len(lines) == 2 + len(table)
    assert lines[0] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}
    assert lines[1].count("|") == len(TABLE_COLUMNS) + 1
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[:1] + lines[2:])
    assert "0.612" in lines[2] and "0.6123" not in lines[2]
    assert "| 3000 |" in lines[2] and "| 0.450 |" in lines[2]
    assert "unet+two\\|head" in lines[3]  # pipes escaped: column count intact
    assert all(line.replace("\\|", "").count("|") == len(TABLE_COLUMNS) + 1 for line in lines)


def test_paired_difference_ci_matches_a_direct_subject_bootstrap():
    rng = np.random.default_rng(3)
    subjects = rng.integers(0, 8, 120)
    frame = pd.DataFrame({"subject": subjects, "a": rng.random(120), "b": rng.random(120)})
    frame["a"] += 0.05 * (subjects % 2)  # a beats b on odd subjects only
    ci = paired_difference_ci(frame, "a", "b", n_boot=500, seed=7)
    groups = np.unique(subjects)
    draws = subject_draws(len(groups), 500, 7)
    means = []
    for draw in draws:
        rows = np.concatenate([np.flatnonzero(subjects == groups[g]) for g in draw])
        means.append((frame["a"].to_numpy()[rows] - frame["b"].to_numpy()[rows]).mean())
    low, high = np.quantile(means, [0.025, 0.975])
    assert ci["low"] == pytest.approx(low) and ci["high"] == pytest.approx(high)
    assert ci["mean"] == pytest.approx((frame["a"] - frame["b"]).mean())


def test_paired_difference_of_a_consistent_gain_excludes_zero():
    frame = pd.DataFrame({"subject": np.repeat(np.arange(10), 5), "b": np.linspace(0, 1, 50)})
    frame["a"] = frame["b"] + 0.01
    ci = paired_difference_ci(frame, "a", "b", n_boot=200, seed=0)
    assert ci["low"] == pytest.approx(0.01) and ci["high"] == pytest.approx(0.01)


def test_a_metric_undefined_everywhere_keeps_its_row_and_column():
    """A model that never predicts the class has no precision on any image: its row is NaN with 0
    images, and the wide table still has the precision column (it used to vanish)."""
    from plexus.report.tables import UNIT_METRICS, unit_markdown, unit_table

    frame = pd.DataFrame({"image_id": ["a", "b", "c"], "subject": ["s1", "s2", "s3"], "class": "nerve",
                          "dice_untuned": [0.0, 0.0, 1.0], "dice": [0.0, 0.0, 1.0], "iou": [0.0, 0.0, 1.0],
                          "sensitivity": [0.0, 0.0, np.nan], "precision": [np.nan] * 3,
                          "dice_cross_fitted": [0.0, 0.0, 1.0], "true_area": [5, 7, 0]})
    table = unit_table({"m": frame}, ["nerve"], "class", n_boot=50, seed=0)
    precision = table[(table["name"] == "m") & (table["metric"] == "precision")]
    assert len(precision) == 1 and np.isnan(precision["mean"].iloc[0]) and precision["n_images"].iloc[0] == 0
    dice = table[(table["name"] == "m") & (table["metric"] == "dice")]
    assert dice["mean"].iloc[0] == pytest.approx(1 / 3) and dice["n_images"].iloc[0] == 3
    header = unit_markdown(table, "class").splitlines()[0]
    assert all(metric in header for metric in UNIT_METRICS)
    assert "n/a" in unit_markdown(table, "class")
