"""Instance-segmentation metrics of the Kaggle Data Science Bowl 2018 (nuclei).

Inputs are label maps of one image: 0 is background, every other value is one
object. Values need not be consecutive (a map holding 0, 3 and 17 has two
objects); they must be non-negative integers.

The competition metric (:func:`average_precision`) scores one image at IoU
thresholds t = 0.50, 0.55, ..., 0.95. At each t a true and a predicted object
*match* when their IoU is strictly greater than t; TP is the number of matches,
FP the predictions without a match, FN the true objects without a match, and
precision(t) = TP / (TP + FP + FN). The image score is the mean over t; the
data-set score is the mean over images.

Conventions where the ratio is undefined, shared by :func:`object_f1` and
:func:`pixel_dice`: an image with no true and no predicted object scores 1.0 (at
every t): nothing to find, nothing claimed. An image with objects on one side only
scores 0.0, as the formula gives.

The default thresholds are ``np.arange(0.5, 1.0, 0.05)`` rounded to two decimals,
so that an IoU equal to a printed threshold (e.g. exactly 3/5 at t = 0.6) fails it,
as "strictly greater" reads; unrounded ``arange`` values drift by 1e-16.

The IoU matrix is counted here (one ``np.bincount`` of the pairs of dense label
indices) rather than by scikit-image: on 256x256 maps of 20-60 nuclei it is about
2.2x faster than ``skimage.metrics.contingency_table`` cut to the labels present
(``benchmarks/bench_instances.py``), and tests/test_skimage_equivalence.py checks it
against that table and ``skimage.measure.regionprops`` areas on random maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from plexus.evaluation.metrics import kaggle_dice

__all__ = [
    "DSB_THRESHOLDS",
    "average_precision",
    "match_iou",
    "object_f1",
    "per_image_instance_metrics",
    "pixel_dice",
]

DSB_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Each pixel's object index 1..n (0 = background) and n, preserving the order of the label values."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
        raise TypeError(f"label maps must hold integers, got {labels.dtype}")
    flat = labels.ravel().astype(np.int64, copy=False)
    if flat.size == 0:
        return flat, 0
    if flat.min() < 0:
        raise ValueError("label maps must be non-negative (0 = background)")
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        # small label values: a lookup table beats sorting the pixels
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        lookup = np.cumsum(present)
        lookup[0] = 0
        return lookup[flat], int(lookup[-1])
    values, inverse = np.unique(flat, return_inverse=True)
    if values[0] != 0:
        return inverse + 1, len(values)
    return inverse, len(values) - 1


def _overlaps(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts: intersections (n_true, n_pred), true areas (n_true,), predicted areas (n_pred,)."""
    true_labels, pred_labels = np.asarray(true_labels), np.asarray(pred_labels)
    if true_labels.shape != pred_labels.shape:
        raise ValueError(f"label maps differ in shape: {true_labels.shape} vs {pred_labels.shape}")
    t, n_true = _dense_labels(true_labels)
    p, n_pred = _dense_labels(pred_labels)
    # one histogram of the (true, pred) index pairs; row/column 0 is the background
    joint = np.bincount(t * (n_pred + 1) + p, minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    return joint[1:, 1:], joint[1:].sum(axis=1), joint[:, 1:].sum(axis=0)


def match_iou(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """IoU of every (true, predicted) object pair, shape (n_true, n_pred), objects in ascending label order."""
    inter, true_area, pred_area = _overlaps(true_labels, pred_labels)
    union = true_area[:, None] + pred_area[None, :] - inter
    return inter / np.maximum(union, 1)  # objects are non-empty, so union >= 1


def _check_thresholds(thresholds) -> np.ndarray:
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if thresholds.size == 0 or (thresholds < 0.5).any():
        # below 0.5 one object could match two and counting matches would need an assignment
        raise ValueError("IoU thresholds must be >= 0.5 (and at least one)")
    return thresholds


def _precision_at(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) per threshold from an IoU matrix; 1.0 when there is no object at all."""
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return np.ones(len(thresholds))
    # At t >= 0.5 a match is one-to-one: if a true object A had IoU > 0.5 with two
    # predictions P1, P2 (disjoint, as regions of one label map), then
    # |A & Pi| > |A | Pi| / 2 >= |A| / 2 for both, so |A & P1| + |A & P2| > |A|: impossible.
    # The same holds with the roles swapped, so TP is simply the number of pairs above t.
    candidates = iou[iou > thresholds.min()]
    tp = (candidates[:, None] > thresholds).sum(axis=0)
    fp, fn = n_pred - tp, n_true - tp
    return tp / (tp + fp + fn)


def average_precision(true_labels: np.ndarray, pred_labels: np.ndarray,
                      thresholds=DSB_THRESHOLDS) -> tuple[float, np.ndarray]:
    """The DSB2018 score of one image and its precision at each threshold."""
    per_threshold = _precision_at(match_iou(true_labels, pred_labels), _check_thresholds(thresholds))
    return float(per_threshold.mean()), per_threshold


def _f1_from_iou(iou: np.ndarray, threshold: float) -> float:
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0
    tp = int((iou > threshold).sum())  # one-to-one at threshold >= 0.5, see _precision_at
    return 2 * tp / (n_true + n_pred)


def object_f1(true_labels: np.ndarray, pred_labels: np.ndarray, iou: float = 0.5) -> float:
    """Object-level F1 = 2 TP / (n_true + n_pred), a match being IoU > ``iou``; 1.0 when both are empty."""
    _check_thresholds(iou)
    return _f1_from_iou(match_iou(true_labels, pred_labels), float(iou))


def pixel_dice(true_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Dice of the foregrounds (any object), ignoring instance identity; 1.0 when both are empty."""
    return kaggle_dice(pred_labels, true_labels)


def per_image_instance_metrics(trues: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                               ids: Sequence, thresholds=DSB_THRESHOLDS) -> pd.DataFrame:
    """One row per image: image_id, mean_ap, ap_0.50 ... ap_0.95, f1_0.5, pixel_dice, n_true, n_pred."""
    thresholds = _check_thresholds(thresholds)
    if not len(trues) == len(preds) == len(ids):
        raise ValueError(f"got {len(trues)} true maps, {len(preds)} predicted maps and {len(ids)} ids")
    rows = []
    for image_id, true, pred in zip(ids, trues, preds):
        iou = match_iou(true, pred)
        per_threshold = _precision_at(iou, thresholds)
        row = {"image_id": image_id, "mean_ap": float(per_threshold.mean())}
        row.update({f"ap_{t:.2f}": float(p) for t, p in zip(thresholds, per_threshold)})
        row.update({"f1_0.5": _f1_from_iou(iou, 0.5), "pixel_dice": pixel_dice(true, pred),
                    "n_true": iou.shape[0], "n_pred": iou.shape[1]})
        rows.append(row)
    columns = ["image_id", "mean_ap", *(f"ap_{t:.2f}" for t in thresholds), "f1_0.5", "pixel_dice", "n_true", "n_pred"]
    return pd.DataFrame(rows, columns=columns)
