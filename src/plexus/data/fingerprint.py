"""A cheap fingerprint of a raw data folder: every file's name, size and mtime.

Snakemake notices a raw folder's change only through the folder's own mtime, which
an in-place rewrite of a file leaves alone. Hashing gigabytes of images on every
start would be slow, so the workflow instead compares this listing (one ``stat``
per file, milliseconds for the 11k Kaggle files) with the one it recorded and, when
they differ, rewrites the recorded file, which the ``ingest`` rule takes as an
input. A file rewritten with identical size and mtime is not noticed (no
``touch``-proof rewrite is); anything else (added, removed, resized, rewritten) is.
Standard library only: the Snakefile imports it at parse time.

The workflow keeps one record per image set (:func:`part_fingerprint`, :func:`refresh_part`):
``results/manifest/raw_fingerprint/train.json`` and ``.../test.json``, each over the files (and,
for a sample sheet, the sheet rows) of that set only, so that a change to the test images
reruns only the jobs that read them. What belongs to which set is the data format's business
(:func:`plexus.runs.raw_parts`): folders (``train/``, ``stage1_test/``), the whole tree but some
folders (a ``folders`` layout's training side), or a sheet's rows of one ``split``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

SUBFOLDERS = ("train", "test")


def listing(raw_dir: str | os.PathLike, subfolders: tuple[str, ...] | None = SUBFOLDERS,
            exclude: tuple[str, ...] = ()) -> list[list]:
    """``[relative path, size, mtime_ns]`` of every regular, non-hidden file, sorted.

    ``subfolders=None`` lists the whole tree under ``raw_dir`` (a generic dataset: its
    image folders), hidden files and folders left out, and the relative paths in
    ``exclude`` too: the sample sheet is a rule input Snakemake tracks itself (and
    touches when a job writes it, which would change its listing afterwards).
    """
    raw = Path(raw_dir)
    rows = []
    if subfolders is None:
        for root, dirs, files in os.walk(raw):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                path = Path(root) / name
                if not name.startswith(".") and path.relative_to(raw).as_posix() not in exclude:
                    stat = path.stat()
                    rows.append([path.relative_to(raw).as_posix(), stat.st_size, stat.st_mtime_ns])
        return sorted(rows)
    for sub in subfolders:
        folder = raw / sub
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") or not entry.is_file():
                continue  # hidden files include Snakemake's .snakemake_timestamp
            stat = entry.stat()
            rows.append([f"{sub}/{entry.name}", stat.st_size, stat.st_mtime_ns])
    return sorted(rows)


def fingerprint(raw_dir: str | os.PathLike, subfolders: tuple[str, ...] | None = SUBFOLDERS,
                exclude: tuple[str, ...] = ()) -> dict:
    """``{"raw_dir", "files", "sha256"}``: the count and digest of :func:`listing`."""
    rows = listing(raw_dir, subfolders, exclude)
    digest = hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()
    return {"raw_dir": str(raw_dir), "files": len(rows), "sha256": digest}


def refresh(raw_dir: str | os.PathLike, record: str | os.PathLike,
            subfolders: tuple[str, ...] | None = SUBFOLDERS, exclude: tuple[str, ...] = ()) -> bool:
    """Rewrite ``record`` when the folder's fingerprint differs from it; True if rewritten.

    A folder without ``train/`` and ``test/`` yet (the synthetic dataset before its
    first run), or with ``subfolders=None`` a folder that does not exist yet, leaves
    the record alone.
    """
    if subfolders is None:
        if not Path(raw_dir).is_dir():
            return False
    elif not any((Path(raw_dir) / sub).is_dir() for sub in subfolders):
        return False
    return _write_record(record, fingerprint(raw_dir, subfolders, exclude))


# --- one record per image set (train, test) ------------------------------------------------------

#: sheet columns that never name a file
_NOT_PATHS = ("image_id", "subject", "split")
#: the sheet suffixes and their delimiters (as :mod:`plexus.data.sheet` reads them)
_DELIMITERS = {".tsv": "\t", ".csv": ","}


def tree_listing(raw_dir: str | os.PathLike, folders: list[str] | None = None,
                 exclude: tuple[str, ...] = ()) -> list[list]:
    """``[relative path, size, mtime_ns]`` of every non-hidden file under each of ``folders``
    (relative to ``raw_dir``; ``None``: the whole tree), recursively, sorted; a path in ``exclude``
    (a file, or a folder and everything under it) is left out."""
    raw = Path(raw_dir)
    excluded = {Path(e).as_posix().strip("/") for e in exclude}
    rows = []
    for folder in ([""] if folders is None else folders):
        top = raw / folder
        if not top.is_dir():
            continue
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and (Path(root) / d).relative_to(raw).as_posix() not in excluded)
            for name in files:
                path = Path(root) / name
                relative = path.relative_to(raw).as_posix()
                if not name.startswith(".") and relative not in excluded:
                    stat = path.stat()
                    rows.append([relative, stat.st_size, stat.st_mtime_ns])
    return sorted(rows)


def sheet_listing(sheet: str | os.PathLike, split: str, blank: tuple[str, ...] = (),
                  only: tuple[str, ...] | None = None) -> list[list]:
    """The rows of a sample sheet that belong to the image set ``split`` and the files they name.

    ``blank``: columns whose cells count as empty (the test rows' masks, which a labelled test set's
    own record covers); ``only``: the columns that count, every other cell blank.

    ``split`` ``test``: the header and the rows whose ``split`` cell is ``test``; ``train``: the
    header and every other row (a row with a wrong split is the training side's error). Then
    ``[path, size, mtime_ns]`` of every file a cell of those rows names (``|``-joined lists too;
    relative paths against the sheet's folder), ``[path, None, None]`` for one that does not exist.
    A sheet that is not a readable ``.tsv``/``.csv`` gives its bytes' digest to both sets (every job
    reruns and the manifest reports the problem).
    """
    sheet = Path(sheet)
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as handle:
            records = [[cell.strip() for cell in record]
                       for record in csv.reader(handle, delimiter=_DELIMITERS[sheet.suffix.lower()])]
    except (KeyError, UnicodeDecodeError, csv.Error):
        return [["sheet", hashlib.sha256(sheet.read_bytes()).hexdigest()]]
    records = [r for r in records if any(r)]
    if not records:
        return [["sheet", []]]
    header, body = records[0], records[1:]
    column = header.index("split") if "split" in header else None

    def in_part(record) -> bool:
        if column is None:
            return True  # no split column: every row on both sides (the manifest reports it)
        is_test = len(record) > column and record[column] == "test"
        return is_test == (split == "test")

    dropped = {i for i, name in enumerate(header) if name in blank or (only is not None and name not in only)}
    rows = [[("" if i in dropped else cell) for i, cell in enumerate(r)] for r in body if in_part(r)]
    files = set()
    for record in rows:
        for name, cell in zip(header, record):
            if name in _NOT_PATHS or not cell:
                continue
            for part in cell.split("|"):
                part = part.strip()
                if part:
                    path = Path(part).expanduser()
                    files.add(str(path if path.is_absolute() else sheet.parent.absolute() / path))
    listed = []
    for name in sorted(files):
        path = Path(name)
        if path.is_file():
            stat = path.stat()
            listed.append([name, stat.st_size, stat.st_mtime_ns])
        else:
            listed.append([name, None, None])
    return [["sheet", header], *(["row", r] for r in rows), *listed]


def part_fingerprint(raw_dir: str | os.PathLike, part: str, spec: dict) -> dict:
    """``{"raw_dir", "part", "files", "sha256"}`` of one image set, by its ``spec``
    (:func:`plexus.runs.raw_parts`): ``{"sheet": path}`` (its rows of ``part``, or of ``split``; the
    cells of ``blank`` columns, or of all but the ``only`` ones, left out: :func:`sheet_listing`) or
    ``{"folders": [...] | None, "exclude": [...]}`` (files under ``raw_dir``)."""
    if "sheet" in spec:
        rows = sheet_listing(spec["sheet"], spec.get("split", part), tuple(spec.get("blank", ())),
                             None if spec.get("only") is None else tuple(spec["only"]))
        files = sum(1 for row in rows if len(row) == 3)
    else:
        rows = tree_listing(raw_dir, spec.get("folders"), tuple(spec.get("exclude", ())))
        files = len(rows)
    digest = hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()
    return {"raw_dir": str(raw_dir), "part": part, "files": files, "sha256": digest}


def refresh_part(raw_dir: str | os.PathLike, part: str, spec: dict, record: str | os.PathLike) -> bool:
    """Rewrite ``record`` when the image set's fingerprint differs from it; True if rewritten.

    A dataset that is not there yet (no ``raw_dir``; a sheet spec: no sheet) leaves the record alone.
    """
    if not Path(spec["sheet"] if "sheet" in spec else raw_dir).exists():
        return False
    return _write_record(record, part_fingerprint(raw_dir, part, spec))


def _write_record(record: str | os.PathLike, content: dict) -> bool:
    text = json.dumps(content, indent=1) + "\n"
    record = Path(record)
    if record.is_file() and record.read_text() == text:
        return False
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, record)
    return True
