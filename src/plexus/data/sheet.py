"""The sample sheet: one table that describes any 2-D segmentation dataset.

A sheet is a ``.tsv`` (tab-separated) or ``.csv`` (comma-separated) UTF-8 file with a
header row and one row per image::

    image_id  subject  split  image               mask
    p01_003   p01      train  images/p01_003.png  masks/p01_003.png
    t0001              test   test/t0001.png

* ``image_id`` (required): a safe file name, unique in the sheet, also ignoring case
  (plexus names output files after it);
* ``subject`` (optional column): the group cross-validation keeps in one fold (a
  patient). Required on train rows, may be empty on test rows. A sheet without the
  column makes every image its own group: :func:`read_sheet` then sets
  ``subject = image_id`` and warns (:class:`SheetWarning`);
* ``split`` (required): ``train`` or ``test``;
* channel columns (required; by default one, ``image``; e.g. ``("t1", "t2")``):
  image files, every channel of a row with the same height and width; at least one
  filled per row (:func:`check_files` requires all unless ``allow_missing_channels``);
* ``mask``: the mask of a train row (required there); on a test row only in a labelled test set
  (``data.test_masks``: the test manifest checks that, :mod:`plexus.evaluation.heldout`); several files
  of one image joined by ``|`` are merged when read (a pixel takes the highest class any of
  them marks). The column may be left out of a sheet that has no train row.

Other columns are kept as they are. Every cell is read as a string with leading and
trailing whitespace removed; an empty cell is ``""``, never NaN. Wholly empty lines
are skipped (but counted in row numbers); a row with fewer cells than the header is
padded with empty cells. Relative paths are resolved against ``base_dir`` (by
default the sheet's folder), so the frame returned holds absolute paths.

Every problem is collected and raised together as one :class:`SheetError` naming
the sheet and, for each problem, the row as a spreadsheet shows it (the header is
row 1, the first data row is row 2) and the column.

The row rules live in ``sheet.schema.yaml`` (JSON schema, draft 2020-12); the
header, "at least one channel" and the cross-row rules are checked here.
"""

from __future__ import annotations

import copy
import csv
import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import jsonschema
import pandas as pd

from plexus.errors import DataError
from plexus.io.atomic import atomic_path
from plexus.io.images import ImageError, image_info, read_image
from plexus.schema import safe_load

__all__ = [
    "DEFAULT_CHANNELS", "NO_SUBJECT_WARNING", "SCHEMA_PATH", "SheetError", "SheetWarning",
    "check_files", "read_sheet", "row_schema", "sheet_columns", "sheet_frame", "write_sheet",
]

SCHEMA_PATH = Path(__file__).with_name("sheet.schema.yaml")
DEFAULT_CHANNELS = ("image",)
RESERVED = ("image_id", "subject", "split", "mask")
DELIMITERS = {".tsv": "\t", ".csv": ","}
#: Problems listed in full in an error message; the rest are counted.
MAX_LISTED = 20
#: separates several mask files of one image in a ``mask`` cell; they are merged when read
MASK_SEPARATOR = "|"
#: the optional column of a second expert's masks (some training rows): scored against ``mask``
#: as the human reference, never tuned on; resolved and checked as ``mask`` is
RATER2_COLUMN = "mask_rater2"
NO_SUBJECT_WARNING = ("no subject column: each image is its own group; "
                      "CV folds cannot keep a patient's images together")


class SheetError(DataError):
    """Problems in a sample sheet; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str], where: str | os.PathLike | None = None):
        self.problems = list(problems)
        self.where = "the sample sheet" if where is None else f"sample sheet {where}"
        lines = [f"{len(self.problems)} problem(s) in {self.where}:"]
        lines += [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join(lines))


class SheetWarning(UserWarning):
    """A valid sheet that loses something (no subject column)."""


@lru_cache(maxsize=1)
def _base_schema() -> dict:
    return safe_load(SCHEMA_PATH.read_text())


def _channels(channels: Iterable[str]) -> tuple[str, ...]:
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    if not channels:
        raise ValueError("channels: at least one channel column is needed")
    for name in channels:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"channels: {name!r} is not a usable column name")
        if name in RESERVED:
            raise ValueError(f"channels: {name!r} is a reserved column ({', '.join(RESERVED)})")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channels: {channels} names a column twice")
    return channels


def row_schema(channels: Iterable[str] = DEFAULT_CHANNELS) -> dict:
    """The JSON schema of one row: ``sheet.schema.yaml`` with the channel columns added."""
    channels = _channels(channels)
    schema = copy.deepcopy(_base_schema())
    for name in channels:
        schema["properties"][name] = {"$ref": "#/definitions/path", "description": "image file of this channel"}
    schema["required"] = list(schema["required"]) + list(channels)
    return schema


@lru_cache(maxsize=16)
def _validator(channels: tuple[str, ...]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(row_schema(channels))


def sheet_columns(channels: Iterable[str] = DEFAULT_CHANNELS) -> list[str]:
    """The columns of a sheet frame, in order: ``image_id, subject, split, *channels, mask``."""
    return ["image_id", "subject", "split", *_channels(channels), "mask"]


def sheet_frame(rows: Iterable[dict], *, channels: Iterable[str] = DEFAULT_CHANNELS) -> pd.DataFrame:
    """A sheet frame from row dicts: the standard columns first, then any others in first-seen
    order; every cell a string (missing cells ``""``). Importers build their result with it, so
    that it equals what :func:`read_sheet` gives for the written sheet."""
    rows = list(rows)
    columns = sheet_columns(channels)
    for row in rows:
        columns += [key for key in row if key not in columns]
    data = {c: ["" if row.get(c) is None else str(row.get(c)) for row in rows] for c in columns}
    return pd.DataFrame(data, columns=columns, dtype=str)


def _delimiter(path: Path) -> str:
    try:
        return DELIMITERS[path.suffix.lower()]
    except KeyError:
        raise SheetError([f"unsupported file type {path.suffix!r}: name the sheet *.tsv (tab-separated) "
                          "or *.csv (comma-separated)"], path) from None


def _records(path: Path) -> list[list[str]]:
    delimiter = _delimiter(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [[cell.strip() for cell in record] for record in csv.reader(handle, delimiter=delimiter)]
    except UnicodeDecodeError as exc:
        raise SheetError([f"not UTF-8 text ({exc})"], path) from exc
    except csv.Error as exc:
        raise SheetError([f"malformed {path.suffix} file ({exc})"], path) from exc


def _header_problems(header: list[str], channels: tuple[str, ...], delimiter: str) -> list[str]:
    problems = []
    seen = set()
    for number, name in enumerate(header, start=1):
        if not name:
            problems.append(f"row 1, column {number}: empty column name")
        elif name in seen:
            problems.append(f"row 1, column {name}: the column appears twice")
        seen.add(name)
    missing = [c for c in ("image_id", "split", *channels) if c not in seen]
    if missing:
        found = ", ".join(h for h in header if h) or "nothing"
        problems.append(f"row 1: missing column(s) {', '.join(missing)} (the header has {found})")
        other = {"\t": ",", ",": "\t"}[delimiter]
        if len(header) == 1 and (other in header[0] or ";" in header[0]):
            kind = "tab" if delimiter == "," else "comma"
            problems.append(f"row 1: the file is read {kind}-separated, its header is not; name the file "
                            "*.tsv for tab-separated or *.csv for comma-separated (semicolons are not read)")
    return problems


def _row_label(number: int, image_id: str) -> str:
    return f"row {number} ({image_id})" if image_id else f"row {number}"


def _message(error: jsonschema.ValidationError) -> str:
    template = error.schema.get("message") if isinstance(error.schema, dict) else None
    if template and error.validator in ("pattern", "minLength", "maxLength", "enum"):
        return template.format(value=error.instance)
    return error.message


def _resolve(cell: str, base: Path) -> str:
    if not cell:
        return cell
    if MASK_SEPARATOR in cell:
        return MASK_SEPARATOR.join(_resolve(part.strip(), base) for part in cell.split(MASK_SEPARATOR))
    path = Path(cell).expanduser()
    return str(path if path.is_absolute() else base / path)


def read_sheet(path: str | os.PathLike, *, channels: Iterable[str] = DEFAULT_CHANNELS,
               base_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The validated sheet as a frame of strings (see the module doc); :class:`SheetError` if invalid.

    Columns: ``image_id, subject, split, *channels, mask``, then the sheet's other
    columns. ``frame.attrs`` holds ``sheet`` (the path) and ``sheet_rows``
    (``{image_id: spreadsheet row}``), which :func:`check_files` uses in its messages.
    A missing ``subject`` column is filled with ``image_id`` and warned about.
    """
    channels = _channels(channels)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sample sheet")
    records = _records(path)
    if not records or not any(records[0]):
        raise SheetError(["row 1: no header row (expected image_id, split, the channel columns, mask ...)"], path)
    header = records[0]
    problems = _header_problems(header, channels, _delimiter(path))
    if problems:
        raise SheetError(problems, path)
    has_subject, has_mask = "subject" in header, "mask" in header
    base = Path(base_dir if base_dir is not None else path.parent).expanduser().absolute()

    rows, numbers = [], []
    for number, record in enumerate(records[1:], start=2):
        if not any(record):
            continue  # a blank line
        if len(record) > len(header):
            if any(record[len(header):]):
                problems.append(f"row {number}: {len(record)} cells, the header has {len(header)}")
                continue
            record = record[:len(header)]
        row = dict(zip(header, record + [""] * (len(header) - len(record))))
        if not has_subject:
            row["subject"] = row["image_id"]
        if not has_mask:
            row["mask"] = ""
        rows.append(row)
        numbers.append(number)
    if not rows:
        problems.append("no data rows (only a header)")

    validator = _validator(channels)
    first_id: dict[str, tuple[int, str]] = {}
    for number, row in zip(numbers, rows):
        label = _row_label(number, row["image_id"])
        errors = sorted(validator.iter_errors(row), key=lambda e: [str(p) for p in e.absolute_path])
        for error in errors:
            column = error.absolute_path[0] if error.absolute_path else None
            if column == "mask" and not has_mask and error.validator == "minLength":
                problems.append(f"{label}: a train row needs a mask, and the sheet has no mask column")
                continue
            if column == "subject" and not has_subject:
                continue  # copied from image_id, whose own problem is reported
            where = f"{label}, column {column}" if column else label
            problems.append(f"{where}: {_message(error)}")
        if not any(row[c] for c in channels):
            problems.append(f"{label}, column {channels[0]}: no image file (at least one of the channel "
                            f"column(s) {', '.join(channels)} must be filled)")
        key = row["image_id"].casefold()
        if key in first_id:
            other, other_id = first_id[key]
            what = "duplicate image_id" if other_id == row["image_id"] else \
                f"image_id differs only in case from {other_id!r}"
            problems.append(f"{label}, column image_id: {what} in row {other} (output files would clash)")
        elif row["image_id"]:
            first_id[key] = (number, row["image_id"])
    if problems:
        raise SheetError(problems, path)

    if not has_subject:
        warnings.warn(f"{path}: {NO_SUBJECT_WARNING}", SheetWarning, stacklevel=2)
    for row in rows:
        for column in (*channels, "mask", RATER2_COLUMN):
            if column in row:
                row[column] = _resolve(row[column], base)
    frame = sheet_frame(rows, channels=channels)
    frame.attrs["sheet"] = str(path)
    frame.attrs["sheet_rows"] = dict(zip(frame["image_id"].tolist(), numbers))
    return frame


def write_sheet(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` as a sheet, tab- or comma-separated by ``path``'s suffix, atomically.

    Cells are written as they are (NaN as an empty cell); the frame is not validated
    here: :func:`read_sheet` of the written file does that.
    """
    path = Path(path)
    delimiter = _delimiter(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=delimiter, index=False, na_rep="", lineterminator="\n")


def _row_labels(sheet: pd.DataFrame) -> list[str]:
    """``row N (id)`` for each row of a :func:`read_sheet` frame (any order or subset), else ``image_id id``."""
    numbers = sheet.attrs.get("sheet_rows") or {}
    return [_row_label(numbers[i], i) if i in numbers else f"image_id {i}"
            for i in sheet["image_id"].astype(str).tolist()]


def check_files(sheet: pd.DataFrame, *, channels: Iterable[str] = DEFAULT_CHANNELS,
                allow_missing_channels: bool = False, read_pixels: bool = False,
                threads: int = 4) -> pd.DataFrame:
    """Check every file a sheet names; return the shape of each row's image.

    Every referenced file must exist and be readable (:mod:`plexus.io.images`), all
    channels of a row must have the same height and width, and the mask (where
    given) that height and width and one channel. A channel cell may be empty only
    with ``allow_missing_channels`` (at least one must be filled). Rows may differ in
    size from each other. By default only the file headers are read; ``read_pixels``
    decodes every file too (catches truncated pixel data; slower).

    Returns a frame with the sheet's index: ``image_id, height, width``, then for
    each channel ``{channel}_channels`` and ``{channel}_bits`` (0 for a missing
    channel) and ``mask_bits`` (0 without a mask). Raises :class:`SheetError` naming
    each row, column and file at fault.
    """
    channels = _channels(channels)
    columns = [c for c in (*channels, "mask") if c not in sheet.columns]
    if columns:
        raise SheetError([f"the frame has no column(s) {', '.join(columns)}"], sheet.attrs.get("sheet", "frame"))

    def probe(file: str):
        try:
            if read_pixels:
                array = read_image(file)
                return (array.shape[0], array.shape[1], 1 if array.ndim == 2 else array.shape[2], array.dtype), None
            return image_info(file), None
        except ImageError as exc:
            return None, str(exc)

    masks = ("mask", RATER2_COLUMN) if RATER2_COLUMN in sheet.columns else ("mask",)
    files = sorted({f for c in (*channels, *masks) for v in sheet[c].fillna("").astype(str) if v
                    for f in v.split(MASK_SEPARATOR)})
    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = dict(zip(files, pool.map(probe, files)))

    problems, out = [], []
    for label, (_, row) in zip(_row_labels(sheet), sheet.iterrows()):
        info = {"image_id": str(row["image_id"]), "height": 0, "width": 0}
        shapes = []  # (channel, file, height, width)
        for channel in channels:
            file = "" if pd.isna(row[channel]) else str(row[channel])
            info[f"{channel}_channels"] = info[f"{channel}_bits"] = 0
            if not file:
                if not allow_missing_channels:
                    problems.append(f"{label}, column {channel}: empty (every channel needs a file unless "
                                    "missing channels are allowed)")
                continue
            result, problem = found[file]
            if problem:
                problems.append(f"{label}, column {channel}: {problem}")
                continue
            height, width, depth, dtype = result
            info[f"{channel}_channels"], info[f"{channel}_bits"] = int(depth), dtype.itemsize * 8
            shapes.append((channel, file, height, width))
        if not any(row[c] for c in channels if not pd.isna(row[c])):
            if allow_missing_channels:
                problems.append(f"{label}, column {channels[0]}: no image file (every channel column is empty)")
        sizes = {(h, w) for _, _, h, w in shapes}
        if len(sizes) > 1:
            listed = ", ".join(f"{c} {h}x{w} ({f})" for c, f, h, w in shapes)
            problems.append(f"{label}: the channels differ in size: {listed}")
        elif sizes:
            info["height"], info["width"] = next(iter(sizes))
        info["mask_bits"] = 0
        for column in masks:
            cell = "" if pd.isna(row[column]) else str(row[column])
            if column == RATER2_COLUMN and cell and not str(row["mask"] or ""):
                problems.append(f"{label}, column {column}: a second rater's mask needs the first's (column mask)")
            for mask in [m for m in cell.split(MASK_SEPARATOR) if m]:
                result, problem = found[mask]
                if problem:
                    problems.append(f"{label}, column {column}: {problem}")
                    continue
                height, width, depth, dtype = result
                if column == "mask":
                    info["mask_bits"] = dtype.itemsize * 8
                if len(sizes) == 1 and (height, width) != next(iter(sizes)):
                    h, w = next(iter(sizes))
                    problems.append(f"{label}, column {column}: {mask}: the mask is {height}x{width}, "
                                    f"the image is {h}x{w}")
        out.append(info)
    if problems:
        raise SheetError(problems, sheet.attrs.get("sheet"))
    order = ["image_id", "height", "width"]
    order += [f"{c}_{k}" for c in channels for k in ("channels", "bits")] + ["mask_bits"]
    return pd.DataFrame(out, columns=order, index=sheet.index)
