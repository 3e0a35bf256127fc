"""The hand-written routines kept because they beat scikit-image >= 2x (benchmarks/bench_instances.py), against it.

Only the IoU matrix of the instance metrics qualifies: one joint ``np.bincount`` of the
two label maps is about 2.2x faster than ``skimage.metrics.contingency_table`` cut to
the labels present (256x256 maps of 20-60 nuclei).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label, regionprops
from skimage.metrics import contingency_table

from plexus.evaluation.instances import match_iou


def _skimage_iou(true, pred):
    """IoU of every (true, predicted) object pair in ascending label order, from scikit-image's pieces."""
    table = contingency_table(true, pred).toarray()
    rows = np.array([r.label for r in regionprops(true)], dtype=int)
    cols = np.array([r.label for r in regionprops(pred)], dtype=int)
    areas_true = np.array([r.area for r in regionprops(true)], dtype=float)
    areas_pred = np.array([r.area for r in regionprops(pred)], dtype=float)
    if not len(rows) or not len(cols):
        return np.zeros((len(rows), len(cols)))
    inter = table[np.ix_(rows, cols)]
    return inter / (areas_true[:, None] + areas_pred[None, :] - inter)


def _random_labels(rng, shape, level, gaps):
    field = ndimage.gaussian_filter(rng.random(shape), rng.uniform(1.5, 3))
    labels = label(field > np.quantile(field, level), connectivity=2)
    if gaps:  # non-consecutive values, as the metrics accept
        labels = np.where(labels > 0, labels * 5 + rng.integers(0, 5, labels.max() + 1)[labels], 0)
    return labels


@pytest.mark.parametrize("seed", range(12))
def test_match_iou_equals_scikit_image(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(8, 70)), int(rng.integers(8, 70)))
    true = _random_labels(rng, shape, rng.uniform(0.3, 0.8), gaps=seed % 2 == 0)
    pred = _random_labels(rng, shape, rng.uniform(0.3, 0.8), gaps=seed % 3 == 0)
    if seed % 4 == 3:  # a prediction close to the truth: many IoUs above 0.5
        pred = np.where(rng.random(shape) < 0.05, 0, true)
    ours = match_iou(true, pred)
    assert ours.shape == (len(np.unique(true[true > 0])), len(np.unique(pred[pred > 0])))
    np.testing.assert_allclose(ours, _skimage_iou(true, pred), rtol=0, atol=1e-12)


def test_match_iou_with_an_empty_side_equals_scikit_image():
    true = np.zeros((9, 9), dtype=np.int32)
    true[2:5, 2:5] = 4
    empty = np.zeros_like(true)
    for a, b in ((true, empty), (empty, true), (empty, empty)):
        assert match_iou(a, b).shape == _skimage_iou(a, b).shape
