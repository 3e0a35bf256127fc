"""Per-volume Dice and HD95 against hand-computed cases and a brute-force surface distance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from plexus.evaluation.volumes import dice, hd95, surface, volume_scores

SPACING = (0.8, 1.0, 2.5)


def _brute_surface(mask: np.ndarray) -> np.ndarray:
    """Surface by definition: a mask voxel with a face neighbour outside the mask or outside the array."""
    out = np.zeros_like(mask, dtype=bool)
    steps = [step for axis in range(mask.ndim) for step in (np.eye(mask.ndim, dtype=int)[axis],
                                                             -np.eye(mask.ndim, dtype=int)[axis])]
    for index in itertools.product(*(range(n) for n in mask.shape)):
        if not mask[index]:
            continue
        for step in steps:
            neighbour = tuple(np.add(index, step))
            inside = all(0 <= i < n for i, n in zip(neighbour, mask.shape))
            if not inside or not mask[neighbour]:
                out[index] = True
                break
    return out


def _brute_hd95(pred: np.ndarray, truth: np.ndarray, spacing) -> float:
    points_pred = np.argwhere(_brute_surface(pred)) * np.asarray(spacing)
    points_truth = np.argwhere(_brute_surface(truth)) * np.asarray(spacing)
    distances = cdist(points_pred, points_truth)
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


def _blob(seed: int, shape=(12, 10, 8), fraction=0.3) -> np.ndarray:
    field = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma=1.5)
    return field > np.quantile(field, 1 - fraction)


def test_dice_hand_cases():
    a = np.zeros((2, 3, 4), bool)
    b = np.zeros((2, 3, 4), bool)
    assert dice(a, b) == 1.0  # both empty
    a[0, 0, :3] = True
    assert dice(a, b) == 0.0  # one empty
    b[0, 0, 1:] = True  # |A| = 3, |B| = 3, overlap 2
    assert dice(a, b) == pytest.approx(4 / 6)
    valid = np.ones_like(a)
    valid[0, 0, 3] = False  # drops the one voxel of B outside A: |B| = 2, overlap 2
    assert dice(a, b, valid) == pytest.approx(4 / 5)
    valid[0, 0, :] = False  # nothing of either left
    assert dice(a, b, valid) == 1.0
    assert dice(a.astype(np.uint8) * 7, b) == pytest.approx(4 / 6)  # any nonzero is foreground


def test_dice_rejects_different_shapes():
    with pytest.raises(ValueError, match="different shapes"):
        dice(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool))


@pytest.mark.parametrize("seed", range(4))
def test_surface_matches_neighbour_loop(seed):
    mask = _blob(seed)
    np.testing.assert_array_equal(surface(mask), _brute_surface(mask))


def test_surface_of_a_solid_box():
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True  # 27 voxels, the centre one is interior
    expected = mask.copy()
    expected[2, 2, 2] = False
    np.testing.assert_array_equal(surface(mask), expected)
    full = np.ones((3, 3, 3), bool)  # the array's border counts as outside
    expected = full.copy()
    expected[1, 1, 1] = False
    np.testing.assert_array_equal(surface(full), expected)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_matches_brute_force(seed):
    pred, truth = _blob(2 * seed), _blob(2 * seed + 1, fraction=0.2)
    assert pred.any() and truth.any()
    assert hd95(pred, truth, SPACING) == pytest.approx(_brute_hd95(pred, truth, SPACING), abs=1e-9)
    # asymmetry between the two directions is covered by swapping and by a shifted copy
    assert hd95(truth, pred, SPACING) == pytest.approx(_brute_hd95(pred, truth, SPACING), abs=1e-9)
    shifted = np.roll(pred, 2, axis=2)
    assert hd95(pred, shifted, SPACING) == pytest.approx(_brute_hd95(pred, shifted, SPACING), abs=1e-9)


def test_hd95_small_disjoint_objects_match_brute_force():
    pred = np.zeros((12, 10, 8), bool)
    truth = np.zeros((12, 10, 8), bool)
    pred[1:3, 1:4, 0:2] = True
    pred[9:12, 7:10, 6:8] = True  # touching three borders
    truth[5:8, 2:5, 3:5] = True
    assert hd95(pred, truth, SPACING) == pytest.approx(_brute_hd95(pred, truth, SPACING), abs=1e-9)


def test_hd95_hand_cases():
    a = np.zeros((6, 6, 6), bool)
    b = np.zeros((6, 6, 6), bool)
    assert hd95(a, b, SPACING) == 0.0
    a[1, 2, 1] = True
    assert math.isnan(hd95(a, b, SPACING))
    assert math.isnan(hd95(b, a, SPACING))
    b[1, 2, 4] = True  # three voxels apart along the axis of 2.5 mm
    assert hd95(a, b, SPACING) == pytest.approx(7.5)
    assert hd95(a, a, SPACING) == 0.0
    c = np.zeros((6, 6, 6), bool)
    c[4, 2, 1] = True  # three voxels apart along the axis of 0.8 mm
    assert hd95(a, c, SPACING) == pytest.approx(2.4)


def test_hd95_interpolates_the_percentile():
    # truth: one voxel; pred: 21 voxels in a row of 1 mm steps along axis 1 starting on it.
    truth = np.zeros((3, 25, 3), bool)
    truth[1, 0, 1] = True
    pred = np.zeros((3, 25, 3), bool)
    pred[1, 0:21, 1] = True  # every pred voxel is surface; distances to truth 0..20 mm
    # pred -> truth: percentile 95 of 0..20 is 19 (linear); truth -> pred: 0
    assert hd95(pred, truth, (1.0, 1.0, 1.0)) == pytest.approx(19.0)


def test_hd95_checks_spacing_length():
    with pytest.raises(ValueError, match="spacing"):
        hd95(np.ones((2, 2, 2), bool), np.ones((2, 2, 2), bool), (1.0, 1.0))


def test_volume_scores_on_nested_units():
    truth = np.zeros((6, 6, 6), np.uint8)
    truth[1:5, 1:5, 1:5] = 2  # edema 64 voxels
    truth[2:4, 2:4, 2:4] = 1  # core 8 voxels
    truth[2, 2, 2] = 4  # enhancing 1 voxel
    pred = truth.copy()
    pred[2, 2, 2] = 1  # enhancing missed
    pred[4, 4, 4] = 0  # one edema voxel missed
    units = {"complete": [1, 2, 4], "core": [1, 4], "enhancing": [4]}
    rows = volume_scores(pred, truth, units, SPACING)
    assert [row["unit"] for row in rows] == ["complete", "core", "enhancing"]
    by_unit = {row["unit"]: row for row in rows}
    assert by_unit["complete"]["truth_voxels"] == 64 and by_unit["complete"]["pred_voxels"] == 63
    assert by_unit["complete"]["dice"] == pytest.approx(2 * 63 / 127)
    assert by_unit["core"]["truth_voxels"] == 8 and by_unit["core"]["pred_voxels"] == 8
    assert by_unit["core"]["dice"] == 1.0 and by_unit["core"]["hd95"] == 0.0
    assert by_unit["enhancing"]["truth_voxels"] == 1 and by_unit["enhancing"]["pred_voxels"] == 0
    assert by_unit["enhancing"]["dice"] == 0.0 and math.isnan(by_unit["enhancing"]["hd95"])
    complete_pred, complete_truth = pred > 0, truth > 0
    assert by_unit["complete"]["hd95"] == pytest.approx(_brute_hd95(complete_pred, complete_truth, SPACING), abs=1e-9)
    # valid: voxels outside count as background in both volumes
    valid = np.ones_like(truth, dtype=bool)
    valid[4, 4, 4] = False
    valid[2, 2, 2] = False
    rows = {row["unit"]: row for row in volume_scores(pred, truth, units, SPACING, valid=valid)}
    assert rows["complete"]["truth_voxels"] == 62 and rows["complete"]["pred_voxels"] == 62
    assert rows["complete"]["dice"] == 1.0 and rows["complete"]["hd95"] == 0.0
    assert rows["enhancing"]["truth_voxels"] == 0 and rows["enhancing"]["dice"] == 1.0
    assert rows["enhancing"]["hd95"] == 0.0
