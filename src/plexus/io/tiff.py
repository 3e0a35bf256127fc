"""Reading and writing the Kaggle TIFFs (uint8, 420x580, LZW-compressed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from plexus.errors import DataError
from plexus.io.atomic import atomic_path


class TiffLayoutError(DataError):
    """A readable TIFF that does not hold exactly one image."""


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """The single image of a TIFF; a file of several pages is an error, never its first page."""
    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) != 1:
            raise TiffLayoutError(f"{path}: multi-page TIFF ({len(tif.pages)} pages), expected exactly one image")
        return tif.pages[0].asarray()


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2-D uint8 array as an LZW-compressed TIFF, like the Kaggle files."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D uint8 array, got {array.dtype} {array.shape}")
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, array, compression="lzw")
