"""Subject-level bootstrap confidence intervals.

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

from plexus.data.splits import group_codes  # noqa: F401  (the groups of a bootstrap; this module's API too)


def subject_draws(n_groups: int, n_boot: int, seed: int) -> np.ndarray:
    """The bootstrap draws: ``(n_boot, n_groups)`` indices into the sorted groups.

    ``np.random.default_rng(seed).integers(n_groups, size=(n_boot, n_groups))``, so
    a reference implementation can reproduce them exactly.
    """
    return np.random.default_rng(seed).integers(n_groups, size=(n_boot, n_groups))


def bootstrap_ci(per_image: pd.DataFrame, *, value: str = "kaggle_dice", group: str = "subject",
                 n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``per_image[value]`` and its subject-level percentile bootstrap interval.

    Groups are the unique values of ``per_image[group]`` in :func:`group_codes`' order; replicate ``b``
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
    groups, inverse = group_codes(per_image[group].to_numpy())
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


def paired_difference_ci(per_image: pd.DataFrame, a: str, b: str, *, group: str = "subject",
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``per_image[a] - per_image[b]`` over images and its subject bootstrap interval.

    The difference is paired (both columns score the same images), so the interval
    reflects how consistently ``a`` beats ``b`` across subjects, not the spread of
    either score. Same draws as :func:`bootstrap_ci` for the same ``seed``.
    """
    frame = pd.DataFrame({group: per_image[group].to_numpy(),
                          "difference": per_image[a].to_numpy(np.float64) - per_image[b].to_numpy(np.float64)})
    return bootstrap_ci(frame, value="difference", group=group, n_boot=n_boot, seed=seed, level=level)
