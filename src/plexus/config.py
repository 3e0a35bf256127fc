"""The workflow configuration: validated against ``config.schema.yaml``, defaults filled in.

The schema is the one place where every setting is typed, bounded, described and
defaulted. :func:`validate_config` fills in the defaults everywhere the schema
gives them (inside every named model entry too, which Snakemake's ``validate`` does
not reach) and reports every violation at once, each naming its config key.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


class ConfigError(ValueError):
    """An invalid configuration; the message names each offending key."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class):
    """A validator class that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(error: jsonschema.ValidationError) -> str:
    """The dotted path of the offending value (for an unknown key: its parent; the message names the key)."""
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_config(config: dict) -> dict:
    """``config`` with defaults filled in (in place, and returned); :class:`ConfigError` if invalid."""
    validator = _Validator(schema())
    # defaults are written while validating, so validate twice: the second pass checks them too
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"config key {key_path(e)}: {e.message}" for e in errors]
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    return config


def schema_enum(*path: str) -> list:
    """The allowed values of a string setting, e.g. ``schema_enum("model", "arch")``."""
    node = schema()["definitions"][path[0]]
    for key in path[1:]:
        node = node["properties"][key]
    return list(node["enum"])


# --- what the schema cannot say: classes and the checks across keys -------------------------------

#: the classes of the nuclei targets (data.format dsb2018), with and without the boundary class
NUCLEI_CLASSES = {True: {"background": 0, "nucleus": 1, "boundary": 2}, False: {"background": 0, "nucleus": 1}}
#: which data.format each embedded synthetic dataset is written in
SYNTHETIC_FORMATS = {"nerve": ["kaggle_nerve"], "multiclass": ["sheet"], "multichannel": ["sheet"],
                     "nuclei": ["dsb2018"], "regions": ["sheet"]}


def grid_values(spec: dict, integer: bool = False) -> list:
    """A tuning grid ``{start, stop, num}`` as its values (rounded: stable params and file names)."""
    import numpy as np

    values = np.linspace(spec["start"], spec["stop"], spec["num"])
    return [int(round(v)) for v in values] if integer else [round(float(v), 6) for v in values]


def task_name(config: dict) -> str:
    """The study's task: ``task:``, or its data format's (:data:`plexus.tasks.DEFAULT_TASKS`)."""
    from plexus.tasks import task_of

    return task_of(config)


def ignored_classes(config: dict) -> dict:
    """The ``ignore:`` classes, name -> mask value: their pixels count nowhere (and are not learnt)."""
    return {name: config["classes"][name] for name in config["ignore"] if name in config["classes"]}


def learnt_classes(config: dict) -> dict:
    """The classes the network learns, name -> mask value, in order (the background first)."""
    if config["data"]["format"] == "dsb2018":
        return dict(NUCLEI_CLASSES[bool(config["instances"]["boundary"])])
    ignored = ignored_classes(config)
    return {name: value for name, value in config["classes"].items() if name not in ignored}


def check_config(config: dict) -> None:
    """:class:`ConfigError` listing every :func:`config_errors` of a validated ``config``."""
    errors = config_errors(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def config_errors(config: dict) -> list[str]:
    """Cross-field checks the schema cannot express, of a config :func:`validate_config` filled in;
    one line per problem, each naming its key."""
    from plexus.training.settings import TrainSettings  # it reads this module's schema

    errors = []
    models, ensembles, robustness = config["models"], config["ensembles"], config["robustness"]
    for name, members in ensembles.items():
        errors += [f"ensembles.{name}: unknown model {member!r} (models: {sorted(models)})"
                   for member in members if member not in models]
        if name in models:
            errors.append(f"ensembles.{name}: a model has the same name; names of models and ensembles must differ")
    for key in ("cutoffs", "min_areas", "presence_thresholds"):
        spec = config["tuning"][key]
        if spec["start"] > spec["stop"]:
            errors.append(f"tuning.{key}: start {spec['start']} is above stop {spec['stop']}")
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
    from plexus.tasks import load_task  # the task's own checks: its formats, its studies

    errors += load_task(task_name(config)).config_errors(config)
    if data["format"] != "kaggle_nerve":
        errors += _generic_errors(config)
    if data["format"] == "dsb2018":
        errors += _instance_errors(config)
    if synthetic["enabled"] and data["format"] not in SYNTHETIC_FORMATS[synthetic["kind"]]:
        errors.append(f"data.synthetic.kind: {synthetic['kind']!r} does not go with data.format {data['format']!r} "
                      "(nerve needs kaggle_nerve; multiclass, multichannel and regions need sheet; "
                      "nuclei needs dsb2018)")
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
    for name, settings in config["models"].items():
        if settings["arch"] == "unet2head" or settings.get("presence_head"):
            errors.append(f"models.{name}: the presence head gates binary masks; the generic workflow "
                          "(data.format folders or sheet) has none")
    if config["robustness"]["missing_channel"]["enabled"] and len(data["channels"]) < 2:
        errors.append("robustness.missing_channel.enabled: the study removes each channel in turn; "
                      f"data.channels has one ({data['channels']})")
    synthetic = data["synthetic"]
    if synthetic["enabled"] and data["format"] != "dsb2018" and data["sheet"] != "sheet.tsv":
        errors.append(f"data.sheet: the synthetic {synthetic['kind']} dataset writes raw_dir/sheet.tsv, "
                      f"not {data['sheet']!r}")
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
