"""Post-processing tuned on out-of-fold predictions: probability cutoff x minimum area.

A pixel is foreground when its probability, upsampled to the image's own size, is
strictly greater than the cutoff. A predicted mask whose total area is below ``min_area``
(pixels of the original image) is emptied. The score is Kaggle's mean per-image Dice.

The grid is evaluated in one streaming pass over the pixels. :func:`cutoff_counts`
upsamples a few images at a time and histograms each pixel's *bucket* (how many
cutoffs lie strictly below its probability), once over all pixels and once over
the true mask's pixels; a reverse cumulative sum gives, per image and cutoff, the
predicted area and its intersection with the truth. Every (cutoff, min_area) score
then follows from those counts (:func:`score_grid`), so the pixel pass costs the
same for 11 or 1,001 cutoffs and the minimum areas cost nothing per pixel.

The bucket is exact, not an approximation. Comparisons are made in float32, as
:func:`postprocess` makes them. For non-negative float32 values the bit pattern,
read as an unsigned integer, orders like the value, so ``p > c`` is ``bits(p) >
bits(c)``. A pixel's code is a table lookup on its top bits, ``bits >> s`` (a bin
of 2**s consecutive float32 values, ``s`` = 10 unless the cutoffs are closer than
that; relative width 2**-13): a bin that lies wholly between two cutoffs maps to
its bucket. A bin that contains a cutoff (at most one: ``s`` is chosen so) maps to
an odd code, and only those pixels, a fraction of a percent, are compared with
that cutoff in float32. So the counts equal brute-force thresholding, ties
(``p == cutoff`` is not foreground) included. Inputs outside [0, 1] or NaN, and
cutoffs too close together for a table, take the general path (``torch.bucketize``),
which is slower and equally exact. Upsampling a few images at a time keeps memory
flat: at Kaggle scale (5,635 maps) the counts are two (n, k) integer arrays.
``tests/test_tuning.py`` checks both paths against brute-force thresholding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from plexus.data.resize import image_shapes, uniform_runs, upsample_mean
from plexus.evaluation.metrics import per_image_metrics

UNTUNED_CUTOFF = 0.5
UNTUNED_PRESENCE = 0.5  # the two-head model's own gate before tuning

#: Coarse-bin widths tried, in float32 bit patterns (2**s); the lookup table has 2**(32 - s) entries.
_SHIFTS = (10, 9, 8)


@dataclass
class CutoffCounts:
    """Pixel counts per image (rows) and cutoff (columns)."""

    cutoffs: np.ndarray  # (k,) sorted ascending
    pred_area: np.ndarray  # (n, k) int64: pixels with prob > cutoff
    intersection: np.ndarray  # (n, k) int64: of those, pixels in the true mask
    true_area: np.ndarray  # (n,) int64


def _counts_above(prob: torch.Tensor, truth: torch.Tensor, cutoffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """General path: per row and cutoff, pixels with prob > cutoff, and those of them inside ``truth``.

    One binary search per pixel: bucket b = number of cutoffs strictly below the
    value, so the value exceeds cutoffs[:b]. A single bincount over (row, bucket)
    gives the histogram; a reverse cumulative sum turns it into counts per cutoff.
    """
    n, k = prob.shape[0], len(cutoffs)
    buckets = torch.bucketize(prob, cutoffs, right=False).masked_fill_(prob.isnan(), 0)  # NaN > c is False
    flat = (buckets + torch.arange(n)[:, None] * (k + 1)).reshape(-1)
    hist_all = torch.bincount(flat, minlength=n * (k + 1)).reshape(n, k + 1)
    hist_true = torch.bincount(flat[truth.reshape(-1)], minlength=n * (k + 1)).reshape(n, k + 1)
    return _above(hist_all), _above(hist_true)


def _above(hist):
    """Bucket histogram (rows, k + 1) -> counts above each cutoff (rows, k): value > cutoffs[j] <=> bucket > j."""
    if isinstance(hist, np.ndarray):
        return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    return hist.flip(1).cumsum(1).flip(1)[:, 1:]


class _BucketTable:
    """Lookup table from a float32's top bits to its bucket among sorted float32 cutoffs.

    Bin ``j`` holds the bit patterns ``[j 2**s, (j + 1) 2**s)``. Code ``2 b``: every
    value of the bin exceeds exactly ``b`` cutoffs. Code ``2 b + 1``: the bin
    contains cutoff ``b``; a value exceeds ``b`` cutoffs, or ``b + 1`` when it is
    greater than cutoff ``b``. Valid for values in [0, 1] and -0.0; the entries of
    other bit patterns are never read.
    """

    def __init__(self, cut32: np.ndarray, shift: int):
        self.cutoffs = cut32
        self.shift = shift
        self.n_codes = 2 * len(cut32) + 2
        # Patterns order like values for non-negative floats; a negative cutoff is below every pattern.
        keys = np.where(cut32 < 0, -1, (cut32 + np.float32(0)).view(np.uint32).astype(np.int64))
        n_bins = (0x3F800000 >> shift) + 1  # up to the bin of 1.0
        # below[j]: cutoffs below every value of bin j (keys < j 2**s); split[j]: a cutoff inside the bin
        below = np.cumsum(np.bincount(np.minimum((keys >> shift) + 1, n_bins), minlength=n_bins + 1)[:n_bins])
        inside = keys[(keys >= 0) & (keys % (1 << shift) != (1 << shift) - 1)]  # a bin's last pattern splits nothing
        split = np.bincount(np.minimum(inside >> shift, n_bins), minlength=n_bins + 1)[:n_bins] > 0
        dtype = np.uint8 if self.n_codes <= 1 << 8 else np.int16 if self.n_codes <= 1 << 15 else np.int32
        # np.zeros leaves the pages of the unused entries (values above 1, NaN, negatives) unallocated
        table = np.zeros(1 << (32 - shift), dtype=dtype)
        table[:n_bins] = 2 * below + split
        table[1 << (31 - shift)] = table[0]  # -0.0 compares like 0.0
        self.table = torch.from_numpy(table)

    @classmethod
    def build(cls, cut32: np.ndarray, shifts=None):
        """The table with the widest bins (``shifts``, default ``_SHIFTS``) holding at most one cutoff each, or None."""
        keys = (cut32[cut32 >= 0] + np.float32(0)).view(np.uint32).astype(np.int64)
        for shift in _SHIFTS if shifts is None else shifts:
            inside = keys[keys % (1 << shift) != (1 << shift) - 1]  # a bin's last pattern splits nothing
            if np.all(np.diff(inside >> shift) > 0):
                return cls(cut32, shift)
        return None

    def histograms(self, prob: np.ndarray, truth: np.ndarray):
        """Bucket histograms (n, k + 1) of all and of true pixels; ``prob`` (n, P) float32, ``truth`` (n, P) bool."""
        n, size = prob.shape
        k = len(self.cutoffs)
        bits = prob.view(np.uint32)
        index = np.empty(size, dtype=np.uint32)
        index_t = torch.from_numpy(index.view(np.int32))  # < 2**31 after the shift
        code_t = torch.empty(size, dtype=self.table.dtype)
        code = code_t.numpy()
        hist_all = np.empty((n, self.n_codes), dtype=np.int64)
        hist_true = np.zeros((n, self.n_codes), dtype=np.int64)
        odd_pixels, odd_cuts = [], []  # pixels with an odd code (flat index in the batch) and their cutoff
        for i in range(n):
            np.right_shift(bits[i], self.shift, out=index)
            torch.index_select(self.table, 0, index_t, out=code_t)
            hist_all[i] = torch.bincount(code_t, minlength=self.n_codes).numpy()
            inside = np.flatnonzero(truth[i])
            if len(inside):
                hist_true[i] = torch.bincount(code_t[torch.from_numpy(inside)], minlength=self.n_codes).numpy()
            if hist_all[i, 1::2].any():
                odd = code & 1
                pixels = np.flatnonzero(odd.view(bool) if odd.itemsize == 1 else odd != 0)  # nonzero: fast on bool
                odd_cuts.append(code[pixels] >> 1)
                odd_pixels.append(pixels + i * size)
        fix_all = np.zeros((n, k + 1), dtype=np.int64)  # pixels of odd codes above their bin's cutoff
        fix_true = np.zeros((n, k + 1), dtype=np.int64)
        if odd_pixels:
            pixels, cut = np.concatenate(odd_pixels), np.concatenate(odd_cuts).astype(np.int64)
            above = prob.reshape(-1)[pixels] > self.cutoffs[cut]
            slot = pixels // size * (k + 1) + cut
            fix_all += np.bincount(slot[above], minlength=n * (k + 1)).reshape(n, k + 1)
            fix_true += np.bincount(slot[above & truth.reshape(-1)[pixels]], minlength=n * (k + 1)).reshape(n, k + 1)
        return self._resolve(hist_all, fix_all), self._resolve(hist_true, fix_true)

    @staticmethod
    def _resolve(hist, fix):
        """Code histogram -> bucket histogram: an odd code's pixels above its cutoff move up one bucket."""
        buckets = hist[:, 0::2] + hist[:, 1::2] - fix
        buckets[:, 1:] += fix[:, :-1]
        return buckets


def _in_unit_interval(batch: np.ndarray) -> bool:
    """True when every value is in [0, 1] (False on NaN)."""
    return bool(batch.size == 0 or (batch.min() >= 0 and batch.max() <= 1))


def _shapes_of(true_masks, shape, n: int) -> np.ndarray:
    """Each image's ``(h, w)``: ``shape`` (one or per image), else the masks' own ``shapes``
    (:class:`plexus.data.truth.ForegroundMasks`), else the one shape of the mask array."""
    if shape is None:
        shape = getattr(true_masks, "shapes", None)
    if shape is None:
        shape = np.asarray(true_masks[0:1]).shape[1:3] if n else (0, 0)
    return image_shapes(shape, n)


def cutoff_counts(members: list[np.ndarray], true_masks, cutoffs, *,
                  shape=None, batch_size: int = 4) -> CutoffCounts:
    """Count predicted and overlapping pixels for every image and cutoff.

    ``members``: probability arrays (n, h, w), one per model of an ensemble, rows
    aligned with ``true_masks``, nonzero = foreground. Probabilities are averaged after
    upsampling to each image's size (:func:`plexus.data.resize.upsample_mean`): ``shape``,
    one ``(H, W)`` or one per image; by default the masks' own (their ``shapes``, or the
    array's). Images are processed at most ``batch_size`` at a time, a batch of one size
    (:func:`plexus.data.resize.uniform_runs`): only that many upsampled maps are held at once,
    and ``true_masks`` may be any sequence with ``len`` and slicing (e.g. a memory map, or
    an object reading masks on demand).
    """
    cutoffs = np.asarray(sorted(float(c) for c in cutoffs), dtype=np.float64)
    n = len(true_masks)
    if any(len(m) != n for m in members):
        raise ValueError(f"members have {[len(m) for m in members]} images, masks have {n}")
    # Comparisons are made in float32, like postprocess(); equal float32 cutoffs share their counts.
    cut32, column = np.unique(cutoffs.astype(np.float32), return_inverse=True)
    # A cutoff of exactly 0 would put every pixel of value 0 (most of a map) into a split bin and
    # through the slow float comparison: "> 0" is "nonzero" instead, one cheap count per image.
    zero = np.flatnonzero(cut32 == 0)[:1]
    table = _BucketTable.build(np.delete(cut32, zero)) if len(cut32) > len(zero) else None
    cut_t = torch.from_numpy(cut32)
    pred_area = np.zeros((n, len(cut32)), dtype=np.int64)
    inter = np.zeros_like(pred_area)
    true_area = np.zeros(n, dtype=np.int64)
    shapes = _shapes_of(true_masks, shape, n)
    for lo, hi, size in uniform_runs(shapes, batch_size):
        # float32 before upsampling, as upsample() converts anyway; min/max are faster on it than on float16
        batches = [np.asarray(m[lo:hi], dtype=np.float32) for m in members]
        truth = (np.asarray(true_masks[lo:hi]) != 0).reshape(hi - lo, -1)
        prob = upsample_mean(batches, size).reshape(hi - lo, -1)
        if table is not None and all(_in_unit_interval(b) for b in batches):
            values = prob.numpy()
            buckets, buckets_true = table.histograms(values, truth)
            above, above_true = _above(buckets), _above(buckets_true)
            if len(zero):  # -0.0 is not above 0 and count_nonzero does not count it either
                above = np.insert(above, zero[0], [np.count_nonzero(row) for row in values], axis=1)
                above_true = np.insert(above_true, zero[0], [np.count_nonzero(row[t]) for row, t in zip(values, truth)],
                                       axis=1)
            pred_area[lo:hi], inter[lo:hi] = above, above_true
        else:
            above, above_true = _counts_above(prob, torch.from_numpy(truth), cut_t)
            pred_area[lo:hi], inter[lo:hi] = above.numpy(), above_true.numpy()
        true_area[lo:hi] = [np.count_nonzero(row) for row in truth]  # per row: 8x faster than axis=1
    return CutoffCounts(cutoffs, pred_area[:, column], inter[:, column], true_area)


def apply_min_area(pred_area, intersection, min_areas):
    """Zero the counts of masks below each minimum area; adds a trailing axis."""
    min_areas = np.asarray(min_areas)
    keep = np.asarray(pred_area)[..., None] >= min_areas
    return np.where(keep, np.asarray(pred_area)[..., None], 0), np.where(keep, np.asarray(intersection)[..., None], 0)


def _kaggle_dice(intersection, pred_area, true_area):
    """Kaggle Dice from counts (1 when both masks are empty), float64."""
    den = pred_area + true_area
    return np.divide(2.0 * intersection, den, out=np.ones(den.shape), where=den > 0)


def _mean_over_min_areas(pred_area, dice, empty, min_areas) -> np.ndarray:
    """Mean over images of ``dice`` where ``pred_area >= a``, else ``empty``; (k, m) for (n, k) inputs.

    An image keeps its mask for the smallest min areas only, so per cutoff the images
    sorted by predicted area split into an emptied head and a kept tail: two cumulative
    sums and one search per min area, in O(n k log n + k m log n), not O(n k m).
    """
    n, k = pred_area.shape
    if n == 0:
        return np.full((k, len(min_areas)), np.nan)
    order = np.argsort(pred_area, axis=0, kind="stable")
    area = np.take_along_axis(pred_area, order, 0)
    head = np.zeros((n + 1, k))  # head[p]: sum of ``empty`` over the p smallest masks
    np.cumsum(empty[order], axis=0, out=head[1:])
    tail = np.zeros((n + 1, k))  # tail[p]: sum of ``dice`` over the others
    tail[:n] = np.cumsum(np.take_along_axis(dice, order, 0)[::-1], axis=0)[::-1]
    span = int(area.max()) + 2
    keys = (area + np.arange(k) * span).T.ravel()  # columns one after another, each ascending
    queries = np.clip(np.asarray(min_areas, dtype=np.int64), 0, span - 1)[None, :] + (np.arange(k) * span)[:, None]
    emptied = np.searchsorted(keys, queries.ravel(), side="left").reshape(k, -1) - (np.arange(k) * n)[:, None]
    cols = np.arange(k)[:, None]
    return (head[emptied, cols] + tail[emptied, cols]) / n


def score_grid(counts: CutoffCounts, min_areas, folds=None) -> pd.DataFrame:
    """Mean Kaggle Dice for every (cutoff, min_area), overall and per fold.

    Returns columns ``cutoff, min_area, score`` and, given ``folds`` (n,), one
    ``score_fold{k}`` column per fold.
    """
    min_areas = np.asarray(sorted(int(a) for a in min_areas))
    true_area = counts.true_area[:, None]
    dice = _kaggle_dice(counts.intersection, counts.pred_area, true_area)  # (n, k), no minimum area
    empty = (counts.true_area == 0).astype(np.float64)  # Kaggle Dice of an emptied mask
    grid = pd.DataFrame({
        "cutoff": np.repeat(counts.cutoffs, len(min_areas)),
        "min_area": np.tile(min_areas, len(counts.cutoffs)),
        "score": _mean_over_min_areas(counts.pred_area, dice, empty, min_areas).ravel(),
    })
    if folds is not None:
        folds = np.asarray(folds)
        for fold in np.unique(folds):
            rows = folds == fold
            grid[f"score_fold{fold}"] = _mean_over_min_areas(
                counts.pred_area[rows], dice[rows], empty[rows], min_areas).ravel()
    return grid


def choose_best(grid: pd.DataFrame) -> dict:
    """The best row; ties go to the smallest min_area, then the cutoff nearest 0.5 (then the
    presence threshold nearest 0.5, when the grid has one)."""
    grid = grid.assign(_dist=(grid["cutoff"] - UNTUNED_CUTOFF).abs())
    keys, ascending = ["score", "min_area", "_dist"], [False, True, True]
    if "presence_threshold" in grid:
        grid = grid.assign(_pdist=(grid["presence_threshold"] - UNTUNED_PRESENCE).abs())
        keys, ascending = keys + ["_pdist"], ascending + [True]
    row = grid.sort_values(keys, ascending=ascending, kind="stable").iloc[0]
    best = {"cutoff": float(row["cutoff"]), "min_area": int(row["min_area"]), "score": float(row["score"])}
    if "presence_threshold" in grid:
        best["presence_threshold"] = float(row["presence_threshold"])
    return best


def gate(counts: CutoffCounts, presence: np.ndarray | None, threshold: float | None) -> CutoffCounts:
    """The counts with every image whose presence probability is below ``threshold`` emptied."""
    if presence is None or threshold is None:
        return counts
    closed = np.asarray(presence) < threshold
    pred, inter = counts.pred_area.copy(), counts.intersection.copy()
    pred[closed] = 0
    inter[closed] = 0
    return CutoffCounts(counts.cutoffs, pred, inter, counts.true_area)


def metrics_at(counts: CutoffCounts, cutoff: float, min_area: int) -> pd.DataFrame:
    """Per-image metrics at one setting; ``cutoff`` must be one of the counted cutoffs."""
    j = int(np.argmin(np.abs(counts.cutoffs - cutoff)))
    if not np.isclose(counts.cutoffs[j], cutoff):
        raise ValueError(f"cutoff {cutoff} was not counted (have {counts.cutoffs.tolist()})")
    pred, inter = apply_min_area(counts.pred_area[:, j], counts.intersection[:, j], [min_area])
    frame = pd.DataFrame({"true_area": counts.true_area, "pred_area": pred[:, 0]})
    for name, values in per_image_metrics(inter[:, 0], pred[:, 0], counts.true_area).items():
        frame[name] = values
    return frame


def tune(members, true_masks, cutoffs, min_areas, folds=None, *, presence=None,
         presence_thresholds=None, shape=None) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score the grid and choose the setting.

    Returns ``(grid, best, per_image)``: the grid frame, a dict with the chosen
    ``cutoff, min_area, score`` plus ``untuned_score`` (cutoff 0.5, min area 0) and
    ``empty_score`` (every mask empty), and per-image metrics at the chosen setting.
    ``shape``: the images' sizes, as :func:`cutoff_counts` takes them.

    Two-head models: ``presence`` (n,) holds the (fold- and member-averaged) presence
    probability of each image; each threshold of ``presence_thresholds`` empties the
    images below it, so the gate is tuned jointly with cutoff and minimum area (a
    ``presence_threshold`` column in the grid and key in ``best``). The untuned
    reference then gates at 0.5.
    """
    all_cutoffs = sorted(set(float(c) for c in cutoffs) | {UNTUNED_CUTOFF})
    counts = cutoff_counts(members, true_masks, all_cutoffs, shape=shape)
    grid_counts = _select_cutoffs(counts, cutoffs)
    if presence is None:
        grid = score_grid(grid_counts, min_areas, folds)
    else:
        frames = []
        for threshold in sorted(float(x) for x in presence_thresholds):
            frame = score_grid(gate(grid_counts, presence, threshold), min_areas, folds)
            frame.insert(2, "presence_threshold", threshold)
            frames.append(frame)
        grid = pd.concat(frames, ignore_index=True)
    best = choose_best(grid)
    untuned_gate = None if presence is None else UNTUNED_PRESENCE
    untuned = metrics_at(gate(counts, presence, untuned_gate), UNTUNED_CUTOFF, 0)["kaggle_dice"].mean()
    best["untuned_score"] = float(untuned)
    best["empty_score"] = float(np.mean(counts.true_area == 0))
    best["n_images"] = int(len(true_masks))
    chosen = gate(counts, presence, best.get("presence_threshold"))
    return grid, best, metrics_at(chosen, best["cutoff"], best["min_area"])


def _select_cutoffs(counts: CutoffCounts, cutoffs) -> CutoffCounts:
    wanted = np.asarray(sorted(float(c) for c in cutoffs))
    idx = [int(np.argmin(np.abs(counts.cutoffs - c))) for c in wanted]
    return CutoffCounts(counts.cutoffs[idx], counts.pred_area[:, idx], counts.intersection[:, idx], counts.true_area)


def postprocess(prob: torch.Tensor, cutoff: float, min_area: int) -> torch.Tensor:
    """Binary masks (N, H, W) bool from probabilities at the original size.

    The comparison is made in ``prob``'s dtype (float32 for upsampled maps), as
    torch compares a tensor with a Python float.
    """
    if prob.device.type != "cpu" or prob.requires_grad or not prob.is_floating_point() or prob.dtype == torch.bfloat16:
        masks = prob > cutoff
        masks[masks.flatten(1).sum(1) < min_area] = False
        return masks
    # numpy: the comparison and the per-image pixel count are several times faster than torch's on CPU
    values = prob.numpy()
    masks = np.greater(values, np.asarray(cutoff, dtype=values.dtype))
    flat = masks.reshape(len(masks), -1)
    small = np.asarray([np.count_nonzero(row) for row in flat], dtype=np.int64) < min_area
    masks[small] = False
    return torch.from_numpy(masks)
