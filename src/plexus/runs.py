"""Names and files of the workflow's runs and targets, from the config alone (standard library).

A *run* is one trained network's name: a model (``unet``), or a model trained for a robustness
study, ``{model}--noisy`` (the clean + noisy training mix) or ``{model}--n{size}-s{seed}`` (a
training-size subset). The workflow's rules name their files by run, fold, model and ensemble;
this module builds those lists (what ``workflow/rules/common.smk`` hands to the rules), so they
can be read and tested without Snakemake.
"""

from __future__ import annotations

import re

#: a model or ensemble name (the config's keys)
NAME = r"[A-Za-z][A-Za-z0-9_]*"
#: a model trained for a robustness study: its name and the study's suffix (:func:`parse_run`)
ROBUSTNESS_RUN = NAME + r"--(noisy|n[0-9.]+-s[0-9]+)"
#: the noise study's training conditions: the main checkpoints (no retraining) and the clean+noisy
#: retrain (``--noisy`` runs); one job predicts both at a sigma
NOISE_CONDITIONS = ("clean", "noisy")
STUDIES = ("noise", "train_size", "missing_channel")


def parse_run(run: str, models) -> tuple[str, str | None, dict | None]:
    """``unet`` -> (unet, None, None); ``unet--noisy`` -> (unet, noisy, None); ``unet--n0.5-s1`` ->
    (unet, None, {size: 0.5, seed: 1}). An unknown model is a ``ValueError`` naming the run."""
    model, _, suffix = run.partition("--")
    if model not in models:
        raise ValueError(f"run {run!r}: unknown model {model!r}")
    if suffix == "noisy":
        return model, "noisy", None
    if match := re.fullmatch(r"n([0-9.]+)-s([0-9]+)", suffix):
        return model, None, {"size": float(match[1]), "seed": int(match[2])}
    return model, None, None


def input_size(config: dict, run: str) -> str:
    """The ``{size}`` wildcard (``HxW``) of a run's model: the arrays it trains and predicts on."""
    height, width = config["models"][parse_run(run, config["models"])[0]]["input_size"]
    return f"{height}x{width}"


def run_settings(config: dict, run: str) -> dict:
    """The model entry a run trains with (a robustness run: its model's)."""
    return config["models"][parse_run(run, config["models"])[0]]


def run_noise(config: dict, run: str) -> dict | None:
    """The clean+noisy training mix of the noise study's ``--noisy`` runs, else None."""
    if parse_run(run, config["models"])[1] != "noisy":
        return None
    noise = config["robustness"]["noise"]
    return {"sigma": noise["train_sigma"], "fraction": noise["train_fraction"], "seed": noise["seed"]}


def run_subset(config: dict, run: str) -> dict | None:
    """The training-size subset (``{size, seed}``) of a ``--n{size}-s{seed}`` run, else None."""
    return parse_run(run, config["models"])[2]


def study_inputs(config: dict, task_inputs: dict) -> dict:
    """A study's score inputs: the task's own (``task_inputs``), and the robustness model's tuned
    decision that every study scores at, with the folds and the training manifest."""
    return {**task_inputs, "best": f"results/tuning/{config['robustness'].get('model')}/best.json",
            "folds": "results/splits/folds.csv", "train": "results/manifest/train.csv"}


def number_name(value) -> str:
    """0.5 -> '0.5', 40.0 -> '40': a stable, short wildcard value."""
    return f"{float(value):g}"


def fold_files(pattern: str, run: str, folds) -> list[str]:
    """``pattern`` (with ``{run}`` and ``{fold}``) for every fold of ``run``."""
    return [pattern.format(run=run, fold=fold) for fold in folds]


def tuning_names(config: dict) -> list[str]:
    """Every model and every ensemble gets tuned (a model is an ensemble of one)."""
    return list(config["models"]) + list(config["ensembles"])


def tuning_kinds(config: dict) -> list[str]:
    """``model`` or ``ensemble`` for each of :func:`tuning_names`."""
    return ["ensemble" if name in config["ensembles"] else "model" for name in tuning_names(config)]


def members_of(config: dict, name: str) -> list[str]:
    return list(config["ensembles"][name]) if name in config["ensembles"] else [name]


def studies(config: dict) -> list[str]:
    """The robustness studies switched on."""
    return [study for study in STUDIES if config["robustness"][study]["enabled"]]


# --- the robustness studies' runs and files ------------------------------------------------------


def noise_entries(config: dict) -> list[list]:
    """``[input key, condition, sigma]`` of every noise evaluation."""
    return [[f"{condition}_{number_name(sigma)}", condition, float(sigma)]
            for condition in NOISE_CONDITIONS for sigma in config["robustness"]["noise"]["sigmas"]]


def noise_prediction_files(config: dict) -> dict[str, str]:
    return {key: f"results/robustness/noise/{condition}/sigma{number_name(sigma)}.npz"
            for key, condition, sigma in noise_entries(config)}


def noisy_condition_models(config: dict, folds) -> dict[str, list[str]]:
    """Each training condition's fold models: ``{"clean": [...], "noisy": [...]}``."""
    model = config["robustness"].get("model")
    return {condition: fold_files("results/models/{run}/fold{fold}/model.pt",
                                  model + ("--noisy" if condition == "noisy" else ""), folds)
            for condition in NOISE_CONDITIONS}


def train_size_entries(config: dict) -> list[list]:
    """``[input key, size, seed]`` of every training-size run."""
    spec = config["robustness"]["train_size"]
    return [[f"n{number_name(size)}_s{seed}", float(size), int(seed)] for size in spec["sizes"]
            for seed in spec["seeds"]]


def _train_size_runs(config: dict) -> dict[str, str]:
    model = config["robustness"].get("model")
    runs = {key: f"{model}--n{number_name(size)}-s{seed}" for key, size, seed in train_size_entries(config)}
    return runs | {"full": model}


def train_size_oof_files(config: dict, folds) -> dict[str, list[str]]:
    """Each training-size run's OOF files by fold, and the full run's (``full``)."""
    return {key: fold_files("results/oof/{run}/fold{fold}.npz", run, folds)
            for key, run in _train_size_runs(config).items()}


def train_size_infos(config: dict, folds) -> dict[str, list[str]]:
    """``train_info.json`` of every training-size run and the full run (their image counts)."""
    return {f"info_{key}": fold_files("results/models/{run}/fold{fold}/train_info.json", run, folds)
            for key, run in _train_size_runs(config).items()}


# --- targets -------------------------------------------------------------------------------------


def _pair(stem: str) -> list[str]:
    return [f"{stem}.png", f"{stem}.pdf"]


def figure_targets(config: dict, task) -> list[str]:
    """Every figure (PNG and PDF) and every table of a study with ``task``."""
    names, models = tuning_names(config), list(config["models"])
    targets = [f for model in models for f in _pair(f"results/figures/learning_curves/{model}")]
    for path, _ in task.figure_files("figure_tuning").values():
        targets += [path.format(name=name) for name in names]
    for path, _ in task.figure_files("figure_qualitative").values():  # every model and ensemble's decision
        targets += [path.format(model=name) for name in names]
    targets += [f for study in studies(config) for f in _pair(f"results/figures/robustness/{study}")]
    targets += [f"results/tables/{table}.{ext}" for table in ("summary", "comparison", "pairwise")
                for ext in ("csv", "md")]
    targets += [f for kind in ("models", "pairwise") for f in _pair(f"results/figures/comparison/{kind}")]
    return targets


def heldout_targets(config: dict) -> list[str]:
    """The held-out scores of a labelled test set (``data.test_masks``): table and figure; else none."""
    if not config["data"].get("test_masks"):
        return []
    tables = [f"results/tables/heldout.{ext}" for ext in ("csv", "md")]
    return tables + _pair("results/figures/heldout/estimate_vs_heldout")


def final_targets(config: dict, task) -> list[str]:
    """Submissions and label maps, tuned settings and decisions, study scores, figures and tables."""
    ensembles, names = list(config["ensembles"]), tuning_names(config)
    targets = [f"results/submission/{e}.csv" for e in ensembles] + [f"results/labelmaps/{e}" for e in ensembles]
    targets += [f"results/tuning/{name}/best.json" for name in names]
    targets += [f"results/postprocess/{name}.json" for name in names]
    targets += [f"results/robustness/{study}/scores.csv" for study in studies(config)]
    if config["data"]["format"] == "volumes":  # the slices put back: per-volume scores, test label volumes
        targets += [f"results/volumes/{name}/summary.json" for name in names]
        targets += [f"results/volumes/{e}/test" for e in ensembles] + ["results/tables/volumes.md"]
    return targets + figure_targets(config, task) + heldout_targets(config) + ["results/run_summary.md"]


# --- the data formats' files -----------------------------------------------------------------------

#: the two image sets of every dataset: each has its own raw fingerprint, manifest job, arrays and
#: predictions, so that a change to one reruns only the jobs that read it
PARTS = ("train", "test")
#: the raw fingerprint of each image set (:func:`plexus.data.fingerprint.refresh_part`)
RAW_FINGERPRINTS = {part: f"results/manifest/raw_fingerprint/{part}.json" for part in PARTS}
#: what the manifest stage of each data format writes beyond train.csv, test.csv and summary.json
#: (all from the training images: the ``manifest`` job's)
MANIFEST_FILES = {
    "kaggle_nerve": {"sheet": "results/manifest/sheet.tsv", "masks": "results/manifest/train_masks.csv"},
    "folders": {"sheet": "results/manifest/sheet.tsv"},
    "sheet": {"sheet": "results/manifest/sheet.tsv"},
    "dsb2018": {"sheet": "results/manifest/sheet.tsv"},
    "volumes": {"sheet": "results/manifest/sheet.tsv"},
}
#: the formats whose raw folder is converted to a sample sheet first (the ``convert`` rule for the
#: training images, ``convert_test`` for the test images), and what those rules write
CONVERTED_FORMATS = ("dsb2018", "volumes")
CONVERTED = {"sheet": "results/converted/sheet.tsv", "labels": "results/converted/labels",
             "targets": "results/converted/targets", "images": "results/converted/images"}
CONVERTED_TEST = {"sheet": "results/converted/test/sheet.tsv", "images": "results/converted/test/images"}
#: what the conversion of each image set writes, by format (volumes: the slices and the index that puts
#: them back, :mod:`plexus.data.volumes`)
CONVERTED_FILES = {
    "dsb2018": {"train": CONVERTED, "test": CONVERTED_TEST},
    "volumes": {part: {"sheet": f"{root}/sheet.tsv", "images": f"{root}/slices", "index": f"{root}/volumes.json"}
                for part, root in (("train", "results/converted"), ("test", "results/converted/test"))},
}
#: the folders written by the conversion (Snakemake directory outputs)
CONVERTED_FOLDERS = ("labels", "targets", "images")
#: a labelled test set's masks (``data.test_masks``), checked and written by a job of their own
#: (``test_masks``): read by the ``heldout`` rule alone, never by a prediction, training, tuning or
#: decision job; so labelling a test set, or editing a test mask, reruns no prediction
TEST_MASKS = "results/manifest/test_masks.csv"
#: the raw fingerprint of the test masks (:func:`test_masks_part`)
TEST_MASKS_FINGERPRINT = "results/manifest/raw_fingerprint/test_masks.json"
#: the raw folders of each image set, by the formats that keep them apart by folder
PART_FOLDERS = {"kaggle_nerve": {"train": "train", "test": "test"},
                "dsb2018": {"train": "stage1_train", "test": "stage1_test"}}


def manifest_data(config: dict) -> dict:
    """The data section as the manifest jobs of both image sets read it: without the test masks'
    keys, so that labelling the test set (``data.test_masks``) reruns neither (only the
    ``test_masks`` job reads them)."""
    data = {k: v for k, v in config["data"].items() if k != "test_masks"}
    return data | {"folders": {k: v for k, v in data["folders"].items() if k != "test_masks"}}


def raw_dir(config: dict) -> str:
    return config["data"]["raw_dir"].rstrip("/")


def sheet_path(config: dict) -> str:
    """The sample sheet: ``data.sheet``, relative to ``raw_dir`` unless absolute."""
    from pathlib import Path

    sheet = config["data"]["sheet"]
    return sheet if Path(sheet).is_absolute() else f"{raw_dir(config)}/{sheet}"


def raw_parts(config: dict) -> dict[str, dict]:
    """What each image set's raw fingerprint covers (:func:`plexus.data.fingerprint.part_fingerprint`).

    ``kaggle_nerve``, ``dsb2018``: its folder (``train/``, ``test/``; ``stage1_train/``,
    ``stage1_test/``). ``folders``: the test folder, and for training everything else under
    ``raw_dir`` (images, masks, class or case folders; a sheet lying there is left out). ``sheet``:
    the sheet's rows of the set and the files they name. A test mask is in neither: the test masks'
    own record covers it (:func:`test_masks_part`).
    """
    from pathlib import Path

    data = config["data"]
    if data["format"] in PART_FOLDERS:
        return {part: {"folders": [folder]} for part, folder in PART_FOLDERS[data["format"]].items()}
    sheet = sheet_path(config)
    if data["format"] == "volumes":
        layout = data["volumes"]["layout"]
        if layout in ("decathlon", "nnunet"):  # dataset.json and the training folders; imagesTs the test set's
            return {"train": {"folders": None, "exclude": ["imagesTs"]}, "test": {"folders": ["imagesTs"]}}
        if layout == "brats":  # a case's folder says its set by its seg file: the whole tree for both
            return {part: {"folders": None} for part in PARTS}
        return {part: {"sheet": sheet} for part in PARTS}
    if data["format"] == "sheet":  # the test rows' mask cells are the test masks' record's
        return {"train": {"sheet": sheet}, "test": {"sheet": sheet, "blank": ["mask"]}}
    test, masks = _test_folders(config)
    raw = Path(raw_dir(config))
    in_raw = [Path(sheet).relative_to(raw).as_posix()] if Path(sheet).is_relative_to(raw) else []
    tests = [test] if test else []
    # the test masks folder (data.test_masks) is in neither set's record: in its own
    return {"train": {"folders": None, "exclude": in_raw + tests + ([masks] if masks else [])},
            "test": {"folders": tests}}


def _test_folders(config: dict) -> tuple[str | None, str | None]:
    """A ``folders`` layout's test images folder and test masks folder (relative, or None)."""
    from pathlib import Path

    folders = config["data"]["folders"]
    test = Path(folders["test"]).as_posix().strip("/") if folders["test"] else None
    masks = folders.get("test_masks")
    return test, (Path(masks).as_posix().strip("/") if masks and test else None)


def test_masks_part(config: dict) -> dict | None:
    """What the test masks' raw fingerprint covers (:data:`TEST_MASKS_FINGERPRINT`) for a labelled
    test set (``data.test_masks``), else None: format ``folders``, the test masks folder; ``sheet``,
    the ids and mask cells of the test rows and the masks they name."""
    data = config["data"]
    if not data.get("test_masks"):
        return None
    if data["format"] == "sheet":
        return {"sheet": sheet_path(config), "split": "test", "only": ["image_id", "mask"]}
    return {"folders": [_test_folders(config)[1]]}


def manifest_outputs(config: dict, part: str | None = None) -> dict[str, str]:
    """train.csv, test.csv, summary.json and what the data format writes beside them; ``part``:
    what the manifest job of that image set writes (``test``: test.csv; ``train``: the rest)."""
    files = {"train": "results/manifest/train.csv", "test": "results/manifest/test.csv",
             "summary": "results/manifest/summary.json", **MANIFEST_FILES[config["data"]["format"]]}
    if part is None:
        return files
    return {k: v for k, v in files.items() if k.startswith("test") == (part == "test")}


def synthetic_outputs(config: dict) -> tuple[dict[str, str], set[str]]:
    """The folders (or sheet) the embedded synthetic dataset of ``data.synthetic.kind`` writes, and
    which of those outputs are folders."""
    raw, kind = raw_dir(config), config["data"]["synthetic"]["kind"]
    folders = {"nerve": ("train", "test"), "nuclei": ("stage1_train", "stage1_test")}.get(kind)
    if folders is None:
        return {"sheet": sheet_path(config)}, set()
    return {"train": f"{raw}/{folders[0]}", "test": f"{raw}/{folders[1]}"}, {"train", "test"}


def converted_outputs(config: dict, part: str) -> tuple[dict[str, str], set[str]]:
    """What the conversion of image set ``part`` writes (:data:`CONVERTED_FILES`), and which are folders."""
    files = dict(CONVERTED_FILES[config["data"]["format"]][part])
    if part == "test":
        files = {k: v for k, v in files.items() if k not in ("labels", "targets")}
    return files, {k for k in files if k in CONVERTED_FOLDERS}


def min_volume_grid(config: dict) -> list[float]:
    """``tuning.min_volumes`` (mm^3) as its values (format volumes: the minimum 3-D component volume)."""
    from plexus.config import grid_values

    return grid_values(config["tuning"]["min_volumes"])


def conversion_settings(config: dict, part: str) -> dict:
    """What the conversion of image set ``part`` reads of the config: DSB2018, ``instances.group``
    and ``.boundary``; volumes, the data section (the training side's without the test masks' keys)
    and the background class's label value."""
    if config["data"]["format"] == "dsb2018":
        return {k: config["instances"][k] for k in ("group", "boundary")}
    data = manifest_data(config) if part == "train" else config["data"]
    return {"data": data, "background": next(iter(config["classes"].values()))}


def converted_inputs(config: dict, part: str | None = None) -> dict[str, str]:
    """The DSB2018 folders the conversion reads: stage1_test only where it exists (or is generated);
    ``part``: the one folder of that image set's conversion (none for a missing stage1_test)."""
    from pathlib import Path

    raw = raw_dir(config)
    if config["data"]["format"] == "volumes":  # what the volume sheet names: its fingerprint's business
        return {}
    folders = {"train": f"{raw}/stage1_train"}
    if config["data"]["synthetic"]["enabled"] or Path(raw, "stage1_test").is_dir():
        folders["test"] = f"{raw}/stage1_test"
    return folders if part is None else {k: v for k, v in folders.items() if k == part}


def dataset_inputs(config: dict, part: str | None = None) -> list[str]:
    """What the manifest reads: the raw folders, the sheet, or the converted sheet (dsb2018);
    ``part``: what the manifest job of that image set takes as input.

    Per image set, a sample sheet is no input (one file holds both sets: a test row's edit must not
    rerun the training side); its rows are in the set's raw fingerprint. It is named only while it
    is missing and no job writes it, for Snakemake's missing-input message.
    """
    from pathlib import Path

    raw, data = raw_dir(config), config["data"]
    if data["format"] == "kaggle_nerve":
        return [f"{raw}/{p}" for p in PARTS if part in (None, p)]
    if data["format"] in CONVERTED_FORMATS:
        converted = CONVERTED_FILES[data["format"]]
        return [converted["train" if part in (None, "train") else "test"]["sheet"]]
    if data["format"] == "sheet":
        sheet = sheet_path(config)
        if part is None or (not data["synthetic"]["enabled"] and not Path(sheet).exists()):
            return [sheet]
        return []
    folders = data["folders"]
    others = {"test": folders["test"], "masks": None if folders["cases"] else folders["masks"]}
    # a folder the layout does not have (no test/) is no input; the raw fingerprint sees every file
    paths = [f"{raw}/{folders['images']}"] if part in (None, "train") else []
    paths += [f"{raw}/{name}" for key, name in others.items()
              if name and part in (None, "test" if key == "test" else "train") and Path(raw, name).exists()]
    return sorted(set(paths))
