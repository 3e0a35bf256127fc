"""Cross-fitting: the honest score of a decision tuned on out-of-fold predictions.

Tuning a post-processing setting on the same OOF predictions it is then scored on flatters
it. The cross-fitted score chooses the setting for each fold on the images of the *other*
folds and scores that fold's images with it, so no image helps choose its own setting.
:func:`choose_per_fold` is that choice for any per-image score table; every task's tuning
(binary grids, per-class minimum areas, instance settings) calls it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["choose_per_fold", "first_best"]


def first_best(mean_scores: np.ndarray, tie_tolerance: float = 0.0) -> np.ndarray:
    """Per leading index, the first candidate (last axis) within ``tie_tolerance`` of the best."""
    mean_scores = np.asarray(mean_scores, dtype=np.float64)
    if tie_tolerance == 0:
        return np.argmax(mean_scores, axis=-1)
    return np.argmax(mean_scores >= mean_scores.max(axis=-1, keepdims=True) - tie_tolerance, axis=-1)


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
    chosen = {}
    inner = np.indices(scores.shape[1:-1]) if scores.ndim > 2 else ()
    for fold in distinct:
        inside = folds == fold
        best = first_best(scores[~inside].mean(axis=0), tie_tolerance)
        chosen[fold] = best
        held_out[inside] = scores[inside][(slice(None), *inner, best)] if scores.ndim > 2 else \
            scores[inside][:, best]
    return held_out, chosen
