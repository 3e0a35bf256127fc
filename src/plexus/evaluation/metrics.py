"""Per-image segmentation metrics and the Kaggle score.

The Kaggle score is the mean over images of Dice = 2|X∩Y| / (|X| + |Y|), defined
as 1 when prediction X and truth Y are both empty. All functions take counts so
that the tuning grid can evaluate thousands of settings from one pass over the
pixels (see :mod:`plexus.postprocess.tuning`).
"""

from __future__ import annotations

import numpy as np


def _ratio(num, den, empty_value):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, float(empty_value))
    np.divide(num, den, out=out, where=den > 0)
    return out


def dice_from_counts(intersection, pred_area, true_area, empty_value=1.0):
    """Dice from pixel counts; ``empty_value`` when both masks are empty.

    ``empty_value=1`` is Kaggle's convention; ``empty_value=0`` gives plain Dice
    (which scores an empty/empty image 0 and so punishes nothing but is comparable
    to the papers that report it).
    """
    return _ratio(2 * np.asarray(intersection), np.asarray(pred_area) + np.asarray(true_area), empty_value)


def per_image_metrics(intersection, pred_area, true_area) -> dict[str, np.ndarray]:
    """Dice, Kaggle Dice, IoU, sensitivity and precision from pixel counts.

    Conventions when a denominator is zero: Kaggle Dice, IoU, sensitivity and
    precision are 1 (nothing to find / nothing claimed), plain ``dice`` is 0 on
    an empty/empty image.
    """
    inter = np.asarray(intersection, dtype=np.float64)
    pred = np.asarray(pred_area, dtype=np.float64)
    true = np.asarray(true_area, dtype=np.float64)
    return {
        "dice": dice_from_counts(inter, pred, true, empty_value=0.0),
        "kaggle_dice": dice_from_counts(inter, pred, true, empty_value=1.0),
        "iou": _ratio(inter, pred + true - inter, 1.0),
        "sensitivity": _ratio(inter, true, 1.0),
        "precision": _ratio(inter, pred, 1.0),
    }


def kaggle_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Kaggle Dice of one pair of binary masks (nonzero = foreground)."""
    p, t = np.asarray(pred) != 0, np.asarray(true) != 0
    return float(dice_from_counts((p & t).sum(), p.sum(), t.sum()))


def kaggle_score(preds, trues) -> float:
    """Mean Kaggle Dice over paired masks."""
    return float(np.mean([kaggle_dice(p, t) for p, t in zip(preds, trues, strict=True)]))
