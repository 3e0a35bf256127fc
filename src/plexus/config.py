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
