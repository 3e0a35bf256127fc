"""Check a raw folder in the Kaggle layout: the layout's own checks, and its run-length table.

Layout: ``train/{subject}_{image}.tif`` with ``train/{subject}_{image}_mask.tif``
and ``test/{n}.tif``; every file a 420x580 uint8 grayscale TIFF, masks in {0, 255}.
The layout is one importer among the others: its sheet (:func:`plexus.data.importers.kaggle_nerve`)
becomes the manifest and arrays every format has (:mod:`plexus.data.dataset`); this module adds
the layout's own checks, before that, and Kaggle's ``train_masks.csv``. All problems are
collected and raised together in one :class:`IngestError` whose message names each file and
what is wrong with it, so a user fixes the folder in one go, before any training starts. Nothing is ever
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


def _summarise(path: Path, is_mask: bool, shape: tuple[int, int]) -> tuple[str | None, str | None]:
    """Check one file and keep only what the layout's table needs: a mask's RLE.

    The arrays themselves are dropped here, in the worker: holding them would put the
    whole dataset in memory (about 4 GB at Kaggle scale).
    """
    error, array = _check_file(path, is_mask, shape)
    if error or not is_mask:
        return error, None
    return None, encode(array)


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


def check_layout(
    raw_dir: str | Path, *, shape=KAGGLE_SHAPE, threads: int = 4, parts=("train", "test")
) -> pd.DataFrame:
    """Check every file of ``raw_dir`` in the Kaggle layout and return its ``train_masks`` table.

    These are the layout's own checks, made before the manifest that every format shares
    (:func:`plexus.data.dataset.part_manifest` of :func:`plexus.data.importers.kaggle_nerve`'s
    sheet): names, 420x580, uint8, one page, masks in {0, 255}. ``parts``: the image sets read
    (:func:`find_files`). ``train_masks``: subject, img, pixels (Kaggle's train_masks.csv layout,
    RLE), a row per training image sorted by (subject, image); no rows when ``train`` is not read.
    Raises :class:`IngestError` listing every problem.
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
    rles = [rle for (_, is_mask), (_, rle) in zip(jobs, results) if is_mask]
    return pd.DataFrame({"subject": [s for s, _ in pairs], "img": [i for _, i in pairs], "pixels": rles},
                        columns=["subject", "img", "pixels"])


def check_test_images(paths, *, shape=KAGGLE_SHAPE, threads: int = 4) -> None:
    """Check test images as :func:`check_layout` checks them (``plexus predict``'s new images);
    :class:`IngestError` lists every problem."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        problems = [err for err, _ in pool.map(lambda p: _summarise(Path(p), False, shape), list(paths)) if err]
    if problems:
        raise IngestError(problems)


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
