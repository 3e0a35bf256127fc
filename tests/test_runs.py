"""plexus.runs: the names and files the workflow's rules are given, from the config alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from plexus import runs
from plexus.config import validate_config
from plexus.tasks import load_task, task_of

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ["config/config.yaml", "config/examples/multiclass.yaml", "config/examples/multichannel.yaml",
            "config/examples/nuclei.yaml", "config/examples/regions.yaml", "config/examples/volumes.yaml"]


def _config(path: str) -> dict:
    return validate_config(yaml.safe_load((REPO / path).read_text()))


def test_parse_run_and_number_names():
    models = {"unet": {}, "attn2head": {}}
    assert runs.parse_run("unet", models) == ("unet", None, None)
    assert runs.parse_run("attn2head--noisy", models) == ("attn2head", "noisy", None)
    assert runs.parse_run("unet--n0.5-s12", models) == ("unet", None, {"size": 0.5, "seed": 12})
    with pytest.raises(ValueError, match="run 'resnet--noisy': unknown model 'resnet'"):
        runs.parse_run("resnet--noisy", models)
    assert [runs.number_name(v) for v in (0.5, 40.0, 120, 1e-3)] == ["0.5", "40", "120", "0.001"]


def test_study_files_by_hand():
    config = _config("config/config.yaml")
    config["robustness"].update(model="unet", noise={**config["robustness"]["noise"], "sigmas": [0, 12.5]},
                                train_size={**config["robustness"]["train_size"], "sizes": [0.5], "seeds": [1, 2]})
    assert runs.noise_entries(config) == [["clean_0", "clean", 0.0], ["clean_12.5", "clean", 12.5],
                                          ["noisy_0", "noisy", 0.0], ["noisy_12.5", "noisy", 12.5]]
    assert runs.noise_prediction_files(config)["noisy_12.5"] == "results/robustness/noise/noisy/sigma12.5.npz"
    assert runs.noisy_condition_models(config, [0, 1])["noisy"] == [
        "results/models/unet--noisy/fold0/model.pt", "results/models/unet--noisy/fold1/model.pt"]
    oof = runs.train_size_oof_files(config, [0, 1])
    assert set(oof) == {"n0.5_s1", "n0.5_s2", "full"}
    assert oof["n0.5_s2"] == ["results/oof/unet--n0.5-s2/fold0.npz", "results/oof/unet--n0.5-s2/fold1.npz"]
    assert runs.train_size_infos(config, [0])["info_full"] == ["results/models/unet/fold0/train_info.json"]


@pytest.mark.parametrize("path", EXAMPLES)
def test_targets_of_every_example_are_unique_and_paired(path):
    config = _config(path)
    task = load_task(task_of(config))
    targets = runs.final_targets(config, task)
    assert len(targets) == len(set(targets))
    figures = [t for t in targets if t.startswith("results/figures/")]
    assert {t[:-4] for t in figures if t.endswith(".png")} == {t[:-4] for t in figures if t.endswith(".pdf")}
    for name in runs.tuning_names(config):
        assert f"results/postprocess/{name}.json" in targets
        assert any(t.startswith(f"results/figures/tuning/{name}_") or t.startswith(f"results/figures/areas/{name}")
                   for t in targets)
    for study in runs.studies(config):
        assert f"results/robustness/{study}/scores.csv" in targets
    assert all("{" not in t for t in targets)


def test_data_format_files():
    nerve = _config("config/config.yaml")
    raw = runs.raw_dir(nerve)
    assert runs.dataset_inputs(nerve) == [f"{raw}/train", f"{raw}/test"]
    assert runs.synthetic_outputs(nerve) == ({"train": f"{raw}/train", "test": f"{raw}/test"}, {"train", "test"})
    assert set(runs.manifest_outputs(nerve)) == {"train", "test", "summary", "sheet", "masks"}
    nuclei = _config("config/examples/nuclei.yaml")
    assert runs.dataset_inputs(nuclei) == [runs.CONVERTED["sheet"]]
    sheet = _config("config/examples/regions.yaml")
    assert runs.dataset_inputs(sheet) == [runs.sheet_path(sheet)] == [f"{runs.raw_dir(sheet)}/sheet.tsv"]
    assert runs.synthetic_outputs(sheet) == ({"sheet": runs.sheet_path(sheet)}, set())
    sheet["data"]["sheet"] = "/abs/elsewhere.csv"
    assert runs.sheet_path(sheet) == "/abs/elsewhere.csv"
