"""Read and validate a raw folder in the Kaggle layout; build the manifests.

Layout: ``train/{subject}_{image}.tif`` with ``train/{subject}_{image}_mask.tif``
and ``test/{n}.tif``; every file a 420x580 uint8 grayscale TIFF, masks in {0, 255}.
Every file is read once. All problems are collected and raised together in one
:class:`IngestError` whose message names each file and what is wrong with it, so a
user fixes the folder in one go, before any training starts. Nothing is ever
written into the raw folder.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.errors import DataError
from plexus.io.rle import decode, encode
from plexus.io.tiff import TiffLayoutError, read_tiff

TRAIN_IMAGE = re.compile(r"^(?P<subject>[1-9]\d*)_(?P<image>[1-9]\d*)\.tif$")
TRAIN_MASK = re.compile(r"^(?P<subject>[1-9]\d*)_(?P<image>[1-9]\d*)_mask\.tif$")
TEST_IMAGE = re.compile(r"^(?P<number>[1-9]\d*)\.tif$")
TIFF_SUFFIXES = {".tif", ".tiff"}
MAX_LISTED = 25
#: Shape (rows, columns) of every image and mask of the Kaggle layout (checked, not assumed:
#: every later stage reads each image's size from the manifest)
KAGGLE_SHAPE = (420, 580)
#: the mask values of the Kaggle layout, as the config's ``classes`` would name them
KAGGLE_CLASSES = {"background": 0, "nerve": 255}


class IngestError(DataError):
    """The raw folder has problems; the message lists each file and its problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        lines = [f"{len(problems)} problem(s) in the raw data:"] + [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


def _tiffs(folder: Path, problems: list[str]) -> list[Path]:
    if not folder.is_dir():
        problems.append(f"{folder}: folder not found (expected the Kaggle layout train/ and test/)")
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith("."))


def _summarise(path: Path, is_mask: bool, shape: tuple[int, int]) -> tuple[str | None, tuple[int, str] | None]:
    """Check one file and keep only what the manifest needs: a mask's area and RLE.

    The arrays themselves are dropped here, in the worker: holding them would put the
    whole dataset in memory (about 4 GB at Kaggle scale).
    """
    error, array = _check_file(path, is_mask, shape)
    if error or not is_mask:
        return error, None
    return None, (int(np.count_nonzero(array)), encode(array))


def _check_file(path: Path, is_mask: bool, shape: tuple[int, int]) -> tuple[str | None, np.ndarray | None]:
    try:
        array = read_tiff(path)
    except TiffLayoutError as exc:
        return str(exc), None
    except Exception as exc:  # tifffile raises many types for corrupt files
        return f"{path}: unreadable TIFF ({type(exc).__name__}: {exc})", None
    if array.dtype != np.uint8:
        return f"{path}: dtype {array.dtype}, expected uint8", None
    if array.shape != tuple(shape):
        return f"{path}: shape {array.shape}, expected {tuple(shape)} (rows, columns, one grayscale channel)", None
    if is_mask:
        values = np.unique(array)
        if not set(values.tolist()) <= {0, 255}:
            shown = values[:8].tolist()
            more = "..." if len(values) > 8 else ""
            return f"{path}: mask is not binary, values {shown}{more}, expected only 0 and 255", None
    return None, array


def find_files(raw_dir: Path, problems: list[str], parts=("train", "test")) -> tuple[dict, dict, dict]:
    """The files of the Kaggle layout by name: train images and masks by ``(subject, image)``,
    test images by number. Naming problems (malformed names, an image without its mask or a
    mask without its image, empty folders) are appended to ``problems``; contents are not read.
    ``parts``: the folders looked at (the workflow reads ``train/`` and ``test/`` in jobs of their own)."""
    images, masks, tests = {}, {}, {}
    for path in _tiffs(raw_dir / "train", problems) if "train" in parts else ():
        if m := TRAIN_MASK.match(path.name):
            masks[(int(m["subject"]), int(m["image"]))] = path
        elif m := TRAIN_IMAGE.match(path.name):
            images[(int(m["subject"]), int(m["image"]))] = path
        else:
            problems.append(f"{path}: malformed name, expected SUBJECT_IMAGE.tif or SUBJECT_IMAGE_mask.tif")
    for path in _tiffs(raw_dir / "test", problems) if "test" in parts else ():
        if m := TEST_IMAGE.match(path.name):
            tests[int(m["number"])] = path
        else:
            problems.append(f"{path}: malformed name, expected N.tif (N a positive integer)")
    for key in sorted(images.keys() - masks.keys()):
        expected = images[key].with_name(f"{key[0]}_{key[1]}_mask.tif")
        problems.append(f"{images[key]}: image without a mask (expected {expected})")
    for key in sorted(masks.keys() - images.keys()):
        expected = masks[key].with_name(f"{key[0]}_{key[1]}.tif")
        problems.append(f"{masks[key]}: mask without an image (expected {expected})")
    if "train" in parts and not images and (raw_dir / "train").is_dir():
        problems.append(f"{raw_dir / 'train'}: no training images")
    if "test" in parts and not tests and (raw_dir / "test").is_dir():
        problems.append(f"{raw_dir / 'test'}: no test images")
    return images, masks, tests


def scan(
    raw_dir: str | Path, *, shape=KAGGLE_SHAPE, threads: int = 4, parts=("train", "test")
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validate ``raw_dir`` and return ``(train, test, train_masks)`` frames.

    ``parts``: the image sets read (:func:`find_files`); a set left out gives empty frames.

    ``train``: image_id, subject, image, image_path, mask_path, height, width, mask_area.
    ``test``: image_id, image_path, height, width.
    ``train_masks``: subject, img, pixels (Kaggle's train_masks.csv layout, RLE).
    Raises :class:`IngestError` listing every problem found.
    """
    raw_dir = Path(raw_dir)
    problems: list[str] = []
    images, masks, tests = find_files(raw_dir, problems, parts)

    pairs = sorted(images.keys() & masks.keys())
    jobs = [(images[k], False) for k in pairs] + [(masks[k], True) for k in pairs]
    jobs += [(tests[n], False) for n in sorted(tests)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = list(pool.map(lambda job: _summarise(job[0], job[1], shape), jobs))
    problems += [err for err, _ in results if err]
    if problems:
        raise IngestError(problems)

    mask_summaries = [summary for (_, is_mask), (_, summary) in zip(jobs, results) if is_mask]
    train = pd.DataFrame({
        "image_id": [f"{s}_{i}" for s, i in pairs],
        "subject": [s for s, _ in pairs],
        "image": [i for _, i in pairs],
        "image_path": [str(images[k]) for k in pairs],
        "mask_path": [str(masks[k]) for k in pairs],
        "height": shape[0],
        "width": shape[1],
        "mask_area": [area for area, _ in mask_summaries],
    })
    test = pd.DataFrame({
        "image_id": [str(n) for n in sorted(tests)],
        "image_path": [str(tests[n]) for n in sorted(tests)],
        "height": shape[0],
        "width": shape[1],
    })
    train_masks = pd.DataFrame({
        "subject": train["subject"], "img": train["image"], "pixels": [rle for _, rle in mask_summaries],
    })
    return train, test, train_masks


def scan_test(paths: dict[int, Path], *, shape=KAGGLE_SHAPE, threads: int = 4) -> pd.DataFrame:
    """The test manifest (``image_id, image_path, height, width``, sorted by number) of test images
    given by number, each checked as :func:`scan` checks it; :class:`IngestError` lists every problem.
    ``plexus predict`` builds the manifest of new images with it."""
    numbers = sorted(paths)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        problems = [err for err, _ in pool.map(lambda n: _summarise(Path(paths[n]), False, shape), numbers) if err]
    if problems:
        raise IngestError(problems)
    return pd.DataFrame({"image_id": [str(n) for n in numbers], "image_path": [str(paths[n]) for n in numbers],
                         "height": shape[0], "width": shape[1]})


def mask_rles(train_masks: pd.DataFrame) -> dict[str, str]:
    """``{image_id: RLE}`` of a train_masks frame (``S_I`` ids; an empty string for no mask)."""
    ids = train_masks["subject"].astype(str) + "_" + train_masks["img"].astype(str)
    return dict(zip(ids.tolist(), train_masks["pixels"].fillna("").tolist()))


def load_masks(train_masks: pd.DataFrame | dict, image_ids, shape=KAGGLE_SHAPE) -> np.ndarray:
    """Decode the masks of ``image_ids`` (``S_I``) from a train_masks frame, or from its
    :func:`mask_rles` mapping (callers that decode batch by batch build it once); uint8 {0, 1}."""

    by_id = train_masks if isinstance(train_masks, dict) else mask_rles(train_masks)
    out = np.zeros((len(image_ids), *shape), dtype=np.uint8)
    for row, image_id in enumerate(image_ids):
        out[row] = decode(by_id[image_id], shape)
    return out


def read_stack(paths, threads: int = 4) -> np.ndarray:
    """Read TIFFs into one (N, H, W) uint8 array."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        return np.stack(list(pool.map(read_tiff, paths)))


def read_resized(paths, resize, threads: int = 4, chunk: int = 256) -> np.ndarray:
    """``resize(read_stack(paths))``, ``chunk`` files at a time: the full-size stack of a
    whole dataset (1.4 GB of 420x580 images at Kaggle scale) is never in memory."""
    paths = list(paths)
    parts = [resize(read_stack(paths[lo:lo + chunk], threads)) for lo in range(0, len(paths), chunk)]
    if not parts:
        raise ValueError("no files to read")
    return np.concatenate(parts)
