import numpy as np
import pytest

from plexus.evaluation import metrics


def test_kaggle_dice_hand_cases():
    empty = np.zeros((3, 3))
    a = np.zeros((3, 3))
    a[0, :2] = 1  # 2 px
    b = np.zeros((3, 3))
    b[0, 1:] = 1  # 2 px, 1 overlapping
    assert metrics.kaggle_dice(empty, empty) == 1.0
    assert metrics.kaggle_dice(a, empty) == 0.0
    assert metrics.kaggle_dice(empty, a) == 0.0
    assert metrics.kaggle_dice(a, b) == pytest.approx(2 * 1 / 4)
    assert metrics.kaggle_score([a, empty], [b, empty]) == pytest.approx((0.5 + 1) / 2)


def test_per_image_metrics_from_counts():
    m = metrics.per_image_metrics(intersection=[3, 0, 0], pred_area=[4, 0, 5], true_area=[6, 0, 0])
    np.testing.assert_allclose(m["kaggle_dice"], [6 / 10, 1, 0])
    np.testing.assert_allclose(m["dice"], [6 / 10, 0, 0])
    np.testing.assert_allclose(m["iou"], [3 / 7, 1, 0])
    np.testing.assert_allclose(m["sensitivity"], [3 / 6, 1, 1])
    np.testing.assert_allclose(m["precision"], [3 / 4, 1, 0])
