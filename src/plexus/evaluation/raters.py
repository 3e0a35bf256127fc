"""The second rater: another expert's masks scored against the first's, the human reference.

A sample sheet's optional ``mask_rater2`` column (:data:`plexus.data.sheet.RATER2_COLUMN`) names a
second expert's mask for some training images. :func:`rater2_frame` scores it against ``mask``
per image and unit (a class, or a region uniting several classes) with the metrics of
:mod:`plexus.evaluation.multiclass`, in the per-image table layout the tasks' results tables read
(``dice_cross_fitted`` equal to ``dice``: nothing is tuned). Tuning never reads it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plexus.labels import IGNORE_LABEL

METRICS = ("dice", "iou", "sensitivity", "precision")


def unit_masks(label: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(U, H, W)`` bool masks of the units of a class-index map (row ``u`` of ``matrix``: the classes
    unit ``u`` unites) and the ``(H, W)`` pixels that count (not the ignore label)."""
    valid = label != IGNORE_LABEL
    index = np.where(valid, label, 0).astype(np.int64)
    return matrix[:, index] & valid, valid


def rater2_frame(train: pd.DataFrame, classes: dict, matrix: np.ndarray, unit_names, unit: str, *,
                 ignore: dict | None = None) -> pd.DataFrame:
    """Per rated image (non-empty ``mask_rater2``) and unit: the second rater's Dice, IoU,
    sensitivity and precision against the first, and the areas. Empty without the column."""
    from plexus.data import dataset
    from plexus.data.sheet import RATER2_COLUMN
    from plexus.evaluation.multiclass import scores_from_counts

    if RATER2_COLUMN not in train.columns:
        return pd.DataFrame()
    rated = train[train[RATER2_COLUMN].fillna("").astype(str) != ""]
    rows = []
    for row in rated.itertuples(index=False):
        first = dataset.read_class_mask(row.mask, classes, ignore=ignore)
        second = dataset.read_class_mask(getattr(row, RATER2_COLUMN), classes, ignore=ignore)
        truth, valid = unit_masks(first, matrix)
        other, _ = unit_masks(second, matrix)
        for u, name in enumerate(unit_names):
            tp = int((other[u] & truth[u] & valid).sum())
            pred, true = int((other[u] & valid).sum()), int((truth[u] & valid).sum())
            scores = scores_from_counts(np.array([tp, pred - tp, true - tp, true]))
            rows.append({"image_id": str(row.image_id), "subject": row.subject, unit: name,
                         **{m: float(scores[m]) for m in METRICS}, "dice_cross_fitted": float(scores["dice"]),
                         "true_area": true, "pred_area": pred})
    return pd.DataFrame(rows)


def foreground_matrix(n_classes: int) -> np.ndarray:
    """The units of a classes study: each foreground class on its own (``(K-1, K)``)."""
    return np.eye(n_classes, dtype=bool)[1:]
