"""The one cross-fitting choice (plexus.evaluation.crossfit) against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pytest

from plexus.evaluation.crossfit import choose_per_fold, first_best


def _brute(scores, folds, tolerance):
    folds = np.asarray(folds, dtype=object)
    held_out, chosen = np.empty(scores.shape[:-1]), {}
    for fold in dict.fromkeys(folds.tolist()):
        others = [i for i in range(len(folds)) if folds[i] != fold]
        flat = scores.reshape(len(scores), -1, scores.shape[-1])
        picks = []
        for c in range(flat.shape[1]):
            means = [sum(flat[i, c, g] for i in others) / len(others) for g in range(flat.shape[2])]
            best = max(means)
            picks.append(next(g for g, m in enumerate(means) if m >= best - tolerance))
        chosen[fold] = np.array(picks).reshape(scores.shape[1:-1])
        for i in np.flatnonzero(folds == fold):
            held_out[i] = np.array([flat[i, c, picks[c]] for c in range(flat.shape[1])]).reshape(scores.shape[1:-1])
    return held_out, chosen


@pytest.mark.parametrize("shape", [(12, 5), (12, 3, 4)])
@pytest.mark.parametrize("tolerance", [0.0, 0.05])
def test_choose_per_fold_equals_a_brute_force_loop(shape, tolerance):
    rng = np.random.default_rng(len(shape))
    scores = rng.random(shape).round(2)  # rounded: ties happen
    folds = ["b", "a", "c"] * 4
    held_out, chosen = choose_per_fold(scores, folds, tolerance)
    expected_held_out, expected_chosen = _brute(scores, folds, tolerance)
    np.testing.assert_allclose(held_out, expected_held_out)
    assert list(chosen) == ["b", "a", "c"]  # folds in order of first appearance
    for fold in chosen:
        np.testing.assert_array_equal(chosen[fold], expected_chosen[fold])


def test_a_hand_computed_case_and_ties_to_the_first_candidate():
    scores = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    held_out, chosen = choose_per_fold(scores, [0, 0, 1, 1])
    assert chosen == {0: 1, 1: 0}  # each fold takes the other fold's best: both score 0 here
    np.testing.assert_array_equal(held_out, [0, 0, 0, 0])
    assert first_best(np.array([0.5, 0.5, 0.4])) == 0
    assert first_best(np.array([0.49, 0.5]), tie_tolerance=0.02) == 0


def test_one_fold_is_an_error():
    with pytest.raises(ValueError, match="at least two folds"):
        choose_per_fold(np.zeros((3, 2)), [1, 1, 1])


def test_choose_from_fold_means_is_the_image_weighted_choice_of_choose_per_fold():
    """The binary grid's per-fold means and a per-image table choose the same candidates."""
    from plexus.evaluation.crossfit import choose_from_fold_means

    rng = np.random.default_rng(5)
    scores = rng.random((23, 7))
    folds = rng.integers(0, 4, 23)
    _, chosen = choose_per_fold(scores, folds)
    means = {f: scores[folds == f].mean(axis=0) for f in np.unique(folds)}
    sizes = {f: int((folds == f).sum()) for f in np.unique(folds)}
    by_means = choose_from_fold_means(means, sizes)
    for fold in means:  # brute force: the best column over the other folds' images
        assert by_means[fold] == chosen[fold] == int(np.argmax(scores[folds != fold].mean(axis=0)))


def test_keep_candidate_keeps_a_gain_every_subject_shares_and_refuses_a_mixed_one():
    from plexus.evaluation.crossfit import keep_candidate

    subjects = np.repeat(["a", "b", "c", "d"], 3)
    without = np.linspace(0.2, 0.8, 12)
    kept, ci = keep_candidate(without + 0.05, without, subjects, n_boot=500)
    assert kept and ci["low"] == pytest.approx(0.05) and ci["mean"] == pytest.approx(0.05)
    mixed = without + np.where(np.isin(subjects, ["a", "b"]), 0.1, -0.1)
    kept, ci = keep_candidate(mixed, without, subjects, n_boot=500)
    assert not kept and ci["low"] < 0 < ci["high"] and ci["mean"] == pytest.approx(0.0)


def test_the_decisions_table_says_settings_as_text_and_rounds_scores():
    from plexus.evaluation.crossfit import decisions_table

    rows = [{"candidate": "tta", "setting": {"tta": True}, "score_without": 0.8413164133091956,
             "score_with": 0.8477324539662237, "difference": 0.006416040657028052, "ci_low": -0.016659249662074882,
             "ci_high": 0.028598958607226325, "kept": False},
            {"candidate": "hysteresis", "setting": {"hysteresis_high": 0.7, "remove_below": 200},
             "score_without": 0.5, "score_with": 0.5, "difference": 1.5855039504295935e-05, "ci_low": 0.0,
             "ci_high": 4.0092398425993954e-05, "kept": False}]
    table = decisions_table(rows)
    assert table["setting"].tolist() == ["tta=True", "hysteresis_high=0.7; remove_below=200"]
    assert table["score_without"].tolist() == [0.841316, 0.5]
    assert table["difference"].tolist() == [0.006416, 0.000016]
    csv = table.to_csv(index=False)
    assert "{" not in csv and "0.8413164133" not in csv
