"""A labelled test set scored: each model's and ensemble's held-out score beside its cross-fitted estimate.

The test masks (``data.test_masks``) are checked by a job of their own, ``test_masks``, like training
masks (size against the image, values in ``classes``) and written apart, to
``results/manifest/test_masks.csv`` (:func:`split_test_masks`); their raw fingerprint is their own
too. ``test.csv`` is the same with or without them, so the test arrays, predictions and submission
never see them, labelling a test set (or editing a test mask) reruns no prediction, and no training,
tuning or decision job reads that file. Only the ``heldout`` rule (and ``plexus predict --masks``)
does. A sheet's test rows have mask cells exactly when ``data.test_masks`` is set: checked when the
workflow starts (:func:`check_test_mask_cells`).

A held-out score is the study's own per-image score of what it submits: the label maps (or decided
masks) that the task's ``submission`` stage writes with the kept decision, against the test masks,
at each image's own size (:func:`score_labelmaps`):

* ``classes``: the mean over the foreground classes of each class's Dice
  (:func:`plexus.evaluation.multiclass.class_scores`: 1 when a class is in neither map), ignored
  pixels (``ignore:``) counting nowhere: the per-image score the tuning and the cross-fitted
  estimate average;
* ``binary``: the Kaggle Dice (:func:`plexus.evaluation.metrics.kaggle_dice`: 1 on an empty/empty
  image);
* ``regions``: the mean over the regions of each region's Dice (1 when a region is in neither),
  ignored pixels counting nowhere, read from the submission's run-length row of every image and
  region (a label map keeps only the innermost region of each pixel, so it cannot give them).

An ensemble is scored on ``results/labelmaps/{ensemble}/``; a model, which has no submission, on the
label maps its own decision gives its fold-averaged test probabilities, made by the same
``submission`` stage (:func:`decided_labelmaps`). :func:`heldout_table` puts each mean with its
subject-bootstrap CI (:func:`plexus.evaluation.bootstrap.bootstrap_ci`; a test image without a subject
is its own) beside the cross-fitted estimate of ``results/postprocess/{name}.json`` and the
difference, held-out minus estimate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: the tasks whose held-out score is implemented
TASKS = ("binary", "classes", "regions")
#: ``results/manifest/test_masks.csv``: what the test manifest keeps of each test mask
TRUTH_COLUMNS = ("image_id", "subject", "mask", "height", "width", "mask_area", "mask_classes")
#: the columns of ``results/tables/heldout.csv``
TABLE_COLUMNS = ("name", "kind", "members", "score", "heldout", "heldout_low", "heldout_high", "n_images",
                 "n_subjects", "cross_fitted", "cross_fitted_low", "cross_fitted_high", "difference")
#: decimals of the scores written to the CSV files
DECIMALS = 4


def config_errors(config: dict, task_name: str) -> list[str]:
    """``data.test_masks`` with a task or data format that cannot score a labelled test set."""
    data = config["data"]
    if not data.get("test_masks"):
        return []
    errors = []
    if task_name not in TASKS:
        errors.append(f"data.test_masks: task {task_name!r} has no held-out score (tasks: {', '.join(TASKS)})")
    if data["format"] not in ("folders", "sheet"):
        errors.append(f"data.test_masks: data.format {data['format']!r} carries no test masks "
                      "(formats folders: data.folders.test_masks; sheet: the test rows' mask cells)")
    return errors


# --------------------------------------------------------------------------- the test manifest


def test_mask_problems(rows: pd.DataFrame, labels: list[str], labelled: bool) -> list[str]:
    """Test rows whose ``mask`` cell does not fit ``data.test_masks`` (``labelled``): with it every test
    row needs a mask; without it none may have one. ``labels``: each row as the sheet's errors name it."""
    has = rows["mask"].fillna("").astype(str) != ""
    if labelled:
        return [f"{label}, column mask: data.test_masks is set, so every test row needs a mask"
                for label, ok in zip(labels, has) if not ok]
    return [f"{label}, column mask: a test row has a mask, but data.test_masks is false (set data.test_masks: "
            "true to score the test set against its masks, which never enter training or any decision)"
            for label, ok in zip(labels, has) if ok]


def check_test_mask_cells(config: dict) -> None:
    """A ``sheet`` dataset's test rows against ``data.test_masks``, at the workflow's start, before any
    job: :class:`plexus.data.sheet.SheetError` naming every test row whose mask cell does not fit it
    (:func:`test_mask_problems`). Only the cells are read; the ``test_masks`` job checks the masks
    themselves. A sheet that is missing or cannot be read is left to the manifest jobs to report."""
    from plexus.data.sheet import SheetError, _records, _row_label
    from plexus.runs import sheet_path

    if config["data"]["format"] != "sheet":
        return
    path = Path(sheet_path(config))
    try:
        records = _records(path)
    except (OSError, ValueError):
        return
    header = records[0] if records else []
    if not {"image_id", "split"} <= set(header):
        return
    column = {name: i for i, name in enumerate(header)}
    cell = lambda record, name: record[column[name]] if name in column and column[name] < len(record) else ""  # noqa: E731
    numbers, ids, masks = [], [], []
    for number, record in enumerate(records[1:], start=2):  # sheet rows as the sheet's own errors count them
        if any(record) and cell(record, "split") == "test":
            numbers.append(number)
            ids.append(cell(record, "image_id"))
            masks.append(cell(record, "mask"))
    rows = pd.DataFrame({"mask": masks}, dtype=str)
    labels = [_row_label(n, i) for n, i in zip(numbers, ids)]
    problems = test_mask_problems(rows, labels, bool(config["data"].get("test_masks")))
    if problems:
        raise SheetError(problems, path)


def split_test_masks(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(test, truth)`` of a checked test manifest whose rows carry masks: ``test`` as the manifest
    of the same images without masks (what every prediction job reads), ``truth`` the
    :data:`TRUTH_COLUMNS` (``results/manifest/test_masks.csv``)."""
    truth = manifest.loc[:, list(TRUTH_COLUMNS)].reset_index(drop=True)
    test = manifest.assign(mask="", mask_area=0, mask_classes="")
    return test, truth


# --------------------------------------------------------------------------- per-image scores


def image_score(task_name: str, settings: dict, pred_path, truth_path) -> float:
    """The task's per-image score of the label map ``pred_path`` against the mask ``truth_path``, at the
    image's own size. ``settings``: ``classes`` and ``ignore`` (task classes)."""
    if task_name == "classes":
        from plexus.data.dataset import read_class_mask
        from plexus.evaluation.multiclass import class_scores

        classes = settings["classes"]
        pred = read_class_mask(pred_path, classes)
        true = read_class_mask(truth_path, classes, ignore=settings.get("ignore"))
        _same_size(pred, true, pred_path, truth_path)
        return float(np.mean(class_scores(pred, true, len(classes))["dice"]))
    if task_name == "binary":
        from plexus.evaluation.metrics import kaggle_dice
        from plexus.io.images import read_mask

        pred, true = read_mask(pred_path), read_mask(truth_path)
        _same_size(pred, true, pred_path, truth_path)
        return kaggle_dice(pred, true)
    raise ValueError(f"task {task_name!r} has no held-out score (tasks: {', '.join(TASKS)})")


def _same_size(pred, true, pred_path, truth_path) -> None:
    if pred.shape[:2] != true.shape[:2]:
        raise ValueError(f"{pred_path}: the label map is {pred.shape[0]}x{pred.shape[1]}, its test mask {truth_path} "
                         f"{true.shape[0]}x{true.shape[1]}")


def score_labelmaps(task_name: str, settings: dict, labelmaps, truth: pd.DataFrame,
                    submission_csv=None) -> pd.DataFrame:
    """``image_id, subject, score`` of every test image of ``truth`` (:data:`TRUTH_COLUMNS`): the label
    map ``labelmaps/{image_id}.png`` scored against its mask (:func:`image_score`); task regions: the
    submission's rows of the image (``submission_csv``, :func:`region_image_score`). A test image
    without a subject is its own."""
    labelmaps = Path(labelmaps)
    region_rows = _region_rows(submission_csv) if task_name == "regions" else None
    rows = []
    for image_id, subject, mask in zip(truth["image_id"].astype(str), truth["subject"].fillna("").astype(str),
                                       truth["mask"].astype(str)):
        if region_rows is not None:
            if image_id not in region_rows:
                raise ValueError(f"{submission_csv}: no row of test image {image_id!r}")
            score = region_image_score(region_rows[image_id], mask, settings)
        else:
            pred = labelmaps / f"{image_id}.png"
            if not pred.is_file():
                raise FileNotFoundError(f"{pred}: no label map of test image {image_id!r} (the submission's)")
            score = image_score(task_name, settings, pred, mask)
        rows.append({"image_id": image_id, "subject": subject or image_id, "score": score})
    return pd.DataFrame(rows, columns=["image_id", "subject", "score"])


def _region_rows(submission_csv) -> dict[str, dict[str, str]]:
    """image id -> region -> run-length mask, of a regions submission (``image_id, region, EncodedPixels``)."""
    from plexus.io.contracts import read_table

    if submission_csv is None:
        raise ValueError("task regions scores its submission's run-length rows: no submission given")
    frame = read_table(submission_csv, text=("image_id", "region", "EncodedPixels"))
    rows: dict[str, dict[str, str]] = {}
    for image_id, region, pixels in zip(frame["image_id"], frame["region"], frame["EncodedPixels"].fillna("")):
        rows.setdefault(str(image_id), {})[str(region)] = str(pixels)
    return rows


def region_image_score(rows: dict[str, str], truth_path, settings: dict) -> float:
    """Task regions: the mean over the regions of the Dice of the submitted region masks (``rows``:
    region -> run-length mask) against the regions of the test mask ``truth_path``, at its size,
    ignored pixels counting nowhere. ``settings``: ``classes``, ``ignore`` and ``submission``'s
    ``regions``."""
    from plexus.data.dataset import read_class_mask
    from plexus.evaluation.multiclass import class_counts, scores_from_counts
    from plexus.evaluation.raters import unit_masks
    from plexus.io.rle import decode
    from plexus.labels import region_matrix

    classes, regions = settings["classes"], settings["submission"]["regions"]
    label = read_class_mask(truth_path, classes, ignore=settings.get("ignore"))
    truth, valid = unit_masks(label, region_matrix(regions, classes))
    counts = []
    for r, name in enumerate(regions):
        if name not in rows:
            raise ValueError(f"{truth_path}: the submission has no row of region {name!r} for this image")
        pred = decode(rows[name], label.shape).astype(bool) & valid
        counts.append(class_counts(pred.astype(np.uint8), truth[r].astype(np.uint8), 2)[0])
    return float(np.mean(scores_from_counts(np.asarray(counts))["dice"]))


# --------------------------------------------------------------------------- the table


def heldout_table(per_image: dict[str, pd.DataFrame], decisions: dict[str, dict], kinds: dict[str, str], *,
                  n_boot: int, seed: int) -> pd.DataFrame:
    """One row per name of ``per_image`` (its :func:`score_labelmaps` frame): the held-out mean and
    subject-bootstrap CI, the cross-fitted estimate and CI of its decision (``decisions[name]``, the
    ``results/postprocess/{name}.json`` content) and the difference, held-out minus estimate."""
    from plexus.evaluation.bootstrap import bootstrap_ci

    rows = []
    for name, frame in per_image.items():
        decision = decisions[name]
        ci = bootstrap_ci(frame, value="score", n_boot=n_boot, seed=seed)
        low, high = decision["cross_fitted_ci"]
        rows.append({"name": name, "kind": kinds[name], "members": "+".join(decision.get("members") or [name]),
                     "score": decision.get("score_name", "score"), "heldout": ci["mean"], "heldout_low": ci["low"],
                     "heldout_high": ci["high"], "n_images": ci["n_images"], "n_subjects": ci["n_groups"],
                     "cross_fitted": float(decision["cross_fitted_score"]), "cross_fitted_low": float(low),
                     "cross_fitted_high": float(high),
                     "difference": ci["mean"] - float(decision["cross_fitted_score"])})
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    scores = [c for c in TABLE_COLUMNS if c.startswith(("heldout", "cross_fitted")) or c == "difference"]
    table[scores] = table[scores].astype(float).round(DECIMALS)
    return table


def heldout_markdown(table: pd.DataFrame) -> str:
    score = table["score"].iloc[0] if len(table) else "score"
    lines = [f"Held-out {score} of the labelled test set (mean, subject-bootstrap 95% CI) beside the cross-fitted "
             "estimate on the training images; difference = held-out - estimate.", "",
             "| name | kind | images | subjects | held-out | cross-fitted estimate | difference |",
             "|---|---|---:|---:|---|---|---:|"]
    for row in table.itertuples():
        lines.append(f"| {row.name} | {row.kind} | {row.n_images} | {row.n_subjects} | "
                     f"{row.heldout:.3f} [{row.heldout_low:.3f}, {row.heldout_high:.3f}] | "
                     f"{row.cross_fitted:.3f} [{row.cross_fitted_low:.3f}, {row.cross_fitted_high:.3f}] | "
                     f"{row.difference:+.3f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the workflow rule


def read_truth(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_id": str, "subject": str, "mask": str}, keep_default_na=False)
