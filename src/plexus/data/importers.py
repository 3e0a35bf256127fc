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
import string
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from plexus.data.ingest import find_files
from plexus.data.sheet import MASK_SEPARATOR, NO_SUBJECT_WARNING, SheetWarning, read_sheet, row_schema, sheet_frame
from plexus.errors import DataError
from plexus.io.images import IMAGE_SUFFIXES

__all__ = ["IMPORTERS", "LayoutError", "folders", "import_dataset", "kaggle_nerve", "sheet"]

#: Problems listed in full in an error message; the rest are counted.
MAX_LISTED = 20
IMAGE_ID = re.compile(row_schema()["properties"]["image_id"]["pattern"])


class LayoutError(DataError):
    """A dataset folder that does not fit its importer; ``problems`` holds one line per file at fault."""

    def __init__(self, problems: Sequence[str], where: str | os.PathLike):
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in {where}:"] + [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join(lines))


# --- Kaggle ultrasound nerve ------------------------------------------------------------------


def kaggle_nerve(raw_dir: str | os.PathLike, parts=("train", "test")) -> pd.DataFrame:
    """The sheet of a folder in the Kaggle nerve layout (``train/``, ``test/``; see
    :mod:`plexus.data.ingest`), with ingest's naming rules and messages.

    Train rows ``image_id = S_I`` and ``subject = S`` (integers as written by
    Kaggle's ``train_masks.csv``, e.g. ``"10_3"``), sorted by (subject, image);
    then test rows ``image_id = N``, sorted by number, with an empty subject and mask.
    Like ingest, files other than ``*.tif``/``*.tiff`` and hidden files are ignored.
    Sizes, dtypes and mask values are not checked here (ingest does, and
    :func:`plexus.data.sheet.check_files` checks sizes). ``parts``: the image sets read.
    """
    raw_dir = Path(raw_dir).absolute()
    problems: list[str] = []
    images, masks, tests = find_files(raw_dir, problems, parts)
    if problems:
        raise LayoutError(problems, raw_dir)

    pairs = sorted(images.keys() & masks.keys())
    rows = [{"image_id": f"{s}_{i}", "subject": str(s), "split": "train",
             "image": str(images[(s, i)]), "mask": str(masks[(s, i)])} for s, i in pairs]
    rows += [{"image_id": str(n), "subject": "", "split": "test", "image": str(tests[n]), "mask": ""}
             for n in sorted(tests)]
    return sheet_frame(rows)


# --- images/ + masks/ folders, and the layouts public datasets use ------------------------------

#: the sheet column that holds an image's class folder (``class_folders``)
CATEGORY_COLUMN = "category"
_UNSAFE = re.compile(r"[^\w.-]+")


def safe_id(stem: str) -> str:
    """An image_id from a file or folder name: runs of characters other than letters, digits,
    ``.``, ``_`` and ``-`` become one ``_`` (``"benign (1)"`` -> ``"benign_1"``)."""
    return _UNSAFE.sub("_", stem).strip("_.-") or "_"


def _image_files(folder: Path, problems: list[str], *, recurse: bool = False) -> list[Path]:
    """The image files of ``folder`` (sorted; hidden files skipped); anything else is a problem."""
    out = []
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if path.is_dir():
            if not recurse:
                problems.append(f"{path}: unexpected folder (expected only image files in {folder})")
        elif path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(f"{path}: unsupported file type (expected {', '.join(IMAGE_SUFFIXES)})")
        else:
            out.append(path)
    return out


def _find(base: Path, name: str) -> list[Path]:
    """Files ``base/name.<image suffix>`` (any suffix, any case)."""
    folder, stem = (base / name).parent, Path(name).name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.stem == stem
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def _numbered(base: Path, name: str) -> list[Path]:
    """Files ``base/name_1.*``, ``base/name_2.*``, ... (several masks of one image)."""
    folder, stem = (base / name).parent, Path(name).name
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(stem) + r"_(\d+)")
    found = [(int(m[1]), p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
             and (m := pattern.fullmatch(p.stem))]
    return [p for _, p in sorted(found)]


def folders(root: str | os.PathLike, *, images: str = "images", masks: str | None = "masks",
            test: str | None = "test", subject_pattern: str | None = None, mask_template: str | None = None,
            image_pattern: str | None = None, merge_masks: bool = False, cases: bool = False,
            image_template: str = "{case}", class_folders: bool = False, test_prefix: str = "",
            test_masks: str | None = None) -> pd.DataFrame:
    r"""The sheet of a folder layout: train images under ``root/images``, their masks under
    ``root/masks`` (or beside them), optional test images under ``root/test``.

    Files are any of :data:`plexus.io.images.IMAGE_SUFFIXES`; hidden files are ignored, anything
    else (another type, an unexpected sub-folder) is an error. ``image_id`` is the file stem
    (``p01_003.png`` -> ``p01_003``) made safe by :func:`safe_id`, unique across train and test
    (also ignoring case). Rows: train sorted by id, then test.

    * ``mask_template``: the mask's name without suffix, relative to the masks folder, built
      from ``{stem}`` (the image's stem), ``{case}`` and the named groups of ``image_pattern``,
      e.g. ``"{stem}_segmentation"`` or ``"1st_manual/{id}_manual1"``. ``None``: ``{stem}`` or
      ``{stem}_mask``. A mask may have any image suffix.
    * ``masks`` may name the images' own folder (or be ``None``): files that are some image's
      mask are then left out of the images, and the template must differ from ``{stem}``.
    * ``image_pattern``: a regex matched against each image stem (:func:`re.fullmatch`); an image
      that does not match is an error; its named groups fill the template.
    * ``merge_masks``: an image may also have ``{mask}_1``, ``{mask}_2``, ... masks; all found
      are merged (pixelwise maximum) when read: the ``mask`` cell lists them joined by ``|``.
    * ``cases``: each sub-folder of ``images`` (and ``test``) is one case, named by the folder;
      its image is ``image_template`` and its mask ``mask_template`` inside the case folder
      (PH2: ``"{case}_Dermoscopic_Image/{case}"`` and ``"{case}_lesion/{case}_lesion"``).
    * ``class_folders``: the images sit in one sub-folder per class (``benign/``,
      ``malignant/``), recorded in the column ``category`` (which ``cv.stratify`` can name);
      their masks sit beside them, or under the same sub-folder of ``masks``.
    * ``test_prefix``: put before each test image's id, for sets whose test files reuse the
      training files' names (``test/images/0000.png`` beside ``images/0000.png``).
    * ``test_masks``: a labelled test set (``data.test_masks``): the test images' masks folder under
      ``root``, matched to the test images as ``masks`` is to ``images`` (beside the test images when
      masks sit beside the images, inside each case folder with ``cases``); every test image then
      needs a mask, and every file there must be one. ``None``: test rows have no mask.
    * ``subject_pattern``: a regex with a named group ``subject``, matched against the whole stem
      (``r"(?P<subject>p\d+)_.*"``). A train image that does not match is an error; a test image
      gets the subject when it matches and an empty one otherwise. Without a pattern every image
      is its own subject and a :class:`SheetWarning` says so.

    Every problem (an image without a mask, a mask of no image, two images with one id, a name
    that does not match a pattern) is collected and raised as one :class:`LayoutError` naming
    the files. Nothing is written into ``root``.
    """
    pattern = _pattern(subject_pattern, "subject_pattern", "subject")
    stem_pattern = _pattern(image_pattern, "image_pattern", None)
    root = Path(root).absolute()
    problems: list[str] = []
    image_root = root / images
    mask_root = image_root if masks is None else root / masks
    same_folder = mask_root == image_root or cases
    templates = [mask_template] if mask_template else ["{stem}", "{stem}_mask"]
    known = {"stem", "case", *(stem_pattern.groupindex if stem_pattern else ())}
    for key, template in (("mask_template", mask_template), ("image_template", image_template)):
        fields = {f for _, f, _, _ in string.Formatter().parse(template or "") if f is not None}
        if fields - known:
            groups = sorted(known - {"stem", "case"})
            raise ValueError(f"data.folders.{key}: {template!r} names {sorted(fields - known)}; it may use "
                             f"{{stem}}, {{case}} and the named groups of image_pattern ({groups})")
    if same_folder and not cases and templates[0] == "{stem}":
        raise ValueError("data.folders.mask_template: images and masks share a folder, so the mask's name must "
                         "differ from the image's (e.g. {stem}_mask)")
    if not image_root.is_dir():
        problems.append(f"{image_root}: folder not found (expected {images}/ and {masks}/, optionally {test}/)")
    if not same_folder and not mask_root.is_dir():
        problems.append(f"{mask_root}: folder not found (expected {images}/ and {masks}/, optionally {test}/)")
    if problems:
        raise LayoutError(problems, root)

    def entries(folder: Path) -> list[tuple[str, Path, str, Path]]:
        """(stem, image file, category, its mask folder) of the images under ``folder``."""
        out = []
        if cases:
            for case in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                found = _find(case, image_template.format(case=case.name))
                if len(found) != 1:
                    problems.append(f"{case}: expected one image {image_template.format(case=case.name)}.* "
                                    f"in the case folder, found {len(found)}")
                    continue
                out.append((case.name, found[0], "", case))
            return out
        groups = ([(p.name, p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
                  if class_folders else [("", folder)])
        if class_folders and not groups:
            problems.append(f"{folder}: no class sub-folders (class_folders is set)")
        for category, sub in groups:
            masks_of = sub if same_folder else (mask_root / category if category else mask_root)
            stems: dict[str, Path] = {}
            for path in _image_files(sub, problems):
                if path.stem in stems:
                    problems.append(f"{path}: same name as {stems[path.stem].name} (one file per stem)")
                    continue
                stems[path.stem] = path
                out.append((path.stem, path, category, masks_of))
        return out

    def mask_files(image: Path, stem: str, case: str, fields: dict, base: Path) -> list[Path]:
        found = []
        for template in templates:
            name = template.format(stem=stem, case=case, **fields)
            match = _find(base, name) + (_numbered(base, name) if merge_masks else [])
            if match:
                found.append(match)
        if len(found) > 1:
            problems.append(f"{image}: two masks match, {found[0][0].name} and {found[1][0].name} (keep one, "
                            "or set data.folders.mask_template)")
            return [m for match in found for m in match]
        return found[0] if found else []

    def fields_of(stem: str, path: Path, required: bool = True) -> dict | None:
        if stem_pattern is None:
            return {}
        match = stem_pattern.fullmatch(stem)
        if match is None:
            if required:
                problems.append(f"{path}: the name {stem!r} does not match image_pattern {image_pattern!r}")
            return None
        return {k: v or "" for k, v in match.groupdict().items()}

    train = entries(image_root)
    claimed: dict[Path, Path] = {}
    missing: dict[Path, str] = {}  # image -> its problem, if it stays an image
    pairs = []
    for stem, path, category, base in train:
        fields = fields_of(stem, path)
        if fields is None:
            continue
        case = stem if cases else ""
        found = mask_files(path, stem, case, fields, base)
        for mask in found:
            if mask in claimed and claimed[mask] != path:
                problems.append(f"{mask}: mask of two images, {claimed[mask].name} and {path.name} (rename one)")
            claimed[mask] = path
        pairs.append((stem, path, category, found))
        if not found:
            names = " or ".join(f"{base / t.format(stem=stem, case=case, **fields)}.png" for t in templates)
            missing[path] = f"{path}: image without a mask (expected {names}; any image type also does)"
    if same_folder and not cases:  # files that are masks are not images
        pairs = [entry for entry in pairs if entry[1] not in claimed]
    problems += [missing[path] for _, path, _, found in pairs if not found]
    if not same_folder and not class_folders:
        for mask in _image_files(mask_root, [], recurse=True):
            if mask not in claimed:
                problems.append(f"{mask}: mask without an image (expected an image in {image_root} whose "
                                f"mask it is under mask_template {templates[0]!r})")
    if not pairs and not problems:
        problems.append(f"{image_root}: no training images")

    tests = []
    if test is not None and (root / test).is_dir():
        tests = entries(root / test)
        if same_folder and not cases:  # a test folder holding masks too: leave them out
            masks_there = {m for stem, path, _, base in tests if (fields := fields_of(stem, path, False)) is not None
                           for m in mask_files(path, stem, "", fields, base)}
            tests = [entry for entry in tests if entry[1] not in masks_there]
    test_found: dict[Path, list[Path]] = {}
    if test_masks is not None and tests:
        test_root = root / test
        test_mask_root = test_root if same_folder else root / test_masks
        if not same_folder and not test_mask_root.is_dir():
            problems.append(f"{test_mask_root}: folder not found (data.test_masks: the test images' masks, "
                            f"data.folders.test_masks {test_masks!r})")
        else:
            test_claimed: dict[Path, Path] = {}
            for stem, path, category, base in tests:
                fields = fields_of(stem, path)
                if fields is None:
                    continue
                case = stem if cases else ""
                where = base if same_folder else (test_mask_root / category if category else test_mask_root)
                found = mask_files(path, stem, case, fields, where)
                for mask in found:
                    test_claimed[mask] = path
                test_found[path] = found
                if not found:
                    names = " or ".join(f"{where / t.format(stem=stem, case=case, **fields)}.png" for t in templates)
                    problems.append(f"{path}: test image without a mask (data.test_masks is set; expected {names})")
            if not same_folder and not class_folders:
                for mask in _image_files(test_mask_root, [], recurse=True):
                    if mask not in test_claimed:
                        problems.append(f"{mask}: test mask without a test image (expected an image in {test_root} "
                                        f"whose mask it is under mask_template {templates[0]!r})")

    seen: dict[str, Path] = {}
    rows = []
    for split, items in (("train", [(s, p, c, f) for s, p, c, f in pairs]),
                         ("test", [(s, p, c, test_found.get(p, [])) for s, p, c, _ in tests])):
        for stem, path, category, found in items:
            image_id = safe_id((test_prefix if split == "test" else "") + stem)
            if not IMAGE_ID.fullmatch(image_id):
                problems.append(f"{path}: the name {stem!r} cannot be an image_id: 1 to 128 letters, digits, "
                                "'.', '_' or '-', starting with a letter or digit")
            key = image_id.casefold()
            if key in seen:
                problems.append(f"{path}: same image_id {image_id!r} as {seen[key]} (names must differ, also "
                                "ignoring case and characters other than letters, digits, '.', '_', '-'"
                                + ("; set data.folders.test_prefix when test files reuse training names)"
                                   if split == "test" else ")"))
            else:
                seen[key] = path
            subject = _subject(pattern, subject_pattern, stem, path, problems, required=split == "train")
            row = {"image_id": image_id, "subject": subject if pattern else image_id, "split": split,
                   "image": str(path), "mask": MASK_SEPARATOR.join(str(m) for m in found)}
            if class_folders:
                row[CATEGORY_COLUMN] = category
            rows.append(row)
    if problems:
        raise LayoutError(problems, root)
    if pattern is None:
        warnings.warn(f"{root}: {NO_SUBJECT_WARNING}", SheetWarning, stacklevel=2)
    rows.sort(key=lambda r: (r["split"] != "train", r["image_id"]))
    return sheet_frame(rows)


def _pattern(text: str | None, key: str, group: str | None) -> re.Pattern | None:
    if text is None:
        return None
    try:
        compiled = re.compile(text)
    except re.error as error:
        raise ValueError(f"data.folders.{key}: {text!r} is not a regular expression ({error})") from None
    if group and group not in compiled.groupindex:
        raise ValueError(f"{key} {text!r} has no named group (?P<{group}>...)")
    return compiled


def _subject(pattern, text, stem: str, path: Path, problems: list[str], *, required: bool) -> str:
    if pattern is None:
        return ""
    match = pattern.fullmatch(stem)
    if match and match["subject"]:
        return match["subject"]
    if required:
        problems.append(f"{path}: the name {stem!r} does not match subject_pattern {text!r}"
                        + (" (the subject group is empty)" if match else ""))
    return ""


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
