"""Post-processing tuned on out-of-fold predictions: probability cutoff x minimum area.

A pixel is foreground when its (upsampled, 420x580) probability is strictly
greater than the cutoff. A predicted mask whose total area is below ``min_area``
(original pixels) is emptied. The score is Kaggle's mean per-image Dice.

The grid is evaluated in one pass over the pixels: :func:`cutoff_counts` bins
each pixel's probability against the sorted cutoffs, giving per image and cutoff
the predicted area and the intersection with the truth; every (cutoff, min_area)
score then follows from those counts (:func:`score_grid`) without thresholding
again. ``tests/test_tuning.py`` checks this against brute-force thresholding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from plexus import ORIGINAL_SHAPE
from plexus.metrics import dice_from_counts, per_image_metrics
from plexus.resize import upsample_mean

UNTUNED_CUTOFF = 0.5


@dataclass
class CutoffCounts:
    """Pixel counts per image (rows) and cutoff (columns)."""

    cutoffs: np.ndarray  # (k,) sorted ascending
    pred_area: np.ndarray  # (n, k) int64: pixels with prob > cutoff
    intersection: np.ndarray  # (n, k) int64: of those, pixels in the true mask
    true_area: np.ndarray  # (n,) int64


def _counts_above(prob: torch.Tensor, truth: torch.Tensor, cutoffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row and cutoff: pixels with prob > cutoff, and those of them inside ``truth``.

    One binary search per pixel: bucket b = number of cutoffs strictly below the
    value, so the value exceeds cutoffs[:b]. A single bincount over (row, bucket)
    gives the histogram; a reverse cumulative sum turns it into counts per cutoff.
    """
    n, k = prob.shape[0], len(cutoffs)
    buckets = torch.bucketize(prob, cutoffs, right=False)
    flat = (buckets + torch.arange(n)[:, None] * (k + 1)).reshape(-1)
    hist_all = torch.bincount(flat, minlength=n * (k + 1)).reshape(n, k + 1)
    hist_true = torch.bincount(flat[truth.reshape(-1)], minlength=n * (k + 1)).reshape(n, k + 1)

    def above(hist):
        # value > cutoffs[j]  <=>  bucket > j
        return hist.flip(1).cumsum(1).flip(1)[:, 1:]

    return above(hist_all), above(hist_true)


def cutoff_counts(members: list[np.ndarray], true_masks: np.ndarray, cutoffs, *,
                  shape=ORIGINAL_SHAPE, batch_size: int = 64) -> CutoffCounts:
    """Count predicted and overlapping pixels for every image and cutoff.

    ``members``: probability arrays (n, h, w), one per model of an ensemble, rows
    aligned with ``true_masks`` (n, *shape), nonzero = foreground. Probabilities are
    averaged after upsampling to ``shape`` (:func:`plexus.resize.upsample_mean`).
    """
    cutoffs = np.asarray(sorted(float(c) for c in cutoffs))
    n = len(true_masks)
    if any(len(m) != n for m in members):
        raise ValueError(f"members have {[len(m) for m in members]} images, masks have {n}")
    cut_t = torch.from_numpy(cutoffs.astype(np.float32))
    pred_area = np.zeros((n, len(cutoffs)), dtype=np.int64)
    inter = np.zeros_like(pred_area)
    true_area = np.zeros(n, dtype=np.int64)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        prob = upsample_mean([m[lo:hi] for m in members], shape).reshape(hi - lo, -1)
        truth = torch.from_numpy(np.asarray(true_masks[lo:hi]) != 0).reshape(hi - lo, -1)
        above, above_true = _counts_above(prob, truth, cut_t)
        pred_area[lo:hi], inter[lo:hi] = above.numpy(), above_true.numpy()
        true_area[lo:hi] = truth.sum(1).numpy()
    return CutoffCounts(cutoffs, pred_area, inter, true_area)


def apply_min_area(pred_area, intersection, min_areas):
    """Zero the counts of masks below each minimum area; adds a trailing axis."""
    min_areas = np.asarray(min_areas)
    keep = np.asarray(pred_area)[..., None] >= min_areas
    return np.where(keep, np.asarray(pred_area)[..., None], 0), np.where(keep, np.asarray(intersection)[..., None], 0)


def score_grid(counts: CutoffCounts, min_areas, folds=None) -> pd.DataFrame:
    """Mean Kaggle Dice for every (cutoff, min_area), overall and per fold.

    Returns columns ``cutoff, min_area, score`` and, given ``folds`` (n,), one
    ``score_fold{k}`` column per fold.
    """
    min_areas = np.asarray(sorted(int(a) for a in min_areas))
    pred, inter = apply_min_area(counts.pred_area, counts.intersection, min_areas)
    dice = dice_from_counts(inter, pred, counts.true_area[:, None, None])  # (n, k, m)
    grid = pd.DataFrame({
        "cutoff": np.repeat(counts.cutoffs, len(min_areas)),
        "min_area": np.tile(min_areas, len(counts.cutoffs)),
        "score": dice.mean(axis=0).ravel(),
    })
    if folds is not None:
        folds = np.asarray(folds)
        for fold in np.unique(folds):
            grid[f"score_fold{fold}"] = dice[folds == fold].mean(axis=0).ravel()
    return grid


def choose_best(grid: pd.DataFrame) -> dict:
    """The best row; ties go to the smallest min_area, then the cutoff nearest 0.5."""
    order = grid.assign(_dist=(grid["cutoff"] - UNTUNED_CUTOFF).abs()).sort_values(
        ["score", "min_area", "_dist"], ascending=[False, True, True], kind="stable")
    row = order.iloc[0]
    return {"cutoff": float(row["cutoff"]), "min_area": int(row["min_area"]), "score": float(row["score"])}


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


def tune(members, true_masks, cutoffs, min_areas, folds=None) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score the grid and choose the setting.

    Returns ``(grid, best, per_image)``: the grid frame, a dict with the chosen
    ``cutoff, min_area, score`` plus ``untuned_score`` (cutoff 0.5, min area 0) and
    ``empty_score`` (every mask empty), and per-image metrics at the chosen setting.
    """
    all_cutoffs = sorted(set(float(c) for c in cutoffs) | {UNTUNED_CUTOFF})
    counts = cutoff_counts(members, true_masks, all_cutoffs)
    grid_counts = _select_cutoffs(counts, cutoffs)
    grid = score_grid(grid_counts, min_areas, folds)
    best = choose_best(grid)
    untuned = metrics_at(counts, UNTUNED_CUTOFF, 0)["kaggle_dice"].mean()
    best["untuned_score"] = float(untuned)
    best["empty_score"] = float(np.mean(counts.true_area == 0))
    best["n_images"] = int(len(true_masks))
    return grid, best, metrics_at(counts, best["cutoff"], best["min_area"])


def _select_cutoffs(counts: CutoffCounts, cutoffs) -> CutoffCounts:
    wanted = np.asarray(sorted(float(c) for c in cutoffs))
    idx = [int(np.argmin(np.abs(counts.cutoffs - c))) for c in wanted]
    return CutoffCounts(counts.cutoffs[idx], counts.pred_area[:, idx], counts.intersection[:, idx], counts.true_area)


def postprocess(prob: torch.Tensor, cutoff: float, min_area: int) -> torch.Tensor:
    """Binary masks (N, H, W) bool from probabilities at the original size."""
    masks = prob > cutoff
    small = masks.flatten(1).sum(1) < min_area
    masks[small] = False
    return masks
