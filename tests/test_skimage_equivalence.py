"""The hand-written routines kept because they beat scikit-image >= 2x (benchmarks/bench_instances.py), against it.

Only the IoU matrix of the instance metrics qualifies: one joint ``np.bincount`` of the
two label maps is about 2.2x faster than ``skimage.metrics.contingency_table`` cut to
the labels present (256x256 maps of 20-60 nuclei).

Post-processing (``benchmarks/bench_postprocess.py --library``, docs/benchmarks.md): Otsu is
scikit-image's on plexus's documented histogram; hysteresis and the one component removal are
scipy's 8-connected labelling inside the foreground's box (scikit-image's hysteresis is
4-connected; the plain library calls on the whole map are 9-22x slower on clean maps); fill
holes is scipy's binary_fill_holes on the foreground's box (on the whole map it is 50x slower
on clean maps). Each is tested below against the plain library call.
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


# --- post-processing: the wrappers of scikit-image and scipy, against the plain library calls ---------------------
# benchmarks/bench_postprocess.py --library times each against the library call and the hand-written
# routine it replaced (docs/benchmarks.md).


def _random_mask(rng, shape, level):
    field = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.8, 2.5))
    return field > np.quantile(field, level)


def _blob_map(rng, shape):
    """A probability map: a few smooth blobs and speckle, or blobs alone (a small foreground box)."""
    prob = ndimage.gaussian_filter(rng.random(shape), rng.uniform(1, 3))
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    if rng.random() < 0.5:
        prob = prob + (rng.random(shape) ** 8) * 0.6
    return np.clip(prob, 0, 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(12))
def test_fill_holes_equals_scipy_binary_fill_holes_on_the_whole_map(seed):
    """fill_holes calls scipy on the foreground's box only: the same as the call on the whole map."""
    from plexus.postprocess.candidates import fill_holes

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
    mask = _random_mask(rng, shape, rng.uniform(0.2, 0.8))
    if seed % 3 == 0:  # the foreground away from the border: a box smaller than the map
        mask[:2], mask[-3:], mask[:, :1] = False, False, False
    np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert not fill_holes(np.zeros(shape, bool)).any() and fill_holes(np.ones(shape, bool)).all()


@pytest.mark.parametrize("seed", range(12))
def test_hysteresis_equals_scipy_propagation_and_scikit_image_8_connected(seed):
    """Hysteresis: the 8-connected components of prob > low holding a pixel > high, as scipy's
    binary propagation of the seeds inside prob > low (3x3 structure) and as scikit-image's
    8-connected labelling with the seeds counted; apply_hysteresis_threshold is 4-connected."""
    from plexus.postprocess.candidates import EIGHT, grown_components, hysteresis

    rng = np.random.default_rng(seed)
    prob = _blob_map(rng, (int(rng.integers(8, 70)), int(rng.integers(8, 70))))
    low = float(rng.uniform(0.3, 0.6))
    high = float(rng.uniform(low, 0.95))
    expected = ndimage.binary_propagation((prob > high) & (prob > low), structure=EIGHT, mask=prob > low)
    np.testing.assert_array_equal(hysteresis(prob, low, high), expected)
    np.testing.assert_array_equal(hysteresis(prob, low, high, grown_components(prob, low)), expected)
    labels = label(prob > low, connectivity=2)
    seeded = np.bincount(labels[prob > high], minlength=labels.max() + 1) > 0
    seeded[0] = False
    np.testing.assert_array_equal(seeded[labels], expected)


def test_hysteresis_keeps_a_weak_pixel_touching_a_seed_at_a_corner_where_scikit_image_drops_it():
    from skimage.filters import apply_hysteresis_threshold

    from plexus.postprocess.candidates import hysteresis

    prob = np.zeros((4, 4), np.float32)
    prob[1, 1], prob[2, 2] = 0.9, 0.6
    assert hysteresis(prob, 0.5, 0.8).sum() == 2
    assert apply_hysteresis_threshold(prob, 0.5, 0.8).sum() == 1


@pytest.mark.parametrize("seed", range(12))
def test_component_removal_equals_scikit_image(seed):
    """The one component removal (masks: 8-connected, kept from min_size pixels; largest: the first
    of equal largest, raster order) against remove_small_objects and skimage.measure.label."""
    from skimage.morphology import remove_small_objects

    from plexus.postprocess.candidates import largest_component
    from plexus.postprocess.components import remove_small_components

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 60)), int(rng.integers(5, 60)))
    mask = _random_mask(rng, shape, rng.uniform(0.4, 0.9)) & (rng.random(shape) < 0.8)
    for size in (2, 3, 7, 20):
        np.testing.assert_array_equal(remove_small_components(mask, size),
                                      remove_small_objects(mask, max_size=size - 1, connectivity=2))
    labels = label(mask, connectivity=2)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    np.testing.assert_array_equal(largest_component(mask), (labels == np.argmax(sizes)) & mask.any())
    # an instance map: touching objects, each label one object
    instances = np.where(mask, label(rng.random(shape) < 0.5, connectivity=1) + 1, 0).astype(np.int32)
    for size in (2, 5):
        np.testing.assert_array_equal(remove_small_components(instances, size, objects="labels"),
                                      remove_small_objects(instances, max_size=size - 1))


@pytest.mark.parametrize("seed", range(8))
def test_otsu_is_scikit_image_otsu_of_the_histogram_over_0_1(seed):
    """otsu_threshold = skimage's threshold_otsu of the 256-bin histogram over [0, 1], moved from the
    bin's centre to its upper edge (so prob > threshold splits between bins)."""
    from skimage.filters import threshold_otsu

    from plexus.postprocess.candidates import otsu_threshold

    rng = np.random.default_rng(seed)
    prob = _blob_map(rng, (int(rng.integers(8, 70)), int(rng.integers(8, 70))))
    bins = np.clip((prob.astype(np.float64) * 256).astype(int), 0, 255)
    centers = (np.arange(256) + 0.5) / 256
    centre = threshold_otsu(hist=(np.bincount(bins.ravel(), minlength=256), centers))
    assert otsu_threshold(prob) == pytest.approx(centre + 0.5 / 256, abs=1e-12)
    # the same mask as thresholding at skimage's bin centre, as no value lies in that bin's upper half here
    np.testing.assert_array_equal(prob > otsu_threshold(prob), bins > np.searchsorted(centers, centre))


def test_otsu_against_scikit_image_on_hand_made_maps():
    """What each gives. Two levels: the same split. A map spanning [0, 1] with its values in the lower
    half of their bins: scikit-image's bins over [min, max] are plexus's, and so is the mask. A map of a
    narrow range: scikit-image bins that range (finer bins), so its threshold differs; plexus keeps its
    documented [0, 1] binning (the nerve default's tables were made with it)."""
    from skimage.filters import threshold_otsu

    from plexus.postprocess.candidates import otsu_threshold

    two = np.where(np.arange(100).reshape(10, 10) < 30, 0.9, 0.1)
    assert (two > otsu_threshold(two)).sum() == (two > threshold_otsu(two)).sum() == 30
    rng = np.random.default_rng(0)
    lower_halves = (np.concatenate([rng.integers(10, 60, 300), rng.integers(150, 230, 120)]) + 0.25) / 256
    spanning = np.concatenate([[0.0, 1.0], lower_halves]).reshape(-1, 2)
    np.testing.assert_array_equal(spanning > otsu_threshold(spanning), spanning > threshold_otsu(spanning))
    narrow = np.linspace(0.30, 0.34, 400)
    narrow = np.concatenate([narrow[:300], narrow[300:] + 0.01]).reshape(20, 20)
    ours, theirs = otsu_threshold(narrow), float(threshold_otsu(narrow))
    assert ours in (np.arange(1, 257) / 256)  # an edge of the [0, 1] bins
    assert abs(ours - theirs) > 1e-3 and not np.array_equal(narrow > ours, narrow > theirs)
    assert otsu_threshold(np.full((5, 5), 0.3)) == 0.5 and threshold_otsu(np.full((5, 5), 0.3)) == 0.3
