"""Candidate selection on OOF: kept only when the paired subject-bootstrap CI is above 0."""

from __future__ import annotations

import numpy as np
import pytest

from plexus.evaluation.metrics import kaggle_dice
from plexus.postprocess.candidates import CRF_DEFAULTS, PostProcess, dense_crf
from plexus.postprocess.selection import CANDIDATES, Batch, ScoreCache, Selection, select_many, variants

SHAPE = (40, 48)


def _dataset(n=60, seed=0):
    """Each image: a true square found by the model, plus spurious small blobs on most images."""
    rng = np.random.default_rng(seed)
    probs = np.zeros((n, *SHAPE), np.float32)
    truths = np.zeros((n, *SHAPE), bool)
    for i in range(n):
        if i % 3:  # a nerve on two images of three
            r, c = rng.integers(5, 20, 2)
            truths[i, r:r + 12, c:c + 14] = True
            probs[i, r:r + 12, c:c + 14] = 0.9
        for _ in range(rng.integers(1, 4)):  # false positives, 4 px each
            r, c = rng.integers(0, SHAPE[0] - 2), rng.integers(0, SHAPE[1] - 2)
            if not truths[i, r:r + 2, c:c + 2].any():
                probs[i, r:r + 2, c:c + 2] = 0.8
    return probs, truths, np.repeat(np.arange(n // 5), 5)


def _cache(probs, truths, batch=7, probs_tta=None, images=None, loaded=None):
    """A cache over in-memory arrays; ``loaded`` records what each pass asked for."""
    def batches(needs):
        if loaded is not None:
            loaded.append(needs)
        for lo in range(0, len(probs), batch):
            rows = np.arange(lo, min(lo + batch, len(probs)))
            yield Batch(rows=rows, truths=truths[rows], probs=probs[rows] if "plain" in needs else None,
                        probs_tta=probs_tta[rows] if "tta" in needs and probs_tta is not None else None,
                        images=images[rows] if "images" in needs else None)
    return ScoreCache(batches, len(probs))


NO_MAP_CANDIDATES = [c for c in CANDIDATES if c not in ("tta", "crf")]


def test_cache_scores_equal_direct_kaggle_dice():
    probs, truths, _ = _dataset(20)
    cache = _cache(probs, truths)
    pipelines = [PostProcess(cutoff=0.5), PostProcess(cutoff=0.5, remove_below=5), PostProcess(cutoff=0.85)]
    cache.ensure(pipelines)
    assert cache.passes == 1
    for p in pipelines:
        direct = [kaggle_dice(p.apply(probs[i]), truths[i]) for i in range(len(probs))]
        np.testing.assert_allclose(cache.scores[p], direct)
    cache.ensure(pipelines)
    assert cache.passes == 1  # nothing recomputed


def test_a_helpful_candidate_is_kept_and_useless_ones_are_not():
    probs, truths, subjects = _dataset()
    options = {"component_sizes": [2, 10, 50], "candidates": NO_MAP_CANDIDATES}
    [result] = select_many(_cache(probs, truths), [Selection(np.arange(len(probs)), PostProcess(cutoff=0.5))],
                           subjects, options, n_boot=300)
    decisions = {d["candidate"]: d for d in result.decisions}
    assert set(decisions) == set(NO_MAP_CANDIDATES) - {"hysteresis"}
    # removing components below 10 px removes every 4-px false positive and no nerve
    assert decisions["remove_small"]["kept"] and decisions["remove_small"]["setting"] == {"remove_below": 10}
    assert decisions["remove_small"]["ci_low"] > 0
    assert "hysteresis" not in decisions  # no seed levels configured: not tried
    assert not decisions["largest_component"]["kept"]  # nothing left to gain once small blobs are gone
    assert not decisions["fill_holes"]["kept"]  # the squares have no holes: a zero difference is not a gain
    for d in result.decisions:
        assert d["kept"] == (d["ci_low"] > 0)
        assert d["difference"] == pytest.approx(d["score_with"] - d["score_without"])


def test_lockstep_selections_on_row_subsets_share_one_pass_per_step():
    probs, truths, subjects = _dataset()
    cache = _cache(probs, truths)
    rows = np.arange(len(probs))
    selections = [Selection(rows, PostProcess(cutoff=0.5))] + [
        Selection(rows[rows % 3 != k], PostProcess(cutoff=0.5)) for k in range(3)]
    options = {"component_sizes": [10], "candidates": NO_MAP_CANDIDATES}
    select_many(cache, selections, subjects, options, n_boot=200)
    assert cache.passes <= 1 + len(NO_MAP_CANDIDATES)
    alone = select_many(_cache(probs, truths), [Selection(rows[rows % 3 != 1], PostProcess(cutoff=0.5))],
                        subjects, options, n_boot=200)[0]
    assert alone.current == selections[2].current and alone.decisions == selections[2].decisions


def test_variants_respect_what_is_already_kept():
    base = PostProcess(cutoff=0.6)
    assert variants(base, "hysteresis", {"hysteresis_highs": [0.5, 0.7, 0.9]}) == [
        base.with_changes(hysteresis_high=0.7), base.with_changes(hysteresis_high=0.9)]
    assert variants(base.with_changes(otsu=True), "hysteresis", {"hysteresis_highs": [0.9]}) == []
    assert variants(base.with_changes(fill_holes=True), "fill_holes", {}) == []
    assert variants(base, "tta", {}) == [base.with_changes(tta=True)]
    assert variants(base.with_changes(tta=True), "tta", {}) == []
    assert variants(base, "crf", {}) == [base.with_changes(crf=True)]
    with pytest.raises(ValueError, match="unknown post-processing candidate"):
        variants(base, "watershed", {})


def test_candidates_are_tried_in_order_on_top_of_what_was_kept():
    """Hysteresis seeded at 0.85 drops the 0.8 blobs first; removing small components then adds nothing."""
    probs, truths, subjects = _dataset()
    [result] = select_many(_cache(probs, truths), [Selection(np.arange(len(probs)), PostProcess(cutoff=0.5))],
                           subjects, {"component_sizes": [10], "hysteresis_highs": [0.85],
                                      "candidates": NO_MAP_CANDIDATES}, n_boot=300)
    decisions = {d["candidate"]: d for d in result.decisions}
    assert decisions["hysteresis"]["kept"] and not decisions["remove_small"]["kept"]
    assert result.current == PostProcess(cutoff=0.5, hysteresis_high=0.85)


def test_fold_tuned_settings_pick_the_best_row_on_the_other_folds():
    import pandas as pd

    from plexus.tasks.binary import fold_tuned_settings

    rng = np.random.default_rng(0)
    grid = pd.DataFrame({"cutoff": np.repeat([0.3, 0.5, 0.7], 4), "min_area": np.tile([0, 10, 20, 30], 3),
                         "presence_threshold": 0.5, **{f"score_fold{k}": rng.random(12) for k in range(3)}})
    sizes = {0: 10, 1: 30, 2: 20}
    chosen = fold_tuned_settings(grid, sizes)
    for k in sizes:
        others = [j for j in sizes if j != k]
        pooled = [sum(sizes[j] * grid.loc[r, f"score_fold{j}"] for j in others) for r in range(12)]
        row = grid.loc[int(np.argmax(pooled))]
        assert chosen[k] == {"cutoff": row["cutoff"], "min_area": row["min_area"], "presence_threshold": 0.5}


def test_cross_fitted_grid_score_hand_example():
    """Two settings, three folds (sizes 1, 1, 2). Hold out fold 0: B wins on folds 1+2
    ((1 + 2*0.6)/3 > (0 + 2*0.5)/3) and scores 0 on fold 0; hold out 1: A wins, scores 0 on
    fold 1; hold out 2: A and B tie at 0.5, the first (A) is taken and scores 0.5 on fold 2.
    Cross-fitted: (0 + 0 + 2*0.5)/4 = 0.25, against 0.55 for B tuned on all folds."""
    import pandas as pd

    from plexus.tasks.binary import cross_fitted_grid_score, fold_tuned_settings

    grid = pd.DataFrame({"cutoff": [0.3, 0.7], "min_area": [0, 0], "score_fold0": [1.0, 0.0],
                         "score_fold1": [0.0, 1.0], "score_fold2": [0.5, 0.6]})
    sizes = {0: 1, 1: 1, 2: 2}
    assert [s["cutoff"] for s in fold_tuned_settings(grid, sizes).values()] == [0.7, 0.3, 0.3]
    assert cross_fitted_grid_score(grid, sizes) == pytest.approx(0.25)


def test_tta_is_kept_when_the_flip_averaged_maps_are_better_and_scored_on_them():
    """The plain maps carry 4-px false positives that the flip average halves to 0.4 (below the cutoff)."""
    probs, truths, subjects = _dataset()
    probs_tta = np.where(truths, probs, probs / 2)
    loaded = []
    cache = _cache(probs, truths, probs_tta=probs_tta, loaded=loaded)
    [result] = select_many(cache, [Selection(np.arange(len(probs)), PostProcess(cutoff=0.5))], subjects,
                           {"candidates": ["tta", "remove_small"], "component_sizes": [10]}, n_boot=300)
    tta = result.decisions[0]
    assert tta["candidate"] == "tta" and tta["kept"] and tta["setting"] == {"tta": True}
    assert result.current == PostProcess(cutoff=0.5, tta=True)
    direct = [kaggle_dice(probs_tta[i] > 0.5, truths[i]) for i in range(len(probs))]
    np.testing.assert_allclose(cache.scores[result.current], direct)
    assert not result.decisions[1]["kept"]  # nothing left for remove_small once tta removed the specks
    assert loaded[0] == {"plain"} and loaded[1] == {"tta"}  # each pass loads only the maps it scores


def test_tta_without_flip_averaged_maps_is_a_clear_error():
    probs, truths, _ = _dataset(10)
    with pytest.raises(ValueError, match="prob_tta"):
        _cache(probs, truths).ensure([PostProcess(tta=True)])


def test_crf_pipeline_scores_equal_the_crf_applied_by_hand_and_it_can_win():
    """Noisy maps of squares drawn in the image: the CRF's appearance kernel restores them."""
    rng = np.random.default_rng(3)
    n = 20
    truths = np.zeros((n, 64, 80), bool)
    for i in range(n):
        r, c = rng.integers(8, 30, 2)
        truths[i, r:r + 24, c:c + 30] = True
    images = np.clip(60 + 120 * truths + rng.normal(0, 8, truths.shape), 0, 255).astype(np.uint8)
    probs = np.clip(0.3 + 0.4 * truths + rng.normal(0, 0.25, truths.shape), 0, 1).astype(np.float32)
    settings = {**CRF_DEFAULTS, "scale": 2}
    cache = _cache(probs, truths, images=images)
    cache.crf_settings = settings
    [result] = select_many(cache, [Selection(np.arange(n), PostProcess(cutoff=0.5))], np.arange(n) // 2,
                           {"candidates": ["crf"]}, n_boot=300)
    assert result.decisions[0]["kept"] and result.current.crf
    direct = [kaggle_dice(dense_crf(probs[i], images[i], **settings) > 0.5, truths[i]) for i in range(n)]
    np.testing.assert_allclose(cache.scores[result.current], direct)
    assert np.mean(direct) > np.mean(cache.scores[PostProcess(cutoff=0.5)]) + 0.1


def test_counts_are_kept_for_the_other_metrics():
    probs, truths, _ = _dataset(12)
    cache = _cache(probs, truths)
    pipeline = PostProcess(cutoff=0.5)
    cache.ensure([pipeline])
    masks = probs > 0.5
    expected = np.stack([(masks & truths).sum((1, 2)), masks.sum((1, 2)), truths.sum((1, 2))], axis=1)
    np.testing.assert_array_equal(cache.counts[pipeline], expected)


# --- the keep rule's minimum practical gain (postprocess.min_gain) ---------------------------------------------------


def _small_gain(n_subjects=20, per_subject=3, gain=0.0004, seed=0):
    """Per-image scores without and with a candidate: a gain of ``gain`` on average, positive on
    every subject (so its CI lies above 0)."""
    rng = np.random.default_rng(seed)
    without = rng.uniform(0.5, 0.9, n_subjects * per_subject)
    spread = rng.uniform(-0.5, 0.5, len(without)) * gain
    spread -= spread.mean()
    return without + gain + spread, without, np.repeat(np.arange(n_subjects), per_subject)


def test_min_gain_refuses_a_gain_whose_ci_is_above_0_but_which_is_too_small():
    from plexus.evaluation.crossfit import decision, keep_candidate

    with_scores, without, subjects = _small_gain()
    kept, ci = keep_candidate(with_scores, without, subjects, n_boot=500)
    assert kept and ci["low"] > 0 and ci["mean"] == pytest.approx(0.0004) and "refused" not in ci
    assert keep_candidate(with_scores, without, subjects, n_boot=500, min_gain=0.0003)[0]
    kept, ci = keep_candidate(with_scores, without, subjects, n_boot=500, min_gain=0.001)
    assert not kept and ci["low"] > 0
    assert ci["refused"].startswith("refused: mean gain +0.0004 is below postprocess.min_gain 0.001")
    row = decision("remove_small", {"remove_below": 500}, without.mean(), with_scores.mean(), kept, ci)
    assert not row["kept"] and row["note"] == ci["refused"]
    # a CI that is not above 0 refuses whatever min_gain, and says nothing about min_gain
    kept, ci = keep_candidate(without, without, subjects, n_boot=500, min_gain=0.001)
    assert not kept and "refused" not in ci
    assert "note" not in decision("x", {}, 0.5, 0.5, kept, ci)


def test_keep_rule_text_and_the_decisions_columns():
    from plexus.evaluation.crossfit import decisions_columns, keep_rule

    assert keep_rule() == keep_rule(0) == ("a candidate is kept when the subject-bootstrap 95% CI of its paired "
                                           "per-image gain lies above 0")
    assert keep_rule(0.001).endswith("lies above 0 and its mean gain is at least 0.001 (postprocess.min_gain)")
    assert decisions_columns([{"kept": True}])[-1] == "kept"
    assert decisions_columns([{"kept": True}, {"kept": False, "note": "refused: ..."}])[-1] == "note"


def test_select_many_applies_min_gain_to_every_candidate():
    probs, truths, subjects = _dataset()
    options = {"component_sizes": [2, 10, 50], "candidates": ["remove_small"]}
    rows = np.arange(len(probs))
    [plain] = select_many(_cache(probs, truths), [Selection(rows, PostProcess(cutoff=0.5))], subjects, options,
                          n_boot=300)
    gain = plain.decisions[0]["difference"]
    assert plain.decisions[0]["kept"] and "note" not in plain.decisions[0]
    [refused] = select_many(_cache(probs, truths), [Selection(rows, PostProcess(cutoff=0.5))], subjects,
                            {**options, "min_gain": gain + 0.01}, n_boot=300)
    assert not refused.decisions[0]["kept"] and refused.current == PostProcess(cutoff=0.5)
    assert "below postprocess.min_gain" in refused.decisions[0]["note"]
    assert {k: v for k, v in refused.decisions[0].items() if k not in ("kept", "note")} == \
        {k: v for k, v in plain.decisions[0].items() if k != "kept"}
