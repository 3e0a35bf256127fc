"""DSB2018 instance metrics against a per-object brute force and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from plexus.evaluation.instances import (
    DSB_THRESHOLDS,
    average_precision,
    match_iou,
    object_f1,
    per_image_instance_metrics,
    pixel_dice,
)

# --- brute force: one boolean mask per object, pairs in Python loops ----------------------------------------------


def _objects(labels):
    return [labels == v for v in sorted(set(np.unique(labels).tolist()) - {0})]


def _brute_iou(true, pred):
    out = np.zeros((len(_objects(true)), len(_objects(pred))))
    for i, a in enumerate(_objects(true)):
        for j, b in enumerate(_objects(pred)):
            out[i, j] = (a & b).sum() / (a | b).sum()
    return out


def _brute_precision(true, pred, t):
    """Greedy one-to-one matching by descending IoU (at t >= 0.5 any matching gives the same count)."""
    iou = _brute_iou(true, pred)
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    used_true, used_pred, tp = set(), set(), 0
    for i, j in sorted(np.ndindex(iou.shape), key=lambda ij: -iou[ij]):
        if iou[i, j] > t and i not in used_true and j not in used_pred:
            used_true.add(i)
            used_pred.add(j)
            tp += 1
    return tp / (tp + (n_pred - tp) + (n_true - tp))


def _random_labels(rng, shape, n, values):
    """Rectangles and discs painted over each other with the given (non-consecutive) label values."""
    out = np.zeros(shape, dtype=np.int64)
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    for v in values[:n]:
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        if rng.random() < 0.5:
            h, w = rng.integers(2, 12, size=2)
            out[r:r + h, c:c + w] = v
        else:
            out[(rr - r) ** 2 + (cc - c) ** 2 <= rng.integers(2, 7) ** 2] = v
    return out


def _perturbed(rng, true, values):
    """A prediction near ``true``: objects shifted by a pixel or two, some dropped, a few spurious ones added."""
    pred = np.zeros_like(true)
    for k, v in enumerate(sorted(set(np.unique(true).tolist()) - {0})):
        if rng.random() < 0.15:
            continue
        dr, dc = rng.choice([0, 0, 0, 1, -1, 2, -2], size=2)
        pred[np.roll(true == v, (dr, dc), axis=(0, 1))] = values[k]
    extra = _random_labels(rng, true.shape, int(rng.integers(0, 3)), values[-3:])
    return np.where(extra > 0, extra, pred)


@pytest.mark.parametrize("seed", range(12))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 48)), int(rng.integers(20, 48)))
    true_values = rng.choice(np.arange(1, 5000), size=12, replace=False)
    pred_values = rng.choice(np.arange(1, 5000), size=20, replace=False)
    true = _random_labels(rng, shape, int(rng.integers(0, 12)), true_values)
    pred = _perturbed(rng, true, pred_values) if rng.random() < 0.8 else _random_labels(rng, shape, 6, pred_values)

    np.testing.assert_allclose(match_iou(true, pred), _brute_iou(true, pred), rtol=0, atol=1e-12)
    score, per_t = average_precision(true, pred)
    expected = [_brute_precision(true, pred, t) for t in DSB_THRESHOLDS]
    np.testing.assert_allclose(per_t, expected, rtol=0, atol=1e-12)
    assert score == pytest.approx(np.mean(expected))
    n_true, n_pred = len(_objects(true)), len(_objects(pred))
    tp = int((_brute_iou(true, pred) > 0.5).sum())
    assert object_f1(true, pred) == pytest.approx(1.0 if n_true + n_pred == 0 else 2 * tp / (n_true + n_pred))


def test_huge_label_values_take_the_sorting_path():
    rng = np.random.default_rng(3)
    true = _random_labels(rng, (30, 30), 8, np.arange(1, 9) * 2**40)
    pred = _perturbed(rng, true, np.arange(1, 20) * 2**38 + 7)
    np.testing.assert_allclose(match_iou(true, pred), _brute_iou(true, pred), rtol=0, atol=1e-12)


# --- hand-computed cases ------------------------------------------------------------------------------------------


def _square(shape=(20, 20), rows=(5, 15), cols=(5, 15), value=1):
    out = np.zeros(shape, dtype=np.int32)
    out[rows[0]:rows[1], cols[0]:cols[1]] = value
    return out


def test_perfect_prediction_scores_one():
    true = _square() + _square(rows=(16, 19), cols=(0, 3), value=4)
    score, per_t = average_precision(true, true)
    assert score == 1.0
    np.testing.assert_array_equal(per_t, np.ones(10))
    assert object_f1(true, true) == 1.0 and pixel_dice(true, true) == 1.0


def test_shifted_square_passes_the_thresholds_below_its_iou():
    # 10x10 squares two columns apart: intersection 80, union 120, IoU 2/3
    true, pred = _square(), _square(cols=(7, 17))
    assert match_iou(true, pred)[0, 0] == pytest.approx(2 / 3)
    score, per_t = average_precision(true, pred)
    np.testing.assert_array_equal(per_t, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # 0.50 .. 0.65 < 2/3 < 0.70
    assert score == pytest.approx(0.4)
    assert pixel_dice(true, pred) == pytest.approx(2 * 80 / 200)


def test_iou_equal_to_a_threshold_does_not_pass_it():
    # prediction = 6 of the 10 columns: IoU exactly 60 / 100
    true, pred = _square(), _square(cols=(5, 11))
    assert match_iou(true, pred)[0, 0] == 0.6
    _, per_t = average_precision(true, pred)
    np.testing.assert_array_equal(per_t, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0])


def test_one_true_object_split_into_two_predictions():
    # true 10x10; predicted 10x7 (IoU 0.7) and 10x3 (IoU 0.3)
    true = _square()
    pred = _square(cols=(5, 12), value=2) + _square(cols=(12, 15), value=9)
    np.testing.assert_allclose(match_iou(true, pred), [[0.7, 0.3]])
    score, per_t = average_precision(true, pred)
    # t < 0.7: TP 1, FP 1, FN 0 -> 1/2; t >= 0.7: TP 0, FP 2, FN 1 -> 0
    np.testing.assert_allclose(per_t, [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0])
    assert score == pytest.approx(0.2)
    assert object_f1(true, pred) == pytest.approx(2 * 1 / 3)
    assert pixel_dice(true, pred) == 1.0  # same foreground


def test_two_true_objects_merged_into_one_prediction():
    true = _square(cols=(5, 12), value=3) + _square(cols=(12, 15), value=8)
    pred = _square(value=5)
    np.testing.assert_allclose(match_iou(true, pred), [[0.7], [0.3]])
    score, per_t = average_precision(true, pred)
    np.testing.assert_allclose(per_t, [0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0])
    assert score == pytest.approx(0.2)


def test_empty_conventions():
    empty, obj = np.zeros((8, 8), dtype=np.int32), _square((8, 8), (1, 4), (1, 4))
    score, per_t = average_precision(empty, empty)
    assert score == 1.0 and (per_t == 1).all()
    assert object_f1(empty, empty) == 1.0 and pixel_dice(empty, empty) == 1.0
    assert match_iou(empty, obj).shape == (0, 1)
    for true, pred in [(empty, obj), (obj, empty)]:
        score, per_t = average_precision(true, pred)
        assert score == 0.0 and (per_t == 0).all()
        assert object_f1(true, pred) == 0.0 and pixel_dice(true, pred) == 0.0


def test_relabelling_either_map_changes_nothing():
    rng = np.random.default_rng(7)
    true = _random_labels(rng, (40, 40), 10, np.arange(1, 11))
    pred = _perturbed(rng, true, np.arange(1, 20))
    score, per_t = average_precision(true, pred)

    def relabel(labels):
        values = np.unique(labels[labels > 0])
        lookup = np.zeros(labels.max() + 1, dtype=np.int64)
        lookup[values] = rng.choice(np.arange(1, 10_000), size=len(values), replace=False)
        return lookup[labels]

    for _ in range(3):
        score2, per_t2 = average_precision(relabel(true), relabel(pred))
        assert score2 == score
        np.testing.assert_array_equal(per_t2, per_t)
    # IoU rows/columns follow ascending label values
    iou = match_iou(relabel(true), pred)
    assert sorted(iou.max(axis=1).tolist()) == sorted(match_iou(true, pred).max(axis=1).tolist())


def test_invalid_inputs():
    a = _square()
    with pytest.raises(ValueError, match="threshold"):
        average_precision(a, a, thresholds=[0.3, 0.5])
    with pytest.raises(ValueError, match="shape"):
        match_iou(a, a[:-1])
    with pytest.raises(ValueError, match="non-negative"):
        match_iou(-a, a)
    with pytest.raises(TypeError):
        match_iou(a.astype(float), a)


def test_per_image_table():
    true, pred = _square(), _square(cols=(7, 17), value=4)
    empty = np.zeros_like(true)
    frame = per_image_instance_metrics([true, empty, true], [pred, empty, empty], ["a", "b", "c"])
    assert list(frame.columns) == ["image_id", "mean_ap", *(f"ap_{t:.2f}" for t in DSB_THRESHOLDS),
                                   "f1_0.5", "pixel_dice", "n_true", "n_pred"]
    assert frame.columns[2] == "ap_0.50" and frame.columns[11] == "ap_0.95"
    assert frame["mean_ap"].tolist() == pytest.approx([0.4, 1.0, 0.0])
    assert frame["ap_0.65"].tolist() == [1.0, 1.0, 0.0] and frame["ap_0.70"].tolist() == [0.0, 1.0, 0.0]
    assert frame["f1_0.5"].tolist() == [1.0, 1.0, 0.0]
    assert frame["n_true"].tolist() == [1, 0, 1] and frame["n_pred"].tolist() == [1, 0, 0]
    assert frame["pixel_dice"].tolist() == pytest.approx([0.8, 1.0, 0.0])
    with pytest.raises(ValueError):
        per_image_instance_metrics([true], [pred, pred], ["a"])
