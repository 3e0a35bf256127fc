"""Import of the Kaggle Data Science Bowl 2018 nuclei data (its folder layout, checked).

The competition's archives unpack to::

    root/stage1_train/{id}/images/{id}.png   one image (RGBA in the real data)
    root/stage1_train/{id}/masks/*.png       one binary mask per nucleus
    root/stage1_test/{id}/images/{id}.png

:func:`scan_dsb2018` lists the samples and checks everything that later steps rely
on, so a broken download fails here with every problem named at once (raised
together as one :class:`Dsb2018Error`) and not as a crash deep in training. Plain
files directly in a split folder and hidden entries (``.DS_Store``) are ignored;
``stage1_test`` may be missing (an empty test table). A training image may have an
empty ``masks/`` folder (no nucleus); every mask file must hold a nucleus.

Images are read as RGB (:func:`read_image`): 3 channels, whatever the file holds.
The alpha of the real RGBA images is constant 255 and carries nothing, so it is
dropped, not composited; grayscale files are repeated to 3 channels so that every
image fits one network input. Masks are single-channel PNGs (8-bit grayscale or
1-bit) with 0 as background and one other value as the nucleus. Masks of one image
must not overlap; the scan checks that too, as :func:`instance_labels` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

__all__ = ["Dsb2018Error", "instance_labels", "read_image", "read_mask", "scan_dsb2018"]

TRAIN, TEST = "stage1_train", "stage1_test"
COLUMNS = ["image_id", "image_path", "mask_paths", "height", "width", "channels"]
#: Problems listed in full in an error message; the rest are counted.
MAX_LISTED = 20
_IMAGE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
_MASK_MODES = {"1", "L"}


class Dsb2018Error(ValueError):
    """Problems found in a DSB2018 folder; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str], where: str = ""):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in {where}" if where else f"{len(self.problems)} problem(s)"
        lines = [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join([head + ":", *lines]))


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _open_png(path: Path) -> tuple[Image.Image | None, str | None]:
    """The decoded image, or None and why not."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return None, f"{path}: not a PNG file"
        image = Image.open(path)
        image.load()  # decode now: a truncated file fails here, not later
        return image, None
    except Exception as error:  # PIL raises many types for broken files
        return None, f"{path}: unreadable PNG ({type(error).__name__}: {error})"


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "RGB"):
        array = np.asarray(image)[..., :3]
    elif image.mode in ("L", "LA", "1"):
        gray = np.asarray(image.convert("L"))
        array = np.repeat(gray[..., None], 3, axis=2)
    else:  # palettes
        array = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image as uint8 (H, W, 3): alpha dropped, grayscale repeated, palettes expanded."""
    path = Path(path)
    image, problem = _open_png(path)
    if problem:
        raise Dsb2018Error([problem])
    if image.mode not in _IMAGE_MODES:
        raise Dsb2018Error([f"{path}: unsupported PNG mode {image.mode} (expected 8-bit gray, RGB or RGBA)"])
    return _to_rgb(image)


def _mask_or_problem(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """The boolean mask, or None and the problem with the file."""
    if path.suffix.lower() != ".png":
        return None, f"{path}: not a .png file"
    image, problem = _open_png(path)
    if problem:
        return None, problem
    if image.mode not in _MASK_MODES:
        return None, f"{path}: mask must be a single-channel PNG, got mode {image.mode}"
    values = np.asarray(image)
    if values.shape != tuple(shape):
        return None, f"{path}: mask shape {values.shape} differs from the image shape {tuple(shape)}"
    present = np.unique(values)
    foreground = present[present != 0]
    if len(foreground) == 0:
        return None, f"{path}: empty mask (no nonzero pixel)"
    if len(foreground) > 1:
        shown = ", ".join(map(str, foreground[:6].tolist())) + (", ..." if len(foreground) > 6 else "")
        return None, f"{path}: mask is not binary: values 0 and {len(foreground)} others ({shown})"
    return values != 0, None


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """One nucleus mask as bool (H, W); raises :class:`Dsb2018Error` if it is unusable."""
    mask, problem = _mask_or_problem(Path(path), shape)
    if problem:
        raise Dsb2018Error([problem])
    return mask


def _scan_split(folder: Path, with_masks: bool, problems: list[str]) -> pd.DataFrame:
    rows = []
    for sample in _visible(folder):
        if not sample.is_dir():
            continue
        image_id = sample.name
        images = sample / "images"
        if not images.is_dir():
            problems.append(f"{sample}: no images/ folder")
            continue
        expected = images / f"{image_id}.png"
        others = [p for p in _visible(images) if p != expected]
        for other in others:
            problems.append(f"{other}: unexpected file; the image must be named images/{image_id}.png")
        if not expected.is_file():
            if not others:
                problems.append(f"{images}: no {image_id}.png")
            continue
        image, problem = _open_png(expected)
        if problem:
            problems.append(problem)
            continue
        if image.mode not in _IMAGE_MODES:
            problems.append(f"{expected}: unsupported PNG mode {image.mode} (expected 8-bit gray, RGB or RGBA)")
            continue
        shape = (image.height, image.width)
        row = {"image_id": image_id, "image_path": str(expected), "height": shape[0], "width": shape[1],
               "channels": len(image.getbands())}
        if with_masks:
            masks = sample / "masks"
            if not masks.is_dir():
                problems.append(f"{sample}: no masks/ folder")
                continue
            paths = _visible(masks)
            problems.extend(_label_masks(paths, shape)[1])
            row["mask_paths"] = [str(p) for p in paths]
        rows.append(row)
    columns = COLUMNS if with_masks else [c for c in COLUMNS if c != "mask_paths"]
    return pd.DataFrame(rows, columns=columns)


def scan_dsb2018(root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test tables (image_id, image_path, [mask_paths,] height, width, channels), sorted by id.

    ``mask_paths`` (train only) lists each sample's mask files in sorted file-name
    order, the order :func:`instance_labels` numbers them. ``channels`` is what the
    file stores (4 for RGBA, 1 for gray); :func:`read_image` always gives 3.
    Raises :class:`Dsb2018Error` listing every problem found.
    """
    root = Path(root)
    problems: list[str] = []
    if not (root / TRAIN).is_dir():
        raise Dsb2018Error([f"{root / TRAIN}: no such folder"], str(root))
    train = _scan_split(root / TRAIN, True, problems)
    test = _scan_split(root / TEST, False, problems) if (root / TEST).is_dir() else \
        pd.DataFrame(columns=[c for c in COLUMNS if c != "mask_paths"])
    if problems:
        raise Dsb2018Error(problems, str(root))
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _label_masks(paths: Sequence[Path], shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Label map of the usable masks (1..N in sorted file-name order) and the problems found."""
    paths = sorted(paths, key=lambda p: p.name)
    labels = np.zeros(shape, dtype=np.int32)
    problems = []
    for k, path in enumerate(paths, start=1):
        mask, problem = _mask_or_problem(path, shape)
        if problem:
            problems.append(problem)
            continue
        shared = np.bincount(labels[mask], minlength=k)
        for other in np.flatnonzero(shared[1:]) + 1:
            problems.append(f"image {path.parent.parent.name}: masks {paths[other - 1].name} and {path.name} "
                            f"overlap in {int(shared[other])} pixel(s)")
        labels[mask & (labels == 0)] = k
    return labels, problems


def instance_labels(mask_paths: Sequence[str | os.PathLike], shape: tuple[int, int]) -> np.ndarray:
    """Label map (int32) of one image: the masks numbered 1..N in sorted file-name order.

    Overlapping masks raise :class:`Dsb2018Error` naming the image, both mask files
    and the number of shared pixels (every overlapping pair is listed); so does an
    unusable mask file.
    """
    labels, problems = _label_masks([Path(p) for p in mask_paths], tuple(shape))
    if problems:
        raise Dsb2018Error(problems)
    return labels
