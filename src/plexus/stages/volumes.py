"""Back to volumes (data.format ``volumes``): slice decisions stacked per case, scored per volume, written.

A volume study is trained, tuned and decided on its 2-D slices like any other (the ``convert``
rule cut them, :mod:`plexus.data.volumes`); these stages put each case back together on its own
grid from the index ``results/converted/volumes.json``:

* :func:`volume_scores_stage`: every training case's decided OOF masks, stacked, scored against
  its label volume per unit (the task's :meth:`~plexus.tasks.base.Task.units`: the foreground,
  each class, each region): Dice, and HD95 in millimetres from the voxel spacing
  (:mod:`plexus.evaluation.volumes`), with case-bootstrap intervals (a case is the subject); a
  second rater's label volume, where the sheet has one, is scored the same way (row ``rater2``).
  Slices the sheet left out (no tissue) are predicted empty.
* :func:`label_volumes_stage`: every test case's decided masks as a label volume beside its scan's
  grid: the scan's affine and header (NIfTI) or spacing, origin and direction (MHA), so any viewer
  overlays it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import read_folds, read_manifest

#: the columns of ``results/volumes/{name}/scores.csv``
SCORE_COLUMNS = ["case", "fold", "entry", "unit", "dice", "hd95", "truth_voxels", "pred_voxels"]


def _read_json(path) -> dict:
    import json

    return json.loads(Path(path).read_text())


def stack_case(masks: list[np.ndarray], case: dict, n_units: int) -> np.ndarray:
    """``(U, *shape)`` bool: a case's per-slice ``(U, h, w)`` masks (its kept slices, in order) put
    back on its grid along its axis; the slices left out are empty."""
    from plexus.io.volumes import from_slices

    shape, axis = tuple(case["shape"]), int(case["axis"])
    plane = tuple(s for i, s in enumerate(shape) if i != axis)
    slices = np.zeros((shape[axis], *plane, n_units), dtype=bool)
    for k, mask in zip(case["slices"], masks):
        if mask.shape[1:] != plane:
            raise ValueError(f"case slice {k}: a mask of {mask.shape[1:]}, the case's slices are {plane}")
        slices[k] = np.moveaxis(mask, 0, -1)
    return np.moveaxis(from_slices(slices, axis), -1, 0)


def truth_units(path: str, classes: dict, ignore: dict | None, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(U, *shape)`` bool units of a label volume read through ``classes`` and ``ignore`` (as a
    2-D mask is: a value of neither is an error naming the file), and the voxels that count."""
    from plexus.evaluation.raters import unit_masks
    from plexus.io.volumes import read_volume
    from plexus.labels import class_table, to_class_index

    volume = np.asarray(read_volume(path, ndim=3).array)
    if volume.dtype.kind == "f":
        volume = np.rint(volume).astype(np.int64)
    flat = volume.reshape(volume.shape[0], -1)
    label = to_class_index(flat, class_table(classes)[1], path, list((ignore or {}).values()))
    return unit_masks(label.reshape(volume.shape), matrix)


def _case_rows(case_id: str, fold, entry: str, names, pred: np.ndarray, truth: np.ndarray, valid, spacing):
    from plexus.evaluation.volumes import dice, hd95

    rows = []
    for u, unit in enumerate(names):
        p, t = pred[u] & valid, truth[u] & valid
        rows.append({"case": case_id, "fold": fold, "entry": entry, "unit": unit, "dice": dice(p, t),
                     "hd95": hd95(p, t, spacing), "truth_voxels": int(t.sum()), "pred_voxels": int(p.sum())})
    return rows


def volume_scores_stage(task, settings: dict, members: dict[str, list[str]], *, decision_json, train_csv, folds_csv,
                        index_json, scores_csv, summary_json, n_boot: int, seed: int, name: str = "") -> dict:
    """Per training case and unit, the Dice and HD95 of the decided OOF masks stacked into the case's
    volume (``entry`` = ``name``), and of a second rater's label volume (``entry`` ``rater2``); the
    summary has each unit's mean Dice with its case-bootstrap interval and the HD95 median."""
    from plexus.data.volumes import read_index

    decision = _read_json(decision_json)
    train, folds, index = read_manifest(train_csv), read_folds(folds_csv), read_index(index_json)
    names, matrix = task.units(settings)
    fold_of = dict(zip(folds["subject"].astype(str), folds["fold"].astype(int)))
    cases = {c: v for c, v in index["cases"].items() if v["split"] == "train"}
    ids = [i for case in cases.values() for i in case["image_ids"]]
    masks = task.decided_unit_masks(settings, members, train, ids, decision)
    rows = []
    for case_id, case in cases.items():
        pred = stack_case([next(masks) for _ in case["image_ids"]], case, len(names))
        truth, valid = truth_units(case["mask"], settings["classes"], settings.get("ignore"), matrix)
        fold = fold_of.get(case_id, -1)
        rows += _case_rows(case_id, fold, name, names, pred, truth, valid, case["spacing"])
        if case.get("mask_rater2"):
            rated, _ = truth_units(case["mask_rater2"], settings["classes"], settings.get("ignore"), matrix)
            rows += _case_rows(case_id, fold, "rater2", names, rated, truth, valid, case["spacing"])
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    summary = volume_summary(scores, n_boot=n_boot, seed=seed)
    atomic.write_csv(scores_csv, scores)
    atomic.write_json(summary_json, summary)
    for entry, units in summary["entries"].items():
        print(entry + ": " + "; ".join(f"{u} Dice {s['dice']:.3f} [{s['dice_low']:.3f}, {s['dice_high']:.3f}], "
                                       f"HD95 median {s['hd95_median']:.2f} mm" for u, s in units.items()))
    return summary


def volume_summary(scores: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """Per entry and unit: the mean Dice over cases with its case-bootstrap 95% interval, the HD95
    median and mean over the cases where it is defined, and how many cases have none (one of the
    two masks empty)."""
    from plexus.evaluation.bootstrap import bootstrap_ci

    out = {"entries": {}, "n_cases": int(scores["case"].nunique()) if len(scores) else 0}
    for (entry, unit), frame in scores.groupby(["entry", "unit"], sort=False):
        ci = bootstrap_ci(frame, value="dice", group="case", n_boot=n_boot, seed=seed)
        hd = frame["hd95"].to_numpy(float)
        finite = hd[np.isfinite(hd)]
        out["entries"].setdefault(entry, {})[unit] = {
            "dice": float(ci["mean"]), "dice_low": float(ci["low"]), "dice_high": float(ci["high"]),
            "hd95_median": float(np.median(finite)) if finite.size else float("nan"),
            "hd95_mean": float(finite.mean()) if finite.size else float("nan"),
            "hd95_undefined": int((~np.isfinite(hd)).sum()), "n_cases": int(len(frame))}
    return out


def paint(masks: np.ndarray, values) -> np.ndarray:
    """A label volume of ``(U, ...)`` unit masks: each unit's value painted in order, a later unit
    over an earlier one; 0 elsewhere."""
    out = np.zeros(masks.shape[1:], dtype=np.uint16 if max(values, default=0) > 255 else np.uint8)
    for mask, value in zip(masks, values):
        out[mask] = value
    return out


def label_volume_name(case_id: str, reference: str) -> str:
    """``{case}`` with the reference volume's suffix (``.nii.gz``, ``.nii``; an ``.mhd`` pair as ``.mha``)."""
    from plexus.io.volumes import volume_suffix

    suffix = volume_suffix(reference.split("#")[0]) or ".nii.gz"
    return case_id + (".mha" if suffix == ".mhd" else suffix)


def label_volumes_stage(task, settings: dict, members: dict[str, list[str]], *, decision_json, test_csv,
                        index_json, out_dir) -> list[str]:
    """Every test case's decided masks painted into a label volume (the task's
    :meth:`~plexus.tasks.base.Task.unit_values`), written with its scan's affine and header."""
    from plexus.data.volumes import read_index
    from plexus.io.volumes import read_volume, write_label_volume

    decision = _read_json(decision_json)
    test, index = read_manifest(test_csv), read_index(index_json)
    values = task.unit_values(settings)
    cases = {c: v for c, v in index["cases"].items() if v["split"] == "test"}
    ids = [i for case in cases.values() for i in case["image_ids"]]
    masks = task.decided_unit_masks(settings, members, test, ids, decision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case_id, case in cases.items():
        units = stack_case([next(masks) for _ in case["image_ids"]], case, len(values))
        reference = case["reference"]
        like = read_volume(reference.split("#")[0], ndim=None)
        path = out_dir / label_volume_name(case_id, reference)
        write_label_volume(path, paint(units, values), like)
        written.append(str(path))
    print(f"{len(written)} label volumes in {out_dir}")
    return written
