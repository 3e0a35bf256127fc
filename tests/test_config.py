"""The config schema: every number bounded, defaults filled everywhere, errors naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from plexus.config import ConfigError, schema, validate_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "config/config.yaml", REPO / "config/kaggle.yaml", *sorted((REPO / "tests/configs").glob("*.yaml"))]


def _numeric_nodes(node, path="$"):
    """Every (path, schema node) of type number or integer in the schema."""
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            yield path, node
        for key, value in node.items():
            yield from _numeric_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numeric_nodes(value, f"{path}[{i}]")


def test_every_number_in_the_schema_has_a_lower_bound():
    nodes = list(_numeric_nodes(schema()))
    assert len(nodes) > 30
    unbounded = [path for path, node in nodes if "minimum" not in node and "exclusiveMinimum" not in node]
    assert unbounded == []


def test_every_setting_is_described_or_self_explaining():
    """Leaf settings carry a description (a handful of obvious ones are exempt)."""
    obvious = {"enabled", "seed", "num", "start", "stop", "dpi", "font_size", "batch_size", "optimizer",
               "weight_decay", "n_subjects", "images_per_subject", "n_test_subjects", "test_images_per_subject"}
    missing = []

    def walk(node, name="$"):
        if isinstance(node, dict):
            props = node.get("properties", {})
            for key, sub in props.items():
                if isinstance(sub, dict) and "properties" not in sub and "description" not in sub \
                        and key not in obvious and "$ref" not in sub:
                    missing.append(f"{name}.{key}")
                walk(sub, f"{name}.{key}")
            for key in ("definitions", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    for sub_key, sub in node[key].items() if key == "definitions" else [("*", node[key])]:
                        walk(sub, f"{name}.{sub_key}")

    walk(schema())
    assert missing == []


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    validate_config(yaml.safe_load(path.read_text()))


def test_defaults_are_filled_inside_named_model_entries():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    del config["models"]["unet"]["dropout"]
    del config["predict"]
    validate_config(config)
    model_defaults = schema()["definitions"]["model"]["properties"]
    assert config["models"]["unet"]["dropout"] == model_defaults["dropout"]["default"]
    assert config["models"]["unet"]["augment"]["hflip"] == 0.5  # given in the file
    assert config["predict"]["batch_size"] == schema()["properties"]["predict"]["properties"]["batch_size"]["default"]


@pytest.mark.parametrize("edit,key", [
    (lambda c: c["tuning"]["cutoffs"].update(stop=1.5), "tuning.cutoffs.stop"),
    (lambda c: c["tuning"]["cutoffs"].update(start=-0.1), "tuning.cutoffs.start"),
    (lambda c: c["tuning"]["min_areas"].update(start=-100), "tuning.min_areas.start"),
    (lambda c: c["tuning"]["min_areas"].update(num=0), "tuning.min_areas.num"),
    (lambda c: c["models"]["unet"].update(lr=-1), "models.unet.lr"),
    (lambda c: c["models"]["unet"].update(dropout=1.5), "models.unet.dropout"),
    (lambda c: c["robustness"]["noise"].update(sigmas=[-5]), "robustness.noise.sigmas.0"),
    (lambda c: c["robustness"]["train_size"].update(sizes=[0]), "robustness.train_size.sizes.0"),
    (lambda c: c["cv"].update(n_folds=1), "cv.n_folds"),
    (lambda c: c["models"]["unet"].update(input_size=[0, 80]), "models.unet.input_size.0"),
    (lambda c: c["models"].update(unet={**c["models"]["unet"], "epoch": 3}), "models.unet"),
])
def test_bad_values_are_rejected_naming_the_key(edit, key):
    config = copy.deepcopy(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    edit(config)
    with pytest.raises(ConfigError, match=rf"config key {key.replace('.', '[.]')}:"):
        validate_config(config)


def test_all_errors_are_reported_together():
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config["tuning"]["cutoffs"]["stop"] = 2
    config["models"]["unet"]["lr"] = 0
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    assert "tuning.cutoffs.stop" in str(err.value) and "models.unet.lr" in str(err.value)
