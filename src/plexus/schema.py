"""The configuration schema (``config.schema.yaml``): where every setting is typed, bounded, described
and defaulted. A leaf module, read by :mod:`plexus.config` (the whole config) and by
:mod:`plexus.training.settings` (one model entry)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


def safe_load(text: str):
    """``yaml.safe_load``, by libyaml where PyYAML has it (ten times faster on the schema, which
    every snakemake start reads; the same values, checked by the tests)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@lru_cache(maxsize=1)
def schema() -> dict:
    return safe_load(SCHEMA_PATH.read_text())


def schema_enum(*path: str) -> list:
    """The allowed values of a string setting, e.g. ``schema_enum("model", "arch")``."""
    node = schema()["definitions"][path[0]]
    for key in path[1:]:
        node = node["properties"][key]
    return list(node["enum"])
