"""The checks across config keys that the schema cannot express (:func:`config_errors`).

They read the model entries' training settings (:mod:`plexus.training.settings`) and the task's
own checks (:mod:`plexus.tasks`), so they live above both; :mod:`plexus.config` (the schema's
validation and defaults, the classes) stays below everything that reads a config.
"""

from __future__ import annotations

from pathlib import Path

from plexus.config import SYNTHETIC_FORMATS, ConfigError
from plexus.evaluation.heldout import config_errors as heldout_errors
from plexus.tasks import load_task, task_of
from plexus.training.settings import TrainSettings


def check_config(config: dict) -> None:
    """:class:`ConfigError` listing every :func:`config_errors` of a validated ``config``."""
    errors = config_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def config_errors(config: dict) -> list[str]:
    """Cross-field checks the schema cannot express, of a config :func:`validate_config` filled in;
    one line per problem, each naming its key."""
    errors = []
    models, ensembles, robustness = config["models"], config["ensembles"], config["robustness"]
    for name, members in ensembles.items():
        errors += [f"ensembles.{name}: unknown model {member!r} (models: {sorted(models)})"
                   for member in members if member not in models]
        if name in models:
            errors.append(f"ensembles.{name}: a model has the same name; names of models and ensembles must differ")
    for key in ("cutoffs", "min_areas", "min_sizes", "presence_thresholds", "min_volumes"):
        spec = config["tuning"][key]
        if spec["start"] > spec["stop"]:
            errors.append(f"tuning.{key}: start {spec['start']} is above stop {spec['stop']}")
    errors += _minimum_size_errors(config)
    for name, settings in models.items():
        try:  # the cross-field checks of one model entry (patch_size, presence head)
            TrainSettings.from_config(settings)
        except ValueError as error:
            errors.append(f"models.{name}: {error}")
        step = 2 ** settings["depth"]
        if any(side % step for side in settings["input_size"]):
            errors.append(f"models.{name}.input_size: {settings['input_size']} is not divisible by "
                          f"2**depth = {step}")
    studies = robustness["noise"]["enabled"] or robustness["train_size"]["enabled"]
    if studies and robustness.get("model") not in models:
        errors.append(f"robustness.model: {robustness.get('model')!r} is not a key of models ({sorted(models)})")
    data, synthetic = config["data"], config["data"]["synthetic"]
    errors += load_task(task_of(config)).config_errors(config)  # the task's own: its formats, its studies
    errors += heldout_errors(config, task_of(config))  # a labelled test set: the tasks and layouts that score it
    if data["format"] != "kaggle_nerve":
        errors += _generic_errors(config)
    if data["format"] == "dsb2018":
        errors += _instance_errors(config)
    if synthetic["enabled"] and data["format"] not in SYNTHETIC_FORMATS[synthetic["kind"]]:
        errors.append(f"data.synthetic.kind: {synthetic['kind']!r} does not go with data.format {data['format']!r} "
                      "(nerve needs kaggle_nerve; multiclass, multichannel and regions need sheet; "
                      "nuclei needs dsb2018; volumes needs volumes)")
    raw = Path(data["raw_dir"].rstrip("/"))
    # the synthesize rule owns raw_dir/train and raw_dir/test as directory outputs, which
    # Snakemake deletes before regenerating: never let that happen to real data
    if synthetic["enabled"] and _foreign_data(raw, "train"):
        errors.append(f"data.synthetic.enabled: {raw} holds data that plexus did not generate; "
                      "set data.synthetic.enabled: false to use it, or point data.raw_dir elsewhere")
    if "tta" in config["postprocess"]["candidates"] and not config["predict"]["tta"]:
        errors.append("postprocess.candidates: 'tta' needs the flip-averaged predictions of predict.tta, which is "
                      "empty")
    if "crf" in config["postprocess"]["candidates"]:
        try:
            import pydensecrf.densecrf  # noqa: F401
        except ImportError as error:
            errors.append(f"postprocess.candidates: 'crf' needs the pydensecrf2 package ({error})")
    return errors


#: the two minimum sizes: each task reads one (or neither), a grid in the other is a config error
MINIMUM_SIZE_KEYS = {"binary": "min_areas", "classes": "min_sizes", "regions": "min_sizes", "instances": None}
_MINIMUM_SIZE_MEANING = {
    "min_areas": "the whole-mask area of a binary study (a smaller predicted mask is emptied)",
    "min_sizes": "the component size of a classes or regions study (each class's or region's smaller "
                 "components are removed)",
}
_MINIMUM_SIZE_INSTEAD = {
    "binary": "tune the whole-mask area in tuning.min_areas; small components of the mask are the remove_small "
              "candidate (postprocess.component_sizes)",
    "classes": "tune each class's component size in tuning.min_sizes",
    "regions": "tune each region's component size in tuning.min_sizes",
    "instances": "the nuclei's minimum size is instances.min_sizes",
}
_NO_GRID = {"start": 0, "stop": 0, "num": 1}


def _minimum_size_errors(config: dict) -> list[str]:
    """A grid in the minimum size the study's task does not read (``tuning.min_areas`` is binary's
    whole-mask area, ``tuning.min_sizes`` the component size of classes and regions)."""
    task = task_of(config)
    errors = []
    for key, meaning in _MINIMUM_SIZE_MEANING.items():
        if key != MINIMUM_SIZE_KEYS.get(task) and config["tuning"][key] != _NO_GRID:
            errors.append(f"tuning.{key}: {meaning}; task {task!r} does not read it: "
                          f"{_MINIMUM_SIZE_INSTEAD.get(task, 'remove it')}")
    return errors


def _foreign_data(raw: Path, folder: str) -> bool:
    """``raw/folder`` holds files and ``raw`` has no synthetic summary (data plexus did not write)."""
    path = raw / folder
    return path.is_dir() and any(path.iterdir()) and not (raw / "synthetic_summary.json").exists()


def _generic_errors(config: dict) -> list[str]:
    """Checks of the generic workflow (any dataset from a sheet, several classes)."""
    errors, data, classes = [], config["data"], config["classes"]
    values = [str(v) for v in classes.values()]
    if len(set(values)) != len(values):
        errors.append(f"classes: two classes share a mask value ({classes})")
    if len({isinstance(v, list) for v in classes.values()}) > 1:
        errors.append("classes: give every class a gray value or every class an [r, g, b] colour, not both")
    first = next(iter(classes))
    for name in config["ignore"]:
        if name not in classes:
            errors.append(f"ignore: {name!r} is not a class (classes: {list(classes)})")
        elif name == first:
            errors.append(f"ignore: {name!r} is the background (the first class)")
    if data["format"] == "dsb2018" and config["ignore"]:
        errors.append("ignore: instance segmentation (data.format dsb2018) has no ignore label")
    if load_task(task_of(config)).output != "sigmoid":
        for name, settings in config["models"].items():
            if settings["arch"] == "unet2head" or settings.get("presence_head"):
                errors.append(f"models.{name}: the presence head gates binary masks (task binary: two classes); "
                              f"task {task_of(config)!r} has none")
    if config["robustness"]["missing_channel"]["enabled"] and len(data["channels"]) < 2:
        errors.append("robustness.missing_channel.enabled: the study removes each channel in turn; "
                      f"data.channels has one ({data['channels']})")
    synthetic = data["synthetic"]
    written = {"volumes": "volumes.tsv"}.get(synthetic["kind"], "sheet.tsv")
    if synthetic["enabled"] and data["format"] != "dsb2018" and data["sheet"] != written:
        errors.append(f"data.sheet: the synthetic {synthetic['kind']} dataset writes raw_dir/{written}, "
                      f"not {data['sheet']!r}")
    if data["format"] == "volumes" and data["volumes"]["layout"] != "sheet" and synthetic["enabled"]:
        errors.append("data.volumes.layout: the synthetic volumes dataset is a volume sheet (layout sheet)")
    if data["format"] == "folders" and data["channels"] != ["image"]:
        errors.append("data.channels: format folders has one channel, image; describe several in a sheet")
    return errors


def _instance_errors(config: dict) -> list[str]:
    """Checks of nuclei instance segmentation (data.format dsb2018)."""
    errors = []
    raw = Path(config["data"]["raw_dir"].rstrip("/"))
    # synthesize_nuclei owns raw_dir/stage1_train as a directory output, which Snakemake deletes
    # before regenerating: never let that happen to real data
    if config["data"]["synthetic"]["enabled"] and _foreign_data(raw, "stage1_train"):
        errors.append(f"data.synthetic.enabled: {raw}/stage1_train holds data that plexus did not generate; "
                      "set data.synthetic.enabled: false to use it, or point data.raw_dir elsewhere")
    return errors
