"""The robustness studies: Gaussian noise injection and training-set size.

Both score held-out (out-of-fold) predictions with the main model's tuned cutoff
and minimum area, at 420x580, exactly as the tuning stage does, and report the
Kaggle Dice and plain Dice per fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.data import splits
from plexus.data.ingest import load_truth
from plexus.io import atomic
from plexus.io.contracts import load_oof, read_npz
from plexus.postprocess.tuning import cutoff_counts, gate, metrics_at


def score_at(members, truth, best: dict, presence=None) -> pd.DataFrame:
    """Per-image metrics of probabilities at the tuned setting (the presence gate included)."""
    counts = gate(cutoff_counts(members, truth, [best["cutoff"]]), presence, best.get("presence_threshold"))
    return metrics_at(counts, best["cutoff"], best["min_area"])


def fold_scores(per_image: pd.DataFrame, folds: np.ndarray) -> pd.DataFrame:
    """Mean Kaggle Dice and plain Dice per fold."""
    frame = per_image.assign(fold=np.asarray(folds))
    out = frame.groupby("fold").agg(kaggle_dice=("kaggle_dice", "mean"), dice=("dice", "mean"),
                                    n_images=("kaggle_dice", "size"))
    return out.reset_index()


def noise_scores_stage(
    predictions: dict[tuple[str, float], str], folds_csv, masks_csv, best_json, out_csv
) -> pd.DataFrame:
    """``scores.csv``: one row per (condition, sigma, fold)."""
    best = json.loads(Path(best_json).read_text())
    folds, all_truth = load_truth(folds_csv, masks_csv)  # decoded once, shared by every file
    row_of = {image_id: row for row, image_id in enumerate(folds["image_id"].astype(str))}
    rows = []
    for (condition, sigma), path in sorted(predictions.items()):
        data = read_npz(path)
        truth = all_truth[[row_of[i] for i in data["image_id"].astype(str)]]
        per_image = score_at([data["prob"]], truth, best, data.get("presence"))
        scores = fold_scores(per_image, data["fold"])
        rows.append(scores.assign(condition=condition, sigma=float(sigma)))
    table = pd.concat(rows)[["condition", "sigma", "fold", "kaggle_dice", "dice", "n_images"]]
    atomic.write_csv(out_csv, table)
    print(table.groupby(["condition", "sigma"])[["kaggle_dice", "dice"]].mean().to_string())
    return table


def train_size_scores_stage(
    runs: dict[tuple, list], full_run: list, folds_csv, masks_csv, best_json, out_csv
) -> pd.DataFrame:
    """``scores.csv``: one row per (size, seed, fold), plus ``size="full"`` rows.

    ``runs[(size, seed)]`` lists that run's OOF files by fold; ``full_run`` the main
    model's (trained on the whole training part). ``n_train`` is recomputed with
    :func:`plexus.data.splits.subject_subset`, the same draw the training job made.
    """
    best = json.loads(Path(best_json).read_text())
    folds, truth = load_truth(folds_csv, masks_csv)
    ids = folds["image_id"].astype(str).tolist()
    rows = []
    entries = [((f"{size:g}", seed), paths) for (size, seed), paths in sorted(runs.items())]
    entries.append((("full", None), full_run))
    for (size, seed), paths in entries:
        per_image = score_at([load_oof(paths, ids)], truth, best, load_oof(paths, ids, key="presence"))
        scores = fold_scores(per_image, folds["fold"])
        n_train = []
        for fold in scores["fold"]:
            train_idx, _ = splits.fold_indices(folds, fold)
            if size == "full":
                n_train.append(len(train_idx))
            else:
                subjects = folds["subject"].to_numpy()[train_idx]
                n_train.append(len(splits.subject_subset(subjects, float(size), int(seed))))
        rows.append(scores.assign(size=size, seed=seed if seed is not None else -1, n_train=n_train))
    table = pd.concat(rows)[["size", "seed", "fold", "n_train", "kaggle_dice", "dice", "n_images"]]
    atomic.write_csv(out_csv, table)
    print(table.groupby("size")[["n_train", "kaggle_dice", "dice"]].mean().to_string())
    return table
