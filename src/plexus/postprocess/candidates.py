"""Post-processing candidates on one probability map at its original size.

Each turns probabilities (H, W) in [0, 1] or a binary mask into a binary mask.
Objects are 8-connected components, removed by size with the one function every task uses
(:func:`plexus.postprocess.components.remove_small_components`), as a nerve cross-section
touching itself diagonally is one object. Otsu is scikit-image's, hysteresis scipy's
8-connected labelling and hole filling scipy's, each wrapped as its docstring says
(``benchmarks/bench_postprocess.py --library`` times them against the plain library calls and
``tests/test_skimage_equivalence.py`` tests them against those calls).

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

from plexus.postprocess.components import (  # noqa: F401  (EIGHT, re-exported: the binary path's connectivity)
    EIGHT,
    Components,
    foreground_box,
    label_components,
    mask_of,
    remove_small_components,
)

#: The dense CRF's settings when the config gives none (``postprocess.crf`` in the schema).
CRF_DEFAULTS = {"scale": 4, "iterations": 5, "gaussian_sxy": 1.0, "gaussian_compat": 3.0,
                "bilateral_sxy": 10.0, "bilateral_srgb": 13.0, "bilateral_compat": 5.0}


def dense_crf(prob: np.ndarray, image: np.ndarray, *, scale: int = 4, iterations: int = 5,
              gaussian_sxy: float = 1.0, gaussian_compat: float = 3.0, bilateral_sxy: float = 10.0,
              bilateral_srgb: float = 13.0, bilateral_compat: float = 5.0) -> np.ndarray:
    """Marginals of a fully connected CRF (pydensecrf2's mean field) of a map and its image.

    ``prob`` ``(H, W)``: a foreground probability, a two-label CRF (background ``1 - p``; the
    binary task, each region of the regions task); returns the foreground marginals ``(H, W)``.
    ``prob`` ``(K, H, W)``: the probabilities of ``K >= 2`` labels (a softmax: the classes task);
    returns the ``K`` marginals ``(K, H, W)`` (their argmax is the CRF's label map).

    The unary is -log of the network's probabilities (clipped at 1e-5); a smoothness kernel and an
    appearance kernel on the grey image pull pixels that are close, and alike, to the same label
    (Potts: every pair of labels alike). Map and image are block-averaged by ``scale`` first (the
    CRF's cost grows with the pixels and the labels: about 2 s at 420x580 on one CPU core for two
    labels, 0.1 s at scale 4) and the marginals are upsampled back bilinearly.
    """
    import pydensecrf.densecrf as dcrf  # compiled extension: imported only where a CRF runs

    prob = np.asarray(prob, dtype=np.float32)
    image = np.asarray(image)
    if prob.ndim not in (2, 3) or (prob.ndim == 3 and prob.shape[0] < 2):
        raise ValueError(f"the CRF's probability map is {prob.shape}: expected (H, W) or (K >= 2, H, W)")
    if image.shape != prob.shape[-2:]:
        raise ValueError(f"the CRF's image is {image.shape}, its probability map {prob.shape[-2:]}")
    grey = _block_mean(image.astype(np.float32), scale)
    if prob.ndim == 2:  # two labels: background 1 - p, foreground p
        p = np.clip(_block_mean(prob, scale), 1e-5, 1 - 1e-5)
        labels = np.stack([1 - p, p])
    else:
        labels = np.clip(np.stack([_block_mean(channel, scale) for channel in prob]), 1e-5, 1)
    n, h, w = labels.shape
    unary = np.ascontiguousarray(-np.log(labels.reshape(n, -1)), dtype=np.float32)
    crf = dcrf.DenseCRF2D(w, h, n)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=gaussian_sxy, compat=gaussian_compat)
    rgb = np.ascontiguousarray(np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    crf.addPairwiseBilateral(sxy=bilateral_sxy, srgb=bilateral_srgb, rgbim=rgb, compat=bilateral_compat)
    marginals = np.asarray(crf.inference(int(iterations)), dtype=np.float32).reshape(n, h, w)
    if prob.ndim == 2:
        marginals = marginals[1:]  # the foreground's
    if scale != 1:
        zoom = (prob.shape[-2] / h, prob.shape[-1] / w)
        marginals = np.stack([np.clip(ndimage.zoom(m, zoom, order=1, grid_mode=True, mode="nearest"), 0, 1)
                              for m in marginals])
    return marginals[0] if prob.ndim == 2 else marginals


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

    The values are histogrammed into ``bins`` equal bins over [0, 1] (not over the map's own
    range, as ``skimage.filters.threshold_otsu(prob)`` bins it); scikit-image's Otsu
    (``threshold_otsu(hist=...)``) picks the bin that maximises the between-class variance of
    the split below / above it (first maximum on ties), and the threshold is that bin's upper
    edge, so a bin's values all fall on one side. A map whose values fill one bin gives 0.5, as
    the fixed cutoff.
    """
    from skimage.filters import threshold_otsu

    values = np.asarray(prob, dtype=np.float64).ravel()
    hist = np.bincount(np.clip((values * bins).astype(np.int64), 0, bins - 1), minlength=bins)
    if np.count_nonzero(hist) < 2:
        return 0.5
    centers = (np.arange(bins) + 0.5) / bins
    best = np.searchsorted(centers, threshold_otsu(hist=(hist, centers)))
    return float((best + 1) / bins)


def grown_components(prob: np.ndarray, low: float) -> Components | None:
    """The 8-connected components of ``prob > low`` (what hysteresis grows its seeds into), or None
    when nothing is above ``low``: :func:`plexus.postprocess.components.label_components`."""
    return label_components(np.asarray(prob) > low)


def hysteresis(prob: np.ndarray, low: float, high: float, grown: Components | None = None) -> np.ndarray:
    """The 8-connected components of ``prob > low`` that hold at least one pixel ``> high``.

    ``skimage.filters.apply_hysteresis_threshold`` grows through 4-connected pixels, so it drops
    a weak pixel touching a seed's region only at a corner; this is scipy's 8-connected labelling
    with the seeds counted per component, equal to ``scipy.ndimage.binary_propagation`` of the
    seeds inside ``prob > low`` with a 3x3 structure (``tests/test_skimage_equivalence.py``) and
    much faster (``benchmarks/bench_postprocess.py --library``). ``grown``: :func:`grown_components`
    of ``prob`` and ``low`` when the caller has it (several seed levels on one map share it).
    """
    prob = np.asarray(prob)
    grown = grown_components(prob, low) if grown is None else grown
    if grown is None:
        return np.zeros(prob.shape, dtype=bool)
    return seeded_components(prob, high, grown)


def seeded_components(prob: np.ndarray, high: float, components: Components) -> np.ndarray:
    """The bool mask (``prob``'s shape) of the ``components`` (of any mask: :func:`grown_components`
    for :func:`hysteresis`, a class's pixels of a label map for the ``classes`` task's hysteresis)
    that hold at least one pixel of ``prob > high``."""
    prob = np.asarray(prob)
    seeded = np.bincount(components.labels[prob[components.box] > high], minlength=len(components.sizes)) > 0
    seeded[0] = False  # seeds outside every component (background, in the box or not) seed nothing
    return mask_of(components, seeded, prob.shape)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Only the largest 8-connected component (the first of equal largest ones, in label order)."""
    return remove_small_components(mask, 0, largest_only=True)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Background regions not connected to the image border become foreground:
    ``scipy.ndimage.binary_fill_holes`` (background 4-connected, so an 8-connected ring of
    foreground closes a hole), called on the foreground's bounding box only. A background pixel
    on the box's edge touches the background outside it, which reaches the image border, so the
    box's edge plays the border's part and the result equals the call on the whole map (tested).
    On the default run's OOF maps this costs 0.5 ms a call, 0.2 s of a 7-12 s stage more than the
    hand-written labelling of the background it replaced (``docs/benchmarks.md``).
    """
    mask = np.asarray(mask, dtype=bool)
    box = foreground_box(mask)
    out = mask.copy()
    if box is not None:
        out[box] = ndimage.binary_fill_holes(mask[box])
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
                memo[components] = label_components(mask)
            mask = remove_small_components(mask, self.remove_below, largest_only=self.largest_only,
                                           components=memo[components])
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
