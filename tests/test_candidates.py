"""Post-processing candidates against brute-force references and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from plexus.postprocess.candidates import (
    PostProcess,
    fill_holes,
    hysteresis,
    largest_component,
    otsu_threshold,
    remove_small_components,
)
from references import components


def _mask_of(comps, shape):
    mask = np.zeros(shape, dtype=bool)
    for comp in comps:
        for pixel in comp:
            mask[pixel] = True
    return mask


def _random_mask(seed, shape=(24, 30), density=0.35):
    return np.random.default_rng(seed).random(shape) < density


@pytest.mark.parametrize("seed", range(8))
def test_remove_small_and_largest_match_brute_force(seed):
    mask = _random_mask(seed)
    comps = components(mask)
    for size in (1, 2, 5, 12):
        expected = _mask_of([c for c in comps if len(c) >= size], mask.shape)
        np.testing.assert_array_equal(remove_small_components(mask, size), expected)
    biggest = max(len(c) for c in comps)
    result = largest_component(mask)
    assert result.sum() == biggest
    assert any(_mask_of([c], mask.shape).tolist() == result.tolist() for c in comps if len(c) == biggest)


@pytest.mark.parametrize("seed", range(8))
def test_hysteresis_matches_brute_force(seed):
    prob = np.random.default_rng(seed).random((20, 26)).astype(np.float32)
    low, high = 0.55, 0.9
    comps = components(prob > low)
    expected = _mask_of([c for c in comps if any(prob[p] > high for p in c)], prob.shape)
    np.testing.assert_array_equal(hysteresis(prob, low, high), expected)


def test_diagonal_pixels_are_one_object():
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True
    assert largest_component(mask).sum() == 3


def test_fill_holes_hand_case():
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    ring[3, 3] = True  # an island inside the hole
    filled = fill_holes(ring)
    assert filled[1:6, 1:6].all() and filled.sum() == 25
    open_ring = ring.copy()
    open_ring[3, 0:2] = False
    open_ring[2:5, 1] = [True, False, True]  # a gap to the border: not a hole
    assert fill_holes(open_ring).sum() < 25


def _otsu_brute_force(prob, bins=256):
    """Every split of the binned values, the between-class variance computed from scratch."""
    binned = np.clip((prob.ravel() * bins).astype(int), 0, bins - 1)
    centers = (binned + 0.5) / bins
    best, best_t = -1.0, 0.5
    for t in range(1, bins):
        low, high = centers[binned < t], centers[binned >= t]
        if len(low) == 0 or len(high) == 0:
            continue
        var = len(low) * len(high) * (low.mean() - high.mean()) ** 2
        if var > best + 1e-9 * max(best, 1):
            best, best_t = var, t / bins
    return best_t


@pytest.mark.parametrize("seed", range(5))
def test_otsu_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    prob = np.concatenate([rng.beta(2, 8, 300), rng.beta(8, 2, 100 + 50 * seed)]).reshape(-1, 10)
    assert otsu_threshold(prob) == pytest.approx(_otsu_brute_force(prob))


def test_otsu_separates_two_levels_and_handles_a_constant_map():
    prob = np.where(np.arange(100).reshape(10, 10) < 30, 0.9, 0.1)
    t = otsu_threshold(prob)
    assert 0.1 < t < 0.9 and (prob > t).sum() == 30
    assert otsu_threshold(np.full((5, 5), 0.3)) == 0.5


def test_pipeline_order_and_gate():
    prob = np.zeros((30, 30), np.float32)
    prob[2:12, 2:12] = 0.8  # 100 px, with a hole
    prob[5:8, 5:8] = 0.1
    prob[20:23, 20:23] = 0.7  # 9 px
    base = PostProcess(cutoff=0.5)
    assert base.apply(prob).sum() == 100 - 9 + 9
    assert base.with_changes(largest_only=True).apply(prob).sum() == 91
    assert base.with_changes(largest_only=True, fill_holes=True).apply(prob).sum() == 100
    assert base.with_changes(remove_below=10).apply(prob).sum() == 91
    assert base.with_changes(min_area=101).apply(prob).sum() == 0
    assert base.with_changes(hysteresis_high=0.75).apply(prob).sum() == 91
    gated = base.with_changes(presence_threshold=0.4)
    assert gated.apply(prob, presence=0.3).sum() == 0 and gated.apply(prob, presence=0.5).sum() == 100
    assert not base.needs_components and base.with_changes(fill_holes=True).needs_components


def test_dense_crf_snaps_a_noisy_map_to_the_image_edges():
    """A square drawn in the image, a map that is the square plus heavy noise: the CRF's
    appearance kernel recovers the square; without the image it could not."""
    from plexus.postprocess.candidates import dense_crf

    rng = np.random.default_rng(0)
    truth = np.zeros((120, 160), bool)
    truth[30:90, 40:120] = True
    image = np.clip(50 + 150 * truth + rng.normal(0, 10, truth.shape), 0, 255).astype(np.uint8)
    prob = np.clip(0.25 + 0.5 * truth + rng.normal(0, 0.3, truth.shape), 0, 1)
    before = ((prob > 0.5) != truth).mean()
    for scale in (1, 2):
        after = dense_crf(prob, image, scale=scale)
        assert after.shape == truth.shape and after.dtype == np.float32
        assert 0 <= after.min() and after.max() <= 1
        assert ((after > 0.5) != truth).mean() < before / 10
    # a confident map is left as it is (at scale 4 up to the block edges: 30 and 90 are not multiples of 4)
    sure = truth.astype(np.float32)
    np.testing.assert_array_equal(dense_crf(sure, image, scale=1) > 0.5, truth)
    assert ((dense_crf(sure, image) > 0.5) != truth).sum() <= 2 * 2 * (60 + 80)  # within 2 px of the edges
    with pytest.raises(ValueError, match="image is"):
        dense_crf(prob, image[:10])


def test_crf_pipeline_needs_the_image():
    with pytest.raises(ValueError, match="needs the image"):
        PostProcess(crf=True).apply(np.zeros((8, 8)))
    assert PostProcess(crf=True).needs_components and not PostProcess(tta=True).needs_components


def test_pipelines_sharing_a_memo_give_the_step_by_step_masks():
    """Every combination of steps, applied with one shared memo per map, equals the chain of
    the single-step functions applied in order (the reference)."""
    from itertools import product

    rng = np.random.default_rng(4)
    for _ in range(6):
        prob = ndimage.gaussian_filter(rng.random((48, 64)), 2)
        prob = (prob - prob.min()) / (prob.max() - prob.min())
        memo = {}
        for cutoff, high, size, largest, holes, area in product((0.4, 0.6), (None, 0.8), (0, 5, 40), (False, True),
                                                                 (False, True), (0, 300)):
            pipeline = PostProcess(cutoff=cutoff, hysteresis_high=high, remove_below=size, largest_only=largest,
                                   fill_holes=holes, min_area=area)
            mask = prob > cutoff if high is None else hysteresis(prob, cutoff, high)
            mask = remove_small_components(mask, size) if size else mask
            mask = largest_component(mask) if largest else mask
            mask = fill_holes(mask) if holes else mask
            expected = mask if mask.sum() >= area else np.zeros_like(mask)
            np.testing.assert_array_equal(pipeline.apply(prob, memo=memo), expected, err_msg=str(pipeline))
            np.testing.assert_array_equal(pipeline.apply(prob), expected)


@pytest.mark.parametrize("seed", range(5))
def test_fill_holes_equals_scipy_binary_fill_holes(seed):
    """The labelling implementation against scipy's dilation-based one on random masks,
    rings touching the border and diagonal gaps included."""
    rng = np.random.default_rng(seed)
    for density in (0.3, 0.5, 0.7):
        mask = ndimage.binary_opening(rng.random((60, 80)) < density)
        mask[10:30, 10:30] = True
        mask[15:25, 15:25] = False  # a hole
        mask[0:12, 50:62] = True
        mask[0:6, 53:59] = False  # a notch open to the border: not a hole
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert not fill_holes(np.zeros((5, 5), bool)).any() and fill_holes(np.ones((5, 5), bool)).all()


@pytest.mark.parametrize("seed", range(6))
def test_labelling_inside_the_foreground_box_equals_labelling_the_whole_map(seed):
    """Same components, same label numbers (raster order), same sizes: the cheap crop is exact,
    so the tie-break of largest_component (the first of equal largest) is unchanged too."""
    from plexus.postprocess.components import EIGHT, label_components

    rng = np.random.default_rng(seed)
    mask = np.zeros((60, 80), bool)
    mask[rng.integers(5, 30):rng.integers(35, 55), rng.integers(5, 30):rng.integers(40, 75)] = True
    mask &= rng.random(mask.shape) < 0.6
    box, labels, sizes = label_components(mask)
    full, n = ndimage.label(mask, structure=EIGHT)
    np.testing.assert_array_equal(labels, full[box])
    assert full.sum() == full[box].sum()  # every component lies in the box
    np.testing.assert_array_equal(sizes[1:], np.bincount(full.ravel(), minlength=n + 1)[1:])
    assert label_components(np.zeros((4, 4), bool)) is None
    # the first of equal largest components, in raster order of their first pixels
    tied = np.zeros((10, 12), bool)
    tied[6:8, 1:3] = tied[1:3, 8:10] = tied[4, 5] = True
    expected = np.zeros_like(tied)
    expected[1:3, 8:10] = True
    np.testing.assert_array_equal(largest_component(tied), expected)


def test_one_size_rule_for_masks_and_instance_maps():
    """The one component removal: a component of exactly ``min_size`` stays, 0 and 1 remove nothing,
    and in an instance map two touching objects are two objects (not one 8-connected component)."""
    from plexus.postprocess.components import remove_small_components

    mask = np.zeros((6, 9), bool)
    mask[0:2, 0:2] = True  # 4 px
    mask[3, 3] = mask[4, 4] = mask[5, 5] = True  # 3 px, diagonal: one component
    for size, kept in ((0, 7), (1, 7), (3, 7), (4, 4), (5, 0)):
        assert remove_small_components(mask, size).sum() == kept
    labels = np.zeros((4, 6), np.int32)
    labels[0:2, 0:2] = 3  # 4 px
    labels[0:2, 2:4] = 7  # 4 px touching object 3
    labels[0, 4] = 9  # 1 px touching object 7 at an edge
    out = remove_small_components(labels, 2, objects="labels")
    assert out.dtype == labels.dtype and set(np.unique(out)) == {0, 3, 7} and (out == labels)[labels != 9].all()
    assert (remove_small_components(labels, 5, objects="labels") == 0).all()
    with pytest.raises(ValueError, match="objects"):
        remove_small_components(mask, 2, objects="pixels")
