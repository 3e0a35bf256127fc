"""Data stages, for every data format: raw folder -> manifest -> subject-grouped folds -> arrays.

A data format is an importer (:mod:`plexus.data.importers`) that writes a sample sheet; every
format's sheet then becomes the same manifest (:func:`plexus.data.dataset.part_manifest`: every
file named checked, one schema) and the same arrays (:func:`plexus.data.dataset.load_arrays`).
What a layout adds:

* ``kaggle_nerve``: the layout's own checks, before the manifest's (:mod:`plexus.data.ingest`:
  names, 420x580, uint8, one page, masks in {0, 255}), and Kaggle's run-length table of the
  training masks (``train_masks.csv``); its classes are fixed (:data:`plexus.config.KAGGLE_CLASSES`);
* ``folders``, ``sheet``: the sheet built from the folders, or the user's (:mod:`plexus.data.sheet`);
* ``dsb2018``, ``volumes``: the raw folder converted to such a sheet first (the ``convert`` rule,
  :func:`plexus.data.dsb2018.nuclei_sheet_stage`, :mod:`plexus.data.volumes`).

Every format writes ``train.csv``, ``test.csv`` and ``summary.json``; :data:`plexus.runs.MANIFEST_FILES`
names what one writes beyond them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from plexus.data import dataset, ingest, splits
from plexus.data.importers import import_dataset
from plexus.data.sheet import SheetError, write_sheet
from plexus.io import atomic
from plexus.io.contracts import read_manifest
from plexus.labels import region_matrix
from plexus.runs import CONVERTED_FORMATS

#: a sheet column saying which rows training reads (``yes``/``no``; the others are predicted only)
TRAIN_SLICE = "train_slice"


def manifest_stage(data: dict, classes: dict, outputs, *, part: str | None = None, inputs=(), threads: int = 2,
                   ignore: dict | None = None, train_csv=None, summary_json=None, test_csv=None) -> None:
    """The manifest of ``data`` (the config's data section), for every format alike.

    ``part`` ``None``: both image sets, ``outputs`` has ``train``, ``test``, ``summary`` and the
    format's :data:`plexus.runs.MANIFEST_FILES`. The workflow runs one job per image set, each
    reading that set's files only: ``train`` writes all but ``test`` (the summary describes the
    training images alone); ``test`` writes ``test`` and checks it against the training side
    (``train_csv``: no id of both; ``summary_json``: each channel column's depth). ``inputs``: the
    rule's dataset inputs (formats dsb2018, volumes: that set's converted sheet first). ``test_masks``:
    a labelled test set's masks (:func:`test_masks_stage`, for the images of ``test_csv``).
    """
    written = list(inputs)[0] if data["format"] in CONVERTED_FORMATS else None
    if part is None:
        layout_checks(data, ("train", "test"), outputs, threads)
        sheet_manifest(data, classes, outputs["sheet"], outputs["train"], outputs["test"], outputs["summary"],
                       threads=threads, ignore=ignore, written_sheet=written)
        return
    if part == "test_masks":
        test_masks_stage(data, classes, outputs["test_masks"], test_csv=test_csv, summary_json=summary_json,
                         threads=threads, ignore=ignore)
        return
    if part not in ("train", "test"):
        raise ValueError(f"part must be train, test or test_masks, got {part!r}")
    if part == "test" and (train_csv is None or summary_json is None):
        raise ValueError("the test manifest is checked against the training side: give train_csv and summary_json")
    layout_checks(data, (part,), outputs, threads)
    sheet_part_manifest(data, classes, part, outputs, threads=threads, ignore=ignore, written_sheet=written,
                        train_csv=train_csv, summary_json=summary_json)


def layout_checks(data: dict, parts, outputs, threads: int = 2) -> None:
    """What a layout checks before the manifest that every format shares, and the files it adds
    (:data:`plexus.runs.MANIFEST_FILES`): the Kaggle layout's :func:`plexus.data.ingest.check_layout`
    and its ``train_masks.csv`` (``outputs["masks"]``, with the training images)."""
    if data["format"] != "kaggle_nerve":
        return
    train_masks = ingest.check_layout(Path(data["raw_dir"].rstrip("/")), threads=threads, parts=tuple(parts))
    if "train" in parts:
        atomic.write_csv(outputs["masks"], train_masks)


def folds_stage(train_csv, folds_csv, n_folds: int, seed: int, stratify: str | None = None) -> None:
    train = read_manifest(train_csv)
    folds = splits.make_folds(train, n_folds, seed, stratify)
    atomic.write_csv(folds_csv, folds)
    summary = folds.assign(nerve=train["mask_area"] > 0).groupby("fold").agg(
        images=("image_id", "size"), subjects=("subject", "nunique"), nerve=("nerve", "mean"))
    print(summary.to_string())


def preprocess_stage(part: str, manifest_csv, summary_json, size, out_npz, *, classes: dict | None = None,
                     ignore: dict | None = None, regions: dict | None = None, threads: int = 2) -> None:
    """Arrays of one image set (``train``: images and masks; ``test``: images) at ``size`` (``HxW``),
    the same for every data format (:func:`plexus.data.dataset.load_arrays`): the workflow's
    ``preprocess`` job of that set."""
    from plexus.data.resize import parse_size

    if part not in ("train", "test"):
        raise ValueError(f"part must be train or test, got {part!r}")
    manifest = read_manifest(manifest_csv)
    summary = json.loads(Path(summary_json).read_text())
    depths = {column: summary["depths"][column] for column in summary["channels"]}  # the sheet's order
    if part == "test":
        atomic.write_npz(out_npz, **dataset.load_arrays(manifest, depths=depths, size=parse_size(size),
                                                        threads=threads))
        return
    arrays = dataset.load_arrays(manifest, depths=depths, size=parse_size(size), classes=classes, threads=threads,
                                 ignore=ignore)
    if regions:
        arrays["regions"] = region_matrix(regions, classes)
        arrays["region_names"] = np.asarray(list(regions), dtype=str)
    if TRAIN_SLICE in manifest.columns:  # the rows training reads (volume slices: plexus.data.volumes)
        arrays["trained"] = manifest[TRAIN_SLICE].to_numpy(str) != "no"
    atomic.write_npz(out_npz, **arrays)


def read_dataset(data: dict, written_sheet=None, part: str | None = None):
    """The sheet frame of ``data`` (the config's data section) by ``data.format``.

    ``part``: the image set the caller reads (``train``, ``test``; None: both); the Kaggle layout then
    lists only that set's folder, so a problem in the other set's names fails only its own job.
    ``written_sheet``: format dsb2018, the sheet of merged instance masks and targets that the
    ``convert`` rule wrote (:func:`plexus.data.dsb2018.nuclei_sheet_stage`; the rule's input).
    """
    raw = Path(data["raw_dir"])
    if data["format"] == "kaggle_nerve":
        sheet = import_dataset("kaggle_nerve", raw, parts=("train", "test") if part is None else (part,))
        sheet.attrs["sheet"] = f"built from {raw} (data.format kaggle_nerve)"
        return sheet
    if data["format"] == "folders":
        # the test masks folder is read only for a labelled test set (data.test_masks)
        options = {**data["folders"], "test_masks": data["folders"].get("test_masks", "test_masks")
                   if data.get("test_masks") else None}
        sheet = import_dataset("folders", raw, **options)
        sheet.attrs["sheet"] = f"built from {raw} (data.format folders)"
        return sheet
    if data["format"] == "sheet":
        sheet = Path(data["sheet"])
        return import_dataset("sheet", sheet if sheet.is_absolute() else raw / sheet, channels=data["channels"])
    if data["format"] in CONVERTED_FORMATS:  # the sheet the convert job wrote (nuclei targets; volume slices)
        if written_sheet is None:
            raise ValueError(f"data.format {data['format']}: the manifest reads the sheet the convert job wrote; "
                             "none given")
        return import_dataset("sheet", written_sheet,
                              channels=["image"] if data["format"] == "dsb2018" else data["channels"])
    raise ValueError(f"data.format {data['format']!r}: no importer reads it")


def sheet_manifest(data: dict, classes: dict, sheet_out, train_csv, test_csv, summary_json, threads: int = 2,
                   ignore: dict | None = None, written_sheet=None):
    """Validate the dataset and every file it names; write its sheet, manifests and summary.

    ``ignore``: the classes (name -> mask value) whose pixels count nowhere (the config's ``ignore``);
    ``written_sheet``: see :func:`read_dataset`.
    """

    sheet = _read_dataset_saying_warnings(data, written_sheet)
    channels = data["channels"] if data["format"] in ("sheet", "volumes") else ["image"]  # the layouts': one
    train, test, summary = dataset.build_manifest(
        sheet, channels=channels, classes=classes, allow_missing_channels=data["allow_missing_channels"],
        threads=threads, ignore=ignore, color=data["color"], max_snapped=data["max_snapped_share"])
    write_sheet(sheet, sheet_out)
    atomic.write_csv(train_csv, train)
    atomic.write_csv(test_csv, test)
    atomic.write_json(summary_json, summary)
    print(json.dumps(summary, indent=1))


def _read_dataset_saying_warnings(data: dict, written_sheet=None, part: str | None = None):
    """:func:`read_dataset`, its warnings (a filled-in subject column...) printed to the job's log."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sheet = read_dataset(data, written_sheet, part)
    for warning in caught:
        print(f"warning: {warning.message}")
    return sheet


def sheet_part_manifest(data: dict, classes: dict, part: str, outputs, threads: int = 2,
                        ignore: dict | None = None, written_sheet=None, train_csv=None, summary_json=None) -> None:
    """One image set of a dataset (every format's sheet): :func:`sheet_manifest`
    for the workflow's per-set jobs. The sheet (or folder listing) is read whole, so its own checks
    (one id per image across both sets) hold; only the set's files are read and written.

    ``train``: ``outputs`` ``sheet`` (the training rows), ``train``, ``summary``; ``test``:
    ``outputs`` ``test``, checked against ``train_csv`` (no id in both, ignoring case: dsb2018's
    sets are converted apart) and ``summary_json`` (the columns' depths).
    """

    if part == "test" and written_sheet is not None and not any(
            line.strip() for line in Path(written_sheet).read_text().splitlines()[1:]):
        # dsb2018 without stage1_test: no test images, the training manifest's columns
        atomic.write_csv(outputs["test"], read_manifest(train_csv).iloc[:0])
        print("no test images")
        return
    sheet = _read_dataset_saying_warnings(data, written_sheet, part)
    channels = data["channels"] if data["format"] in ("sheet", "volumes") else ["image"]  # the layouts': one
    options = {"channels": channels, "classes": classes, "allow_missing_channels": data["allow_missing_channels"],
               "threads": threads, "ignore": ignore, "color": data["color"], "max_snapped": data["max_snapped_share"]}
    if part == "train":
        train, summary = dataset.part_manifest(sheet, "train", **options)
        write_sheet(dataset.part_rows(sheet, "train"), outputs["sheet"])
        atomic.write_csv(outputs["train"], train)
        atomic.write_json(outputs["summary"], summary)
        print(json.dumps(summary, indent=1))
        return
    # a sheet's test rows may name masks (a labelled test set): the test_masks job's, never read here
    sheet.loc[sheet["split"] == "test", "mask"] = ""
    summary = json.loads(Path(summary_json).read_text())
    test, counts = dataset.part_manifest(sheet, "test", train_depths=summary["depths"], **options)
    train_ids = {i.casefold(): i for i in read_manifest(train_csv)["image_id"]}
    clashes = [f"image_id {i!r}: a test image and the training image {train_ids[i.casefold()]!r}"
               for i in test["image_id"] if i.casefold() in train_ids]
    if clashes:
        raise SheetError(clashes + ["(image ids must differ across both sets, also ignoring case)"],
                         sheet.attrs.get("sheet"))
    atomic.write_csv(outputs["test"], test)
    print(json.dumps(counts, indent=1))


def test_masks_stage(data: dict, classes: dict, test_masks_csv, *, test_csv, summary_json, threads: int = 2,
                     ignore: dict | None = None) -> None:
    """A labelled test set's masks (``data.test_masks``): every test row's mask checked as a training
    mask is (there, the image's size, values in ``classes``) and written apart, to ``test_masks_csv``
    (:data:`plexus.evaluation.heldout.TRUTH_COLUMNS`), for the images of ``test_csv`` exactly. Its own
    job: labelling a test set or editing a test mask reruns no prediction."""
    from plexus.data.sheet import _row_labels
    from plexus.evaluation.heldout import split_test_masks, test_mask_problems

    sheet = _read_dataset_saying_warnings({**data, "test_masks": True}, None, "test")
    rows = dataset.part_rows(sheet, "test")
    problems = test_mask_problems(rows, _row_labels(rows), True)
    if problems:
        raise SheetError(problems, sheet.attrs.get("sheet"))
    summary = json.loads(Path(summary_json).read_text())
    channels = data["channels"] if data["format"] == "sheet" else ["image"]
    labelled, _ = dataset.part_manifest(
        sheet, "test", channels=channels, classes=classes, allow_missing_channels=data["allow_missing_channels"],
        threads=threads, ignore=ignore, color=data["color"], max_snapped=data["max_snapped_share"],
        train_depths=summary["depths"])
    expected = read_manifest(test_csv)["image_id"].tolist()
    if labelled["image_id"].tolist() != expected:  # both read the same rows: a change between the two jobs
        raise ValueError(f"{test_csv}: its images are not the test rows read now; rerun manifest_test")
    _, truth = split_test_masks(labelled)
    atomic.write_csv(test_masks_csv, truth)
    print(f"{len(truth)} test masks in {test_masks_csv}")


def synthesize_stage(kind: str, raw_dir, settings: dict, fingerprints: dict, threads: int = 2) -> None:
    """The embedded synthetic dataset of ``kind`` in ``raw_dir`` (in its data format's layout) and
    the raw fingerprint of each image set that its manifest job compares the folder with:
    ``fingerprints`` maps a part (train, test) to ``(spec, record)`` (:func:`plexus.runs.raw_parts`)."""
    from plexus.data.fingerprint import refresh_part

    raw = Path(raw_dir)
    if kind == "nerve":
        from plexus.data.synthetic import generate_dataset

        summary = generate_dataset(raw, n_subjects=settings["n_subjects"],
                                   images_per_subject=settings["images_per_subject"],
                                   n_test_subjects=settings["n_test_subjects"],
                                   test_images_per_subject=settings["test_images_per_subject"],
                                   seed=settings["seed"], threads=threads)
        print({k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
    elif kind == "nuclei":
        from plexus.data.dsb2018 import synthesize_stage as synthesize_nuclei

        synthesize_nuclei(raw, settings)
    elif kind == "volumes":
        from plexus.data.synthetic_volumes import generate_volumes

        summary = generate_volumes(raw, n_cases=settings["n_subjects"], n_test_cases=settings["n_test_subjects"],
                                   seed=settings["seed"])
        print({k: v for k, v in summary.items() if not isinstance(v, (list, dict))})
    else:
        from plexus.data import synthetic_regions, synthetic_semantic

        generate = {"multiclass": synthetic_semantic.generate_multiclass,
                    "multichannel": synthetic_semantic.generate_multichannel,
                    "regions": synthetic_regions.generate_regions}[kind]
        sheet = generate(raw, **settings)
        print(f"{kind}: {(sheet['split'] == 'train').sum()} train and {(sheet['split'] == 'test').sum()} test images")
    for part, (spec, record) in fingerprints.items():
        refresh_part(raw, part, spec, record)
