"""Reading and writing the Kaggle TIFFs (uint8, 420x580, LZW-compressed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from plexus.atomic import atomic_path


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Return the first page of a TIFF as a 2-D array (rows, columns)."""
    return tifffile.imread(path)


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2-D uint8 array as an LZW-compressed TIFF, like the Kaggle files."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D uint8 array, got {array.dtype} {array.shape}")
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, array, compression="lzw")
