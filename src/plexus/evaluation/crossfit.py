"""Cross-fitting, and the bootstrap rule that keeps a post-processing candidate: one place for both.

Tuning a post-processing setting on the same OOF predictions it is then scored on flatters
it. The cross-fitted score chooses the setting for each fold on the images of the *other*
folds and scores that fold's images with it, so no image helps choose its own setting.
:func:`choose_from_fold_means` is that choice from per-fold mean scores (the binary grid's
``grid.csv`` keeps those); :func:`choose_per_fold` makes it from a per-image score table (per-class
minimum areas, instance settings) through the same function. Every task's tuning calls one of them.

:func:`keep_candidate` is the rule every task's post-processing candidates are kept by: a
candidate is kept only when the subject-bootstrap 95% interval of its paired per-image gain lies
above 0 and its mean gain is at least ``min_gain`` (``postprocess.min_gain``, default 0: the
interval alone decides) (the binary task's candidate selection, and the flip TTA of the other
tasks). :func:`keep_rule` is the rule's sentence and :func:`decision` one candidate's record, which
says when ``min_gain`` refused a candidate the interval would have kept.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

__all__ = ["choose_from_fold_means", "choose_per_fold", "decision", "decisions_columns", "first_best",
           "keep_candidate", "keep_rule"]


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
                   level: float = 0.95, min_gain: float = 0.0) -> tuple[bool, dict]:
    """The rule a post-processing candidate is kept by: the subject-bootstrap ``level`` interval of
    the paired per-image gain ``with - without`` lies above 0, and the mean gain is at least
    ``min_gain`` (a minimum practical gain; 0: the interval alone decides). Returns ``(kept, ci)``;
    ``ci`` is :func:`plexus.evaluation.bootstrap.paired_difference_ci`'s (mean, low, high, counts)
    and, when the interval lies above 0 but the mean gain is below ``min_gain``, ``refused``: the
    sentence that says so."""
    import pandas as pd

    from plexus.evaluation.bootstrap import paired_difference_ci

    frame = pd.DataFrame({"subject": np.asarray(subjects), "with": np.asarray(with_scores, dtype=np.float64),
                          "without": np.asarray(without_scores, dtype=np.float64)})
    ci = paired_difference_ci(frame, "with", "without", n_boot=n_boot, seed=seed, level=level)
    above = bool(ci["low"] > 0)
    if above and ci["mean"] < min_gain:
        ci["refused"] = (f"refused: mean gain {ci['mean']:+.4f} is below postprocess.min_gain {min_gain:g} "
                         f"(CI {ci['low']:+.4f} to {ci['high']:+.4f} lies above 0)")
        return False, ci
    return above, ci


def keep_rule(min_gain: float = 0.0, level: float = 0.95) -> str:
    """The keep rule's sentence (``rule`` in ``results/postprocess/{name}.json``)."""
    rule = (f"a candidate is kept when the subject-bootstrap {100 * level:g}% CI of its paired per-image gain "
            "lies above 0")
    return rule + (f" and its mean gain is at least {min_gain:g} (postprocess.min_gain)" if min_gain > 0 else "")


def decision(candidate: str, setting: dict, score_without: float, score_with: float, kept: bool, ci: dict) -> dict:
    """One candidate's decision record (a row of ``results/postprocess/{name}.csv``): its setting,
    the mean scores without and with it, the paired gain's mean and CI, whether it was kept, and a
    ``note`` only when ``postprocess.min_gain`` refused it (:func:`keep_candidate`'s ``refused``)."""
    row = {"candidate": candidate, "setting": setting, "score_without": float(score_without),
           "score_with": float(score_with), "difference": ci["mean"], "ci_low": ci["low"], "ci_high": ci["high"],
           "kept": bool(kept)}
    if "refused" in ci:
        row["note"] = ci["refused"]
    return row


#: decimals of the scores in a decisions table (the decision record, JSON, keeps every digit)
DECISIONS_DECIMALS = 6


def decisions_table(decisions):
    """The decisions as the table ``results/postprocess/{name}.csv`` holds them: the setting as
    ``key=value`` text (``tta=True``, ``hysteresis_high=0.8``; several joined by ``; ``) and the
    scores rounded to :data:`DECISIONS_DECIMALS` decimals."""
    import pandas as pd

    frame = pd.DataFrame(list(decisions), columns=decisions_columns(decisions))
    frame["setting"] = [setting_text(s) for s in frame["setting"]]
    scores = ["score_without", "score_with", "difference", "ci_low", "ci_high"]
    frame[scores] = frame[scores].astype(float).round(DECISIONS_DECIMALS)
    return frame


def setting_text(setting) -> str:
    """``{"tta": True, "remove_below": 200}`` -> ``tta=True; remove_below=200``."""
    if not isinstance(setting, dict):
        return str(setting)
    return "; ".join(f"{key}={value}" for key, value in setting.items())


def decisions_columns(decisions) -> list[str]:
    """The columns of a decisions table: those of :func:`decision`, ``note`` only when a row has one."""
    columns = ["candidate", "setting", "score_without", "score_with", "difference", "ci_low", "ci_high", "kept"]
    return columns + (["note"] if any("note" in row for row in decisions) else [])
