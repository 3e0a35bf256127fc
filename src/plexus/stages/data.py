"""Data stages: raw folder -> manifests -> subject-grouped folds -> arrays at each input size."""

from __future__ import annotations

from plexus.data import ingest, splits
from plexus.io import atomic
from plexus.io.contracts import read_manifest


def ingest_stage(raw_dir, train_csv, test_csv, masks_csv, threads: int = 2) -> None:
    train, test, train_masks = ingest.scan(raw_dir, threads=threads)
    atomic.write_csv(train_csv, train)
    atomic.write_csv(test_csv, test)
    atomic.write_csv(masks_csv, train_masks)
    print(f"{len(train)} training images from {train['subject'].nunique()} subjects "
          f"({(train['mask_area'] > 0).mean():.1%} with a nerve), {len(test)} test images")


def folds_stage(train_csv, folds_csv, n_folds: int, seed: int, stratify: str | None = None) -> None:
    train = read_manifest(train_csv)
    folds = splits.make_folds(train, n_folds, seed, stratify)
    atomic.write_csv(folds_csv, folds)
    summary = folds.assign(nerve=train["mask_area"] > 0).groupby("fold").agg(
        images=("image_id", "size"), subjects=("subject", "nunique"), nerve=("nerve", "mean"))
    print(summary.to_string())


def preprocess_stage(train_csv, test_csv, size, train_npz, test_npz, threads: int = 2) -> None:
    # imported here: resizing needs torch (seconds to import), which ingest and folds do not
    from plexus.data.resize import parse_size, resize_images, resize_masks

    size = parse_size(size)
    train, test = read_manifest(train_csv), read_manifest(test_csv)
    images = ingest.read_resized(train["image_path"], lambda stack: resize_images(stack, size), threads)
    masks = ingest.read_resized(train["mask_path"], lambda stack: resize_masks(stack, size), threads)
    atomic.write_npz(train_npz, image_id=train["image_id"].to_numpy(str), images=images, masks=masks)
    test_images = ingest.read_resized(test["image_path"], lambda stack: resize_images(stack, size), threads)
    atomic.write_npz(test_npz, image_id=test["image_id"].to_numpy(str), images=test_images)
