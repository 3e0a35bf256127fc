"""One function per workflow stage, from input files to output files.

These are the typed middle layer between the thin ``workflow/scripts`` (which only
unpack ``snakemake`` objects) and the science in the other modules. Each reads and
writes the files described in ``docs/contracts.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus import ORIGINAL_SHAPE, atomic, ingest, splits
from plexus.atomic import read_npz
from plexus.resize import parse_size, resize_images, resize_masks


# -- data -------------------------------------------------------------------------

def ingest_stage(raw_dir, train_csv, test_csv, masks_csv, threads: int = 2) -> None:
    train, test, train_masks = ingest.scan(raw_dir, threads=threads)
    atomic.write_csv(train_csv, train)
    atomic.write_csv(test_csv, test)
    atomic.write_csv(masks_csv, train_masks)
    print(f"{len(train)} training images from {train['subject'].nunique()} subjects "
          f"({(train['mask_area'] > 0).mean():.1%} with a nerve), {len(test)} test images")


def folds_stage(train_csv, folds_csv, n_folds: int, seed: int) -> None:
    train = pd.read_csv(train_csv)
    folds = splits.make_folds(train, n_folds, seed)
    atomic.write_csv(folds_csv, folds)
    summary = folds.assign(nerve=train["mask_area"] > 0).groupby("fold").agg(
        images=("image_id", "size"), subjects=("subject", "nunique"), nerve=("nerve", "mean"))
    print(summary.to_string())


def preprocess_stage(train_csv, test_csv, size, train_npz, test_npz, threads: int = 2) -> None:
    size = parse_size(size)
    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv, dtype={"image_id": str})
    images = resize_images(ingest.read_stack(train["image_path"], threads), size)
    masks = resize_masks(ingest.read_stack(train["mask_path"], threads), size)
    atomic.write_npz(train_npz, image_id=train["image_id"].to_numpy(str), images=images, masks=masks)
    test_images = resize_images(ingest.read_stack(test["image_path"], threads), size)
    atomic.write_npz(test_npz, image_id=test["image_id"].to_numpy(str), images=test_images)


# -- training and prediction ----------------------------------------------------------

def train_stage(train_npz, folds_csv, fold: int, settings: dict, out_dir, checkpoint, *,
                threads: int | None = None, noise: dict | None = None, subset: dict | None = None) -> dict:
    """Train one (model, fold); ``subset={"size": s, "seed": k}`` trains on whole subjects only."""
    from plexus.train import train_model

    data = read_npz(train_npz)
    folds = pd.read_csv(folds_csv)
    _check_aligned(data["image_id"], folds["image_id"], train_npz, folds_csv)
    train_idx, val_idx = splits.fold_indices(folds, fold)
    if subset is not None:
        keep = splits.subject_subset(folds["subject"].to_numpy()[train_idx], subset["size"], subset["seed"])
        train_idx = train_idx[keep]
        print(f"training-size subset: {len(train_idx)} images from "
              f"{folds['subject'].iloc[train_idx].nunique()} subjects (target {subset['size']})")
    return train_model(data["images"], data["masks"], train_idx, val_idx, settings, out_dir,
                       checkpoint_path=checkpoint, threads=threads, noise=noise)


def predict_stage(model_pt, images_npz, out_npz, *, folds_csv=None, fold=None, noise=None,
                  batch_size: int = 64, threads: int | None = None) -> None:
    """Predict every image of ``images_npz`` or, given a fold, its held-out images.

    ``noise={"sigma": s, "seed": k}`` adds seeded Gaussian noise per image first.
    """
    from plexus.predict import predict_probs

    data = read_npz(images_npz)
    ids, images = data["image_id"], data["images"]
    if fold is not None:
        folds = pd.read_csv(folds_csv)
        _check_aligned(ids, folds["image_id"], images_npz, folds_csv)
        _, val_idx = splits.fold_indices(folds, fold)
        ids, images = ids[val_idx], images[val_idx]
    if noise is not None:
        noise = {**noise, "image_ids": ids.tolist()}
    out = predict_probs(model_pt, images, batch_size=batch_size, threads=threads, noise=noise)
    atomic.write_npz(out_npz, image_id=ids, **out)


def average_stage(fold_npzs, out_npz) -> None:
    """Average the folds' test probabilities (same images, same order)."""
    runs = read_aligned(fold_npzs)
    out = {"image_id": runs[0]["image_id"],
           "prob": np.mean([r["prob"].astype(np.float32) for r in runs], axis=0).astype(np.float16)}
    if "presence" in runs[0]:
        out["presence"] = np.mean([r["presence"] for r in runs], axis=0)
    atomic.write_npz(out_npz, **out)


def read_aligned(paths) -> list[dict[str, np.ndarray]]:
    """Read probability files that must hold the same images in the same order."""
    runs = [read_npz(p) for p in paths]
    for path, run in zip(paths, runs):
        _check_aligned(run["image_id"], runs[0]["image_id"], path, paths[0])
    return runs


def _check_aligned(ids, expected, path, reference) -> None:
    if not np.array_equal(np.asarray(ids, dtype=str), np.asarray(expected, dtype=str)):
        raise ValueError(f"{path}: image ids do not match {reference}; rerun the stage that wrote the older file")


# -- out-of-fold scoring ------------------------------------------------------------------

def load_oof(fold_npzs, image_ids) -> np.ndarray:
    """Concatenate a model's per-fold OOF probabilities into ``image_ids`` order."""
    ids, probs = [], []
    for path in fold_npzs:
        data = read_npz(path)
        ids.append(data["image_id"])
        probs.append(data["prob"])
    ids = np.concatenate(ids).astype(str)
    position = {image_id: row for row, image_id in enumerate(ids)}
    missing = [i for i in image_ids if i not in position]
    if missing:
        raise ValueError(f"OOF predictions {list(map(str, fold_npzs))} miss {len(missing)} images, e.g. {missing[:3]}")
    return np.concatenate(probs)[[position[i] for i in image_ids]]


def load_truth(folds_csv, masks_csv):
    """The folds table and the true masks (420x580, {0, 1}) in its row order."""
    folds = pd.read_csv(folds_csv)
    masks = ingest.load_masks(pd.read_csv(masks_csv, keep_default_na=False), folds["image_id"], ORIGINAL_SHAPE)
    return folds, masks


def tune_stage(member_oofs: dict[str, list], folds_csv, masks_csv, cutoffs, min_areas,
               grid_csv, best_json, per_image_csv) -> dict:
    """Tune cutoff x min-area on the (averaged) OOF probabilities of one or more models."""
    from plexus.tuning import tune

    folds, truth = load_truth(folds_csv, masks_csv)
    ids = folds["image_id"].astype(str).tolist()
    members = [load_oof(paths, ids) for paths in member_oofs.values()]
    grid, best, per_image = tune(members, truth, cutoffs, min_areas, folds["fold"].to_numpy())
    best["members"] = list(member_oofs)
    per_image.insert(0, "fold", folds["fold"].to_numpy())
    per_image.insert(0, "subject", folds["subject"].to_numpy())
    per_image.insert(0, "image_id", ids)
    atomic.write_csv(grid_csv, grid)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, best)
    print(f"tuned cutoff={best['cutoff']:.3f} min_area={best['min_area']}: {best['score']:.4f} "
          f"(untuned {best['untuned_score']:.4f}, all-empty {best['empty_score']:.4f})")
    return best


def submission_stage(member_means, best_json, csv_path, json_path, batch_size: int = 64) -> dict:
    from plexus.submission import encode_masks, submission_frame, write_submission

    best = json.loads(Path(best_json).read_text())
    runs = read_aligned(member_means)
    pixels = encode_masks([r["prob"] for r in runs], best["cutoff"], best["min_area"], batch_size=batch_size)
    frame = submission_frame(runs[0]["image_id"], pixels)
    summary = write_submission(frame, csv_path)
    summary.update(cutoff=best["cutoff"], min_area=best["min_area"], members=best.get("members"))
    atomic.write_json(json_path, summary)
    print(f"{summary['rows']} rows, {summary['empty']} empty, {summary['bytes']} bytes")
    return summary
