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
SCORE_COLUMNS = ["case", "fold", "entry", "unit", "dice_untuned", "dice", "dice_cross_fitted", "hd95",
                 "truth_voxels", "pred_voxels", "min_volume_mm3"]


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


def min_voxels(min_volume_mm3: float, spacing) -> int:
    """The fewest voxels of a component of at least ``min_volume_mm3`` cubic millimetres."""
    return int(np.ceil(float(min_volume_mm3) / float(np.prod(spacing)) - 1e-9))


def remove_small_volumes(mask: np.ndarray, min_volume_mm3: float, spacing) -> np.ndarray:
    """``mask`` without its 26-connected components below ``min_volume_mm3`` (the one size rule of
    :func:`plexus.postprocess.components.remove_small_components`)."""
    from plexus.postprocess.components import remove_small_components

    return remove_small_components(mask, min_voxels(min_volume_mm3, spacing))


def dice_by_min_volume(pred: np.ndarray, truth: np.ndarray, grid, spacing) -> np.ndarray:
    """The Dice of ``pred`` against ``truth`` (bool volumes) with its components below each
    minimum volume of ``grid`` (mm^3) removed: one labelling, counts per component."""
    from plexus.postprocess.components import kept_objects, label_components

    true = int(truth.sum())
    components = label_components(pred)
    if components is None:
        return np.full(len(grid), 1.0 if true == 0 else 0.0)
    inter = np.bincount(components.labels[truth[components.box]], minlength=len(components.sizes))
    out = np.empty(len(grid))
    for g, volume in enumerate(grid):
        keep = kept_objects(components.sizes, min_voxels(volume, spacing)).astype(np.int64)
        tp, predicted = int(keep @ inter), int(keep @ components.sizes)
        out[g] = 1.0 if predicted + true == 0 else 2.0 * tp / (predicted + true)
    return out


def choose_min_volume(dice: np.ndarray, grid) -> int:
    """The grid index of the highest mean Dice over cases (``dice`` (cases, grid)); ties go to the
    smaller volume."""
    return int(np.argmax(np.round(dice.mean(axis=0), 12)))


def volume_scores_stage(task, settings: dict, members: dict[str, list[str]], *, decision_json, train_csv, folds_csv,
                        index_json, scores_csv, summary_json, n_boot: int, seed: int, name: str = "",
                        min_volumes=(0,)) -> dict:
    """Per training case and unit: the decided OOF slices stacked into the case's volume (``entry`` =
    ``name``), scored after the minimum 3-D component volume tuned per unit on every case
    (``dice``; ``dice_untuned`` without it; ``dice_cross_fitted`` at the volume tuned on the other
    folds' cases), with its HD95; and a second rater's label volume (``entry`` ``rater2``). The
    summary has each unit's tuned volume and mean scores with case-bootstrap intervals."""
    from plexus.data.volumes import read_index
    from plexus.evaluation.volumes import dice, hd95

    decision = _read_json(decision_json)
    train, folds, index = read_manifest(train_csv), read_folds(folds_csv), read_index(index_json)
    names, matrix = task.units(settings)
    grid = sorted({float(v) for v in min_volumes} | {0.0})
    fold_of = dict(zip(folds["subject"].astype(str), folds["fold"].astype(int)))
    cases = {c: v for c, v in index["cases"].items() if v["split"] == "train"}
    ids = [i for case in cases.values() for i in case["image_ids"]]
    masks = task.decided_unit_masks(settings, members, train, ids, decision)
    stacked, rater_rows = {}, []
    for case_id, case in cases.items():
        pred = stack_case([next(masks) for _ in case["image_ids"]], case, len(names))
        truth, valid = truth_units(case["mask"], settings["classes"], settings.get("ignore"), matrix)
        stacked[case_id] = (pred & valid, truth & valid)
        if case.get("mask_rater2"):
            rated, _ = truth_units(case["mask_rater2"], settings["classes"], settings.get("ignore"), matrix)
            for u, unit in enumerate(names):
                r, t = rated[u] & valid, truth[u] & valid
                score = dice(r, t)
                rater_rows.append({"case": case_id, "fold": fold_of.get(case_id, -1), "entry": "rater2",
                                   "unit": unit, "dice_untuned": score, "dice": score, "dice_cross_fitted": score,
                                   "hd95": hd95(r, t, case["spacing"]), "truth_voxels": int(t.sum()),
                                   "pred_voxels": int(r.sum()), "min_volume_mm3": 0.0})
    case_ids = list(cases)
    case_folds = np.asarray([fold_of.get(c, -1) for c in case_ids])
    grid_dice = np.zeros((len(case_ids), len(names), len(grid)))
    for c, case_id in enumerate(case_ids):
        pred, truth = stacked[case_id]
        for u in range(len(names)):
            grid_dice[c, u] = dice_by_min_volume(pred[u], truth[u], grid, cases[case_id]["spacing"])
    chosen = [choose_min_volume(grid_dice[:, u], grid) for u in range(len(names))]
    crossfit = np.zeros((len(case_ids), len(names)))
    for k in np.unique(case_folds):
        rest = case_folds != k
        for u in range(len(names)):
            g = choose_min_volume(grid_dice[rest, u], grid) if rest.any() else 0
            crossfit[case_folds == k, u] = grid_dice[case_folds == k, u, g]
    rows = []
    for c, case_id in enumerate(case_ids):
        pred, truth = stacked[case_id]
        for u, unit in enumerate(names):
            final = remove_small_volumes(pred[u], grid[chosen[u]], cases[case_id]["spacing"])
            rows.append({"case": case_id, "fold": int(case_folds[c]), "entry": name, "unit": unit,
                         "dice_untuned": float(grid_dice[c, u, 0]), "dice": float(grid_dice[c, u, chosen[u]]),
                         "dice_cross_fitted": float(crossfit[c, u]),
                         "hd95": hd95(final, truth[u], cases[case_id]["spacing"]), "truth_voxels": int(truth[u].sum()),
                         "pred_voxels": int(final.sum()), "min_volume_mm3": grid[chosen[u]]})
    scores = pd.DataFrame(rows + rater_rows, columns=SCORE_COLUMNS)
    summary = volume_summary(scores, n_boot=n_boot, seed=seed)
    summary["min_volume_mm3"] = {unit: grid[chosen[u]] for u, unit in enumerate(names)}
    summary["grid"] = {unit: {"min_volume_mm3": grid, "dice": grid_dice[:, u].mean(axis=0).tolist()}
                       for u, unit in enumerate(names)}
    atomic.write_csv(scores_csv, scores)
    atomic.write_json(summary_json, summary)
    for entry, units in summary["entries"].items():
        print(entry + ": " + "; ".join(f"{u} Dice {s['dice']:.3f} [{s['dice_low']:.3f}, {s['dice_high']:.3f}], "
                                       f"HD95 median {s['hd95_median']:.2f} mm" for u, s in units.items()))
    print("minimum component volumes (mm^3): " + ", ".join(f"{u} {v:g}" for u, v in summary["min_volume_mm3"].items()))
    return summary


def volume_summary(scores: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """Per entry and unit: the mean Dice over cases (tuned, untuned, cross-fitted) with case-bootstrap
    95% intervals, the HD95 median and mean over the cases where it is defined, and how many cases have
    none (one of the two masks empty)."""
    from plexus.evaluation.bootstrap import bootstrap_ci

    out = {"entries": {}, "n_cases": int(scores["case"].nunique()) if len(scores) else 0}
    for (entry, unit), frame in scores.groupby(["entry", "unit"], sort=False):
        ci = bootstrap_ci(frame, value="dice", group="case", n_boot=n_boot, seed=seed)
        crossfit = bootstrap_ci(frame, value="dice_cross_fitted", group="case", n_boot=n_boot, seed=seed)
        hd = frame["hd95"].to_numpy(float)
        finite = hd[np.isfinite(hd)]
        out["entries"].setdefault(entry, {})[unit] = {
            "dice": float(ci["mean"]), "dice_low": float(ci["low"]), "dice_high": float(ci["high"]),
            "dice_untuned": float(frame["dice_untuned"].mean()),
            "dice_cross_fitted": float(crossfit["mean"]), "dice_cross_fitted_low": float(crossfit["low"]),
            "dice_cross_fitted_high": float(crossfit["high"]),
            "hd95_median": float(np.median(finite)) if finite.size else float("nan"),
            "hd95_mean": float(finite.mean()) if finite.size else float("nan"),
            "hd95_undefined": int((~np.isfinite(hd)).sum()), "n_cases": int(len(frame))}
    return out


def volume_table_stage(names, summary_jsons, csv_path, md_path) -> pd.DataFrame:
    """One row per model or ensemble (and the second rater, once) and unit: the per-volume scores of
    ``results/volumes/{name}/summary.json``, as ``results/tables/volumes.{csv,md}``."""
    rows, rater = [], None
    for name, path in zip(names, summary_jsons):
        summary = _read_json(path)
        for entry, units in summary["entries"].items():
            if entry == "rater2":
                rater = rater or units
                continue
            rows += [{"name": name, "unit": unit, **values, "min_volume_mm3": summary["min_volume_mm3"][unit]}
                     for unit, values in units.items()]
    rows += [{"name": "rater2", "unit": unit, **values, "min_volume_mm3": 0.0}
             for unit, values in (rater or {}).items()]
    table = pd.DataFrame(rows)
    atomic.write_csv(csv_path, table)
    lines = ["| model | unit | cases | Dice (95% CI) | cross-fitted (95% CI) | untuned | HD95 median (mm) | "
             "no HD95 | min. volume (mm^3) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        tuned = f"{row.dice:.3f} ({row.dice_low:.3f}-{row.dice_high:.3f})"
        crossfit = f"{row.dice_cross_fitted:.3f} ({row.dice_cross_fitted_low:.3f}-{row.dice_cross_fitted_high:.3f})"
        lines.append(f"| {row.name} | {row.unit} | {row.n_cases} | {tuned} | {crossfit} | {row.dice_untuned:.3f} "
                     f"| {row.hd95_median:.2f} | {row.hd95_undefined} | {row.min_volume_mm3:g} |")
    atomic.write_text(md_path, "\n".join(lines) + "\n")
    return table


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
                        index_json, out_dir, volume_summary_json=None) -> list[str]:
    """Every test case's decided masks, without the components below each unit's minimum volume tuned
    on the training cases (``volume_summary_json``), painted into a label volume (the task's
    :meth:`~plexus.tasks.base.Task.unit_values`), written with its scan's affine and header."""
    from plexus.data.volumes import read_index
    from plexus.io.volumes import read_volume, write_label_volume

    decision = _read_json(decision_json)
    test, index = read_manifest(test_csv), read_index(index_json)
    values, unit_names = task.unit_values(settings), task.units(settings)[0]
    min_volumes = _read_json(volume_summary_json)["min_volume_mm3"] if volume_summary_json else {}
    cases = {c: v for c, v in index["cases"].items() if v["split"] == "test"}
    ids = [i for case in cases.values() for i in case["image_ids"]]
    masks = task.decided_unit_masks(settings, members, test, ids, decision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for case_id, case in cases.items():
        units = stack_case([next(masks) for _ in case["image_ids"]], case, len(values))
        units = np.stack([remove_small_volumes(units[u], min_volumes.get(unit, 0.0), case["spacing"])
                          for u, unit in enumerate(unit_names)]) if len(values) else units
        reference = case["reference"]
        like = read_volume(reference.split("#")[0], ndim=None)
        path = out_dir / label_volume_name(case_id, reference)
        write_label_volume(path, paint(units, values), like)
        written.append(str(path))
    print(f"{len(written)} label volumes in {out_dir}")
    return written
