"""Kaggle run-length encoding of binary masks.

Pixels are numbered from 1, top to bottom, then left to right (column-major, i.e.
Fortran order). A mask is written as space-separated ``start length`` pairs in
increasing order; an empty mask gives the empty string.
"""

from __future__ import annotations

import numpy as np


def encode(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask (any nonzero value is foreground) as Kaggle RLE."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    flat = np.concatenate([[0], (mask.ravel(order="F") != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))  # alternating run starts and ends (0-based)
    starts, ends = edges[0::2], edges[1::2]
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


def decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode Kaggle RLE into a uint8 mask of ``shape`` with values {0, 1}.

    Raises ValueError on an odd number of fields, a non-positive start or length,
    runs out of order or overlapping, or runs that leave the image.
    """
    rows, cols = shape
    size = rows * cols
    fields = str(text).split() if text is not None and str(text) != "nan" else []
    if len(fields) % 2:
        raise ValueError(f"RLE has an odd number of fields ({len(fields)})")
    values = np.asarray([int(f) for f in fields], dtype=np.int64)
    starts, lengths = values[0::2] - 1, values[1::2]
    if (starts < 0).any() or (lengths <= 0).any():
        raise ValueError("RLE starts must be >= 1 and lengths >= 1")
    ends = starts + lengths
    if len(starts) and (ends[-1] > size or (starts[1:] < ends[:-1]).any()):
        raise ValueError(f"RLE runs overlap, are out of order or exceed {size} pixels")
    flat = np.zeros(size + 1, dtype=np.int32)
    np.add.at(flat, starts, 1)
    np.add.at(flat, ends, -1)
    return np.cumsum(flat[:-1]).astype(np.uint8).reshape((cols, rows)).T.copy()
