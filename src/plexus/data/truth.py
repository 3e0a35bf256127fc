"""The truth a binary study is scored against: each training image's foreground mask, read from
its mask file at the image's own size (the manifest's ``height`` and ``width``), for every data
format alike.

The manifest names the mask file (``mask``, every format) and the config's ``classes`` its values
(the Kaggle layout's are fixed, :data:`plexus.config.KAGGLE_CLASSES`); the foreground is the one
class after the background. Masks are read only when sliced, a batch at a time, so a Kaggle-scale study
(5,635 masks, 1.3 GB decoded) is never in memory at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ForegroundMasks", "image_paths", "read_gray"]


def image_paths(manifest: pd.DataFrame, image_ids) -> list[str]:
    """The image file of each of ``image_ids``: the first channel column of the sheet (the one a
    ``present_{column}`` flag names)."""
    channels = [c[len("present_"):] for c in manifest.columns if c.startswith("present_")]
    if not channels:
        raise ValueError("the manifest names no image column (no present_{channel} column)")
    column = channels[0]
    return manifest.set_index("image_id").loc[list(image_ids), column].astype(str).tolist()


def read_gray(path) -> np.ndarray:
    """An image file as one gray ``(H, W)`` plane (RGB by luminance), for the steps that look at the
    image (the CRF candidate, the qualitative panels)."""
    from plexus.data.dataset import convert_color
    from plexus.io.images import read_image

    return convert_color(read_image(path, alpha="drop"), 1)


class ForegroundMasks:
    """True foreground masks of ``image_ids``, read when sliced, each at its own size.

    Behaves like the ``(n, H, W)`` uint8 ``{0, 1}`` array it stands for under ``len`` and slicing
    when the sliced images share one size; a slice of several sizes is a list of arrays. ``shapes``
    holds each image's ``(height, width)`` (the manifest's), so that callers batch by size
    (:func:`plexus.data.resize.uniform_runs`) before reading.
    """

    def __init__(self, manifest: pd.DataFrame, image_ids, classes: dict):
        if len(classes) != 2:
            raise ValueError(f"a binary truth needs two classes (background, foreground), got {list(classes)}")
        self.ids = [str(i) for i in image_ids]
        rows = manifest.set_index("image_id").loc[self.ids]
        if "mask" not in rows:
            raise ValueError(f"the training manifest has no mask column; its columns: {', '.join(manifest.columns)}")
        self.paths = rows["mask"].astype(str).tolist()
        self.shapes = rows[["height", "width"]].to_numpy(np.int64)
        self.classes = dict(classes)

    def __len__(self) -> int:
        return len(self.ids)

    def read(self, row: int) -> np.ndarray:
        from plexus.data.dataset import read_class_mask

        mask = read_class_mask(self.paths[row], self.classes, where=f"image {self.ids[row]!r}: {self.paths[row]}")
        if mask.shape != tuple(self.shapes[row]):
            raise ValueError(f"image {self.ids[row]!r}: its mask {self.paths[row]} is {mask.shape[0]}x{mask.shape[1]}, "
                             f"the manifest says {self.shapes[row][0]}x{self.shapes[row][1]} (the file changed since)")
        return (mask == 1).astype(np.uint8)

    def __getitem__(self, index):
        rows = range(len(self.ids))[index] if isinstance(index, slice) else np.asarray(index).reshape(-1)
        masks = [self.read(int(r)) for r in rows]
        if len({m.shape for m in masks}) <= 1:
            return np.stack(masks) if masks else np.zeros((0, 0, 0), np.uint8)
        return masks
