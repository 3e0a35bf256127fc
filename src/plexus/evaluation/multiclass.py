"""Per-class scores of multi-class label maps (the map between mask values and class indices is
:mod:`plexus.labels`'; its names are re-exported here).

Conventions:

* A *label map* is an integer array ``(H, W)`` of class indices ``0..K-1``; index 0 is the
  background. Scores are reported for the *foreground* classes ``1..K-1`` only, so every
  per-class array has length ``K - 1`` and its entry ``i`` is class ``i + 1``.
* Classes come from the config as an ordered mapping name -> mask value, e.g.
  ``{"background": 0, "nerve": 128, "artery": 255}``: class index ``i`` is the ``i``-th entry,
  :func:`class_table` splits it into names and values, :func:`to_class_index` turns a mask
  file's pixel values into indices and :func:`from_class_index` turns indices back into values.
* A class value may also be a colour ``[r, g, b]`` (a colour-coded mask; then every value is
  one): the mask is then read as RGB and each pixel's colour names its class.
* A truth pixel of index :data:`plexus.labels.IGNORE_LABEL` (a class the config ignores) counts
  in no score: it is left out of every count below, whatever was predicted there.
* Each foreground class is scored one against the rest, from pixel counts: ``tp`` (predicted c,
  truly c), ``fp`` (predicted c, truly another class), ``fn`` (truly c, predicted another class).
  ``true_area = tp + fn`` and ``pred_area = tp + fp``.
* When a denominator is zero:

  - ``dice = 2 tp / (pred_area + true_area)`` and ``iou = tp / (pred_area + true_area - tp)`` are
    1 when the class is absent from both prediction and truth (Kaggle's empty/empty
    convention) and 0 when it is in exactly one of them (that already follows from the formula);
  - ``sensitivity = tp / true_area`` is NaN when the class is absent from the truth (nothing to find:
    undefined, not perfect), ``precision = tp / pred_area`` NaN when absent from the prediction.
    Averages over images should skip the NaNs (``DataFrame.mean`` does).

  These differ on purpose from the binary :func:`plexus.evaluation.metrics.per_image_metrics`, which
  scores sensitivity and precision 1 on an empty denominator: with several classes most classes are
  absent from most images, and a 1 there would swamp the mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

# the map between mask values and class indices lives with the label-map convention
from plexus.labels import (  # noqa: F401  (this module's API too)
    IGNORE_LABEL,
    MAX_CLASSES,
    class_table,
    from_class_index,
    is_colour,
    snap_to_values,
    to_class_index,
)

__all__ = [
    "SCORE_COLUMNS",
    "class_counts",
    "class_scores",
    "class_table",
    "from_class_index",
    "scores_frame",
    "scores_from_counts",
    "snap_to_values",
    "to_class_index",
]

#: The columns of :func:`scores_frame`, in order.
SCORE_COLUMNS = ("image_id", "class", "dice", "iou", "sensitivity", "precision", "true_area", "pred_area")
def _confusion(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 pixel counts: entry ``[p, t]`` counts pixels predicted ``p`` whose truth is ``t``."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2 (the background and a class), got {n_classes}")
    for name, array in (("prediction", pred), ("truth", true)):
        if array.dtype.kind not in "iub":
            raise ValueError(f"the {name} must be an integer label map, got {array.dtype}")
    valid = None
    if true.size and int(true.max()) == IGNORE_LABEL and n_classes <= IGNORE_LABEL:
        valid = true.ravel() != IGNORE_LABEL
    for name, array in (("prediction", pred), ("truth", true[true != IGNORE_LABEL] if valid is not None else true)):
        if array.size and (int(array.min()) < 0 or int(array.max()) >= n_classes):
            raise ValueError(f"the {name} holds class indices {int(array.min())}..{int(array.max())}, "
                             f"expected 0..{n_classes - 1}")
    combined = pred.astype(np.intp).ravel()
    combined *= n_classes
    combined += true.ravel()
    if valid is not None:
        combined = combined[valid]
    return np.bincount(combined, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_counts(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """``(K-1, 4)`` int64: ``tp, fp, fn, true_area`` of each foreground class (``pred_area = tp + fp``)."""
    matrix = _confusion(pred, true, n_classes)
    tp = np.diagonal(matrix)[1:]
    pred_area = matrix.sum(axis=1)[1:]
    true_area = matrix.sum(axis=0)[1:]
    return np.stack([tp, pred_area - tp, true_area - tp, true_area], axis=1).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray, empty_value: float) -> np.ndarray:
    out = np.full(num.shape, empty_value, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`class_scores` from :func:`class_counts`' ``(..., 4)`` counts (any leading shape)."""
    counts = np.asarray(counts, dtype=np.int64)
    tp, fp, true_area = counts[..., 0], counts[..., 1], counts[..., 3]
    pred_area = tp + fp
    tpf = tp.astype(np.float64)
    both = (pred_area + true_area).astype(np.float64)
    return {
        "dice": _ratio(2 * tpf, both, 1.0),
        "iou": _ratio(tpf, both - tpf, 1.0),
        "sensitivity": _ratio(tpf, true_area.astype(np.float64), np.nan),
        "precision": _ratio(tpf, pred_area.astype(np.float64), np.nan),
        "true_area": true_area,
        "pred_area": pred_area,
    }


def class_scores(pred: np.ndarray, true: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Dice, IoU, sensitivity, precision, true and predicted area of each foreground class, ``(K-1,)`` each.

    See the module doc for the conventions on empty classes (Dice and IoU 1 on empty/empty,
    sensitivity NaN without truth, precision NaN without prediction).
    """
    return scores_from_counts(class_counts(pred, true, n_classes))


def scores_frame(image_ids: Iterable, preds_iter: Iterable[np.ndarray], trues_iter: Iterable[np.ndarray],
                 class_names: Sequence[str]) -> pd.DataFrame:
    """Long-format scores: one row per (image, foreground class), columns :data:`SCORE_COLUMNS`.

    ``class_names`` lists all ``K`` classes in index order, the background first (it gets no
    rows). The three iterables are consumed together, one image at a time, and must have the
    same length.
    """
    names = [str(name) for name in class_names]
    n_classes = len(names)
    if n_classes < 2:
        raise ValueError(f"expected the background and at least one class, got {names}")
    ids, counts = [], []
    for image_id, pred, true in zip(image_ids, preds_iter, trues_iter, strict=True):
        ids.append(image_id)
        counts.append(class_counts(pred, true, n_classes))
    foreground = n_classes - 1
    stacked = np.stack(counts) if counts else np.zeros((0, foreground, 4), dtype=np.int64)
    scores = scores_from_counts(stacked.reshape(-1, 4))
    frame = pd.DataFrame({
        "image_id": np.repeat(np.asarray(ids, dtype=object), foreground),
        "class": np.tile(np.asarray(names[1:], dtype=object), len(ids)),
        **scores,
    })
    return frame[list(SCORE_COLUMNS)]
