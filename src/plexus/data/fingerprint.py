"""A cheap fingerprint of a raw data folder: every file's name, size and mtime.

Snakemake notices a raw folder's change only through the folder's own mtime, which
an in-place rewrite of a file leaves alone. Hashing gigabytes of images on every
start would be slow, so the workflow instead compares this listing (one ``stat``
per file, milliseconds for the 11k Kaggle files) with the one it recorded and, when
they differ, rewrites the recorded file, which the ``ingest`` rule takes as an
input. A file rewritten with identical size and mtime is not noticed (no
``touch``-proof rewrite is); anything else (added, removed, resized, rewritten) is.
Standard library only: the Snakefile imports it at parse time.
"""

from __future__ import annotations

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
    text = json.dumps(fingerprint(raw_dir, subfolders, exclude), indent=1) + "\n"
    record = Path(record)
    if record.is_file() and record.read_text() == text:
        return False
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, record)
    return True
