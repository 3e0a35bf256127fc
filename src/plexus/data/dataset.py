"""Any 2-D dataset described by a sample sheet: manifest, class maps, arrays at a model size.

The nerve workflow reads the Kaggle layout (:mod:`plexus.data.ingest`); every other
dataset comes in as a sample sheet (:mod:`plexus.data.sheet`), written by an importer
(:mod:`plexus.data.importers`) or by the user. This module turns a sheet into the
files the shared training and prediction stages read:

* :func:`build_manifest`: checks every file the sheet names (headers of every image,
  pixels of every mask: each mask value must be one of ``classes``) and returns the
  train and test manifests, one row per image: ``image_id, subject, split, height,
  width``, the sheet's channel and mask paths, ``present_{channel}`` (0/1),
  ``mask_area`` (foreground pixels, any class) and ``mask_classes`` (the classes
  present, ``;``-joined). Every problem is collected and raised as one
  :class:`plexus.data.sheet.SheetError` naming the row, column and file.
* :func:`load_arrays`: images of one split at a model input size, ``(N, C, h, w)`` in
  the files' own dtype (uint8 or uint16: noise studies add noise in native units),
  a missing channel all zeros with ``present[n, c] = False``; masks as class indices
  ``(N, h, w)`` uint8, resized through their one-hot maps (antialiased bilinear, then
  the most likely class), so thin classes survive downsizing better than with
  nearest-neighbour sampling.

Channels: each channel column holds a gray image, or an RGB image that counts as three
input channels (named ``{column}.r/.g/.b``); a column must hold the same number of
image channels in every row. Images of one dataset may have any and mixed sizes: each
keeps its original ``height x width`` in the manifest, and probabilities return to it
for tuning, metrics and outputs (:mod:`plexus.stages.classes`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from plexus.data.sheet import SheetError, _row_labels, check_files
from plexus.evaluation.multiclass import class_table, to_class_index
from plexus.io.images import read_image

__all__ = ["build_manifest", "input_channels", "load_arrays", "read_class_mask"]


def read_class_mask(path, classes: dict, where: str | None = None) -> np.ndarray:
    """The class-index map (uint8) of the mask file ``path``; a value outside ``classes`` is a ValueError."""
    mask = read_image(path)
    return to_class_index(mask, class_table(classes)[1], where or str(path))


def input_channels(sheet_channels, depths: dict[str, int]) -> list[str]:
    """Names of the network's input channels: a gray column is one, an RGB column three."""
    names = []
    for column in sheet_channels:
        names += [column] if depths[column] == 1 else [f"{column}.{c}" for c in "rgb"[: depths[column]]]
    return names


def build_manifest(sheet: pd.DataFrame, *, channels, classes: dict, allow_missing_channels: bool = False,
                   threads: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train and test manifests of a :func:`plexus.data.sheet.read_sheet` frame, and a summary dict.

    Raises :class:`SheetError` for unreadable files, channels of different sizes, a mask
    whose size differs from its image, a mask value not in ``classes``, and a channel
    column whose rows differ in channel count.
    """
    channels = list(channels)
    where = sheet.attrs.get("sheet", "the sample sheet")
    info = check_files(sheet, channels=channels, allow_missing_channels=allow_missing_channels, threads=threads)
    problems = []
    depths = {}
    for column in channels:
        counts = sorted({int(v) for v in info[f"{column}_channels"] if v})
        if len(counts) > 1:
            problems.append(f"column {column}: its images have different channel counts {counts} "
                            "(a column must be all gray or all RGB)")
        depths[column] = counts[0] if counts else 1
    labels = dict(zip(sheet["image_id"].astype(str), _row_labels(sheet)))
    values = class_table(classes)[1]

    def mask_classes(row) -> tuple[int, list[int], str | None]:
        if not row["mask"]:
            return 0, [], None
        try:
            index = to_class_index(read_image(row["mask"]), values, f"{row['mask']}")
        except ValueError as error:
            return 0, [], f"{labels[row['image_id']]}, column mask: {error}"
        counts = np.bincount(index.ravel(), minlength=len(values))
        return int(counts[1:].sum()), [c for c in range(1, len(values)) if counts[c]], None

    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = list(pool.map(mask_classes, [row for _, row in sheet.iterrows()]))
    problems += [p for _, _, p in found if p]
    if problems:
        raise SheetError(problems, where)

    names = list(classes)
    manifest = sheet.copy()
    manifest["height"], manifest["width"] = info["height"].to_numpy(), info["width"].to_numpy()
    for column in channels:
        manifest[f"present_{column}"] = (manifest[column].astype(str) != "").astype(int)
    manifest["mask_area"] = [area for area, _, _ in found]
    manifest["mask_classes"] = [";".join(names[c] for c in present) for _, present, _ in found]
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    if train.empty:
        raise SheetError(["no train rows: cross-validation needs images with masks"], where)
    summary = {
        "channels": channels,
        "input_channels": input_channels(channels, depths),
        "depths": depths,
        "classes": names,
        "train_images": len(train),
        "test_images": len(test),
        "subjects": int(train["subject"].nunique()),
        "sizes": sorted({f"{h}x{w}" for h, w in zip(manifest["height"], manifest["width"])}),
        "missing_channels": {c: int((manifest[c].astype(str) == "").sum()) for c in channels},
        "images_with_class": {names[c]: int(sum(names[c] in s.split(";") for s in train["mask_classes"]))
                              for c in range(1, len(names))},
    }
    return train, test, summary


def _resize_labels(label: np.ndarray, n_classes: int, size: tuple[int, int]) -> np.ndarray:
    """Class-index map (H, W) -> (h, w): the most likely class of the resized one-hot maps."""
    if label.shape == size:
        return label.astype(np.uint8)
    import torch  # here: the jobs that only read manifests need no torch (seconds to import)
    import torch.nn.functional as F

    onehot = F.one_hot(torch.from_numpy(label.astype(np.int64)), n_classes).permute(2, 0, 1).float()[None]
    out = F.interpolate(onehot, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return out.argmax(0).to(torch.uint8).numpy()


def _read_channels(row, depths: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) stack of one row's channel files (missing ones zero) and its presence flags."""
    height, width = int(row["height"]), int(row["width"])
    planes, flags = [], []
    for column, depth in depths.items():
        path = str(row[column]) if not pd.isna(row[column]) else ""
        if path:
            image = read_image(path)
            planes.append(image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0))
        else:
            planes.append(np.zeros((depth, height, width), np.uint8))
        flags += [bool(path)] * depth
    dtype = np.uint16 if any(p.dtype == np.uint16 for p in planes) else np.uint8
    return np.concatenate([p.astype(dtype) for p in planes]), np.asarray(flags, dtype=bool)


def load_arrays(manifest: pd.DataFrame, *, depths: dict[str, int], size, classes: dict | None = None,
                threads: int = 4) -> dict[str, np.ndarray]:
    """Arrays of one split at ``size``: ``image_id, images (N,C,h,w), present (N,C), height, width``
    and, with ``classes``, ``masks`` (N,h,w) class indices and the ``classes`` names.

    ``depths``: image channels of each sheet channel column, in the sheet's column order
    (the manifest summary's ``depths``, whose JSON file keeps its keys sorted, reordered
    by its ``channels``).
    """
    from plexus.data.resize import resize_images  # torch, only for the jobs that resize

    size = (int(size[0]), int(size[1]))
    n_inputs = sum(depths.values())

    def one(row):
        stack, flags = _read_channels(row, depths)
        mask = None
        if classes is not None:
            mask = _resize_labels(read_class_mask(row["mask"], classes), len(classes), size)
        return resize_images(stack, size), flags, mask

    with ThreadPoolExecutor(max(1, threads)) as pool:
        rows = list(pool.map(one, [row for _, row in manifest.iterrows()]))
    dtype = np.uint16 if any(r[0].dtype == np.uint16 for r in rows) else np.uint8
    out = {
        "image_id": manifest["image_id"].to_numpy(str),
        "images": np.stack([r[0].astype(dtype) for r in rows]) if rows else np.zeros((0, n_inputs, *size), dtype),
        "present": np.stack([r[1] for r in rows]) if rows else np.zeros((0, n_inputs), bool),
        "height": manifest["height"].to_numpy(np.int64),
        "width": manifest["width"].to_numpy(np.int64),
    }
    if classes is not None:
        out["masks"] = np.stack([r[2] for r in rows])
        out["classes"] = np.asarray(list(classes), dtype=str)
    return out
