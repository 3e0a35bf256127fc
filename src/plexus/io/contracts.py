"""Readers of the files that stages pass to each other (see ``docs/contracts.md``).

Every stage reads its inputs through these, so a file's layout is checked in one place.

Tables (CSV/TSV) are read with their types stated, never inferred for identifiers: the
columns of :data:`TEXT_COLUMNS` (image ids, subjects, splits, class and model names, paths,
run-length strings) are text exactly as written (``0007`` stays ``0007``, ``NA`` and ``null``
are ids, not missing values, an empty cell is ``""``); the other columns of a table are its
numbers. :func:`read_table` is that reader; each contract has its own named reader on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def read_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (the counterpart of :func:`plexus.io.atomic.write_npz`; no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


#: Columns that are text in every table plexus writes or reads.
TEXT_COLUMNS = frozenset({
    "image_id", "subject", "split", "class", "name", "model", "run", "member", "removed", "condition",
    "candidate", "mask_classes", "image", "mask", "image_path", "EncodedPixels", "ImageId",
    "pixels", "img", "size",
})
#: cells of a number column read as missing
NUMBER_NA = ["", "nan", "NaN", "NA", "<NA>", "None", "null"]


def read_table(path, *, text=(), numbers=(), sep: str | None = None) -> pd.DataFrame:
    """A CSV (or, by suffix ``.tsv``, TSV) table: :data:`TEXT_COLUMNS` and ``text`` as text, every
    other column parsed as numbers (``numbers`` names those that must be; a cell there that is
    not a number is a ValueError naming the file and column)."""
    sep = sep or ("\t" if str(path).lower().endswith(".tsv") else ",")
    header = pd.read_csv(path, sep=sep, nrows=0, dtype=str, keep_default_na=False).columns.tolist()
    as_text = [c for c in header if (c in TEXT_COLUMNS or c in text) and c not in numbers]
    frame = pd.read_csv(path, sep=sep, dtype={c: str for c in as_text}, keep_default_na=False,
                        na_values={c: NUMBER_NA for c in header if c not in as_text})
    for column in numbers:
        if column not in frame.columns or pd.api.types.is_numeric_dtype(frame[column]):
            continue
        if len(frame):
            raise ValueError(f"{path}: column {column} holds values that are not numbers")
        frame[column] = frame[column].astype(np.int64)  # a header without rows
    return frame


def read_folds(folds_csv) -> pd.DataFrame:
    """``results/splits/folds.csv``: image_id, subject (text), fold (an integer)."""
    return read_table(folds_csv, numbers=("fold",))


def read_manifest(manifest_csv) -> pd.DataFrame:
    """``results/manifest/{train,test}.csv``: every column text (ids, paths and the sheet's own
    columns, as the sheet spells them) but the image size, presence flags and mask area."""
    header = pd.read_csv(manifest_csv, nrows=0, dtype=str, keep_default_na=False).columns.tolist()
    numbers = [c for c in header if c in ("height", "width", "mask_area") or c.startswith("present_")]
    return read_table(manifest_csv, text=[c for c in header if c not in numbers], numbers=numbers)


def read_per_image(per_image_csv) -> pd.DataFrame:
    """A per-image score table (``results/tuning/{name}/per_image.csv`` and the like)."""
    return read_table(per_image_csv)


def read_aligned(paths) -> list[dict[str, np.ndarray]]:
    """Read probability files that must hold the same images in the same order."""
    runs = [read_npz(p) for p in paths]
    for path, run in zip(paths, runs):
        check_aligned(run["image_id"], runs[0]["image_id"], path, paths[0])
    return runs


def check_aligned(ids, expected, path, reference) -> None:
    if not np.array_equal(np.asarray(ids, dtype=str), np.asarray(expected, dtype=str)):
        raise ValueError(f"{path}: image ids do not match {reference}; rerun the stage that wrote the older file")


def load_oof(fold_npzs, image_ids, key: str = "prob") -> np.ndarray | None:
    """Concatenate a model's per-fold OOF ``key`` arrays into ``image_ids`` order.

    ``key="presence"`` gives the presence probabilities of a two-head model, or None
    when the files hold none.
    """
    return load_oof_arrays(fold_npzs, image_ids, (key,))[key]


def load_oof_arrays(fold_npzs, image_ids, keys=("prob",)) -> dict[str, np.ndarray | None]:
    """Several arrays of a model's per-fold OOF files, each file read once, in ``image_ids`` order.

    A key the files lack maps to None; a missing ``prob`` is an error.
    """
    ids, values = [], {key: [] for key in keys}
    for path in fold_npzs:
        with np.load(path, allow_pickle=False) as data:
            if "prob" in keys and "prob" not in data.files:
                raise ValueError(f"{path}: no 'prob' array; rerun the prediction that wrote it")
            ids.append(data["image_id"])
            for key in keys:
                values[key].append(data[key] if key in data.files else None)
    ids = np.concatenate(ids).astype(str)
    position = {image_id: row for row, image_id in enumerate(ids)}
    missing = [i for i in image_ids if i not in position]
    if missing:
        raise ValueError(f"OOF predictions {list(map(str, fold_npzs))} miss {len(missing)} images, e.g. {missing[:3]}")
    order = [position[i] for i in image_ids]
    return {key: None if any(v is None for v in parts) else np.concatenate(parts)[order]
            for key, parts in values.items()}


def load_members(member_oofs: dict[str, list], image_ids, keys=("prob", "presence")) -> dict[str, list[np.ndarray]]:
    """Per key, the OOF arrays of the members that have it (each member's files read once)."""
    out = {key: [] for key in keys}
    for paths in member_oofs.values():
        for key, array in load_oof_arrays(paths, image_ids, keys).items():
            if array is not None:
                out[key].append(array)
    return out


def member_arrays(member_oofs: dict[str, list], image_ids, key: str = "prob") -> list[np.ndarray]:
    """Every member's OOF ``key`` array in ``image_ids`` order; a member whose files lack it is an
    error naming the members (the flip-averaged ``*_tta`` maps need ``predict.tta``)."""
    arrays = [load_oof(paths, image_ids, key=key) for paths in member_oofs.values()]
    if any(array is None for array in arrays):
        hint = ": rerun their prediction with predict.tta set" if key.endswith("_tta") else ""
        raise ValueError(f"no {key!r} array in the OOF files of {list(member_oofs)}{hint}")
    return arrays


def read_masks_table(masks_csv) -> pd.DataFrame:
    """``results/manifest/train_masks.csv``: subject, img, pixels (RLE; empty = no mask), all text."""
    return read_table(masks_csv)
