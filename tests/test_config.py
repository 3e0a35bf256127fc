"""The config schema: every number bounded, defaults filled everywhere, errors naming the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from plexus.config import ConfigError, ignored_classes, learnt_classes, schema, validate_config
from plexus.config_checks import check_config, config_errors

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


# --- the checks across keys (plexus.config_checks.config_errors) ------------------------------------------


def _config(name: str) -> dict:
    return validate_config(yaml.safe_load((REPO / name).read_text()))


def _generic(**edits) -> dict:
    config = _config("tests/configs/tiny_multiclass.yaml")
    for key, value in edits.items():
        config[key] = value
    return config


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("config/config.yaml", lambda c: c["ensembles"].update(main=["unet", "unet3"]),
     "ensembles.main: unknown model 'unet3'"),
    ("config/config.yaml", lambda c: c["ensembles"].update(unet=["unet"]), "ensembles.unet: a model has the same name"),
    ("config/config.yaml", lambda c: c["tuning"]["cutoffs"].update(start=0.9, stop=0.1),
     "tuning.cutoffs: start 0.9 is above stop 0.1"),
    ("config/config.yaml", lambda c: c["models"]["unet"].update(input_size=[30, 48]),
     "models.unet.input_size: [30, 48] is not divisible by 2**depth = 8"),
    ("config/config.yaml", lambda c: c["robustness"].update(model="nope"), "robustness.model: 'nope' is not a key"),
    ("config/config.yaml", lambda c: c["predict"].update(tta=[]), "postprocess.candidates: 'tta' needs"),
    ("config/config.yaml", lambda c: c["data"]["synthetic"].update(kind="multiclass"),
     "data.synthetic.kind: 'multiclass' does not go with data.format 'kaggle_nerve'"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c.update(classes={"background": 0, "a": 1, "b": 1}),
     "classes: two classes share a mask value"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c.update(classes={"background": 0, "a": [255, 0, 0]}),
     "classes: give every class a gray value or every class an [r, g, b] colour"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c.update(ignore=["void"]), "ignore: 'void' is not a class"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c.update(ignore=["background"]),
     "ignore: 'background' is the background"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c["models"]["unet"].update(presence_head=True),
     "models.unet: the presence head gates binary masks"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c["robustness"]["missing_channel"].update(enabled=True),
     "robustness.missing_channel.enabled: the study removes each channel in turn"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c["data"].update(sheet="other.tsv"),
     "data.sheet: the synthetic multiclass dataset writes raw_dir/sheet.tsv"),
    ("tests/configs/tiny_nuclei.yaml", lambda c: c["robustness"]["missing_channel"].update(enabled=True),
     "robustness.missing_channel.enabled: task 'instances' has no missing_channel study"),
    ("tests/configs/tiny_multiclass.yaml", lambda c: c.update(task="binary"),
     "classes: task 'binary' reads masks of one foreground class"),
    # the two minimum sizes: the whole-mask area (binary) and the component size (classes, regions)
    ("tests/configs/tiny_regions.yaml", lambda c: c["tuning"].update(min_areas={"start": 0, "stop": 20, "num": 3}),
     "tuning.min_areas: the whole-mask area of a binary study (a smaller predicted mask is emptied); task 'regions' "
     "does not read it: tune each region's component size in tuning.min_sizes"),
    ("config/config.yaml", lambda c: c["tuning"].update(min_sizes={"start": 0, "stop": 20, "num": 3}),
     "tuning.min_sizes: the component size of a classes or regions study (each class's or region's smaller "
     "components are removed); task 'binary' does not read it: tune the whole-mask area in tuning.min_areas; "
     "small components of the mask are the remove_small candidate (postprocess.component_sizes)"),
    ("tests/configs/tiny_nuclei.yaml", lambda c: c["tuning"].update(min_sizes={"start": 0, "stop": 20, "num": 3}),
     "task 'instances' does not read it: the nuclei's minimum size is instances.min_sizes"),
    ("tests/configs/tiny_volumes.yaml", lambda c: c["tuning"].update(min_volumes={"start": 50, "stop": 0, "num": 3}),
     "tuning.min_volumes: start 50 is above stop 0"),
    ("tests/configs/tiny_nuclei.yaml", lambda c: c.update(task="classes"),
     "task: 'classes' does not read data.format 'dsb2018' (it reads folders, sheet, volumes)"),
    ("config/config.yaml", lambda c: c["robustness"]["missing_channel"].update(enabled=True),
     "robustness.missing_channel.enabled: the study removes each input channel in turn; the Kaggle layout has one"),
    ("tests/configs/tiny_nuclei.yaml", lambda c: c.update(ignore=["foreground"]),
     "ignore: instance segmentation (data.format dsb2018) has no ignore label"),
])
def test_config_errors_name_the_key(name, edit, expected):
    config = _config(name)
    assert config_errors(config) == []
    edit(config)
    errors = config_errors(config)
    assert any(expected in error for error in errors), errors
    with pytest.raises(ConfigError, match="invalid config"):
        check_config(config)


def test_learnt_and_ignored_classes():
    config = _generic(classes={"background": 0, "sky": 1, "void": 11, "road": 2}, ignore=["void"])
    assert learnt_classes(config) == {"background": 0, "sky": 1, "road": 2}
    assert ignored_classes(config) == {"void": 11}
    nuclei = _config("tests/configs/tiny_nuclei.yaml")
    assert list(learnt_classes(nuclei)) == (["background", "nucleus", "boundary"] if nuclei["instances"]["boundary"]
                                            else ["background", "nucleus"])


def test_synthetic_data_never_overwrites_foreign_raw_data(tmp_path):
    config = _config("config/config.yaml")
    config["data"]["raw_dir"] = str(tmp_path)
    assert config_errors(config) == []
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "1_1.tif").write_bytes(b"someone's real data")
    assert any("data.synthetic.enabled" in error for error in config_errors(config))


# --- the docs cannot go stale: every schema key has a config/README.md entry ----------------------


def _schema_leaves(node, path, definitions):
    """Every leaf key of the schema as a dotted path (named entries as ``<name>``)."""
    while "$ref" in node:
        node = {**definitions[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    if node.get("properties"):
        for key, sub in node["properties"].items():
            yield from _schema_leaves(sub, f"{path}.{key}" if path else key, definitions)
        return
    entry = node.get("additionalProperties")
    if isinstance(entry, dict) and ("$ref" in entry or entry.get("properties")):
        resolved = definitions[entry["$ref"].split("/")[-1]] if "$ref" in entry else entry
        if resolved.get("properties"):
            yield from _schema_leaves(entry, f"{path}.<name>", definitions)
            return
    yield path


def documented_keys(readme: str) -> set[str]:
    """The keys of config/README.md's table: a row's first key is whole (a model key starts with
    ``.``, short for ``models.<name>.``), the next ones are its siblings (``.x`` or ``x``)."""
    keys = set()
    for line in readme.splitlines():
        if not line.startswith("| `"):
            continue
        first = None
        for token in (t.strip() for t in re.findall(r"`([^`]+)`", line.split("|")[1])):
            if first is None:
                first = f"models.<name>{token}" if token.startswith(".") else token
                keys.add(first)
            else:
                keys.add(first.rsplit(".", 1)[0] + (token if token.startswith(".") else f".{token}"))
    return keys


def test_documented_keys_reads_the_table_shorthand():
    readme = ("| `data.folders.images`, `.masks`, `test` | x |\n| `  .augment.hflip`, `.vflip` | y |\n"
              "| `ensembles.<name>` | z |\nnot a row `data.nothing`\n")
    assert documented_keys(readme) == {"data.folders.images", "data.folders.masks", "data.folders.test",
                                       "models.<name>.augment.hflip", "models.<name>.augment.vflip",
                                       "ensembles.<name>"}


def test_every_schema_key_has_a_config_readme_entry():
    documented = documented_keys((REPO / "config" / "README.md").read_text())
    leaves = sorted(set(_schema_leaves(schema(), "", schema().get("definitions", {}))))
    assert len(leaves) > 100 and "models.<name>.collapse_share" in leaves
    missing = [key for key in leaves
               if key not in documented and not any(d.startswith(f"{key}.") for d in documented)]
    assert missing == [], f"config/README.md has no entry for: {missing}"


def test_the_schemas_read_by_libyaml_equal_pyyamls_own_reading():
    import yaml

    from plexus.data.sheet import SCHEMA_PATH as SHEET_SCHEMA
    from plexus.schema import SCHEMA_PATH, safe_load

    assert getattr(yaml, "__with_libyaml__", False)  # the pinned PyYAML wheel has it: the fast path is used
    for path in (SCHEMA_PATH, SHEET_SCHEMA):
        text = path.read_text()
        assert safe_load(text) == yaml.safe_load(text), path
