"""Training settings: one frozen object, defaults only in the schema, registries equal to the schema's enums."""

import dataclasses
import json

import pytest

from plexus.config import schema, schema_enum, validate_config
from plexus.models import MODELS
from plexus.training.losses import LOSSES
from plexus.training.optim import OPTIMIZERS
from plexus.training.settings import AugmentSettings, TrainSettings, model_schema

REQUIRED = {"arch": "unet", "input_size": [64, 80], "epochs": 2}


@pytest.mark.parametrize(
    ("key", "registry"),
    [("arch", MODELS), ("loss", LOSSES), ("optimizer", OPTIMIZERS)],
    ids=["arch", "loss", "optimizer"],
)
def test_schema_enums_equal_the_registries(key, registry):
    assert set(schema_enum("model", key)) == set(registry)


def test_fields_are_exactly_the_schema_options():
    props = model_schema()["properties"]
    assert {f.name for f in dataclasses.fields(TrainSettings)} == set(props)
    assert {f.name for f in dataclasses.fields(AugmentSettings)} == set(props["augment"]["properties"])
    nodes = [*props.items(), *(("augment." + k, v) for k, v in props["augment"]["properties"].items())]
    for key, node in nodes:  # every option is documented, and defaulted unless required
        assert key in model_schema()["required"] or "default" in node, key
        assert node.get("description"), key


def test_defaults_come_from_the_schema():
    s = TrainSettings.from_config(REQUIRED)
    props = model_schema()["properties"]
    for key, node in props.items():
        if key == "augment":
            aug = props["augment"]["properties"]
            assert s.augment.to_dict() == {k: v["default"] for k, v in aug.items()}
        elif "default" in node:
            assert getattr(s, key) == node["default"], key
    assert s.input_size == (64, 80) and s.arch == "unet" and s.epochs == 2
    # the same values the workflow config gets from validate_config
    config = validate_config(_config({"m": dict(REQUIRED)}))
    assert TrainSettings.from_config(config["models"]["m"]) == s
    # the existing defaults, unchanged
    assert (s.amp, s.amp_dtype, s.channels_last, s.deterministic) == (True, "float16", True, True)
    assert (s.bilinear, s.presence_dropout, s.momentum) == (False, 0.0, 0.9)
    assert (s.optimizer, s.lr, s.loss, s.dice_reduction, s.batch_size, s.seed) == ("adam", 0.001, "neg_log_dice",
                                                                                    "batch", 32, 1)


def test_partial_augment_is_filled():
    s = TrainSettings.from_config({**REQUIRED, "augment": {"vflip": 0.5}})
    assert s.augment.vflip == 0.5 and s.augment.hflip == 0.5 and s.augment.zoom == 0.1
    zeros = dict.fromkeys(s.augment.to_dict(), 0)
    assert TrainSettings.from_config({**REQUIRED, "augment": zeros}).augment.is_identity()


def test_to_dict_is_plain_json_and_round_trips():
    entry = {**REQUIRED, "lr": 0.01, "augment": {"rotate": 3}}
    s = TrainSettings.from_config(entry)
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d and d["input_size"] == [64, 80] and d["augment"]["rotate"] == 3.0
    assert TrainSettings.from_config(d) == s
    assert entry == {**REQUIRED, "lr": 0.01, "augment": {"rotate": 3}}, "the entry must not be modified"


def test_types_are_normalised():
    s = TrainSettings.from_config({**REQUIRED, "lr": 1, "epochs": 3.0, "input_size": [64.0, 80]})
    assert isinstance(s.lr, float) and isinstance(s.epochs, int) and s.input_size == (64, 80)
    assert all(isinstance(v, int) for v in s.input_size)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="unknown model setting.*learning_rate"):
        TrainSettings.from_config({**REQUIRED, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="augment.flip"):
        TrainSettings.from_config({**REQUIRED, "augment": {"flip": 0.5}})


def test_missing_required_key_is_named():
    with pytest.raises(ValueError, match="input_size"):
        TrainSettings.from_config({"arch": "unet", "epochs": 1})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", 0),
        ("dropout", 1.5),
        ("depth", 7),
        ("momentum", 1.0),
        ("presence_dropout", -0.1),
        ("amp_dtype", "float8"),
        ("amp", "yes"),
        ("channels_last", 1),
        ("arch", "resnet"),
        ("input_size", [64]),
        ("batch_size", 0),
    ],
)
def test_bad_value_is_named(key, value):
    with pytest.raises(ValueError, match=rf"model setting {key}\b"):
        TrainSettings.from_config({**REQUIRED, key: value})


def test_bad_nested_value_is_named():
    with pytest.raises(ValueError, match=r"model setting augment\.hflip"):
        TrainSettings.from_config({**REQUIRED, "augment": {"hflip": 2}})


def test_frozen():
    s = TrainSettings.from_config(REQUIRED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.augment.hflip = 0.0
    assert hash(s) == hash(TrainSettings.from_config(REQUIRED))


def test_model_kwargs():
    assert TrainSettings.from_config(REQUIRED).model_kwargs() == {
        "in_channels": 1, "base_channels": 32, "depth": 4, "dropout": 0.2, "bilinear": False}
    two = TrainSettings.from_config({**REQUIRED, "arch": "unet2head", "presence_dropout": 0.3})
    assert two.model_kwargs()["presence_dropout"] == 0.3
    assert "presence_dropout" not in TrainSettings.from_config({**REQUIRED, "presence_dropout": 0.3}).model_kwargs()


def _config(models):
    return {
        "data": {"raw_dir": "raw"},
        "cv": {},
        "models": models,
        "ensembles": {"e": list(models)},
        "tuning": {"cutoffs": {"start": 0.5, "stop": 0.5, "num": 1}, "min_areas": {"start": 0, "stop": 0, "num": 1}},
    }


def test_schema_is_the_package_schema():
    assert model_schema() is schema()["definitions"]["model"]
