import numpy as np
import pytest
import torch

from plexus.data import resize
from plexus.evaluation import metrics
from plexus.postprocess import tuning

SHAPE = (42, 58)


def _case(seed, n=12, size=(8, 10)):
    rng = np.random.default_rng(seed)
    truth = np.zeros((n, *SHAPE), dtype=np.uint8)
    for i in range(n):
        if rng.random() < 0.5:
            r, c = rng.integers(5, 30), rng.integers(5, 40)
            truth[i, r:r + rng.integers(3, 12), c:c + rng.integers(3, 15)] = 255
    probs = [rng.random((n, *size)).astype(np.float16) ** 3 for _ in range(2)]
    folds = np.arange(n) % 3
    return probs, truth, folds


def _brute_force(probs, truth, cutoff, min_area):
    up = np.mean([resize.upsample(p, SHAPE).numpy() for p in probs], axis=0)
    scores = []
    for p, t in zip(up, truth):
        pred = p > cutoff
        if pred.sum() < min_area:
            pred[:] = False
        scores.append(metrics.kaggle_dice(pred, t))
    return np.array(scores)


@pytest.mark.parametrize("seed", [0, 1])
def test_grid_matches_brute_force(seed):
    probs, truth, folds = _case(seed)
    cutoffs, areas = [0.1, 0.3, 0.5, 0.8], [0, 20, 60, 200]
    counts = tuning.cutoff_counts(probs, truth, cutoffs, shape=SHAPE, batch_size=5)
    grid = tuning.score_grid(counts, areas, folds)
    assert len(grid) == len(cutoffs) * len(areas)
    for row in grid.itertuples():
        expected = _brute_force(probs, truth, row.cutoff, row.min_area)
        assert row.score == pytest.approx(expected.mean())
        for k in range(3):
            assert getattr(row, f"score_fold{k}") == pytest.approx(expected[folds == k].mean())


def test_tune_reports_untuned_empty_and_per_image():
    probs, truth, folds = _case(3)
    counts = tuning.cutoff_counts(probs, truth, [0.2, 0.5, 0.7], shape=SHAPE)
    grid = tuning.score_grid(counts, [0, 30, 100], folds)
    best = tuning.choose_best(grid)
    assert best["score"] == pytest.approx(grid["score"].max())
    per_image = tuning.metrics_at(counts, best["cutoff"], best["min_area"])
    expected = _brute_force(probs, truth, best["cutoff"], best["min_area"])
    np.testing.assert_allclose(per_image["kaggle_dice"], expected)


def test_tune_end_to_end_at_original_shape():
    rng = np.random.default_rng(7)
    truth = np.zeros((4, 420, 580), dtype=np.uint8)
    truth[0, 100:180, 200:300] = 255  # 8000 px
    truth[1, 50:100, 50:100] = 255
    prob = np.zeros((4, 42, 58), dtype=np.float16)
    prob[0, 10:18, 20:30] = 0.9  # matches image 0
    prob[2, 5:7, 5:7] = 0.9  # a small false positive on an empty image
    prob += (rng.random(prob.shape) * 0.05).astype(np.float16)
    grid, best, per_image = tuning.tune([prob], truth, [0.3, 0.5, 0.7], [0, 1000, 5000], folds=[0, 0, 1, 1])
    # untuned: image0 ~1, image1 0 (missed), image2 0 (false positive), image3 1
    assert best["untuned_score"] == pytest.approx(per_image_untuned(prob, truth), abs=1e-9)
    assert best["empty_score"] == 0.5
    assert best["min_area"] == 1000  # removes the false positive, keeps the 8000 px blob
    assert best["score"] > best["untuned_score"]
    assert list(per_image.columns) == [
        "true_area", "pred_area", "dice", "kaggle_dice", "iou", "sensitivity", "precision"]


def per_image_untuned(prob, truth):
    up = resize.upsample(prob, truth.shape[1:]).numpy()
    return np.mean([metrics.kaggle_dice(p > 0.5, t) for p, t in zip(up, truth)])


def test_postprocess_matches_metrics_at():
    probs, truth, _ = _case(5)
    up = resize.upsample_mean(probs, SHAPE)
    masks = tuning.postprocess(up.clone(), 0.3, 60)
    counts = tuning.cutoff_counts(probs, truth, [0.3], shape=SHAPE)
    per_image = tuning.metrics_at(counts, 0.3, 60)
    np.testing.assert_array_equal(masks.flatten(1).sum(1).numpy(), per_image["pred_area"])


def test_upsample_mean_commutes_with_fold_average():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 8, 10)).astype(np.float32)
    left = resize.upsample((a + b) / 2, SHAPE)
    right = resize.upsample_mean([a, b], SHAPE)
    torch.testing.assert_close(left, right, atol=1e-6, rtol=0)


# --- the lookup-table path against brute-force thresholding, pixel count for pixel count ---------------------


def _brute_counts(probs, truth, cutoffs, shape):
    """Per image and cutoff: pixels above the cutoff and those in the truth, thresholding as postprocess() does."""
    up = resize.upsample_mean([np.asarray(p) for p in probs], shape).flatten(1)
    true = torch.from_numpy(np.asarray(truth).reshape(len(truth), -1) != 0)
    pred = np.stack([(up > c).sum(1).numpy() for c in cutoffs], axis=1)
    inter = np.stack([((up > c) & true).sum(1).numpy() for c in cutoffs], axis=1)
    return pred, inter, true.sum(1).numpy()


def _assert_counts_exact(probs, truth, cutoffs, shape=SHAPE, batch_size=3):
    counts = tuning.cutoff_counts(probs, truth, cutoffs, shape=shape, batch_size=batch_size)
    order = np.argsort(np.asarray(cutoffs, dtype=np.float64), kind="stable")
    pred, inter, true_area = _brute_counts(probs, truth, np.asarray(cutoffs, dtype=np.float64)[order], shape)
    np.testing.assert_array_equal(counts.cutoffs, np.sort(np.asarray(cutoffs, dtype=np.float64)))
    np.testing.assert_array_equal(counts.pred_area, pred)
    np.testing.assert_array_equal(counts.intersection, inter)
    np.testing.assert_array_equal(counts.true_area, true_area)
    return counts


def _edge_cutoffs(shift):
    """Cutoffs on the first and last float32 bit patterns of the lookup table's bins, and one past the first."""
    first = np.array([0.05, 0.3, 0.5, 0.7, 0.95, 0.2, 0.4, 0.6], dtype=np.float32).view(np.uint32) >> shift << shift
    last = first + (1 << shift) - 1
    # a bin may hold one cutoff that splits it (not on its last pattern), plus its last pattern
    patterns = np.concatenate([first[:5], first[:5] - 1, first[5:] + 1, last[5:], [0x3F800000 - 1]])
    return patterns.astype(np.uint32).view(np.float32).astype(np.float64)


@pytest.mark.parametrize("seed", range(4))
def test_counts_match_brute_force_on_random_grids(seed):
    rng = np.random.default_rng(seed)
    probs, truth, _ = _case(seed, n=7)
    truth[0] = 0  # an empty mask
    grid = [rng.random(rng.integers(1, 40)),  # random cutoffs
            np.linspace(0.05, 0.95, 101),  # the configured kind of grid, finer
            np.linspace(0, 1, 300)]  # > 127 cutoffs: 16-bit codes
    cutoffs = grid[seed % 3]
    assert tuning._BucketTable.build(np.unique(cutoffs.astype(np.float32))) is not None  # the fast path
    _assert_counts_exact(probs, truth, cutoffs)


@pytest.mark.parametrize("shift", tuning._SHIFTS)
def test_counts_exact_at_table_bin_edges(shift):
    """Pixels equal to cutoffs (ties) and cutoffs on and beside every kind of bin edge."""
    rng = np.random.default_rng(shift)
    cutoffs = _edge_cutoffs(shift)
    # probabilities at the original size (no interpolation): every cutoff and its float32 neighbours occur
    values = np.concatenate([cutoffs.astype(np.float32),
                             np.nextafter(cutoffs.astype(np.float32), np.float32(0)),
                             np.nextafter(cutoffs.astype(np.float32), np.float32(1)), [0, 1]]).astype(np.float32)
    prob = rng.choice(values, size=(4, *SHAPE)).astype(np.float32)
    truth = (rng.random((4, *SHAPE)) < 0.3).astype(np.uint8)
    _assert_counts_exact([prob], truth, cutoffs)
    cut32 = np.unique(cutoffs.astype(np.float32))
    table = tuning._BucketTable.build(cut32, shifts=[shift])  # each bin width, forced
    assert table is not None and table.shift == shift
    all_pixels, true_pixels = table.histograms(prob.reshape(4, -1), truth.reshape(4, -1) != 0)
    pred, inter, _ = _brute_counts([prob], truth, cut32, SHAPE)
    np.testing.assert_array_equal(tuning._above(all_pixels), pred)
    np.testing.assert_array_equal(tuning._above(true_pixels), inter)


def test_counts_exact_at_zero_one_and_out_of_range_cutoffs():
    rng = np.random.default_rng(11)
    prob = rng.choice(np.array([0, 0, 1, 0.5, 0.25, 1e-8, 0.99999994], dtype=np.float32), size=(5, *SHAPE))
    prob[0] = -0.0  # compares like 0
    prob[1] = 0
    prob[2] = 1
    truth = (rng.random((5, *SHAPE)) < 0.5).astype(np.uint8)
    truth[3] = 0
    cutoffs = [0.0, -0.0, 1.0, 0.5, 0.25, 1e-8, -0.5, 1.5, 0.99999994, 0.5]  # duplicates too
    counts = _assert_counts_exact([prob], truth, cutoffs)
    assert counts.pred_area[0].tolist() == [len(prob[0].ravel())] + [0] * 9  # only the -0.5 cutoff
    # the same values upsampled (interpolation and clamping) with a second member
    truth = (rng.random((5, 63, 87)) < 0.5).astype(np.uint8)
    _assert_counts_exact([prob, prob[::-1].copy()], truth, cutoffs, shape=(63, 87))


def test_counts_exact_on_the_general_path():
    """Cutoffs one float32 apart cannot be told apart by a table; inputs outside [0, 1] skip it too."""
    probs, truth, _ = _case(21, n=5)
    close = [0.3, float(np.nextafter(np.float32(0.3), np.float32(1))), 0.6]
    assert tuning._BucketTable.build(np.unique(np.asarray(close, dtype=np.float32))) is None
    _assert_counts_exact(probs, truth, close)
    rng = np.random.default_rng(3)
    wild = (rng.random((5, *SHAPE)) * 3 - 1).astype(np.float32)  # at the original size: not clamped
    wild[0, 0, :5] = np.nan
    _assert_counts_exact([wild], truth, [-0.5, 0, 0.5, 1, 1.5])


def test_counts_of_empty_predictions_and_truths():
    prob = np.zeros((3, 8, 10), dtype=np.float16)
    truth = np.zeros((3, *SHAPE), dtype=np.uint8)
    counts = _assert_counts_exact([prob], truth, np.linspace(0, 1, 11))
    assert counts.pred_area.sum() == 0 and counts.true_area.sum() == 0
    grid = tuning.score_grid(counts, [0, 10])
    assert (grid["score"] == 1.0).all()  # empty vs empty scores 1


def test_counts_accept_lazy_truth():
    """``true_masks`` is read one batch at a time: a sequence with len() and slicing is enough."""
    probs, truth, _ = _case(4, n=9)

    class Lazy:
        def __len__(self):
            return len(truth)

        def __getitem__(self, rows):
            assert isinstance(rows, slice) and rows.stop - rows.start <= 4
            return truth[rows]

    lazy = tuning.cutoff_counts(probs, Lazy(), [0.2, 0.6], shape=SHAPE, batch_size=4)
    eager = tuning.cutoff_counts(probs, truth, [0.2, 0.6], shape=SHAPE)
    np.testing.assert_array_equal(lazy.pred_area, eager.pred_area)
    np.testing.assert_array_equal(lazy.intersection, eager.intersection)


# --- scoring the grid from counts -------------------------------------------------------------------------------


def _grid_by_broadcasting(counts, min_areas, rows=None):
    """The (images, cutoffs, min areas) formula: every setting thresholded explicitly."""
    rows = slice(None) if rows is None else rows
    pred, inter = tuning.apply_min_area(counts.pred_area[rows], counts.intersection[rows], min_areas)
    return metrics.dice_from_counts(inter, pred, counts.true_area[rows, None, None]).mean(axis=0).ravel()


@pytest.mark.parametrize("seed", range(3))
def test_score_grid_matches_broadcasting(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 25
    true_area = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 500, n))
    pred_area = np.sort(rng.integers(0, 600, (n, k)), axis=1)[:, ::-1].copy()
    pred_area[rng.random((n, k)) < 0.2] = 0
    inter = np.minimum(pred_area, true_area[:, None]) * rng.random((n, k))
    counts = tuning.CutoffCounts(np.linspace(0.1, 0.9, k), pred_area, inter.astype(np.int64), true_area)
    # min areas on exact predicted areas (ties keep the mask), below 0 and above every area
    min_areas = sorted({-5, 0, 1, 10_000, *rng.choice(pred_area.ravel(), 8).tolist()})
    folds = rng.integers(0, 3, n)
    grid = tuning.score_grid(counts, min_areas, folds)
    np.testing.assert_allclose(grid["score"], _grid_by_broadcasting(counts, min_areas), rtol=0, atol=1e-12)
    for fold in range(3):
        expected = _grid_by_broadcasting(counts, min_areas, folds == fold)
        np.testing.assert_allclose(grid[f"score_fold{fold}"], expected, rtol=0, atol=1e-12)


def test_fine_grid_end_to_end_matches_brute_force():
    probs, truth, folds = _case(8, n=6)
    cutoffs, areas = np.linspace(0, 1, 201), np.arange(0, 400, 7)
    counts = tuning.cutoff_counts(probs, truth, cutoffs, shape=SHAPE)
    grid = tuning.score_grid(counts, areas, folds)
    for row in grid.sample(40, random_state=0).itertuples():
        assert row.score == pytest.approx(_brute_force(probs, truth, row.cutoff, row.min_area).mean(), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_presence_gate_is_tuned_jointly_against_brute_force(seed):
    """Two-head models: cutoff x min area x presence threshold, each image gated once."""
    probs, truth, folds = _case(seed)
    presence = np.random.default_rng(seed + 10).random(len(truth)).astype(np.float32)
    cutoffs, areas, thresholds = [0.2, 0.5, 0.8], [0, 30], [0.0, 0.3, 0.5, 0.9]
    grid, best, per_image = tuning.tune(probs, truth, cutoffs, areas, folds, presence=presence,
                                        presence_thresholds=thresholds, shape=SHAPE)
    assert len(grid) == len(cutoffs) * len(areas) * len(thresholds)
    for row in grid.itertuples():
        expected = _brute_force(probs, truth, row.cutoff, row.min_area)
        expected[presence < row.presence_threshold] = (truth.reshape(len(truth), -1).sum(1) == 0)[
            presence < row.presence_threshold]
        assert row.score == pytest.approx(expected.mean()), row
    top = grid["score"].max()
    assert best["score"] == pytest.approx(top) and "presence_threshold" in best
    untuned = _brute_force(probs, truth, 0.5, 0)
    untuned[presence < 0.5] = (truth.reshape(len(truth), -1).sum(1) == 0)[presence < 0.5]
    assert best["untuned_score"] == pytest.approx(untuned.mean())
    assert per_image["kaggle_dice"].mean() == pytest.approx(best["score"])


def test_upsample_mean_leaves_full_size_float32_members_untouched():
    a = np.full((2, *SHAPE), 0.2, np.float32)
    b = np.full((2, *SHAPE), 0.6, np.float32)
    mean = resize.upsample_mean([a, b], SHAPE)
    np.testing.assert_allclose(mean.numpy(), 0.4, rtol=1e-6)
    assert (a == np.float32(0.2)).all() and (b == np.float32(0.6)).all()


@pytest.mark.parametrize("cutoffs", [[0.0], [0.0, 0.5, 1.0], list(np.linspace(0, 1, 101))])
def test_a_zero_cutoff_counts_exactly_with_zeros_negative_zeros_and_denormals(cutoffs):
    """Cutoff 0 takes its own path (count of nonzero pixels); exact zeros, -0.0 and the
    smallest positive floats sit on both sides of it."""
    rng = np.random.default_rng(7)
    tiny = np.array([0.0, -0.0, np.float32(1e-45), np.float32(1e-38), 1e-7, 0.3, 1.0], dtype=np.float32)
    prob = rng.choice(tiny, size=(3, *SHAPE)).astype(np.float32)
    truth = (rng.random((3, *SHAPE)) < 0.4).astype(np.uint8)
    _assert_counts_exact([prob], truth, cutoffs)
