"""3-D volumes (data.format ``volumes``): a sheet of cases, sliced into the 2-D sample sheet every task reads.

A *volume sheet* has one row per case: ``case, split``, one column per modality (``data.channels``)
holding a ``.nii``/``.nii.gz``/``.mha``/``.mhd`` file, ``mask`` (the label volume; empty for test
cases) and, optionally, ``mask_rater2``. A cell ``file.nii.gz#2`` takes channel 2 of a 4-D file
(the Medical Segmentation Decathlon stacks its modalities in a 4th axis). :func:`volume_sheet`
builds it from a layout (:data:`LAYOUTS`): the user's sheet, BraTS's one folder per case, the
Decathlon's ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` with ``dataset.json``, or nnU-Net's raw
format (one file per case and modality, ``{case}_{0000}.nii.gz``).

:func:`slice_stage` (the ``convert`` rule, one job per image set) then cuts every case along one
voxel axis (``volumes.axis``: by default the axial one, from the header's orientation) into 2-D
slices, written under ``results/converted/``:

* each modality of each slice as a 16-bit PNG, its intensities normalised per volume and modality
  over the volume's nonzero voxels (BraTS's convention: z-scores, ``z`` in ``[-Z, Z]`` mapped
  linearly onto ``1..65535``, zero voxels staying 0). Nothing is learnt across volumes, so the
  test volumes are normalised by their own statistics, as the training ones;
* the label slices as PNGs of the label volume's own values, so ``classes``, ``ignore`` and
  ``regions`` read them as they read 2-D masks;
* a 2-D sample sheet (``image_id = {case}_{slice:03d}``, ``subject = case``: no case's slices
  ever straddle folds, and every bootstrap resamples cases) and ``volumes.json``, the index that
  puts the slices back (:mod:`plexus.stages.volumes`): each case's grid, axis, slices and files.

``volumes.slices`` picks the slices: ``all``, or ``tissue`` (those with a nonzero voxel in some
modality; the others are background by construction, and are put back as such), or ``foreground``:
the tissue slices, of which training reads only those with a label other than the background and
a seeded share ``volumes.empty_share`` of the others (the sheet's ``train_slice`` column, ``yes`` or
``no``; :func:`plexus.stages.train.train_stage` keeps the ``yes`` rows of a fold's training part).
Every tissue slice is still predicted, so the OOF and test volumes are whole.

Problems (a missing file, modalities of one case on different grids, a label volume of another
shape, a 4-D file where 3-D is expected, an unreadable header, labels that are not integers) are
collected and raised together, each naming the case, the file and the problem, before any slice is
written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from plexus.data.importers import LayoutError
from plexus.io import atomic
from plexus.io.volumes import VOLUME_SUFFIXES, VolumeError, axial_axis, read_header, read_volume, same_grid, to_slices

__all__ = ["LAYOUTS", "Z_RANGE", "VolumeSheetError", "normalise", "read_volume_sheet", "slice_stage", "volume_sheet"]

#: the folder layouts :func:`volume_sheet` reads
LAYOUTS = ("sheet", "brats", "decathlon", "nnunet")
#: z-scores beyond +-Z_RANGE are clipped before the 16-bit mapping (a step of 2 Z / 65534 = 0.00015 SD)
Z_RANGE = 5.0
SLICE_SELECTIONS = ("all", "tissue", "foreground")
_CHANNEL = re.compile(r"^(?P<path>.*?)(?:#(?P<index>\d+))?$")
_CASE = re.compile(r"^[^\W_][\w.\-]{0,99}$")


class VolumeSheetError(LayoutError):
    """Problems of a volume dataset, one line each naming the case, the file and the problem (the
    importers' :class:`~plexus.data.importers.LayoutError`, for volumes)."""


# --------------------------------------------------------------------------- the volume sheet


def read_volume_sheet(path, channels) -> pd.DataFrame:
    """The user's volume sheet (TSV or CSV), every cell text, relative paths made absolute against
    the sheet's folder; columns ``case, split, *channels, mask, mask_rater2``."""
    path = Path(path)
    if not path.is_file():
        raise VolumeSheetError([f"no such volume sheet (data.sheet): {path}"], path)
    sep = {".tsv": "\t", ".csv": ","}.get(path.suffix.lower())
    if sep is None:
        raise VolumeSheetError([f"unsupported sheet type {path.suffix!r}: name it *.tsv or *.csv"], path)
    frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("case", "split", *channels) if c not in frame.columns]
    if missing:
        raise VolumeSheetError([f"no column {', '.join(missing)} (columns: {', '.join(frame.columns)}; "
                                "data.channels names the modality columns)"], path)
    for column in ("mask", "mask_rater2"):
        if column not in frame.columns:
            frame[column] = ""
    base = path.parent.absolute()
    for column in (*channels, "mask", "mask_rater2"):
        frame[column] = [_absolute(cell.strip(), base) for cell in frame[column]]
    frame = frame[["case", "split", *channels, "mask", "mask_rater2"]].map(str.strip)
    frame.attrs["sheet"] = str(path)
    return frame


def _absolute(cell: str, base: Path) -> str:
    if not cell:
        return ""
    match = _CHANNEL.match(cell)
    file, index = match["path"], match["index"]
    file = str(Path(file) if Path(file).is_absolute() else (base / file))
    return file if index is None else f"{file}#{index}"


def volume_sheet(raw_dir, layout: str, *, channels, sheet: str | None = None, parts=("train", "test")) -> pd.DataFrame:
    """The volume sheet of ``raw_dir`` in ``layout`` (:data:`LAYOUTS`), rows of the image sets ``parts``."""
    raw = Path(raw_dir).absolute()
    if layout == "sheet":
        frame = read_volume_sheet(sheet if Path(sheet).is_absolute() else raw / sheet, channels)
    elif layout == "brats":
        frame = _brats_sheet(raw, channels)
    elif layout == "decathlon":
        frame = _decathlon_sheet(raw, channels)
    elif layout == "nnunet":
        frame = _nnunet_sheet(raw, channels)
    else:
        raise ValueError(f"data.volumes.layout: unknown layout {layout!r} (layouts: {', '.join(LAYOUTS)})")
    problems = _sheet_problems(frame, channels)
    if problems:
        raise VolumeSheetError(problems, frame.attrs.get("sheet", raw))
    return frame[frame["split"].isin(parts)].reset_index(drop=True)


def _sheet_problems(frame: pd.DataFrame, channels) -> list[str]:
    problems = []
    seen = set()
    for number, (_, row) in enumerate(frame.iterrows(), start=2):
        where = f"row {number} (case {row['case']!r})"
        if not _CASE.match(row["case"]):
            problems.append(f"{where}: case is not a safe file name (letters, digits, '.', '_', '-')")
        if row["case"] in seen:
            problems.append(f"{where}: case listed twice")
        seen.add(row["case"])
        if row["split"] not in ("train", "test"):
            problems.append(f"{where}: split {row['split']!r} is neither train nor test")
        cells = {c: row[c] for c in channels}
        if not any(cells.values()):
            problems.append(f"{where}: no modality file")
        if row["split"] == "train" and not row["mask"]:
            problems.append(f"{where}: a training case needs a label volume (mask)")
        for column, cell in [*cells.items(), ("mask", row["mask"]), ("mask_rater2", row["mask_rater2"])]:
            if not cell:
                continue
            file = _CHANNEL.match(cell)["path"]
            if not any(file.lower().endswith(s) for s in VOLUME_SUFFIXES):
                problems.append(f"{where}: {column} {file}: not a volume ({', '.join(VOLUME_SUFFIXES)})")
            elif not Path(file).is_file():
                problems.append(f"{where}: {column} {file}: no such file")
    return problems


def _volume_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and any(p.name.lower().endswith(s) for s in VOLUME_SUFFIXES))


def _stem(path: Path) -> str:
    name = path.name
    return next(name[: -len(s)] for s in VOLUME_SUFFIXES if name.lower().endswith(s))


def _brats_sheet(raw: Path, channels) -> pd.DataFrame:
    """BraTS: ``raw/{case}/{case}_{modality}.nii.gz`` (2021: ``_flair``, ``_t1ce``, ``_seg``; 2023:
    ``-t2f``, ``-t1c``, ``-seg``); a case without ``seg`` is a test case."""
    if not raw.is_dir():
        raise VolumeSheetError([f"no such folder: {raw}"], raw)
    rows, problems, found = [], [], set()
    for folder in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {}
        for path in _volume_files(folder):
            stem = _stem(path)
            if stem.startswith(folder.name) and stem[len(folder.name):len(folder.name) + 1] in ("_", "-"):
                files[stem[len(folder.name) + 1:].lower()] = str(path)
        if not files:
            continue
        found.update(set(files) - {"seg"})
        rows.append({"case": folder.name, "split": "train" if "seg" in files else "test",
                     **{c: files.get(c, "") for c in channels}, "mask": files.get("seg", ""), "mask_rater2": ""})
    if not rows:
        problems.append(f"no case folder holding {{case}}_{{modality}} volumes ({', '.join(VOLUME_SUFFIXES)})")
    # a modality the study leaves out is fine; one it names that no case has is a typo
    problems += [f"data.channels {c!r}: no case has a {{case}}_{c} volume (the cases' modalities: "
                 f"{', '.join(sorted(found))})" for c in channels if rows and c not in found]
    if problems:
        raise VolumeSheetError(problems, raw)
    return pd.DataFrame(rows, columns=["case", "split", *channels, "mask", "mask_rater2"])


def _dataset_json(raw: Path, key: str, noun: str, channels) -> tuple[dict, dict[str, int]]:
    """``raw/dataset.json`` and its channel indices by lower-case name (``key``: the Decathlon's
    ``modality``, nnU-Net's ``channel_names``); a ``data.channels`` name it lacks is an error."""
    meta_path = raw / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise VolumeSheetError([f"{meta_path}: unreadable ({error})"], raw) from None
    index = {str(name).lower(): int(i) for i, name in (meta.get(key) or {}).items()}
    missing = [c for c in channels if c.lower() not in index]
    if missing:
        raise VolumeSheetError([f"data.channels {missing} are not {noun} of {meta_path} "
                                f"({', '.join(index)}; names compared in lower case)"], raw)
    return meta, index


def _decathlon_sheet(raw: Path, channels) -> pd.DataFrame:
    """The Medical Segmentation Decathlon: ``imagesTr/{case}`` 4-D (modalities in the 4th axis, named by
    ``dataset.json``'s ``modality``), ``labelsTr/{case}``, ``imagesTs/{case}`` without labels."""
    meta, modality = _dataset_json(raw, "modality", "modalities", channels)
    meta_path = raw / "dataset.json"
    many = len(modality) > 1

    def cells(image: Path) -> dict:
        return {c: f"{image}#{modality[c.lower()]}" if many else str(image) for c in channels}

    rows, problems = [], []
    for entry in meta.get("training") or []:
        image, label = (raw / entry["image"]).resolve(), (raw / entry["label"]).resolve()
        rows.append({"case": _stem(image), "split": "train", **cells(image), "mask": str(label), "mask_rater2": ""})
    for entry in meta.get("test") or []:
        image = (raw / (entry if isinstance(entry, str) else entry["image"])).resolve()
        rows.append({"case": _stem(image), "split": "test", **cells(image), "mask": "", "mask_rater2": ""})
    if not rows:
        problems.append(f"{meta_path}: no training or test entry")
    if problems:
        raise VolumeSheetError(problems, raw)
    return pd.DataFrame(rows, columns=["case", "split", *channels, "mask", "mask_rater2"])


def _nnunet_sheet(raw: Path, channels) -> pd.DataFrame:
    """nnU-Net's raw format: ``imagesTr/{case}_{XXXX}{file_ending}`` (one file per case and modality,
    the 4-digit index named by ``dataset.json``'s ``channel_names``), ``labelsTr/{case}{file_ending}``,
    ``imagesTs/`` without labels."""
    meta, names = _dataset_json(raw, "channel_names", "channel_names", channels)
    ending = meta.get("file_ending", ".nii.gz")
    rows, problems = [], []
    for split, folder in (("train", "imagesTr"), ("test", "imagesTs")):
        cases: dict[str, dict[int, str]] = {}
        for path in sorted((raw / folder).glob(f"*{ending}")) if (raw / folder).is_dir() else []:
            stem = path.name[: -len(ending)]
            case, _, index = stem.rpartition("_")
            if not case or not (len(index) == 4 and index.isdigit()):
                problems.append(f"{path}: not {{case}}_{{XXXX}}{ending} (a 4-digit channel index)")
                continue
            cases.setdefault(case, {})[int(index)] = str(path)
        for case, files in cases.items():
            label = raw / "labelsTr" / f"{case}{ending}"
            if split == "train" and not label.is_file():
                problems.append(f"{label}: missing, the label of training case {case}")
            rows.append({"case": case, "split": split, **{c: files.get(names[c.lower()], "") for c in channels},
                         "mask": str(label) if split == "train" else "", "mask_rater2": ""})
    if not rows:
        problems.append(f"no imagesTr/{{case}}_{{XXXX}}{ending} files")
    if problems:
        raise VolumeSheetError(problems, raw)
    return pd.DataFrame(rows, columns=["case", "split", *channels, "mask", "mask_rater2"])


# --------------------------------------------------------------------------- slicing


def normalise(volume: np.ndarray) -> np.ndarray:
    """uint16 of one modality's volume: z-scores over its nonzero voxels, clipped to +-:data:`Z_RANGE`
    and mapped linearly onto 1..65535; zero voxels (outside the head) stay 0."""
    volume = np.asarray(volume, dtype=np.float64)
    tissue = volume != 0
    out = np.zeros(volume.shape, np.uint16)
    if not tissue.any():
        return out
    values = volume[tissue]
    sd = values.std()
    z = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    out[tissue] = np.rint((np.clip(z, -Z_RANGE, Z_RANGE) + Z_RANGE) / (2 * Z_RANGE) * 65534 + 1).astype(np.uint16)
    return out


def _read_channel(cell: str):
    match = _CHANNEL.match(cell)
    index = match["index"]
    volume = read_volume(match["path"], ndim=3 if index is None else 4)
    if index is None:
        return volume, volume.array
    if int(index) >= volume.array.shape[3]:
        raise VolumeError(f"{match['path']}: channel {index} of a 4-D volume of {volume.array.shape[3]}")
    return volume, volume.array[..., int(index)]


def _check_case(row, channels) -> list[str]:
    """The grids of one case from the headers alone: its modalities on one grid, its labels of that shape."""
    problems, reference = [], None
    for column in (*channels, "mask", "mask_rater2"):
        cell = row[column]
        if not cell:
            continue
        match = _CHANNEL.match(cell)
        try:
            shape, affine, _ = read_header(match["path"])
        except VolumeError as error:
            problems.append(f"case {row['case']}: {column}: {error}")
            continue
        expected = 4 if match["index"] is not None else 3
        if len(shape) != expected and not (expected == 3 and len(shape) > 3 and all(s == 1 for s in shape[3:])):
            hint = (" (the Medical Segmentation Decathlon stacks its modalities in a 4th axis: "
                    "data.volumes.layout: decathlon reads them as channels)") if len(shape) == 4 else ""
            problems.append(f"case {row['case']}: {column} {match['path']}: a {len(shape)}-D volume {tuple(shape)} "
                            f"where a {expected}-D one is expected{hint}")
            continue
        grid = (tuple(shape[:3]), affine)
        if reference is None:
            reference = (column, match["path"], grid)
        elif column in ("mask", "mask_rater2"):
            if grid[0] != reference[2][0]:
                problems.append(f"case {row['case']}: {column} {match['path']}: a label volume of shape {grid[0]}, "
                                f"the images' ({reference[1]}) is {reference[2][0]}")
        elif not same_grid(grid, reference[2]):
            problems.append(f"case {row['case']}: {column} {match['path']} is on another grid than {reference[0]} "
                            f"({reference[1]}): shape {grid[0]} vs {reference[2][0]}, or another affine")
    return problems


def _labels(path: str) -> np.ndarray:
    volume = read_volume(path, ndim=3)
    labels = np.asarray(volume.array)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise VolumeError(f"{path}: a label volume of non-integer values")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise VolumeError(f"{path}: label values {labels.min()}..{labels.max()} outside 0..65535")
    return labels.astype(np.uint16 if labels.size and labels.max() > 255 else np.uint8)


def training_slices(label_slices: np.ndarray | None, kept: np.ndarray, *, slices: str, empty_share: float,
                    seed: int, case: str, background: int = 0) -> np.ndarray:
    """bool per kept slice: read by training. ``foreground`` (a case with labels): the slices with a
    label other than ``background`` and ``round(empty_share * n)`` of the ``n`` others, drawn with
    ``default_rng([seed, crc32(case)])``; otherwise every one."""
    import zlib

    trained = np.ones(len(kept), dtype=bool)
    if slices != "foreground" or label_slices is None:
        return trained
    foreground = np.asarray([(label_slices[k] != background).any() for k in kept], dtype=bool)
    empty = np.flatnonzero(~foreground)
    chosen = np.random.default_rng([int(seed), zlib.crc32(case.encode())]).permutation(empty)
    trained[:] = foreground
    trained[chosen[:int(round(empty_share * len(empty)))]] = True
    return trained


def slice_stage(vsheet: pd.DataFrame, *, channels, axis="auto", slices: str = "tissue", out_dir, sheet_tsv,
                index_json, empty_share: float = 0.0, seed: int = 0, background: int = 0) -> pd.DataFrame:
    """Slice every case of ``vsheet`` (:func:`volume_sheet`) into ``out_dir``; write the 2-D sample sheet
    ``sheet_tsv`` (``image_id, subject, split, *channels, mask, mask_rater2, case, slice, train_slice``)
    and the index ``index_json``. Every case's headers are checked first; nothing is written if one is
    at fault. ``slices``, ``empty_share``, ``seed``: :func:`training_slices` (``background``: the
    label value of the background class)."""
    from plexus.data.dsb2018 import write_png
    from plexus.data.sheet import write_sheet

    if slices not in SLICE_SELECTIONS:
        raise ValueError(f"data.volumes.slices: {slices!r} is not one of {', '.join(SLICE_SELECTIONS)}")
    problems = [p for _, row in vsheet.iterrows() for p in _check_case(row, channels)]
    if problems:
        raise VolumeSheetError(problems, vsheet.attrs.get("sheet", "the volume sheet"))
    out_dir = Path(out_dir)
    rows, index = [], {}
    for _, case in vsheet.iterrows():
        present = [c for c in channels if case[c]]
        volumes = {c: _read_channel(case[c]) for c in present}
        first = volumes[present[0]][0]
        case_axis = axial_axis(first.affine) if axis == "auto" else int(axis)
        stacks = {c: to_slices(normalise(array), case_axis) for c, (_, array) in volumes.items()}
        n = next(iter(stacks.values())).shape[0]
        tissue = np.zeros(n, bool)
        for stack in stacks.values():
            tissue |= stack.reshape(n, -1).any(axis=1)
        kept = np.arange(n) if slices == "all" else np.flatnonzero(tissue)
        labels = {k: to_slices(_labels(case[k]), case_axis) for k in ("mask", "mask_rater2") if case[k]}
        trained = training_slices(labels.get("mask"), kept, slices=slices, empty_share=empty_share, seed=seed,
                                  case=case["case"], background=background)
        ids = [f"{case['case']}_{k:03d}" for k in kept]
        for k, image_id, train_slice in zip(kept, ids, trained):
            row = {"image_id": image_id, "subject": case["case"], "split": case["split"]}
            for c in channels:
                row[c] = ""
                if c in stacks:
                    path = out_dir / "images" / case["case"] / c / f"{image_id}.png"
                    write_png(path, stacks[c][k])
                    row[c] = str(path.resolve())
            for key in ("mask", "mask_rater2"):
                row[key] = ""
                if key in labels:
                    path = out_dir / key / case["case"] / f"{image_id}.png"
                    write_png(path, labels[key][k])
                    row[key] = str(path.resolve())
            rows.append({**row, "case": case["case"], "slice": str(int(k)),
                         "train_slice": "yes" if train_slice else "no"})
        index[case["case"]] = {
            "split": case["split"], "axis": case_axis, "shape": list(first.shape3), "n_slices": int(n),
            "slices": [int(k) for k in kept], "image_ids": ids,
            "spacing": [float(s) for s in first.spacing], "affine": np.asarray(first.affine).tolist(),
            "reference": case[present[0]], "mask": case["mask"], "mask_rater2": case["mask_rater2"],
            "channels": present, "tissue_slices": int(tissue.sum()), "trained_slices": int(trained.sum()),
        }
        print(f"case {case['case']}: {n} slices along voxel axis {case_axis}, {len(kept)} kept ({slices}), "
              f"{int(trained.sum())} of them trained on; modalities {', '.join(present)}")
    columns = ["image_id", "subject", "split", *channels, "mask", "mask_rater2", "case", "slice", "train_slice"]
    write_sheet(pd.DataFrame(rows, columns=columns), sheet_tsv)
    atomic.write_json(index_json, {"slices": slices, "cases": index})
    return pd.DataFrame(rows, columns=columns)


def read_index(index_json) -> dict:
    """``volumes.json`` as :func:`slice_stage` wrote it."""
    return json.loads(Path(index_json).read_text())


def convert_stage(data: dict, part: str, *, sheet_tsv, images_dir, index_json, background: int = 0) -> pd.DataFrame:
    """The ``convert`` rule of format volumes: ``part``'s cases of the dataset ``data`` (the config's data
    section) sliced into ``images_dir`` (the folder of the slices); ``background``: the first class's value."""
    settings = data["volumes"]
    vsheet = volume_sheet(data["raw_dir"].rstrip("/"), settings["layout"], channels=data["channels"],
                          sheet=data["sheet"], parts=(part,))
    os.makedirs(images_dir, exist_ok=True)
    return slice_stage(vsheet, channels=data["channels"], axis=settings["axis"], slices=settings["slices"],
                       out_dir=images_dir, sheet_tsv=sheet_tsv, index_json=index_json,
                       empty_share=settings["empty_share"], seed=settings["seed"], background=background)
