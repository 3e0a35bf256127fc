"""Importers: build a sample sheet (:mod:`plexus.data.sheet`) from a common folder layout.

Each importer takes the dataset's location and returns a sheet frame (columns
``image_id, subject, split, image, mask``, every cell a string, absolute paths),
which :func:`plexus.data.sheet.write_sheet` writes and
:func:`plexus.data.sheet.read_sheet` reads back equal. Importers look at file
*names* only; :func:`plexus.data.sheet.check_files` then checks the files
themselves. Problems are collected and raised together as one :class:`LayoutError`
naming each file. Nothing is ever written into the dataset's folder.

``IMPORTERS`` maps a name to an importer; :func:`import_dataset` calls one by name:

* ``kaggle_nerve(raw_dir)``: the Kaggle ultrasound nerve layout plexus ingests today;
* ``folders(root, images=, masks=, test=, subject_pattern=)``: ``images/`` + ``masks/``
  matched by file stem, optional ``test/``;
* ``sheet(path, channels=, base_dir=)``: the user's own sheet.

There is no ``dsb2018`` importer: a DSB2018 training image has one mask file *per
nucleus* (instance masks, a list), which a single ``mask`` cell cannot hold without
first merging them into a label image; :mod:`plexus.data.dsb2018` keeps reading that
layout itself.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from plexus.data.ingest import find_files
from plexus.data.sheet import NO_SUBJECT_WARNING, SheetWarning, read_sheet, row_schema, sheet_frame
from plexus.io.images import IMAGE_SUFFIXES

__all__ = ["IMPORTERS", "LayoutError", "folders", "import_dataset", "kaggle_nerve", "sheet"]

#: Problems listed in full in an error message; the rest are counted.
MAX_LISTED = 20
IMAGE_ID = re.compile(row_schema()["properties"]["image_id"]["pattern"])
MASK_SUFFIX = "_mask"


class LayoutError(ValueError):
    """A dataset folder that does not fit its importer; ``problems`` holds one line per file at fault."""

    def __init__(self, problems: Sequence[str], where: str | os.PathLike):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in {where}:"] + [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join(lines))


# --- Kaggle ultrasound nerve ------------------------------------------------------------------


def kaggle_nerve(raw_dir: str | os.PathLike) -> pd.DataFrame:
    """The sheet of a folder in the Kaggle nerve layout (``train/``, ``test/``; see
    :mod:`plexus.data.ingest`), with ingest's naming rules and messages.

    Train rows ``image_id = S_I`` and ``subject = S`` (integers as written by
    :func:`plexus.data.ingest.scan`, e.g. ``"10_3"``), sorted by (subject, image);
    then test rows ``image_id = N``, sorted by number, with an empty subject and mask.
    Like ingest, files other than ``*.tif``/``*.tiff`` and hidden files are ignored.
    Sizes, dtypes and mask values are not checked here (ingest does, and
    :func:`plexus.data.sheet.check_files` checks sizes).
    """
    raw_dir = Path(raw_dir).absolute()
    problems: list[str] = []
    images, masks, tests = find_files(raw_dir, problems)
    if problems:
        raise LayoutError(problems, raw_dir)

    pairs = sorted(images.keys() & masks.keys())
    rows = [{"image_id": f"{s}_{i}", "subject": str(s), "split": "train",
             "image": str(images[(s, i)]), "mask": str(masks[(s, i)])} for s, i in pairs]
    rows += [{"image_id": str(n), "subject": "", "split": "test", "image": str(tests[n]), "mask": ""}
             for n in sorted(tests)]
    return sheet_frame(rows)


# --- images/ + masks/ folders -----------------------------------------------------------------


def _listing(folder: Path, problems: list[str]) -> dict[str, Path]:
    """``{stem: path}`` of the image files in ``folder``; anything else there is a problem."""
    out: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            problems.append(f"{path}: unexpected folder (expected only image files in {folder})")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{path}: unsupported file type (expected {', '.join(IMAGE_SUFFIXES)})")
        elif path.stem in out:
            problems.append(f"{path}: same name as {out[path.stem].name} (one file per stem)")
        else:
            out[path.stem] = path
    return out


def folders(root: str | os.PathLike, *, images: str = "images", masks: str = "masks", test: str | None = "test",
            subject_pattern: str | None = None) -> pd.DataFrame:
    """The sheet of ``root/images/`` (train images) + ``root/masks/`` + optional ``root/test/``.

    Files are ``.png``, ``.tif`` or ``.tiff``; hidden files are ignored, anything
    else (another type, a sub-folder) is an error. ``image_id`` is the file stem
    (``p01_003.png`` -> ``p01_003``), which must be a safe file name and unique
    across train and test, also ignoring case. The mask of ``images/{stem}.*`` is
    ``masks/{stem}.*`` or ``masks/{stem}_mask.*`` (any of the suffixes, not
    necessarily the image's); both present, an image without a mask and a mask
    without an image are errors naming the files.

    ``subject_pattern``: a regular expression with a named group ``subject``, matched
    against the whole stem (:func:`re.fullmatch`), e.g. ``r"(?P<subject>p\\d+)_.*"``.
    A train image whose stem does not match is an error; a test image gets the
    subject when its stem matches and an empty one otherwise. Without a pattern every
    image is its own subject (``subject = image_id``) and a :class:`SheetWarning` says
    so. Rows: train sorted by stem, then test sorted by stem.
    """
    pattern = None
    if subject_pattern is not None:
        pattern = re.compile(subject_pattern)
        if "subject" not in pattern.groupindex:
            raise ValueError(f"subject_pattern {subject_pattern!r} has no named group (?P<subject>...)")
    root = Path(root).absolute()
    problems: list[str] = []
    listed = {}
    for name, required in ((images, True), (masks, True), (test, False)):
        if name is None:
            continue
        folder = root / name
        if folder.is_dir():
            listed[name] = _listing(folder, problems)
        elif required:
            problems.append(f"{folder}: folder not found (expected {images}/ and {masks}/, optionally {test}/)")
    train_files, mask_files = listed.get(images, {}), listed.get(masks, {})
    test_files = listed.get(test, {}) if test is not None else {}
    if images in listed and not train_files:
        problems.append(f"{root / images}: no training images")

    pairs: dict[str, Path] = {}
    claimed: dict[str, str] = {}  # mask stem -> image stem
    for stem, path in train_files.items():
        found = [m for m in (stem, stem + MASK_SUFFIX) if m in mask_files]
        if not found:
            if masks in listed:
                problems.append(f"{path}: image without a mask (expected {root / masks}/{stem}.png, "
                                f"or {stem}_mask.png; .tif or .tiff also do)")
            continue
        if len(found) > 1:
            problems.append(f"{path}: two masks match, {mask_files[found[0]].name} and "
                            f"{mask_files[found[1]].name} (keep one)")
            claimed.update({m: stem for m in found})
            continue
        if found[0] in claimed:
            problems.append(f"{mask_files[found[0]]}: mask of two images, {train_files[claimed[found[0]]].name} "
                            f"and {path.name} (rename one)")
            continue
        claimed[found[0]] = stem
        pairs[stem] = mask_files[found[0]]
    for stem, path in mask_files.items():
        if stem not in claimed:
            base = stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else stem
            problems.append(f"{path}: mask without an image (expected {root / images}/{base}.png, .tif or .tiff)")

    seen: dict[str, Path] = {}
    for path in [*train_files.values(), *test_files.values()]:
        if not IMAGE_ID.fullmatch(path.stem):
            problems.append(f"{path}: the name {path.stem!r} cannot be an image_id: 1 to 128 letters, digits, "
                            "'.', '_' or '-', starting with a letter or digit")
        key = path.stem.casefold()
        if key in seen:
            problems.append(f"{path}: same image_id as {seen[key]} (names must differ, also ignoring case)")
        else:
            seen[key] = path

    def subject_of(stem: str, path: Path, required: bool) -> str:
        if pattern is None:
            return stem
        match = pattern.fullmatch(stem)
        if match and match["subject"]:
            return match["subject"]
        if required:
            problems.append(f"{path}: the name {stem!r} does not match subject_pattern {subject_pattern!r}"
                            + (" (the subject group is empty)" if match else ""))
        return ""

    rows = [{"image_id": stem, "subject": subject_of(stem, path, True), "split": "train", "image": str(path),
             "mask": str(pairs.get(stem, ""))} for stem, path in sorted(train_files.items())]
    rows += [{"image_id": stem, "subject": subject_of(stem, path, False), "split": "test", "image": str(path),
              "mask": ""} for stem, path in sorted(test_files.items())]
    if problems:
        raise LayoutError(problems, root)
    if pattern is None:
        warnings.warn(f"{root}: {NO_SUBJECT_WARNING}", SheetWarning, stacklevel=2)
    return sheet_frame(rows)


# --- the user's sheet, and the registry --------------------------------------------------------


def sheet(path: str | os.PathLike, **options) -> pd.DataFrame:
    """The user's own sheet: :func:`plexus.data.sheet.read_sheet` (``channels``, ``base_dir``)."""
    return read_sheet(path, **options)


IMPORTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "kaggle_nerve": kaggle_nerve,
    "folders": folders,
    "sheet": sheet,
}


def import_dataset(name: str, source: str | os.PathLike, **options) -> pd.DataFrame:
    """``IMPORTERS[name](source, **options)``; an unknown name is a ValueError listing the known ones."""
    try:
        importer = IMPORTERS[name]
    except KeyError:
        raise ValueError(f"unknown importer {name!r} (known: {', '.join(sorted(IMPORTERS))})") from None
    return importer(source, **options)
