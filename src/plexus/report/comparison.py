"""Comparing models and ensembles on the same OOF images (the seed report's Table I).

Every number comes with a subject-bootstrap 95% interval (the draws of
:func:`plexus.evaluation.bootstrap.subject_draws`, so every column of one row resamples
the same subjects):

- ``dice``, ``iou``, ``sensitivity``, ``precision``: per-image means of the final
  (post-processed) pipeline over the images **with a nerve** (an empty truth leaves
  sensitivity undefined and Dice 0 by convention, which would only measure the empty share);
- ``kaggle_untuned`` (cutoff 0.5, no minimum area, the gate at 0.5), ``kaggle_tuned`` (the tuned
  cutoff x minimum area x gate), ``kaggle_postprocessed`` (plus the kept candidates) and
  ``kaggle_cross_fitted`` (each fold scored by the setting chosen on the other folds,
  the honest estimate): per-image Kaggle Dice over all images;
- ``presence_auc``: the area under the ROC curve of "has a nerve" from the presence
  probability (two-head members) or else the maximum of the averaged map.

:func:`pairwise_table` is the paired test between any two of them: the subject
bootstrap of the mean per-image difference on the same images.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from plexus.evaluation.bootstrap import paired_difference_ci, subject_draws

ON_NERVE = ("dice", "iou", "sensitivity", "precision")
KAGGLE = {"kaggle_untuned": "untuned", "kaggle_tuned": "tuned", "kaggle_postprocessed": "postprocessed",
          "kaggle_cross_fitted": "cross_fitted"}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count one half); NaN when one class is absent."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _grouped_stat(values: dict[str, np.ndarray], groups: np.ndarray, stat, n_boot: int, seed: int, level: float):
    """``stat(columns restricted to the drawn subjects' images)`` and its percentile interval."""
    names, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    estimate = stat({k: v for k, v in values.items()})
    replicates = []
    for draw in subject_draws(len(names), n_boot, seed):
        rows = np.concatenate([members[g] for g in draw])
        replicates.append(stat({k: v[rows] for k, v in values.items()}))
    replicates = np.asarray(replicates, dtype=np.float64)
    replicates = replicates[~np.isnan(replicates)]
    alpha = (1 - level) / 2
    if len(replicates) == 0:
        return estimate, float("nan"), float("nan")
    low, high = np.quantile(replicates, [alpha, 1 - alpha])
    return estimate, float(low), float(high)


def comparison_table(entries: dict[str, dict], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:
    """One row per model or ensemble.

    Each entry: ``{"kind", "members", "parameters", "per_image"}`` where ``per_image`` is
    ``results/postprocess/{name}_per_image.csv`` (columns subject, untuned, tuned,
    postprocessed, cross_fitted, dice, iou, sensitivity, precision, true_area,
    presence_score). ``parameters`` counts the weights of one network of each member.
    """
    rows = []
    for name, entry in entries.items():
        frame = entry["per_image"]
        groups = frame["subject"].to_numpy()
        has_nerve = frame["true_area"].to_numpy() > 0
        row = {"name": name, "kind": entry["kind"], "members": "+".join(entry["members"]),
               "parameters": int(entry["parameters"]), "n_images": len(frame),
               "n_subjects": int(len(np.unique(groups)))}
        columns = {c: frame[c].to_numpy(np.float64) for c in (*ON_NERVE, *KAGGLE.values(), "presence_score")}
        columns["has_nerve"] = has_nerve
        for metric in ON_NERVE:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = _grouped_stat(
                columns, groups, lambda c, m=metric: _masked_mean(c[m], c["has_nerve"]), n_boot, seed, level)
        for column, source in KAGGLE.items():
            row[column], row[f"{column}_low"], row[f"{column}_high"] = _grouped_stat(
                columns, groups, lambda c, s=source: float(c[s].mean()), n_boot, seed, level)
        row["presence_auc"], row["presence_auc_low"], row["presence_auc_high"] = _grouped_stat(
            columns, groups, lambda c: roc_auc(c["has_nerve"], c["presence_score"]), n_boot, seed, level)
        rows.append(row)
    return pd.DataFrame(rows)


def empty_baselines(per_image: pd.DataFrame) -> dict[str, float]:
    """The all-empty prediction's score on the images of a ``{name}_per_image.csv``, per column of
    :func:`comparison_table`, by the same per-image conventions
    (:func:`plexus.evaluation.metrics.per_image_metrics`): the Kaggle Dice columns the share of images
    without a nerve (empty truth and empty mask score 1: the summary table's ``empty_score``); on the
    images with a nerve Dice, IoU and sensitivity 0 and precision 1 (nothing claimed); the presence
    AUC 0.5 (one score for every image). A column the images leave undefined has none."""
    from plexus.evaluation.metrics import per_image_metrics

    true_area = per_image["true_area"].to_numpy(np.float64)
    has_nerve = true_area > 0
    zeros = np.zeros_like(true_area)
    metrics = per_image_metrics(zeros, zeros, true_area)
    out = {column: float(metrics["kaggle_dice"].mean()) for column in KAGGLE} if len(true_area) else {}
    if has_nerve.any():
        out.update({metric: float(metrics[metric][has_nerve].mean()) for metric in ON_NERVE})
        if not has_nerve.all():
            out["presence_auc"] = roc_auc(has_nerve, zeros)
    return out


def unit_empty_baseline(per_unit: pd.DataFrame, unit_score: str = "dice") -> float:
    """The all-background prediction's mean per-image score of a per-image-and-unit table (a tuning's
    ``per_image.csv`` of the classes or regions task, with ``true_area``): per image, the mean over its
    units of 1 where the unit is absent from the truth (empty/empty scores 1), 0 where present; then
    the mean over the images. Rows whose ``unit_score`` is undefined are left out, as in the score."""
    rows = per_unit.dropna(subset=[unit_score])
    absent = (rows["true_area"].to_numpy() == 0).astype(np.float64)
    return float(pd.Series(absent).groupby(rows["image_id"].astype(str).to_numpy(), sort=False).mean().mean())


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def pairwise_table(per_image: dict[str, pd.DataFrame], *, value: str = "cross_fitted", n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Every pair (a, b): mean per-image ``a - b`` of ``value`` on the same images, its subject
    bootstrap interval, and whether the interval excludes 0."""
    rows = []
    for a, b in combinations(per_image, 2):
        left = per_image[a].set_index("image_id")
        right = per_image[b].set_index("image_id")
        if set(left.index) != set(right.index):
            raise ValueError(f"{a} and {b} are scored on different images: a paired test needs the same ones")
        frame = pd.DataFrame({"subject": left["subject"], "a": left[value],
                              "b": right.loc[left.index, value]})
        ci = paired_difference_ci(frame, "a", "b", n_boot=n_boot, seed=seed, level=level)
        rows.append({"a": a, "b": b, "score": value, "a_mean": float(frame["a"].mean()),
                     "b_mean": float(frame["b"].mean()), "difference": ci["mean"], "ci_low": ci["low"],
                     "ci_high": ci["high"], "significant": bool(ci["low"] > 0 or ci["high"] < 0),
                     "n_images": ci["n_images"], "n_subjects": ci["n_groups"]})
    return pd.DataFrame(rows, columns=["a", "b", "score", "a_mean", "b_mean", "difference", "ci_low", "ci_high",
                                       "significant", "n_images", "n_subjects"])


def display_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The comparison with each metric as one ``value (low-high)`` cell, for Markdown."""
    out = table[["name", "kind", "members", "parameters"]].copy()
    for metric in (*ON_NERVE, *KAGGLE, "presence_auc"):
        out[metric] = [f"{v:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})" if np.isfinite(v) else ""
                       for v, lo, hi in zip(table[metric], table[f"{metric}_low"], table[f"{metric}_high"])]
    return out


def score_table(entries: dict[str, dict], columns=("untuned", "tuned", "postprocessed", "cross_fitted"), *,
                n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The comparison table of a task scored by one per-image score: per name, the mean of each of
    ``columns`` (``results/postprocess/{name}_per_image.csv``) with its subject-bootstrap CI, the
    same subject draws for every column of a row (as :func:`comparison_table`)."""
    rows = []
    for name, entry in entries.items():
        frame = entry["per_image"]
        groups = frame["subject"].to_numpy()
        values = {c: frame[c].to_numpy(np.float64) for c in columns}
        row = {"name": name, "kind": entry["kind"], "members": "+".join(entry["members"]),
               "parameters": entry["parameters"]}
        for column in columns:
            row[column], row[f"{column}_low"], row[f"{column}_high"] = _grouped_stat(
                values, groups, lambda c, m=column: float(np.nanmean(c[m])), n_boot, seed, level)
        rows.append(row)
    return pd.DataFrame(rows)
