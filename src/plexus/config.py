"""The workflow configuration: validated against ``config.schema.yaml``, defaults filled in.

The schema is the one place where every setting is typed, bounded, described and
defaulted. :func:`validate_config` fills in the defaults everywhere the schema
gives them (inside every named model entry too, which Snakemake's ``validate`` does
not reach) and reports every violation at once, each naming its config key.
"""

from __future__ import annotations

import copy

import jsonschema

from plexus.schema import SCHEMA_PATH, schema, schema_enum  # noqa: F401  (the config's API too)


class ConfigError(ValueError):
    """An invalid configuration; the message names each offending key."""


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


# --- what the schema cannot say: classes and the checks across keys -------------------------------

#: the mask values of the Kaggle nerve layout (data.format kaggle_nerve), fixed by the layout
KAGGLE_CLASSES = {"background": 0, "nerve": 255}
#: the classes of the nuclei targets (data.format dsb2018), with and without the boundary class
NUCLEI_CLASSES = {True: {"background": 0, "nucleus": 1, "boundary": 2}, False: {"background": 0, "nucleus": 1}}
#: which data.format each embedded synthetic dataset is written in
SYNTHETIC_FORMATS = {"nerve": ["kaggle_nerve"], "multiclass": ["sheet"], "multichannel": ["sheet"],
                     "nuclei": ["dsb2018"], "regions": ["sheet"], "volumes": ["volumes"]}


def grid_values(spec: dict, integer: bool = False) -> list:
    """A tuning grid ``{start, stop, num}`` as its values (rounded: stable params and file names)."""
    import numpy as np

    values = np.linspace(spec["start"], spec["stop"], spec["num"])
    return [int(round(v)) for v in values] if integer else [round(float(v), 6) for v in values]


def ignored_classes(config: dict) -> dict:
    """The ``ignore:`` classes, name -> mask value: their pixels count nowhere (and are not learnt)."""
    return {name: config["classes"][name] for name in config["ignore"] if name in config["classes"]}


def learnt_classes(config: dict) -> dict:
    """The classes the network learns, name -> mask value, in order (the background first)."""
    if config["data"]["format"] == "dsb2018":
        return dict(NUCLEI_CLASSES[bool(config["instances"]["boundary"])])
    if config["data"]["format"] == "kaggle_nerve":
        return dict(KAGGLE_CLASSES)
    ignored = ignored_classes(config)
    return {name: value for name, value in config["classes"].items() if name not in ignored}
