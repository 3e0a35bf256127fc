"""The task registry (plexus.tasks): every registered task is held to the same contract, as the
model zoo's networks are; the rules' code versions follow exactly what a task's stage runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from plexus.codehash import task_closure, task_code_version
from plexus.config import ConfigError, validate_config
from plexus.config_checks import config_errors
from plexus.tasks import DEFAULT_TASKS, TASK_MODULES, load_task, task_names, task_of
from plexus.tasks.base import STAGES, Task

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
SCRIPT = REPO / "workflow" / "scripts" / "task_stage.py"
#: a config each task runs on (the embedded examples)
CONFIGS = {"binary": "config/config.yaml", "classes": "config/examples/multiclass.yaml",
           "instances": "config/examples/nuclei.yaml", "regions": "config/examples/regions.yaml"}
TORCH_MODULES = {"plexus.models", "plexus.training.loop", "plexus.inference.predict"}


def _config(task: str) -> dict:
    return validate_config(yaml.safe_load((REPO / CONFIGS[task]).read_text()))


def test_every_task_has_an_example_config_and_the_formats_name_defaults():
    assert set(CONFIGS) == set(task_names())
    assert set(DEFAULT_TASKS.values()) <= set(task_names())


@pytest.mark.parametrize("name", task_names())
def test_every_registered_task_keeps_the_contract(name):
    task = load_task(name)
    assert isinstance(task, Task) and task.name == name
    assert TASK_MODULES[name] == f"plexus.tasks.{name}"
    config = _config(name)
    assert task_of(config) == name and config_errors(config) == []
    assert config["data"]["format"] in task.formats
    for stage in STAGES:  # each stage is implemented or refused by name, and its settings are plain data
        assert callable(getattr(task, stage))
        settings = task.settings(stage, config)
        assert isinstance(settings, dict)
        yaml.safe_dump(settings)
    for stage in ("figure_tuning", "figure_qualitative"):
        files = task.figure_files(stage)
        assert files, stage
        pngs = {key for key in files if not key.endswith("_pdf")}
        assert {f"{key}_pdf" for key in pngs} == set(files) - pngs
        for key in pngs:
            assert files[key][0].endswith(".png") and files[f"{key}_pdf"][0] == files[key][0][:-4] + ".pdf"
            assert (REPO / "workflow" / "report" / files[key][1].caption).is_file()
    for study in ("noise", "train_size", "missing_channel"):
        if study not in task.studies:
            with pytest.raises(NotImplementedError, match=f"task {name!r} has no"):
                task.run(f"figure_{study}", None)


@pytest.mark.parametrize("name", task_names())
def test_a_study_the_task_does_not_score_is_a_config_error(name):
    config = _config(name)
    for study in {"noise", "train_size", "missing_channel"} - set(load_task(name).studies):
        config["robustness"][study]["enabled"] = True
        assert any(f"robustness.{study}.enabled: task {name!r} has no {study} study" in e
                   for e in config_errors(config))


def test_task_defaults_to_the_formats_and_an_unknown_task_is_named():
    config = _config("binary")
    assert config["task"] is None and task_of(config) == "binary"
    with pytest.raises(ConfigError, match="config key task"):
        validate_config({**yaml.safe_load((REPO / CONFIGS["binary"]).read_text()), "task": "volumes"})
    with pytest.raises(KeyError, match="unknown task 'volumes'"):
        load_task("volumes")
    with pytest.raises(ValueError, match="unknown stage"):
        load_task("binary").run("train", None)


@pytest.mark.parametrize("name", task_names())
def test_light_stages_of_every_task_import_no_torch(name):
    """Figure, table and comparison jobs stay light: no network, training or inference code."""
    for stage in ("figure_tuning", "summary_table", "comparison", "postprocess"):
        assert not TORCH_MODULES & set(task_closure(SRC, TASK_MODULES[name], stage)), stage


def test_a_stage_closure_holds_what_the_stage_runs_and_no_more():
    binary = TASK_MODULES["binary"]
    tune, figure = set(task_closure(SRC, binary, "tune")), set(task_closure(SRC, binary, "figure_tuning"))
    assert {"plexus.postprocess.tuning", "plexus.data.truth"} <= tune
    assert "plexus.report.figures" not in tune and "plexus.postprocess.tuning" not in figure
    assert "plexus.report.figures" in figure
    # an inherited stage (figure_noise -> the task's figure_study) follows the task's method
    assert "plexus.report.figures" in task_closure(SRC, binary, "figure_noise")
    assert "plexus.report.class_figures" in task_closure(SRC, TASK_MODULES["classes"], "figure_missing_channel")


def test_editing_a_module_changes_exactly_the_stage_versions_that_can_run_it(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pairs = [(TASK_MODULES[name], stage) for name in task_names() for stage in STAGES]
    before = {pair: task_code_version(SCRIPT, src, *pair) for pair in pairs}
    for module, path in (("plexus.report.class_figures", "plexus/report/class_figures.py"),
                         ("plexus.postprocess.tuning", "plexus/postprocess/tuning.py"),
                         ("plexus.tasks.instances", "plexus/tasks/instances.py")):
        file = src / path
        original = file.read_bytes()
        file.write_bytes(original + b"\n# an edit\n")
        try:
            changed = {pair for pair in pairs if task_code_version(SCRIPT, src, *pair) != before[pair]}
        finally:
            file.write_bytes(original)
        expected = {pair for pair in pairs if module in task_closure(src, *pair) or module == pair[0]}
        assert changed == expected and changed, module


class _ScoredTask(Task):
    """A task whose tuning is given (per-image tables), to test the shared post-processing rule."""

    def __init__(self, plain, tta):
        super().__init__(name="scored", formats=("sheet",), tta=True, score="score")
        self.plain, self.tta_frame = plain, tta

    def image_level(self, per_image_csv):
        return self.plain

    def retune(self, job, key, folder):
        assert key == "prob_tta"
        return self.tta_frame, {"setting": "tuned on tta"}


def _decision(tmp_path, plain, tta, candidates=("tta",), **settings):
    import json
    from types import SimpleNamespace

    (tmp_path / "best.json").write_text(json.dumps({"setting": "tuned on plain"}))
    job = SimpleNamespace(
        input=SimpleNamespace(per_image="unused", best=tmp_path / "best.json"),
        output=SimpleNamespace(json=tmp_path / "d.json", decisions=tmp_path / "d.csv", per_image=tmp_path / "p.csv"),
        params=SimpleNamespace(members=["m"], settings={"candidates": list(candidates), "n_boot": 300, "seed": 0,
                                                        **settings}))
    _ScoredTask(plain, tta).postprocess(job)
    return json.loads((tmp_path / "d.json").read_text()), __import__("pandas").read_csv(tmp_path / "p.csv")


def _frames(gain_by_fold):
    import pandas as pd

    rows = []
    for fold, gain in enumerate(gain_by_fold):
        for subject in range(3):
            for image in range(2):
                base = 0.3 + 0.1 * subject + 0.05 * image
                rows.append({"image_id": f"{fold}_{subject}_{image}", "subject": f"s{fold}{subject}", "fold": fold,
                             "untuned": base - 0.1, "tuned": base, "cross_fitted": base - 0.02, "gain": gain})
    plain = pd.DataFrame(rows)
    tta = plain.assign(tuned=plain["tuned"] + plain["gain"], cross_fitted=plain["cross_fitted"] + plain["gain"])
    return plain.drop(columns="gain"), tta.drop(columns="gain")


def test_tta_is_kept_on_a_consistent_gain_and_cross_fitted_fold_by_fold(tmp_path):
    plain, tta = _frames([0.05, 0.05, 0.05])
    decision, per_image = _decision(tmp_path, plain, tta)
    assert decision["pipeline"] == {"setting": "tuned on tta", "tta": True}
    assert decision["decisions"][0]["kept"] and decision["decisions"][0]["difference"] == pytest.approx(0.05)
    assert decision["score"] == pytest.approx(plain["tuned"].mean() + 0.05)
    assert decision["tuned_score"] == pytest.approx(plain["tuned"].mean())
    # every fold's own choice (made on the other two folds) keeps TTA: its cross-fitted TTA scores
    np.testing.assert_allclose(per_image["cross_fitted"], tta["cross_fitted"])


def test_tta_refused_without_evidence_and_each_fold_decides_on_the_others(tmp_path):
    # folds 0 and 1 gain, fold 2 loses: on all images the CI straddles 0, so TTA is refused;
    # fold 2, decided on folds 0 and 1, keeps it; folds 0 and 1, decided with fold 2, do not
    plain, tta = _frames([0.04, 0.04, -0.2])
    decision, per_image = _decision(tmp_path, plain, tta)
    assert decision["pipeline"] == {"setting": "tuned on plain", "tta": False}
    assert not decision["decisions"][0]["kept"]
    expected = np.where(plain["fold"] == 2, tta["cross_fitted"], plain["cross_fitted"])
    np.testing.assert_allclose(per_image["cross_fitted"], expected)
    np.testing.assert_allclose(per_image["postprocessed"], plain["tuned"])
    # without the candidate, the decision is the tuning alone
    decision, _ = _decision(tmp_path, plain, tta, candidates=())
    assert decision["decisions"] == [] and decision["pipeline"]["tta"] is False


def test_tta_below_min_gain_is_refused_with_a_note_and_in_every_fold(tmp_path):
    import pandas as pd

    plain, tta = _frames([0.0004, 0.0004, 0.0004])  # a consistent gain: its CI lies above 0
    decision, _ = _decision(tmp_path, plain, tta, min_gain=0)
    assert decision["decisions"][0]["kept"] and "note" not in decision["decisions"][0]
    decision, per_image = _decision(tmp_path, plain, tta, min_gain=0.001)
    [row] = decision["decisions"]
    assert not row["kept"] and row["ci_low"] > 0 and "below postprocess.min_gain 0.001" in row["note"]
    assert decision["pipeline"]["tta"] is False and "at least 0.001" in decision["rule"]
    np.testing.assert_allclose(per_image["cross_fitted"], plain["cross_fitted"])  # no fold keeps it either
    assert list(pd.read_csv(tmp_path / "d.csv").columns)[-1] == "note"


def test_a_record_missing_a_common_key_or_repeating_one_is_refused():
    from plexus.tasks.base import TUNING_KEYS, decision_record, tuned_setting, tuning_record

    common = {"task": "binary", "members": ["unet"], "score_name": "Kaggle Dice", "untuned_score": 0.5,
              "score": 0.6, "cross_fitted_score": 0.55, "n_images": 4}
    record = tuning_record(common, {"cutoff": 0.4, "min_area": 10})
    assert list(record)[:len(TUNING_KEYS)] == list(TUNING_KEYS)
    assert tuned_setting(record) == {"cutoff": 0.4, "min_area": 10}
    with pytest.raises(ValueError, match="missing: n_images"):
        tuning_record({k: v for k, v in common.items() if k != "n_images"}, {})
    with pytest.raises(ValueError, match="repeat score"):
        tuning_record(common, {"score": 1.0})
    with pytest.raises(ValueError, match="unknown: mean_dice"):
        tuning_record({**common, "mean_dice": 0.6}, {})
    with pytest.raises(ValueError, match="missing: .*pipeline"):
        decision_record(common)
