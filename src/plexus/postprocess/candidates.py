"""Post-processing candidates on one probability map at its original size.

Each turns probabilities (H, W) in [0, 1] or a binary mask into a binary mask.
Objects are 8-connected components (``scipy.ndimage.label`` with a 3x3 structure),
as a nerve cross-section touching itself diagonally is one object.

:class:`PostProcess` chains them in a fixed order: the flip-averaged map in place of
the plain one (``tta``: the caller passes that map), dense-CRF smoothing of the map
with the image (``crf``), threshold (a fixed cutoff, a
per-image Otsu threshold, or hysteresis seeded above ``hysteresis_high``), remove
components below ``remove_below`` pixels, keep the largest component, fill holes,
empty the mask when its total area is below ``min_area``, and empty it when the
presence probability (two-head models) is below ``presence_threshold``. Each step
is a candidate that the workflow keeps only when the out-of-fold predictions say it
helps (:mod:`plexus.postprocess.selection`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), dtype=bool)

#: The dense CRF's settings when the config gives none (``postprocess.crf`` in the schema).
CRF_DEFAULTS = {"scale": 4, "iterations": 5, "gaussian_sxy": 1.0, "gaussian_compat": 3.0,
                "bilateral_sxy": 10.0, "bilateral_srgb": 13.0, "bilateral_compat": 5.0}


def dense_crf(prob: np.ndarray, image: np.ndarray, *, scale: int = 4, iterations: int = 5,
              gaussian_sxy: float = 1.0, gaussian_compat: float = 3.0, bilateral_sxy: float = 10.0,
              bilateral_srgb: float = 13.0, bilateral_compat: float = 5.0) -> np.ndarray:
    """Foreground marginals of a two-label fully connected CRF (pydensecrf2's mean field).

    The unary is -log of the network's probabilities; a smoothness kernel and an
    appearance kernel on the grey image pull pixels that are close, and alike, to the
    same label. Map and image are block-averaged by ``scale`` first (the CRF's cost
    grows with the pixels: about 2 s at 420x580 on one CPU core, 0.1 s at scale 4)
    and the result is upsampled back bilinearly.
    """
    import pydensecrf.densecrf as dcrf  # compiled extension: imported only where a CRF runs

    prob = np.asarray(prob, dtype=np.float32)
    image = np.asarray(image)
    if image.shape != prob.shape:
        raise ValueError(f"the CRF's image is {image.shape}, its probability map {prob.shape}")
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


def _block_mean(array: np.ndarray, scale: int) -> np.ndarray:
    """Mean over ``scale`` x ``scale`` blocks (edge rows/columns that do not fill a block are dropped)."""
    if scale == 1:
        return array
    h, w = array.shape[0] // scale, array.shape[1] // scale
    if h < 1 or w < 1:
        raise ValueError(f"a {array.shape} map cannot be downscaled by {scale}")
    return array[:h * scale, :w * scale].reshape(h, scale, w, scale).mean(axis=(1, 3))


def otsu_threshold(prob: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of the values in [0, 1]: foreground is ``prob > threshold``.

    The values are histogrammed into ``bins`` equal bins; the threshold is the upper
    edge of the bin that maximises the between-class variance of the split below /
    above it (first maximum on ties). A constant map gives 0.5, as the fixed cutoff.
    """
    values = np.asarray(prob, dtype=np.float64).ravel()
    hist = np.bincount(np.clip((values * bins).astype(np.int64), 0, bins - 1), minlength=bins).astype(np.float64)
    centers = (np.arange(bins) + 0.5) / bins
    weight_low = np.cumsum(hist)[:-1]
    weight_high = hist.sum() - weight_low
    mass_low = np.cumsum(hist * centers)[:-1]
    mass_high = (hist * centers).sum() - mass_low
    valid = (weight_low > 0) & (weight_high > 0)
    if not valid.any():
        return 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        between = weight_low * weight_high * (mass_low / weight_low - mass_high / weight_high) ** 2
    between = np.where(valid, between, -1.0)
    return float((np.argmax(between) + 1) / bins)


def foreground_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of a mask's foreground, or None when it is empty.

    Every component lies inside it, so labelling the box instead of the whole map gives the
    same components (in the same raster order) at a fraction of the cost: a nerve mask covers
    a few percent of a 420x580 map.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def labelled(mask: np.ndarray):
    """``(box, labels, sizes)``: the 8-connected components of ``mask`` labelled inside its
    :func:`foreground_box` (``sizes[0]``, the background, is 0), or None for an empty mask."""
    box = foreground_box(mask)
    if box is None:
        return None
    labels, n = ndimage.label(mask[box], structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return box, labels, sizes


def _paint(shape, box, crop: np.ndarray) -> np.ndarray:
    if crop.shape == tuple(shape):  # the box is the whole map
        return crop
    out = np.zeros(shape, dtype=bool)
    out[box] = crop
    return out


def grown_components(prob: np.ndarray, low: float):
    """``(box, labels, n)``: the components of ``prob > low`` labelled inside its foreground box
    (what hysteresis grows its seeds into), or None when nothing is above ``low``."""
    mask = np.asarray(prob) > low
    box = foreground_box(mask)
    if box is None:
        return None
    labels, n = ndimage.label(mask[box], structure=EIGHT)
    return box, labels, n


def hysteresis(prob: np.ndarray, low: float, high: float, grown=None) -> np.ndarray:
    """Components of ``prob > low`` that hold at least one pixel ``> high``.

    ``grown``: :func:`grown_components` of ``prob`` and ``low`` when the caller has it
    (several seed levels on one map share it).
    """
    prob = np.asarray(prob)
    grown = grown_components(prob, low) if grown is None else grown
    if grown is None:
        return np.zeros(prob.shape, dtype=bool)
    box, labels, n = grown
    seeded = np.bincount(labels[prob[box] > high], minlength=n + 1) > 0  # seeds above low lie in the box
    seeded[0] = False
    return _paint(prob.shape, box, seeded[labels])


def _kept_components(mask: np.ndarray, components, min_size: int, largest_only: bool) -> np.ndarray:
    """``mask`` without its components below ``min_size`` and, with ``largest_only``, all but the
    largest of the rest (the first of equal largest, in label order)."""
    if components is None:
        return np.zeros(mask.shape, dtype=bool)
    box, labels, sizes = components
    keep = sizes >= max(min_size, 1)  # sizes[0], the background, is 0
    if largest_only:
        kept = np.where(keep, sizes, 0)
        if kept.max() == 0:
            return np.zeros(mask.shape, dtype=bool)
        return _paint(mask.shape, box, labels == int(np.argmax(kept)))
    return _paint(mask.shape, box, keep[labels])


def remove_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop the components of fewer than ``min_size`` pixels."""
    mask = np.asarray(mask, dtype=bool)
    if min_size <= 0:
        return mask
    return _kept_components(mask, labelled(mask), min_size, False)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Only the largest component (the first of equal largest ones, in label order)."""
    mask = np.asarray(mask, dtype=bool)
    return _kept_components(mask, labelled(mask), 0, True)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background regions not connected to the image border become foreground.

    The same as ``scipy.ndimage.binary_fill_holes`` (background 4-connected, so an
    8-connected ring of foreground closes a hole), from one labelling of the background
    instead of its iterated dilation, and only inside the foreground's bounding box: a
    background pixel on the box's edge touches the background outside it, which reaches the
    image border, so the box's edge plays the border's part.
    """
    mask = np.asarray(mask, dtype=bool)
    box = foreground_box(mask)
    if box is None:
        return mask.copy()
    crop = mask[box]
    labels, n = ndimage.label(~crop)  # the default structure: 4-connected background
    outside = np.zeros(n + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = True  # label 0 is the foreground itself
    out = mask.copy()
    out[box] = crop | ~outside[labels]
    return out


@dataclass(frozen=True)
class PostProcess:
    """One post-processing pipeline; the defaults are the plain cutoff + minimum area."""

    cutoff: float = 0.5
    min_area: int = 0
    presence_threshold: float | None = None  # two-head models: empty below it
    tta: bool = False  # the flip-averaged map (and presence) instead of the plain one: chosen by the caller
    crf: bool = False  # dense-CRF marginals of the map and the image instead of the map
    otsu: bool = False  # a per-image Otsu threshold in place of ``cutoff``
    hysteresis_high: float | None = None  # seeds above it, grown to ``prob > cutoff``
    remove_below: int = 0  # drop components smaller than this (pixels)
    largest_only: bool = False
    fill_holes: bool = False

    @property
    def needs_components(self) -> bool:
        """True when a step works on each image's map (components, a histogram, a CRF), not a pure cutoff."""
        return bool(self.crf or self.otsu or self.hysteresis_high is not None or self.remove_below
                    or self.largest_only or self.fill_holes)

    def apply(self, prob: np.ndarray, presence: float | None = None, image: np.ndarray | None = None,
              crf_settings: dict | None = None, memo: dict | None = None) -> np.ndarray:
        """The binary mask of one probability map (H, W) at the original size.

        ``image`` (the raw grey image, same shape) is needed by the CRF step only;
        ``crf_settings`` are :func:`dense_crf`'s keywords (:data:`CRF_DEFAULTS`). Pipelines
        applied to the same map (the plain or the flip-averaged one) may share a ``memo``
        dict: their common steps (the CRF, the thresholded mask, its connected components)
        are then computed once. The result is the same with or without it.
        """
        prob = np.asarray(prob, dtype=np.float32)
        if self.presence_threshold is not None and presence is not None and presence < self.presence_threshold:
            return np.zeros(prob.shape, dtype=bool)
        memo = {} if memo is None else memo
        if self.crf:
            if image is None:
                raise ValueError("the crf step needs the image of each probability map")
            key = ("crf", self.tta)
            if key not in memo:
                memo[key] = dense_crf(prob, image, **{**CRF_DEFAULTS, **(crf_settings or {})})
            prob = memo[key]
        threshold = (self.tta, self.crf, self.otsu, self.hysteresis_high, None if self.otsu else self.cutoff)
        if threshold not in memo:
            if self.otsu:
                memo[threshold] = prob > otsu_threshold(prob)
            elif self.hysteresis_high is not None:
                grown = (self.tta, self.crf, "grown", self.cutoff)  # shared by every seed level
                if grown not in memo:
                    memo[grown] = grown_components(prob, self.cutoff)
                memo[threshold] = hysteresis(prob, self.cutoff, self.hysteresis_high, memo[grown])
            else:
                memo[threshold] = prob > self.cutoff
        mask = memo[threshold]
        if self.remove_below or self.largest_only:
            # both only drop whole components of the thresholded mask: one labelling serves every size
            components = (threshold, "components")
            if components not in memo:
                memo[components] = labelled(mask)
            mask = _kept_components(mask, memo[components], self.remove_below, self.largest_only)
        if self.fill_holes:
            filled = (threshold, self.remove_below, self.largest_only, "filled")
            if filled not in memo:
                memo[filled] = fill_holes(mask)
            mask = memo[filled]
        if np.count_nonzero(mask) < self.min_area:
            mask = np.zeros_like(mask)
        return mask

    def with_changes(self, **changes) -> PostProcess:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
