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
for tuning, metrics and outputs (:mod:`plexus.tasks.classes`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from plexus.data.sheet import MASK_SEPARATOR, SheetError, _row_labels, check_files
from plexus.io.images import ImageError, is_lossy, palette_gray_values, read_image, read_mask
from plexus.labels import IGNORE_LABEL, class_table, snap_to_values, to_class_index

__all__ = ["COLOR_MODES", "build_manifest", "class_mask", "input_channels", "load_arrays", "part_manifest",
           "read_class_mask"]

#: ``data.color``: how image channels are read (auto = as stored, a column all gray or all RGB)
COLOR_MODES = ("auto", "gray", "rgb")
#: files of each kind named in the error of a column that mixes gray and RGB
LISTED_FILES = 3


def class_mask(path, classes: dict, ignore: dict | None = None, where: str | None = None) -> tuple[np.ndarray, float]:
    """The class-index map (uint8) of the mask file ``path`` and the share of its pixels snapped.

    Palette files give their indices (or, when those are not class values and the palette is
    gray, its gray levels: a 0/255 mask saved as GIF); an RGB mask with equal channels reads as
    one. A lossy (JPEG) mask is snapped to the nearest class value first. Pixels of an ``ignore``
    class (name -> value) become :data:`plexus.labels.IGNORE_LABEL`. A value outside ``classes``
    is a ValueError naming the file.
    """
    where = where or str(path)
    values = class_table(classes)[1]
    ignored = list((ignore or {}).values())
    parts = [_one_class_mask(p, values, ignored, where) for p in str(path).split(MASK_SEPARATOR)]
    if len(parts) == 1:
        return parts[0]
    shapes = {index.shape for index, _ in parts}
    if len(shapes) > 1:
        raise ValueError(f"{where}: the masks of one image differ in size {sorted(shapes)}")
    # several masks of one image (BUSI's _mask_1): a pixel takes the highest class any marks it with
    stack = np.stack([index for index, _ in parts])
    merged = np.where((stack == IGNORE_LABEL).all(0), IGNORE_LABEL, np.where(stack == IGNORE_LABEL, 0, stack).max(0))
    return merged.astype(np.uint8), max(share for _, share in parts)


def _one_class_mask(path, values, ignored, where) -> tuple[np.ndarray, float]:
    try:
        mask = read_mask(path)
    except ImageError as error:
        raise ValueError(str(error)) from error
    share = 0.0
    if is_lossy(path):
        mask, share = snap_to_values(mask, values, ignored)
    try:
        return to_class_index(mask, values, where, ignored), share
    except ValueError:
        gray = palette_gray_values(path)
        if gray is None:
            raise
        return to_class_index(gray[mask], values, where, ignored), share


def read_class_mask(path, classes: dict, where: str | None = None, ignore: dict | None = None) -> np.ndarray:
    """The class-index map (uint8) of the mask file ``path`` (:func:`class_mask` without the share)."""
    return class_mask(path, classes, ignore, where)[0]


def input_channels(sheet_channels, depths: dict[str, int]) -> list[str]:
    """Names of the network's input channels: a gray column is one, an RGB column three."""
    names = []
    for column in sheet_channels:
        names += [column] if depths[column] == 1 else [f"{column}.{c}" for c in "rgb"[: depths[column]]]
    return names


def _column_depths(sheet: pd.DataFrame, info: pd.DataFrame, channels: list[str], color: str,
                   labels: list[str]) -> tuple[dict[str, int], list[str]]:
    """Input channels of each channel column under ``data.color``, and the problems found."""
    problems, depths = [], {}
    for column in channels:
        counts = info[f"{column}_channels"].to_numpy()
        if color != "auto":
            depths[column] = 1 if color == "gray" else 3
            continue
        kinds = sorted({int(v) for v in counts if v})
        if len(kinds) > 1:
            listed = "; ".join(
                f"{'gray' if k == 1 else 'RGB'}: " + ", ".join(
                    f"{label} {sheet[column].iloc[i]}" for i, label in
                    [(i, labels[i]) for i in np.flatnonzero(counts == k)[:LISTED_FILES]])
                + (f" and {int((counts == k).sum()) - LISTED_FILES} more" if (counts == k).sum() > LISTED_FILES else "")
                for k in kinds)
            problems.append(f"column {column}: mixes gray and RGB images ({listed}); set data.color: gray "
                            "(RGB converted by luminance) or rgb (gray repeated in three channels)")
        depths[column] = kinds[0] if kinds else 1
    return depths, problems


def _checked_manifest(sheet: pd.DataFrame, *, channels, classes: dict, allow_missing_channels: bool,
                      threads: int, ignore: dict | None, color: str, max_snapped: float):
    """The manifest rows of every row of ``sheet`` (checked), its column depths, the observed depths
    (columns with a file only) and the snapped shares (see :func:`build_manifest`)."""
    channels = list(channels)
    if color not in COLOR_MODES:
        raise ValueError(f"data.color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    where = sheet.attrs.get("sheet")
    info = check_files(sheet, channels=channels, allow_missing_channels=allow_missing_channels, threads=threads)
    row_labels = _row_labels(sheet)
    depths, problems = _column_depths(sheet, info, channels, color, row_labels)
    observed = {c: int(info[f"{c}_channels"].max()) for c in channels if len(info) and info[f"{c}_channels"].max()}
    labels = dict(zip(sheet["image_id"].astype(str), row_labels))
    n_classes = len(class_table(classes)[1])

    def mask_classes(row) -> tuple[int, list[int], str | None, float]:
        if not row["mask"]:
            return 0, [], None, 0.0
        try:
            index, share = class_mask(row["mask"], classes, ignore, f"{row['mask']}")
        except ValueError as error:
            return 0, [], f"{labels[row['image_id']]}, column mask: {error}", 0.0
        if share > max_snapped:
            return 0, [], (f"{labels[row['image_id']]}, column mask: {row['mask']}: snapping this lossy mask to "
                           f"the class values changes {share:.1%} of its pixels, more than "
                           f"data.max_snapped_share = {max_snapped:.1%} (save masks losslessly, e.g. as PNG)"), share
        counts = np.bincount(index.ravel(), minlength=IGNORE_LABEL + 1)
        return int(counts[1:n_classes].sum()), [c for c in range(1, n_classes) if counts[c]], None, share

    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = list(pool.map(mask_classes, [row for _, row in sheet.iterrows()]))
    problems += [p for _, _, p, _ in found if p]
    if problems:
        raise SheetError(problems, where)
    snapped = [share for _, _, _, share in found if share > 0]
    if snapped:
        print(f"snapped {len(snapped)} lossy mask(s) to the class values: {float(np.mean(snapped)):.2%} of their "
              f"pixels changed on average, at most {max(snapped):.2%}")

    names = list(classes)
    manifest = sheet.copy()
    manifest["height"], manifest["width"] = info["height"].to_numpy(), info["width"].to_numpy()
    for column in channels:
        manifest[f"present_{column}"] = (manifest[column].astype(str) != "").astype(int)
    manifest["mask_area"] = [area for area, _, _, _ in found]
    manifest["mask_classes"] = [";".join(names[c] for c in present) for _, present, _, _ in found]
    return manifest, depths, observed, snapped


def _summary(train: pd.DataFrame, rows: pd.DataFrame, channels: list[str], depths: dict, color: str,
             classes: dict, ignore: dict | None, snapped: list) -> dict:
    names = list(classes)
    return {
        "channels": channels,
        "input_channels": input_channels(channels, depths),
        "depths": depths,
        "color": color,
        "classes": names,
        "ignore": dict(ignore or {}),
        "snapped_masks": len(snapped),
        "train_images": len(train),
        "subjects": int(train["subject"].nunique()),
        "sizes": sorted({f"{h}x{w}" for h, w in zip(rows["height"], rows["width"])}),
        "missing_channels": {c: int((rows[c].astype(str) == "").sum()) for c in channels},
        "images_with_class": {names[c]: int(sum(names[c] in s.split(";") for s in train["mask_classes"]))
                              for c in range(1, len(names))},
    }


def build_manifest(sheet: pd.DataFrame, *, channels, classes: dict, allow_missing_channels: bool = False,
                   threads: int = 4, ignore: dict | None = None, color: str = "auto",
                   max_snapped: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Train and test manifests of a :func:`plexus.data.sheet.read_sheet` frame, and a summary dict.

    ``ignore``: classes (name -> mask value) whose pixels count nowhere; ``color``: one of
    :data:`COLOR_MODES`; ``max_snapped``: the largest share of a lossy (JPEG) mask's pixels that
    snapping to the class values may change. Raises :class:`SheetError` for unreadable files,
    channels of different sizes, a mask whose size differs from its image, a mask value not in
    ``classes``, a lossy mask that snapping changes too much, and (``color: auto``) a channel
    column that mixes gray and RGB images. The workflow builds each image set's manifest in a
    job of its own (:func:`part_manifest`).
    """
    channels = list(channels)
    manifest, depths, _, snapped = _checked_manifest(
        sheet, channels=channels, classes=classes, allow_missing_channels=allow_missing_channels,
        threads=threads, ignore=ignore, color=color, max_snapped=max_snapped)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    if train.empty:
        raise SheetError(["no train rows: cross-validation needs images with masks"], sheet.attrs.get("sheet"))
    summary = _summary(train, manifest, channels, depths, color, classes, ignore, snapped)
    summary["test_images"] = len(test)
    return train, test, summary


def part_rows(sheet: pd.DataFrame, part: str) -> pd.DataFrame:
    """The rows of one image set (``split`` ``test``, or every other row for ``train``: a wrong split
    is then the training manifest's error), the sheet's ``attrs`` kept."""
    rows = sheet[(sheet["split"] == "test") == (part == "test")].reset_index(drop=True)
    rows.attrs = dict(sheet.attrs)
    return rows


def part_manifest(sheet: pd.DataFrame, part: str, *, channels, classes: dict, allow_missing_channels: bool = False,
                  threads: int = 4, ignore: dict | None = None, color: str = "auto", max_snapped: float = 0.05,
                  train_depths: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """The manifest of one image set of ``sheet`` and its summary, reading that set's files only.

    ``train``: the :func:`build_manifest` summary of the training images (no test counts, so
    that the file never changes with the test images). ``test``: ``train_depths`` (the training
    summary's ``depths``) are the columns' depths; a test column whose files hold another
    number of channels is an error (``color: auto``), and the summary counts the test images.
    """
    channels = list(channels)
    rows = part_rows(sheet, part)
    where = sheet.attrs.get("sheet")
    if part == "train" and rows.empty:
        raise SheetError(["no train rows: cross-validation needs images with masks"], where)
    manifest, depths, observed, snapped = _checked_manifest(
        rows, channels=channels, classes=classes, allow_missing_channels=allow_missing_channels,
        threads=threads, ignore=ignore, color=color, max_snapped=max_snapped)
    if part == "train":
        return manifest, _summary(manifest, manifest, channels, depths, color, classes, ignore, snapped)
    if color == "auto" and train_depths is not None:
        kind = {1: "gray", 3: "RGB"}
        problems = [f"column {c}: the test images are {kind.get(d, d)}, the training images "
                    f"{kind.get(train_depths[c], train_depths[c])}; set data.color: gray (RGB converted by "
                    "luminance) or rgb (gray repeated in three channels)"
                    for c, d in observed.items() if c in train_depths and d != train_depths[c]]
        if problems:
            raise SheetError(problems, where)
    return manifest, {"test_images": len(manifest),
                      "sizes": sorted({f"{h}x{w}" for h, w in zip(manifest["height"], manifest["width"])}),
                      "missing_channels": {c: int((manifest[c].astype(str) == "").sum()) for c in channels}}


def _resize_labels(label: np.ndarray, n_classes: int, size: tuple[int, int]) -> np.ndarray:
    """Class-index map (H, W) -> (h, w): the most likely class of the resized one-hot maps.

    Ignored pixels (:data:`IGNORE_LABEL`) are one more map, so they stay ignored where they win.
    """
    if label.shape == size:
        return label.astype(np.uint8)
    import torch  # here: the jobs that only read manifests need no torch (seconds to import)
    import torch.nn.functional as F

    ignored = label == IGNORE_LABEL
    index = np.where(ignored, n_classes, label).astype(np.int64)
    depth = n_classes + int(ignored.any())
    onehot = F.one_hot(torch.from_numpy(index), depth).permute(2, 0, 1).float()[None]
    out = F.interpolate(onehot, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    resized = out.argmax(0).to(torch.uint8).numpy()
    resized[resized == n_classes] = IGNORE_LABEL
    return resized


def convert_color(image: np.ndarray, depth: int) -> np.ndarray:
    """A gray ``(H, W)`` or RGB ``(H, W, 3)`` image as ``depth`` channels: RGB to gray by luminance
    (ITU-R 601-2, Pillow's ``convert("L")`` weights, rounded), gray to RGB by repetition."""
    if image.ndim == 2:
        return image if depth == 1 else np.repeat(image[..., None], 3, axis=2)
    if depth == 3:
        return image
    gray = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114
    return np.clip(np.rint(gray), 0, np.iinfo(image.dtype).max).astype(image.dtype)


def _read_channels(row, depths: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) stack of one row's channel files (missing ones zero) and its presence flags.

    Each file is converted to its column's depth (``data.color``); a varying alpha is an error.
    """
    height, width = int(row["height"]), int(row["width"])
    planes, flags = [], []
    for column, depth in depths.items():
        path = str(row[column]) if not pd.isna(row[column]) else ""
        if path:
            image = convert_color(read_image(path, alpha="check"), depth)
            planes.append(image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0))
        else:
            planes.append(np.zeros((depth, height, width), np.uint8))
        flags += [bool(path)] * depth
    dtype = np.uint16 if any(p.dtype == np.uint16 for p in planes) else np.uint8
    return np.concatenate([p.astype(dtype) for p in planes]), np.asarray(flags, dtype=bool)


def load_arrays(manifest: pd.DataFrame, *, depths: dict[str, int], size, classes: dict | None = None,
                threads: int = 4, ignore: dict | None = None) -> dict[str, np.ndarray]:
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
            mask = _resize_labels(read_class_mask(row["mask"], classes, ignore=ignore), len(classes), size)
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
