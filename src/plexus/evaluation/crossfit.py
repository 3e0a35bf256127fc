"""Cross-fitting, and the bootstrap rule that keeps a post-processing candidate: one place for both.

Tuning a post-processing setting on the same OOF predictions it is then scored on flatters
it. The cross-fitted score chooses the setting for each fold on the images of the *other*
folds and scores that fold's images with it, so no image helps choose its own setting.
:func:`choose_from_fold_means` is that choice from per-fold mean scores (the binary grid's
``grid.csv`` keeps those); :func:`choose_per_fold` makes it from a per-image score table (per-class
minimum areas, instance settings) through the same function. Every task's tuning calls one of them.

:func:`keep_candidate` is the rule every task's post-processing candidates are kept by: a
candidate is kept only when the subject-bootstrap 95% interval of its paired per-image gain lies
above 0 (the binary task's candidate selection, and the flip TTA of the other tasks).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["choose_from_fold_means", "choose_per_fold", "first_best", "keep_candidate"]


def first_best(mean_scores: np.ndarray, tie_tolerance: float = 0.0) -> np.ndarray:
    """Per leading index, the first candidate (last axis) within ``tie_tolerance`` of the best."""
    mean_scores = np.asarray(mean_scores, dtype=np.float64)
    if tie_tolerance == 0:
        return np.argmax(mean_scores, axis=-1)
    return np.argmax(mean_scores >= mean_scores.max(axis=-1, keepdims=True) - tie_tolerance, axis=-1)


def choose_from_fold_means(fold_means: dict, fold_sizes: dict, tie_tolerance: float = 0.0) -> dict:
    """For each fold k, the candidate (last axis) best on the other folds' images.

    ``fold_means[j]``: the mean score of every candidate over fold j's images (``(..., G)``);
    ``fold_sizes[j]``: its image count. The other folds' means are weighted by their sizes, so the
    choice is that of the mean over the other folds' images. Returns ``{fold: index array (...)}``.
    """
    if len(fold_means) < 2:
        raise ValueError(f"cross-fitting needs at least two folds, got {list(fold_means)}")
    chosen = {}
    for k in fold_means:
        others = [j for j in fold_means if j != k]
        weights = np.array([fold_sizes[j] for j in others], dtype=np.float64)
        stacked = np.stack([np.asarray(fold_means[j], dtype=np.float64) for j in others], axis=-1)
        chosen[k] = first_best(stacked @ weights / weights.sum(), tie_tolerance)
    return chosen


def choose_per_fold(scores: np.ndarray, folds: Sequence[Hashable],
                    tie_tolerance: float = 0.0) -> tuple[np.ndarray, dict[Hashable, np.ndarray]]:
    """For each fold, the candidate chosen on the other folds' images, and each image's score under it.

    ``scores`` is ``(N, ..., G)``: per image (and, optionally, per class or any inner axes) the
    score of each of ``G`` candidates, in the order the candidates are preferred on a tie.
    ``folds[i]`` is image ``i``'s fold (any hashable; at least two distinct). For each fold,
    the candidates' mean over the images of every other fold is taken and the first within
    ``tie_tolerance`` of the best is chosen (:func:`first_best`), separately for each inner
    index. Returns ``(held_out, chosen)``: ``held_out`` ``(N, ...)`` each image's score under
    its fold's choice, ``chosen`` ``{fold: index array (...)}`` in order of first appearance.
    """
    scores = np.asarray(scores, dtype=np.float64)
    folds = np.asarray(list(folds), dtype=object)
    if scores.ndim < 2 or len(folds) != len(scores):
        raise ValueError(f"expected (N, ..., G) scores for {len(folds)} images, got shape {scores.shape}")
    distinct = list(dict.fromkeys(folds.tolist()))
    if len(distinct) < 2:
        raise ValueError(f"cross-fitting needs at least two folds, got {distinct}")
    held_out = np.empty(scores.shape[:-1])
    inner = np.indices(scores.shape[1:-1]) if scores.ndim > 2 else ()
    means = {fold: scores[folds == fold].mean(axis=0) for fold in distinct}
    sizes = {fold: int((folds == fold).sum()) for fold in distinct}
    chosen = choose_from_fold_means(means, sizes, tie_tolerance)
    for fold, best in chosen.items():
        inside = folds == fold
        held_out[inside] = scores[inside][(slice(None), *inner, best)] if scores.ndim > 2 else \
            scores[inside][:, best]
    return held_out, chosen


def keep_candidate(with_scores, without_scores, subjects, *, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> tuple[bool, dict]:
    """The rule a post-processing candidate is kept by: the subject-bootstrap ``level`` interval of
    the paired per-image gain ``with - without`` lies above 0. Returns ``(kept, ci)``; ``ci`` is
    :func:`plexus.evaluation.bootstrap.paired_difference_ci`'s (mean, low, high, counts)."""
    import pandas as pd

    from plexus.evaluation.bootstrap import paired_difference_ci

    frame = pd.DataFrame({"subject": np.asarray(subjects), "with": np.asarray(with_scores, dtype=np.float64),
                          "without": np.asarray(without_scores, dtype=np.float64)})
    ci = paired_difference_ci(frame, "with", "without", n_boot=n_boot, seed=seed, level=level)
    return bool(ci["low"] > 0), ci
