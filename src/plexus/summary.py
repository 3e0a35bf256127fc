"""Results table with subject-level bootstrap confidence intervals.

Images of one subject (patient) are strongly correlated, so the uncertainty of a
mean OOF score is estimated by resampling *subjects*, not images: each bootstrap
replicate draws as many subjects as there are, with replacement, takes every
image of each drawn subject (a subject drawn twice counts twice) and averages
the per-image scores of those images. The interval is the percentile interval of
the replicate means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABLE_COLUMNS = [
    "name", "kind", "members", "untuned_score", "tuned_score", "cutoff", "min_area",
    "ci_low", "ci_high", "empty_score", "n_images", "n_subjects",
]


def subject_draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """The bootstrap draws: ``(n_boot, n_groups)`` indices into the sorted groups.

    ``np.random.default_rng(seed).integers(n_groups, size=(n_boot, n_groups))``, so
    a reference implementation can reproduce them exactly.
    """
    return np.random.default_rng(seed).integers(n_groups, size=(n_boot, n_groups))


def bootstrap_ci(per_image: pd.DataFrame, *, value: str = "kaggle_dice", group: str = "subject",
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``per_image[value]`` and its subject-level percentile bootstrap interval.

    Groups are the sorted unique values of ``per_image[group]``; replicate ``b``
    takes groups ``subject_draws(n_groups, n_boot, seed)[b]`` and its mean is
    ``sum of their image values / number of their images``.
    Returns ``{"mean", "low", "high", "n_groups", "n_images"}``; ``mean`` is the
    plain mean over all images.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    values = pd.to_numeric(per_image[value], errors="raise").to_numpy(dtype=np.float64)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one image")
    if np.isnan(values).any():
        raise ValueError(f"column {value!r} contains NaN")
    groups, inverse = np.unique(per_image[group].to_numpy(), return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(groups))
    counts = np.bincount(inverse, minlength=len(groups)).astype(np.float64)
    draws = subject_draws(len(groups), n_boot, seed)
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {
        "mean": float(values.mean()),
        "low": float(low),
        "high": float(high),
        "n_groups": int(len(groups)),
        "n_images": int(len(values)),
    }


def results_table(entries: dict[str, dict], *, n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """One row per model or ensemble, in the order of ``entries``.

    Each entry: ``{"kind": "model"|"ensemble", "members": [...], "best": best.json
    dict, "per_image": per_image.csv frame}``. ``ci_low``/``ci_high`` are the
    subject-level bootstrap interval of the per-image Kaggle Dice
    (:func:`bootstrap_ci` with ``n_boot``, ``seed``, ``level``).
    """
    rows = []
    for name, entry in entries.items():
        best = entry["best"]
        per_image = entry["per_image"]
        members = entry.get("members") or best.get("members") or [name]
        if isinstance(members, str):
            members = [members]
        ci = bootstrap_ci(per_image, value="kaggle_dice", group="subject",
                          n_boot=n_boot, seed=seed, level=level)
        rows.append({
            "name": str(name),
            "kind": str(entry.get("kind", "model")),
            "members": "+".join(str(m) for m in members),
            "untuned_score": float(best["untuned_score"]),
            "tuned_score": float(best["score"]),
            "cutoff": float(best["cutoff"]),
            "min_area": int(best["min_area"]),
            "ci_low": ci["low"],
            "ci_high": ci["high"],
            "empty_score": float(best["empty_score"]),
            "n_images": int(len(per_image)),
            "n_subjects": ci["n_groups"],
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """GitHub-flavoured Markdown table; floats with ``digits`` decimals, numbers right-aligned."""
    columns = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if num else ":---" for num in numeric) + "|",
    ]
    for row in table.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"
