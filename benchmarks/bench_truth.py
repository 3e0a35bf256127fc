"""Reading the binary truth: each mask file at its own size against the run-length table it replaced.

Since #27 every binary stage reads its truth from the mask files the manifest names
(``plexus.data.truth.ForegroundMasks``: the file, its values mapped through the classes),
not from Kaggle's ``train_masks.csv`` decoded at 420x580 (``plexus.data.ingest.load_masks``).
This times both on the same ``--masks`` synthetic Kaggle masks (420x580 LZW TIFFs, 0/255,
about half empty, one ellipse each otherwise), written to a temporary folder, reading
them ``--batch`` at a time as the tuning does; best of ``--repeats`` interleaved passes.
It checks that both give the same masks, and prints ms per mask and the ratio::

    .venv/bin/python benchmarks/bench_truth.py
    .venv/bin/python benchmarks/bench_truth.py --masks 2000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_of

from plexus.config import KAGGLE_CLASSES
from plexus.data.ingest import KAGGLE_SHAPE, load_masks, mask_rles
from plexus.data.truth import ForegroundMasks
from plexus.io.rle import encode
from plexus.io.tiff import write_tiff


def write_masks(folder: Path, n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` masks as TIFFs, their manifest rows and their run-length table."""
    rng = np.random.default_rng(seed)
    rows, rles = [], []
    yy, xx = np.mgrid[:KAGGLE_SHAPE[0], :KAGGLE_SHAPE[1]]
    for k in range(n):
        mask = np.zeros(KAGGLE_SHAPE, np.uint8)
        if rng.random() < 0.5:
            cy, cx, ry, rx = rng.uniform(100, 320), rng.uniform(120, 460), rng.uniform(25, 60), rng.uniform(30, 80)
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 255
        path = folder / f"1_{k + 1}_mask.tif"
        write_tiff(path, mask)
        rows.append({"image_id": f"1_{k + 1}", "mask": str(path), "height": KAGGLE_SHAPE[0],
                     "width": KAGGLE_SHAPE[1]})
        rles.append({"subject": 1, "img": k + 1, "pixels": encode(mask)})
    return pd.DataFrame(rows), pd.DataFrame(rles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plexus-bench-truth-") as tmp:
        manifest, table = write_masks(Path(tmp), args.masks)
        ids = manifest["image_id"].tolist()
        files = ForegroundMasks(manifest, ids, KAGGLE_CLASSES)
        by_id = mask_rles(table)
        batches = [(lo, min(lo + args.batch, len(ids))) for lo in range(0, len(ids), args.batch)]
        for lo, hi in batches[:3]:
            np.testing.assert_array_equal(files[lo:hi], load_masks(by_id, ids[lo:hi]))
        best = best_of(args.repeats, {
            "run-length table (load_masks, before)": lambda: [load_masks(by_id, ids[lo:hi]) for lo, hi in batches],
            "mask files (ForegroundMasks, now)": lambda: [files[lo:hi] for lo, hi in batches],
        })
    baseline = best["run-length table (load_masks, before)"]
    print(f"{args.masks} masks of 420x580, {args.batch} at a time, best of {args.repeats}")
    for name, seconds in best.items():
        print(f"  {name:40s} {seconds * 1e3 / args.masks:6.2f} ms/mask  {seconds / baseline:5.2f}x")


if __name__ == "__main__":
    main()
