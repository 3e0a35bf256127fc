"""Apply a finished study to new images (``plexus predict``), with the workflow's own stages.

A finished study is its ``results/`` folder. What it decided is read from there, never asked
again: the config the run used (``results/config.yaml``, beside ``provenance.json``), the manifest's
summary (channels, their depths, ``data.color``), each member's fold networks
(``results/models/{model}/fold{k}/model.pt``) and the decision of the ensemble or model
(``results/postprocess/{name}.json``: TTA, cutoff and area, gate, post-processing, regions or
instances).

Every step calls the function the workflow's job for it calls, so that the study's own test
images give back ``results/submission/`` and ``results/labelmaps/`` byte for byte:

* the images become a sample sheet of test rows (a folder of images, a sheet, or the study's raw
  layout) and then a test manifest, as the ``manifest`` job checks them
  (:func:`plexus.data.ingest.scan_test` for the Kaggle layout, :func:`plexus.data.dataset.build_manifest`
  for the others; a DSB2018 study's gray images are copied as RGB, as ``convert`` does);
* arrays at each model's input size, as ``preprocess`` makes them (:func:`plexus.data.ingest.read_resized`
  with :func:`plexus.data.resize.resize_images`, or :func:`plexus.data.dataset.load_arrays`);
* every fold's network predicts them (:func:`plexus.stages.predict.stored_probs`, the ``predict`` job's
  call), with the flips of ``predict.tta`` when the decision reads the flip-averaged maps;
* :func:`plexus.stages.predict.average_stage` averages the folds (``average_folds``);
* the task's own ``submission`` stage applies the decision (``submission``).

Problems are found before any image is read in full or any network runs: an unknown name, a
missing network, images whose channel count differs from the training data's. Each is a
:class:`StudyError` whose message names the file and the problem.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import read_json

#: the file the workflow writes after every successful run; it records the config the run used
PROVENANCE = "provenance.json"
#: what ``plexus predict`` writes under ``--out`` besides the submission and the label maps
RECORD = "predict.json"


class StudyError(ValueError):
    """A finished study that cannot be applied as asked; the message names the file and the problem."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (the lists of :class:`~plexus.data.sheet.SheetError` and friends
    joined by ``;``)."""
    lines = [line.strip().removeprefix("- ").strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(error).__name__
    head, rest = lines[0], lines[1:]
    return head + (" " + "; ".join(rest) if rest else "")


# --------------------------------------------------------------------------- the study


@dataclass
class Study:
    """A finished study: its ``results/`` folder, the config its run used and its manifest's summary."""

    results: Path
    config: dict
    summary: dict

    @property
    def task_name(self) -> str:
        from plexus.tasks import task_of

        return task_of(self.config)

    @property
    def task(self):
        from plexus.tasks import load_task

        return load_task(self.task_name)

    @property
    def format(self) -> str:
        return self.config["data"]["format"]

    @property
    def channels(self) -> list[str]:
        """The sample sheet's channel columns, in order."""
        return list(self.summary.get("channels") or ["image"])

    @property
    def depths(self) -> dict[str, int]:
        """Image channels of each channel column (gray 1, RGB 3), in the sheet's column order."""
        depths = self.summary.get("depths") or {}
        return {column: int(depths.get(column, 1)) for column in self.channels}

    @property
    def folds(self) -> list[int]:
        return list(range(int(self.config["cv"]["n_folds"])))

    def names(self) -> list[str]:
        from plexus import runs

        return runs.tuning_names(self.config)

    def members(self, name: str) -> list[str]:
        from plexus import runs

        return runs.members_of(self.config, name)

    def model_pt(self, model: str, fold: int) -> Path:
        return self.results / "models" / model / f"fold{fold}" / "model.pt"

    def input_size(self, model: str) -> tuple[int, int]:
        height, width = self.config["models"][model]["input_size"]
        return int(height), int(width)


def load_study(results) -> Study:
    """The study of ``results`` (a finished run's ``results/`` folder)."""
    from plexus.config import ConfigError, validate_config
    from plexus.provenance import CONFIG_FILE, config_hash

    results = Path(results)
    if not results.is_dir():
        raise StudyError(f"{results}: no such folder (--results names a finished study's results/ folder)")
    record_path = results / PROVENANCE
    if not record_path.is_file():
        raise StudyError(f"{record_path}: missing; snakemake writes it when a run of the study succeeds "
                         "(finish the study first)")
    record = read_json(record_path)
    recorded = results / CONFIG_FILE
    # a study finished before plexus recorded its config: the workdir's, if it is the one the run used
    path = recorded if recorded.is_file() else results.parent / "config" / "config.yaml"
    try:
        config = _yaml(path) if path.is_file() else None
        if path != recorded and config is not None:
            config = validate_config(config)  # the recorded config has its defaults filled in already
        if config is None or config_hash(config) != record.get("config_sha256"):
            raise StudyError(f"{recorded}: missing or not the config of the run {record_path} records (its "
                             "SHA-256 differs from config_sha256); rerun snakemake once on the study, which records it")
        config = validate_config(config)  # a default added to the schema since the run: filled in
    except ConfigError as error:
        raise StudyError(f"{path}: not a valid config for this plexus: {one_line(error)}") from None
    if config["data"]["format"] == "volumes":
        raise StudyError(f"{results}: a study of 3-D volumes (data.format volumes); plexus predict applies a study to "
                         "2-D images. Add the new cases to the study's volume sheet as test rows (split test) and "
                         "rerun snakemake: only the test side reruns (convert_test, the test predictions, the "
                         "submission and results/volumes/{ensemble}/test)")
    summary_path = results / "manifest" / "summary.json"
    if not summary_path.is_file():
        raise StudyError(f"{summary_path}: missing (the study's manifest); finish the study first")
    return Study(results=results, config=config, summary=read_json(summary_path))


def _yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StudyError(f"{path}: not YAML ({one_line(error)})") from None


@dataclass
class Decision:
    """What the workflow's ``submission`` job of ``name`` reads: the decision, its tuning and the members."""

    name: str
    json: Path
    best: Path
    members: list[str]
    pipeline: dict

    @property
    def tta(self) -> bool:
        return bool(self.pipeline.get("tta"))


def decision_of(study: Study, name: str) -> Decision:
    """The decision of the ensemble (or model) ``name``, checked against the study's config."""
    config = study.config
    if name not in study.names():
        listed = f"ensembles: {', '.join(config['ensembles']) or 'none'}; models: {', '.join(config['models'])}"
        raise StudyError(f"unknown ensemble {name!r} in {study.results} (the study's {listed})")
    decision = study.results / "postprocess" / f"{name}.json"
    best = study.results / "tuning" / name / "best.json"
    for path in (decision, best):
        if not path.is_file():
            raise StudyError(f"{path}: missing; the study has not decided {name!r} yet (run its workflow to the end)")
    decided = read_json(decision)
    members = study.members(name)
    if list(decided.get("members") or []) != members:
        raise StudyError(f"{decision}: decided for members {decided.get('members')}, but the config the run used "
                         f"gives {name!r} the members {members}; rerun the study's workflow")
    return Decision(name=name, json=decision, best=best, members=members, pipeline=dict(decided["pipeline"]))


def check_models(study: Study, members: list[str]) -> dict[str, list[Path]]:
    """Every member's fold networks, in fold order; a missing one is an error naming it."""
    paths = {m: [study.model_pt(m, k) for k in study.folds] for m in members}
    missing = [f"{path} (model {m}, fold {k})" for m, files in paths.items()
               for k, path in zip(study.folds, files) if not path.is_file()]
    if missing:
        raise StudyError(f"missing trained network(s): {'; '.join(missing)}; rerun the study's training "
                         "(snakemake) before applying it")
    return paths


# --------------------------------------------------------------------------- the images


def image_sheet(study: Study, images) -> pd.DataFrame:
    """The images to predict as a sample sheet of test rows (``image_id, subject, split``, the channel
    columns, ``mask``): a folder of image files (ids: their stems), a sample sheet (its test rows), or a
    folder in the study's raw layout (its test images)."""
    from plexus.data.sheet import sheet_frame

    images = Path(images)
    if not images.exists():
        raise StudyError(f"{images}: no such file or folder (--images names a folder of images or a sample sheet)")
    if images.is_file():
        return _sheet_rows(study, images)
    files = _folder_images(images)
    if files:
        if len(study.channels) > 1:
            raise StudyError(f"{images}: a folder of images holds one channel column, but the study's images have "
                             f"{len(study.channels)} ({', '.join(study.channels)}); give a sample sheet instead")
        column = study.channels[0]
        return sheet_frame([{"image_id": _image_id(study, path), "subject": "", "split": "test",
                             column: str(path.absolute()), "mask": ""} for path in files], channels=study.channels)
    return _layout_rows(study, images)


def _folder_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (sorted; hidden files and sub-folders skipped)."""
    from plexus.io.images import IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def _image_id(study: Study, path: Path) -> str:
    if study.format == "kaggle_nerve":  # the Kaggle test layout: N.tif, numbered in the submission
        return path.stem
    from plexus.data.importers import safe_id

    return safe_id(path.stem)


def _sheet_rows(study: Study, path: Path) -> pd.DataFrame:
    from plexus.data.importers import import_dataset

    sheet = import_dataset("sheet", path, channels=study.channels)
    test = sheet[sheet["split"] == "test"]
    if test.empty:
        raise StudyError(f"{path}: no test rows (split test); plexus predict applies the study to a sheet's test "
                         "rows")
    return test.reset_index(drop=True)


def _layout_rows(study: Study, folder: Path) -> pd.DataFrame:
    """The test rows of a folder in the study's raw layout (Kaggle ``test/``, the ``folders`` layout,
    DSB2018 ``stage1_test/``, a raw folder holding the study's sheet)."""
    from plexus.data.importers import import_dataset
    from plexus.data.sheet import sheet_frame

    data = study.config["data"]
    if study.format == "kaggle_nerve" and (folder / "test").is_dir():
        return image_sheet(study, folder / "test")
    if study.format == "dsb2018" and (folder / "stage1_test").is_dir():
        rows = []
        samples = (p for p in (folder / "stage1_test").iterdir() if p.is_dir() and not p.name.startswith("."))
        for sample in sorted(samples):
            image = sample / "images" / f"{sample.name}.png"
            if not image.is_file():
                raise StudyError(f"{image}: missing (the DSB2018 layout: stage1_test/ID/images/ID.png)")
            rows.append({"image_id": sample.name, "subject": "", "split": "test", "image": str(image.absolute()),
                         "mask": ""})
        return sheet_frame(rows)
    if study.format == "folders" and (folder / data["folders"]["images"]).is_dir():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the subjects of training rows: no matter here
            # test masks (data.test_masks) are scored only with --masks
            sheet = import_dataset("folders", folder, **{**data["folders"], "test_masks": None})
        test = sheet[sheet["split"] == "test"]
        if test.empty:
            raise StudyError(f"{folder}: no test images in the study's folders layout")
        return test.reset_index(drop=True)
    if study.format == "sheet" and data.get("sheet") and (folder / data["sheet"]).is_file():
        return _sheet_rows(study, folder / data["sheet"])
    raise StudyError(f"{folder}: no image files in it, and not the study's {study.format} layout (give a folder of "
                     "images, a sample sheet, or a raw folder in the study's layout)")


def check_channels(study: Study, sheet: pd.DataFrame) -> None:
    """Each image's channel count (from its header) against the training data's, per channel column.

    A study with ``data.color`` gray or rgb converts every image as it did in training, and a DSB2018
    study copies gray images as RGB; otherwise a count that differs is an error naming each file.
    """
    from plexus.io.images import ImageError, image_info

    if study.format == "dsb2018" or study.summary.get("color", "auto") != "auto":
        return
    kind = {1: "gray", 3: "RGB"}
    problems = []
    for column, depth in study.depths.items():
        for cell in sheet[column].fillna("").astype(str):
            if not cell:
                continue
            try:
                found = image_info(cell)[2]
            except ImageError as error:
                problems.append(one_line(error))
                continue
            if found != depth:
                problems.append(f"{cell}: {found} channel(s) ({kind.get(found, '?')}), but the study's models were "
                                f"trained on {depth} ({kind.get(depth, '?')}) in column {column}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise StudyError(f"{len(problems)} image(s) do not fit the study: {shown}")


def test_manifest(study: Study, sheet: pd.DataFrame, work: Path, *, threads: int = 2) -> pd.DataFrame:
    """The test manifest of ``sheet``'s rows, checked as the study's ``manifest`` job checks test images."""
    if study.format == "kaggle_nerve":  # the layout's own checks first, as its manifest job makes them
        from plexus.data.ingest import TEST_IMAGE, check_test_images

        problems, numbers = [], set()
        for image_id, path in zip(sheet["image_id"].astype(str), sheet["image"].astype(str)):
            if not TEST_IMAGE.match(f"{image_id}.tif"):
                problems.append(f"{path}: image_id {image_id!r} is not a positive integer (the binary task's "
                                "submission numbers its images: name them N.tif)")
                continue
            if int(image_id) in numbers:
                problems.append(f"{path}: image number {int(image_id)} twice")
            numbers.add(int(image_id))
        if problems:
            raise StudyError(f"{len(problems)} image(s) cannot be named in the submission: {'; '.join(problems[:5])}")
        check_test_images(sheet["image"].astype(str), threads=threads)
        order = np.argsort(sheet["image_id"].astype(int).to_numpy(), kind="stable")  # by number, as the layout's
        sheet = sheet.iloc[order].reset_index(drop=True)
    from plexus.config import ignored_classes, learnt_classes
    from plexus.data.dataset import part_manifest

    data = study.config["data"]
    if study.format == "dsb2018":  # as the convert job: gray or palette images read as RGB copies
        from plexus.data.dsb2018 import _rgb_image

        images = work / "converted" / "images"
        images.mkdir(parents=True, exist_ok=True)
        sheet = sheet.assign(image=[_rgb_image(p, i, images) for p, i in zip(sheet["image"], sheet["image_id"])])
    test, _ = part_manifest(sheet, "test", channels=study.channels, classes=learnt_classes(study.config),
                            allow_missing_channels=data["allow_missing_channels"], threads=threads,
                            ignore=ignored_classes(study.config), color=study.summary.get("color", "auto"),
                            max_snapped=data["max_snapped_share"], train_depths=study.depths)
    return test


def test_arrays(study: Study, test_csv, size: tuple[int, int], work: Path, *, threads: int = 2) -> dict:
    """The arrays of the manifest ``test_csv`` at ``size``: the ``preprocess`` job's ``test.npz``, made by
    that job's function."""
    from plexus.io.contracts import read_npz
    from plexus.stages.data import preprocess_stage

    name = f"{size[0]}x{size[1]}"
    out_npz = work / "preprocessed" / name / "test.npz"
    preprocess_stage("test", test_csv, study.results / "manifest" / "summary.json", name, out_npz,
                     threads=threads)
    return read_npz(out_npz)


# --------------------------------------------------------------------------- the command


def _score(study: Study, decision: Decision, labelmaps: Path, truth: pd.DataFrame, test_csv, out: Path) -> dict:
    """The held-out row of ``decision.name``: its label maps against ``truth``, by the function the
    workflow's ``heldout`` rule calls, with the study's bootstrap settings."""
    from plexus.config import ignored_classes, learnt_classes
    from plexus.study.heldout import score_study, write_heldout

    config, name = study.config, decision.name
    kind = "ensemble" if name in config["ensembles"] else "model"
    settings = {"classes": learnt_classes(config), "ignore": ignored_classes(config),
                "submission": study.task.settings("submission", config)}
    table, per_image = score_study(study.task_name, settings, [name], [kind], [decision.members],
                                   {name: str(decision.json)}, {name: str(decision.best)}, {name: str(labelmaps)},
                                   {}, truth, test_csv, n_boot=int(config["summary"]["bootstrap_samples"]),
                                   seed=int(config["summary"]["seed"]),
                                   submissions={name: str(out / "submission" / f"{name}.csv")})
    write_heldout(table, per_image, out / "heldout.csv", out / "heldout.md", out / "heldout_per_image.csv")
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in table.iloc[0].to_dict().items()}



def _say(message: str) -> None:
    print(f"plexus predict: {message}", file=sys.stderr, flush=True)


def attach_masks(study: Study, sheet: pd.DataFrame, masks) -> pd.DataFrame:
    """``sheet`` with each image's test mask in its ``mask`` cell, from ``masks``: a folder of mask files
    (an image's mask is ``{image_id}.*`` or ``{image_id}_mask.*``, any image type), or a sample sheet
    (the ``mask`` cells of its test rows, by ``image_id``). A missing or doubled mask is an error."""
    from plexus.evaluation.heldout import TASKS

    if study.task_name not in TASKS or study.format not in ("folders", "sheet"):
        raise StudyError(f"--masks: a {study.task_name} study of data.format {study.format} has no held-out score "
                         f"(tasks {', '.join(TASKS)}, formats folders and sheet)")
    masks = Path(masks)
    if masks.is_file():
        from plexus.data.importers import import_dataset

        rows = import_dataset("sheet", masks, channels=study.channels)
        found = {i: [m] for i, m, split in zip(rows["image_id"], rows["mask"], rows["split"]) if split == "test" and m}
    elif masks.is_dir():
        from plexus.data.importers import safe_id

        found = {}
        for path in _folder_images(masks):
            found.setdefault(safe_id(path.stem), []).append(path)
        found = {i: found.get(i, []) + found.get(f"{i}_mask", []) for i in sheet["image_id"].astype(str)}
    else:
        raise StudyError(f"{masks}: no such file or folder (--masks names a folder of test masks or a sample sheet)")
    problems = []
    for image_id in sheet["image_id"].astype(str):
        hits = found.get(image_id, [])
        if len(hits) != 1:
            problems.append(f"{masks}: {'no' if not hits else 'two'} mask(s) of image {image_id!r}"
                            + (f" ({', '.join(Path(h).name for h in hits)})" if hits else
                               f" (expected {image_id}.png or {image_id}_mask.png, any image type)"))
    if problems:
        raise StudyError(f"{len(problems)} test image(s) without one mask: {'; '.join(problems[:5])}")
    return sheet.assign(mask=[str(Path(found[i][0]).absolute()) for i in sheet["image_id"].astype(str)])


def apply_study(results, name: str, images, out, *, device: str = "auto", threads: int = 1,
                keep_probs: bool = False, masks=None, say: Callable[[str], None] = _say) -> dict:
    """Apply ensemble (or model) ``name`` of the finished study ``results`` to ``images``; write under
    ``out`` what the workflow writes under ``results/``: ``submission/{name}.csv`` and ``.json``,
    ``labelmaps/{name}/``, ``manifest/test.csv`` (and with ``keep_probs``, ``test_probs/``), plus
    ``predict.json`` (what was applied). Returns that record.

    ``threads``: torch threads of the prediction (the workflow's prediction jobs use 1; on a CPU another
    count may change the last bits of the probabilities). ``masks``: the images' masks (a folder, or a
    sheet: :func:`attach_masks`), checked as the ``manifest_test`` job checks a labelled test set's and
    kept out of the prediction; the label maps are then scored as the ``heldout`` rule scores the study's
    test set (:func:`plexus.study.heldout.score_study`): ``heldout.csv``, ``heldout.md`` and
    ``heldout_per_image.csv`` under ``out``, and ``manifest/test_masks.csv``.
    """
    from plexus.device import pick_device
    from plexus.stages.predict import average_stage, stored_probs

    out, images = Path(out), Path(images)
    study = load_study(results)
    task = study.task
    decision = decision_of(study, name)
    models = check_models(study, decision.members)
    if out.exists() and out.resolve() == study.results.resolve():
        raise StudyError(f"{out}: is the study's own results folder; --out must name another folder")
    dev = pick_device(device)  # a CUDA device that is not there: an error now, not after reading
    sheet = image_sheet(study, images)
    if masks is not None:
        sheet = attach_masks(study, sheet, masks)
    else:
        sheet = sheet.assign(mask="")  # a layout's or sheet's own test masks: scored only with --masks
    check_channels(study, sheet)
    say(f"{len(sheet)} image(s) from {images}; task {study.task_name}, {name} = {' + '.join(decision.members)}, "
        f"{len(study.folds)} fold(s), device {dev}")

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".plexus-predict-") as tmp:
        work = out if keep_probs else Path(tmp)
        with redirect_stdout(sys.stderr):  # the stages' own prints are progress too
            test = test_manifest(study, sheet, Path(tmp), threads=max(threads, 2))
        truth = None
        if masks is not None:  # the masks go apart, as the manifest_test job's: the prediction never sees them
            from plexus.evaluation.heldout import split_test_masks

            test, truth = split_test_masks(test)
            atomic.write_csv(out / "manifest" / "test_masks.csv", truth)
        test_csv = out / "manifest" / "test.csv"
        atomic.write_csv(test_csv, test)
        say(f"manifest: {test_csv} ({len(test)} images)")

        config = study.config
        flips = list(config["predict"]["tta"]) if task.tta and decision.tta else []
        batch_size = int(config["predict"]["batch_size"])
        arrays, means = {}, []
        steps, step = len(decision.members) * len(study.folds), 0
        for member in decision.members:
            size = study.input_size(member)
            if size not in arrays:
                with redirect_stdout(sys.stderr):
                    arrays[size] = test_arrays(study, test_csv, size, Path(tmp), threads=max(threads, 2))
                say(f"images at {size[0]}x{size[1]}")
            data = arrays[size]
            fold_npzs = []
            for fold, model_pt in zip(study.folds, models[member]):
                step += 1
                say(f"[{step}/{steps}] {member} fold {fold}: {model_pt}"
                    + (f" (+ {', '.join(flips)})" if flips else ""))

                probs = stored_probs(model_pt, data["images"], data.get("present"), batch_size=batch_size,
                                     threads=threads, flips=flips, device=dev)
                path = work / "test_probs" / member / f"fold{fold}.npz"
                atomic.write_npz(path, image_id=data["image_id"], **probs)
                fold_npzs.append(path)
            mean = work / "test_probs" / member / "mean.npz"
            average_stage(fold_npzs, mean)
            means.append(str(mean))

        labelmaps = out / "labelmaps" / name
        if labelmaps.exists():  # as Snakemake removes a directory output before its job
            shutil.rmtree(labelmaps)
        job = SimpleNamespace(
            input=SimpleNamespace(means=means, decision=str(decision.json), best=str(decision.best),
                                  test=str(test_csv)),
            output=SimpleNamespace(csv=str(out / "submission" / f"{name}.csv"),
                                   summary=str(out / "submission" / f"{name}.json"), labelmaps=str(labelmaps)),
            params=SimpleNamespace(task=study.task_name, settings=task.settings("submission", config)),
            wildcards=SimpleNamespace(ensemble=name), threads=max(threads, 1), rule="submission")
        say(f"applying the decision of {decision.json}: {json.dumps(decision.pipeline, sort_keys=True)}")
        with redirect_stdout(sys.stderr):
            task.run("submission", job)
        if truth is not None:
            record_heldout = _score(study, decision, labelmaps, truth, test_csv, out)
            say(f"held-out {record_heldout['score']} against {masks}: {record_heldout['heldout']:.4f} "
                f"[{record_heldout['heldout_low']:.4f}, {record_heldout['heldout_high']:.4f}] (cross-fitted estimate "
                f"{record_heldout['cross_fitted']:.4f}); {out / 'heldout.md'}")
    record = {"results": str(study.results.absolute()), "ensemble": name, "members": decision.members,
              "task": study.task_name, "images": str(images.absolute()), "n_images": len(test),
              "pipeline": decision.pipeline, "flips": flips, "device": str(dev), "threads": threads,
              "submission": job.output.csv, "labelmaps": job.output.labelmaps}
    if masks is not None:
        record["masks"] = str(Path(masks).absolute())
        record["heldout"] = record_heldout
    atomic.write_json(out / RECORD, record)
    say(f"wrote {job.output.csv} and {len(test)} label map(s) in {labelmaps}")
    return record
