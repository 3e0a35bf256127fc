import numpy as np
import pandas as pd
import pytest

from plexus.data import splits


def _manifest(n_subjects=12, per_subject=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(1, n_subjects + 1):
        rate = rng.uniform(0.05, 0.9)
        for i in range(1, per_subject + 1):
            rows.append({"image_id": f"{s}_{i}", "subject": s, "mask_area": int(rng.random() < rate) * 5000})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_folds", [2, 3, 5])
def test_folds_group_subjects_and_cover_everything(n_folds):
    train = _manifest()
    folds = splits.make_folds(train, n_folds, seed=1)
    assert list(folds.columns) == ["image_id", "subject", "fold"]
    assert folds["image_id"].tolist() == train["image_id"].tolist()
    assert set(folds["fold"]) == set(range(n_folds))
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()


def test_folds_seeded():
    train = _manifest()
    a = splits.make_folds(train, 3, seed=4)
    assert a.equals(splits.make_folds(train, 3, seed=4))
    assert any(not splits.make_folds(train, 3, seed=s).equals(a) for s in range(5, 10))


def test_folds_stratify_presence():
    train = _manifest(n_subjects=30, seed=2)
    folds = splits.make_folds(train, 3, seed=0)
    rates = (train["mask_area"] > 0).groupby(folds["fold"]).mean()
    assert rates.max() - rates.min() < 0.2


def test_too_few_subjects():
    with pytest.raises(ValueError, match="at least 5 subjects"):
        splits.make_folds(_manifest(n_subjects=3), 5, seed=0)


def test_fold_indices_partition():
    folds = splits.make_folds(_manifest(), 3, seed=0)
    train_idx, val_idx = splits.fold_indices(folds, 1)
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(len(folds)))
    assert set(folds["subject"].iloc[train_idx]).isdisjoint(folds["subject"].iloc[val_idx])


@pytest.mark.parametrize("size", [0.25, 0.5, 33, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subject_subset_keeps_subjects_whole(size, seed):
    subjects = np.repeat(np.arange(1, 9), [5, 8, 3, 10, 6, 7, 4, 9])
    picked = splits.subject_subset(subjects, size, seed)
    chosen = set(subjects[picked])
    # every image of a chosen subject is in, no image of another subject
    assert set(np.flatnonzero(np.isin(subjects, list(chosen)))) == set(picked)
    target = splits.resolve_size(size, len(subjects))
    assert len(picked) >= target
    # whole subjects overshoot the target by less than one subject
    assert len(picked) < target + max(np.bincount(subjects))


def test_subject_subset_nested_and_seeded():
    subjects = np.repeat(np.arange(20), 6)
    small = set(splits.subject_subset(subjects, 24, seed=3))
    large = set(splits.subject_subset(subjects, 60, seed=3))
    assert small <= large
    assert set(splits.subject_subset(subjects, 24, seed=3)) == small
    assert set(splits.subject_subset(subjects, 24, seed=4)) != small


def test_resolve_size():
    assert splits.resolve_size(0.5, 100) == 50
    assert splits.resolve_size(30, 100) == 30
    assert splits.resolve_size(500, 100) == 100
    with pytest.raises(ValueError):
        splits.resolve_size(0, 100)
