"""The Kaggle submission: ensemble test probabilities, post-process, run-length encode."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from plexus import ORIGINAL_SHAPE
from plexus.atomic import atomic_path
from plexus.resize import upsample_mean
from plexus.rle import encode
from plexus.tuning import postprocess


def encode_masks(members: list[np.ndarray], cutoff: float, min_area: int, *,
                 batch_size: int = 64, shape=ORIGINAL_SHAPE) -> list[str]:
    """RLE strings of the post-processed ensemble masks, one per row of the members."""
    n = len(members[0])
    pixels = []
    for lo in range(0, n, batch_size):
        prob = upsample_mean([m[lo:lo + batch_size] for m in members], shape)
        pixels += [encode(mask) for mask in postprocess(prob, cutoff, min_area).numpy()]
    return pixels


def submission_frame(image_ids, pixels) -> pd.DataFrame:
    """``img,pixels`` sorted by image number."""
    frame = pd.DataFrame({"img": [int(i) for i in image_ids], "pixels": pixels})
    return frame.sort_values("img", kind="stable").reset_index(drop=True)


def write_submission(frame: pd.DataFrame, path: str | os.PathLike) -> dict:
    """Write the CSV atomically and return its summary (rows, empty count, bytes)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
        size = tmp.stat().st_size
    return {"rows": int(len(frame)), "empty": int((frame["pixels"] == "").sum()), "bytes": int(size)}
