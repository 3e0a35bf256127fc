"""Stage functions: the training-size subset never touches the validation part."""

import numpy as np
import pandas as pd
import pytest

import plexus.training.loop
from plexus.data import splits
from plexus.io import atomic
from plexus.stages import train as pipeline
from plexus.training.settings import TrainSettings

ENTRY = {"arch": "unet", "input_size": [8, 8], "epochs": 1}


@pytest.fixture
def staged(tmp_path):
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(1, 11), [4, 6, 5, 8, 3, 7, 5, 6, 4, 2])
    ids = [f"{s}_{i}" for s, i in zip(subjects, range(1, len(subjects) + 1))]
    train = pd.DataFrame({"image_id": ids, "subject": subjects, "mask_area": rng.integers(0, 2, len(ids)) * 5000})
    folds = splits.make_folds(train, 3, seed=0)
    atomic.write_csv(tmp_path / "folds.csv", folds)
    atomic.write_npz(tmp_path / "train.npz", image_id=np.array(ids), images=np.zeros((len(ids), 8, 8), np.uint8),
                     masks=np.zeros((len(ids), 8, 8), np.uint8))
    return tmp_path, folds


@pytest.mark.parametrize("size", [0.3, 0.6, 10])
@pytest.mark.parametrize("fold", [0, 1, 2])
def test_train_size_subset_keeps_validation_and_subjects(staged, monkeypatch, size, fold):
    tmp_path, folds = staged
    seen = {}
    monkeypatch.setattr(plexus.training.loop, "train_model", lambda images, masks, train_idx, val_idx, *a, **k:
                        seen.update(train=train_idx, val=val_idx))
    pipeline.train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", fold, ENTRY, tmp_path, tmp_path / "ck.pt",
                         run_name="unet--n0.5-s1", subset={"size": size, "seed": 1})
    full_train, full_val = splits.fold_indices(folds, fold)
    np.testing.assert_array_equal(seen["val"], full_val)  # validation part unchanged
    assert set(seen["train"]) < set(full_train)  # a strict subset of the training part only
    subjects = folds["subject"].to_numpy()
    chosen = set(subjects[seen["train"]])
    assert set(np.flatnonzero(np.isin(subjects, list(chosen)))) == set(seen["train"])  # whole subjects
    assert len(seen["train"]) >= splits.resolve_size(size, len(full_train))


def test_misaligned_arrays_are_refused(staged):
    tmp_path, folds = staged
    folds.iloc[::-1].to_csv(tmp_path / "folds.csv", index=False)
    with pytest.raises(ValueError, match="image ids do not match"):
        pipeline.train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 0, ENTRY, tmp_path, tmp_path / "ck.pt",
                             run_name="unet")


def test_settings_are_built_once_and_the_run_is_named(staged, monkeypatch):
    tmp_path, _ = staged
    seen = {}
    monkeypatch.setattr(plexus.training.loop, "train_model", lambda *a, **k: seen.update(settings=a[4], **k))
    pipeline.train_stage(tmp_path / "train.npz", tmp_path / "folds.csv", 2, {**ENTRY, "lr": 0.01}, tmp_path,
                         tmp_path / "ck.pt", run_name="unet--noisy", threads=1)
    assert seen["settings"] == TrainSettings.from_config({**ENTRY, "lr": 0.01})
    assert (seen["run_name"], seen["fold"], seen["threads"]) == ("unet--noisy", 2, 1)
    with pytest.raises(ValueError, match="learning_rate"):  # refused before any data is read
        pipeline.train_stage(tmp_path / "missing.npz", tmp_path / "folds.csv", 0, {**ENTRY, "learning_rate": 1},
                             tmp_path, tmp_path / "ck.pt", run_name="unet")
