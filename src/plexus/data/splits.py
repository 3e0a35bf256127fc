"""Subject-grouped, mask-presence-stratified folds and subject-wise subsets.

Images of one subject are strongly correlated (near-duplicate frames), so every
split here keeps a subject's images together: a fold never shares a subject with
another, and a training-size subset adds or leaves out whole subjects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """``(groups, inverse)`` like ``np.unique(values, return_inverse=True)`` for identifiers read as text.

    Groups are ordered numerically when every one reads as a number (``"2"`` before ``"10"``,
    as when the column was inferred as numbers), else as text; ties between spellings of one
    number (``"01"``, ``"1"``) stay distinct groups, ordered as text. The order decides which
    group each bootstrap or fold draw takes, so it is the same whatever the column's dtype.
    """
    text = np.asarray([str(v) for v in np.asarray(values, dtype=object)], dtype=object)
    distinct = sorted(set(text.tolist()))
    try:
        numbers = {g: float(g) for g in distinct}
    except ValueError:
        numbers = None
    if numbers is not None and all(np.isfinite(list(numbers.values()))):
        distinct.sort(key=lambda g: (numbers[g], g))
    position = {g: i for i, g in enumerate(distinct)}
    return np.asarray(distinct, dtype=object), np.fromiter((position[t] for t in text), np.int64, len(text))


def make_folds(train: pd.DataFrame, n_folds: int, seed: int, stratify: str | None = None) -> pd.DataFrame:
    """Assign each image of the manifest to a fold; returns ``image_id, subject, fold``.

    Uses :class:`sklearn.model_selection.StratifiedGroupKFold` with the subject as
    group and mask presence (``mask_area > 0``) as the stratification label, combined
    with the value of the column ``stratify`` when given (e.g. an image's class folder).
    """
    if stratify is not None and stratify not in train.columns:
        raise ValueError(f"cv.stratify: the manifest has no column {stratify!r} "
                         f"(columns: {', '.join(map(str, train.columns))})")
    subjects = train["subject"].astype(str)  # "01" and "1" are two subjects
    n_subjects = subjects.nunique()
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if n_subjects < n_folds:
        raise ValueError(f"{n_folds} folds need at least {n_folds} subjects, the manifest has {n_subjects}")
    # imported here: scikit-learn takes over a second to import, and only this job needs it
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(train), -1, dtype=int)
    labels = (train["mask_area"].to_numpy() > 0).astype(int)
    if stratify is not None:
        values = group_codes(train[stratify].astype(str).to_numpy())[1]
        labels = values * 2 + labels
    groups = group_codes(subjects.to_numpy())[1]  # integer codes in a dtype-independent order
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(train)), labels, groups)):
        fold[held_out] = k
    return pd.DataFrame({"image_id": train["image_id"].astype(str), "subject": subjects, "fold": fold})


def fold_indices(folds: pd.DataFrame, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training part and the held-out part of ``fold``."""
    held_out = folds["fold"].to_numpy() == int(fold)
    if not held_out.any():
        raise ValueError(f"fold {fold} does not exist (folds are {sorted(folds['fold'].unique())})")
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def resolve_size(size: float, available: int) -> int:
    """An image count from a size given as a count (>= 1) or a fraction (0 < size < 1)."""
    if size <= 0:
        raise ValueError(f"training-set size must be positive, got {size}")
    target = int(round(size * available)) if size < 1 else int(size)
    return min(max(target, 1), available)


def subject_subset(subjects: np.ndarray, size: float, seed: int) -> np.ndarray:
    """Pick whole subjects, in a seeded random order, until ``size`` images are covered.

    ``subjects``: the subject of each image of a training part. Returns the sorted
    positions (into ``subjects``) of the chosen images. The last subject added may
    overshoot the target; no subject is ever split.
    """
    groups, codes = group_codes(subjects)
    target = resolve_size(size, len(codes))
    order = np.random.default_rng(seed).permutation(len(groups))
    chosen, count = [], 0
    counts = np.bincount(codes, minlength=len(groups))
    for group in order:
        if count >= target:
            break
        chosen.append(group)
        count += int(counts[group])
    return np.flatnonzero(np.isin(codes, chosen))
