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


def _dense_crf_two_labels_before_k_labels(prob, image, *, scale=4, iterations=5, gaussian_sxy=1.0, gaussian_compat=3.0,
                                          bilateral_sxy=10.0, bilateral_srgb=13.0, bilateral_compat=5.0):
    """``dense_crf`` as it was before it took K labels (the binary task's two-label CRF), frozen here
    as the reference that the generalised function must reproduce bit for bit on ``(H, W)`` maps."""
    import pydensecrf.densecrf as dcrf

    from plexus.postprocess.candidates import _block_mean

    prob = np.asarray(prob, dtype=np.float32)
    image = np.asarray(image)
    small, grey = _block_mean(prob, scale), _block_mean(image.astype(np.float32), scale)
    h, w = small.shape
    p = np.clip(small, 1e-5, 1 - 1e-5)
    unary = np.ascontiguousarray(-np.log(np.stack([1 - p, p]).reshape(2, -1)), dtype=np.float32)
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    rgb = np.ascontiguousarray(np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    crf.addPairwiseBilateral(sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=rgb, compat=bilateral_compat)
    marginal = np.asarray(crf.inference(int(iterations)), dtype=np.float32)[1].reshape(h, w)
    if scale == 1:
        return marginal
    zoom = (prob.shape[0] / h, prob.shape[1] / w)
    return np.clip(ndimage.zoom(marginal, zoom, order=1, grid_mode=True, mode="nearest"), 0, 1)


@pytest.mark.parametrize("seed", range(4))
def test_dense_crf_of_one_map_is_the_two_label_crf_of_before_bit_for_bit(seed):
    """The binary task's call (an ``(H, W)`` map) gives exactly the numbers of the two-label function
    that ``dense_crf`` generalised to K labels: odd sizes, every scale, float and 8-bit images."""
    from plexus.postprocess.candidates import CRF_DEFAULTS, PostProcess, dense_crf

    rng = np.random.default_rng(seed)
    h, w = (23 + 7 * seed, 31 + 5 * seed)
    prob = ndimage.gaussian_filter(rng.random((h, w)), 1.5) if seed % 2 else rng.random((h, w))
    prob[:6], prob[-6:] = 0.0, 1.0  # sure rows: the unary's clipping at 1e-5 counts
    image = rng.random((h, w)) * 300 if seed == 3 else (rng.random((h, w)) * 255).astype(np.uint8)
    for settings in ({}, {"scale": 1, "iterations": 2}, {"scale": 2, "bilateral_srgb": 20.0}, {"scale": 3}):
        keywords = {**CRF_DEFAULTS, **settings}
        new, old = dense_crf(prob, image, **keywords), _dense_crf_two_labels_before_k_labels(prob, image, **keywords)
        assert new.shape == old.shape == (h, w) and new.dtype == old.dtype == np.float32
        assert np.array_equal(new, old), settings
        # and the binary pipeline's crf step thresholds those very marginals
        mask = PostProcess(cutoff=0.5, crf=True).apply(prob, None, image, settings)
        np.testing.assert_array_equal(mask, old > 0.5)


def test_dense_crf_of_k_labels_on_a_two_label_stack_is_the_two_label_crf():
    """K labels of which the maps are ``1 - p`` and ``p``: the same unary as the two-label case, so the
    same marginals (exactly at scale 1; block means of ``1 - p`` and of ``p`` round apart above it)."""
    from plexus.postprocess.candidates import dense_crf

    rng = np.random.default_rng(7)
    p = np.clip(ndimage.gaussian_filter(rng.random((30, 36)), 2) * 1.5 - 0.2, 0.01, 0.99).astype(np.float32)
    image = (rng.random((30, 36)) * 255).astype(np.uint8)
    stack = np.stack([1 - p, p])
    both = dense_crf(stack, image, scale=1)
    assert both.shape == (2, 30, 36) and both.dtype == np.float32
    assert np.array_equal(both[1], dense_crf(p, image, scale=1))
    np.testing.assert_allclose(both.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(dense_crf(stack, image, scale=2)[1], dense_crf(p, image, scale=2), atol=1e-4)
    with pytest.raises(ValueError, match="expected \\(H, W\\) or \\(K >= 2, H, W\\)"):
        dense_crf(p[None], image)
    with pytest.raises(ValueError, match="image is"):
        dense_crf(stack, image[:, :10])


def _three_bands():
    """Three vertical bands, classes 0, 1, 2, drawn 40, 130 and 220 in the image; softmax 0.8 on the
    true class. Pixel (6, 7), in the middle of band 1, is where the tests put a confident class 2."""
    label = np.repeat(np.arange(3), 5)[None, :].repeat(12, axis=0)
    image = np.array([40, 130, 220], np.uint8)[label]
    prob = np.where(np.arange(3)[:, None, None] == label[None], 0.8, 0.1).astype(np.float32)
    prob[:, 6, 7] = 0.05, 0.05, 0.9
    return label, image, prob


def test_k_label_crf_flips_an_isolated_pixel_only_where_the_image_matches_its_surroundings():
    """An isolated pixel that the softmax puts in class 2 (0.9) inside band 1: when the image shows it
    in band 1's colour the CRF gives it back to class 1; when the image shows class 2's colour (a
    real small object) it stays class 2. No other pixel changes, and the marginals sum to 1."""
    from plexus.postprocess.candidates import dense_crf

    label, image, prob = _three_bands()
    assert prob.argmax(axis=0)[6, 7] == 2
    out = dense_crf(prob, image, scale=1)
    assert out.shape == prob.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(out.argmax(axis=0), label)  # the noisy pixel flipped, nothing else
    shown = image.copy()
    shown[6, 7] = 220
    expected = label.copy()
    expected[6, 7] = 2
    np.testing.assert_array_equal(dense_crf(prob, shown, scale=1).argmax(axis=0), expected)
