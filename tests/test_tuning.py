import numpy as np
import pytest
import torch

from plexus import metrics, resize, tuning

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
    assert list(per_image.columns) == ["true_area", "pred_area", "dice", "kaggle_dice", "iou", "sensitivity", "precision"]


def per_image_untuned(prob, truth):
    up = resize.upsample(prob).numpy()
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
