"""Reruns you can trust (issue 9): code, raw data and config changes rerun exactly what they touch.

Each test plans (``snakemake -n``) or runs the real workflow on a copy of the repository
(tests/configs/tiny.yaml); destructive edits work on a copy of the shared complete run.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import subprocess
import sys
import sysconfig
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from rule_scripts import rule_blocks, rule_scripts
from test_codehash import package_modules, reference_closure

from plexus.codehash import code_version, task_code_version
from plexus.config import validate_config
from plexus.tasks import task_module, task_of
from workflow_helpers import (
    copy_workdir,
    downstream,
    make_workdir,
    planned_jobs,
    read_config,
    rule_counts,
    rule_graph,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    return copy_workdir(tiny_run, tmp_path / "plexus")


# -- code -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graph(tiny_run):
    """The rule graph, and every job of the complete DAG as (rule, wildcards)."""
    return rule_graph(tiny_run), planned_jobs(tiny_run, "--forceall")


def importers_of(module: str, all_jobs: Counter) -> set[str]:
    """The rules of this (nerve) workflow that can run ``module``, per modulefinder; a task stage's
    rule also runs what that stage of the binary task can run (plexus.codehash.task_closure;
    tests/test_tasks.py checks it by hand)."""
    return {rule for rule, script in rule_scripts().items()
            if rule in all_jobs and module in rule_closure(rule, script)}


# -- the code versions, computed as workflow/rules/common.smk computes them (script_code,
# task_code); test_every_job_records_the_code_version_computed_here ties them to what
# Snakemake recorded, so a module's edit can be checked in-process for every module and by a
# real ``snakemake -n`` for a sample (test_module_edit_reruns_exactly_the_rules_that_import_it)

CODE_CALL = re.compile(r'code=(?:script_code\("(?P<script>\w+)"\)'
                       r'|task_code\("(?P<stage>\w+)"(?:, script="(?P<task_script>\w+)")?\)'
                       r'|lambda wildcards: task_code\(f"(?P<prefix>\w*)\{wildcards\.(?P<wildcard>\w+)\}"\))')
CODE_VERSION = re.compile(r"^'[0-9a-f]{16}'$")


@cache
def code_calls() -> dict[str, tuple[str, str | None, str | None]]:
    """Rule -> (script, stage, wildcard) of its ``code=`` param, as workflow/rules/common.smk computes
    it: code_version(script), or task_code_version(script, the task's module, stage) where the stage
    may be ``stage`` formatted with the job's wildcard (every rule with a code param)."""
    calls = {}
    for rule, block in rule_blocks().items():
        if "code=" not in block:
            continue
        call = CODE_CALL.search(block)
        assert call, f"rule {rule}: a code= param this test does not read"
        if call["script"]:
            calls[rule] = (call["script"], None, None)
        elif call["stage"]:
            calls[rule] = (call["task_script"] or "task_stage", call["stage"], None)
        else:
            calls[rule] = ("task_stage", call["prefix"] + "{}", call["wildcard"])
    return calls


def job_code_versions(workdir: Path, jobs) -> dict[tuple[str, tuple], str]:
    """(rule, sorted wildcards) -> the code param of each job of ``jobs`` whose rule has one."""
    config = validate_config(read_config(workdir))
    task = task_module(task_of(config))
    src, scripts = workdir / "src", workdir / "workflow" / "scripts"
    calls, versions, computed = code_calls(), {}, {}
    for rule, wildcards in jobs:
        if rule not in calls:
            continue
        script, stage, wildcard = calls[rule]
        if wildcard:
            stage = stage.format(wildcards[wildcard])
        if (script, stage) not in computed:
            computed[script, stage] = (code_version(scripts / f"{script}.py", src) if stage is None else
                                       task_code_version(scripts / f"{script}.py", src, task, stage))
        versions[rule, tuple(sorted(wildcards.items()))] = computed[script, stage]
    return versions


def recorded_code_versions(workdir: Path) -> list[tuple[str, str, str]]:
    """(rule, output path, code param) of every output in Snakemake's metadata of ``workdir``."""
    records = []
    metadata = workdir / ".snakemake" / "metadata"
    for file in metadata.rglob("*"):
        if not file.is_file():
            continue
        record = json.loads(file.read_text())
        path = base64.urlsafe_b64decode("".join(p.lstrip("@") for p in file.relative_to(metadata).parts)).decode()
        codes = [p for p in record["params"] or [] if isinstance(p, str) and CODE_VERSION.match(p)]
        if record["rule"] in code_calls():
            assert len(codes) == 1, (path, record["params"])
            records.append((record["rule"], path, codes[0].strip("'")))
    return records


def test_every_job_records_the_code_version_computed_here(tiny_run, code_versions):
    """The param Snakemake compares is the version this file computes: for every job of the
    complete run, its outputs' metadata hold exactly the code version of its rule (and wildcards)."""
    expected = code_versions
    recorded = recorded_code_versions(tiny_run)
    assert {rule for rule, _ in expected} == {rule for rule, _, _ in recorded} and len(expected) >= 20
    for rule, path, code in recorded:
        # a code param that depends on a wildcard: its value names the output ({study}.png)
        key = code_calls()[rule][2]
        parts = set(Path(path).parts) | {Path(path).stem}
        matches = {version for (r, wildcards), version in expected.items()
                   if r == rule and (key is None or dict(wildcards)[key] in parts)}
        assert matches == {code}, (rule, path)
    for (rule, wildcards), version in expected.items():  # no job without its record
        assert (rule, version) in {(r, c) for r, _, c in recorded}, (rule, wildcards)


def _edited(workdir: Path, module: str):
    relative = Path(*module.split("."))
    path = workdir / "src" / relative / "__init__.py"
    if not path.exists():
        path = (workdir / "src" / relative).with_suffix(".py")
    return path


_PARSED: dict = {}


@pytest.fixture
def parse_once(monkeypatch):
    """``ast.parse`` remembered by source text (it is pure): an edited module is parsed again."""
    parse = ast.parse

    def remembered(source, filename="<unknown>", *args, **kwargs):
        key = (source, filename, args, tuple(sorted(kwargs.items())))
        if key not in _PARSED:
            _PARSED[key] = parse(source, filename, *args, **kwargs)
        return _PARSED[key]

    monkeypatch.setattr(ast, "parse", remembered)


@pytest.fixture(scope="module")
def code_versions(tiny_run, tiny_graph):
    """The code param of every job of the complete run, before any edit."""
    return job_code_versions(tiny_run, tiny_graph[1])


@pytest.mark.parametrize("module", package_modules())
def test_module_edit_changes_the_code_version_of_exactly_the_rules_that_import_it(tiny_run, tiny_graph, code_versions,
                                                                                   parse_once, module):
    """The rerun table, one package module at a time: an edit changes the code param of every job
    of the rules whose scripts import the module (per modulefinder), and of no other job; Snakemake
    reruns exactly those jobs and what consumes their outputs (the sample below runs it)."""
    _, jobs = tiny_graph
    all_jobs = rule_counts(jobs)
    before = code_versions
    path = _edited(tiny_run, module)
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        after = job_code_versions(tiny_run, jobs)
    finally:
        path.write_bytes(original)
    changed = Counter(job[0] for job, version in after.items() if version != before[job])
    importers = importers_of(module, all_jobs)
    assert set(changed) == importers
    for rule in importers:
        assert changed[rule] == all_jobs[rule], rule  # every job of an importing rule, not some


# a sample of modules whose edit a real ``snakemake -n`` plans: the tasks' base and the binary
# task, a data stage, the network registry, the first module that a single rule of the workflow
# runs and the first that none runs
RERUN_SAMPLE = ["plexus.tasks.base", "plexus.tasks.binary", "plexus.stages.data", "plexus.models",
                "one rule", "no rule"]


@pytest.mark.parametrize("module", RERUN_SAMPLE)
def test_module_edit_reruns_exactly_the_rules_that_import_it(tiny_run, tiny_graph, module):
    """Snakemake itself: after an edit of the module, ``snakemake -n`` plans every job of the rules
    whose scripts import it, with what consumes their outputs; nothing else."""
    graph, jobs = tiny_graph
    all_jobs = rule_counts(jobs)
    if module in ("one rule", "no rule"):
        module = next(m for m in package_modules() if len(importers_of(m, all_jobs)) == (module == "one rule"))
    path = _edited(tiny_run, module)
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        planned = rule_counts(planned_jobs(tiny_run))
    finally:
        path.write_bytes(original)
    importers = importers_of(module, all_jobs)
    if not importers:  # e.g. plexus.codehash, plexus.provenance: run by the Snakefile itself, or unused
        assert not planned
        return
    assert set(planned) == downstream(graph, importers) | {"all"}
    for rule in importers:
        assert planned[rule] == all_jobs[rule], rule  # every job of an importing rule, not some


@cache
def rule_closure(rule: str, script: str) -> frozenset[str]:
    """The modules a rule of the nerve workflow can run: its script's (modulefinder), and for a task
    stage the binary task's module and that stage's closure (figure_robustness: each study's)."""
    closure = set(reference_closure(script))
    if script == "task_stage":
        from plexus.codehash import task_closure

        stages = ["figure_noise", "figure_train_size"] if rule == "figure_robustness" else [rule]
        closure |= {"plexus.tasks.binary"}
        for stage in stages:
            closure |= set(task_closure(Path(__file__).resolve().parents[1] / "src", "plexus.tasks.binary", stage))
    return frozenset(closure)


def _without_plexus_python(tmp_path: Path) -> Path:
    """A venv that sees this environment's packages but not its (editable) plexus install.

    A ``.pth`` line adds the site-packages folder to ``sys.path``; the ``.pth`` files inside
    it (the editable plexus hook among them) are not processed for a folder added that way.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import numpy, snakemake; import plexus"],
                           capture_output=True, text=True)
    assert "No module named 'plexus'" in probe.stderr  # the deps are there, plexus is not
    return python


def test_workflow_runs_its_own_checkout_without_an_installed_plexus(tmp_path):
    """Finding 1: scripts import the plexus of the checkout that holds the Snakefile.

    The copy's folds stage is edited to print a marker; the workflow runs under a Python
    that has every dependency but no plexus installed (as the conda env of envs/plexus.yaml).
    """
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    stage = workdir / "src/plexus/stages/data.py"
    text = stage.read_text()
    marker = "folds stage of the copied checkout"
    stage.write_text(text.replace("    train = read_manifest(train_csv)\n    folds",
                                  f"    print({marker!r})\n    train = read_manifest(train_csv)\n    folds", 1))
    assert marker in stage.read_text()
    python = _without_plexus_python(tmp_path)
    result = subprocess.run([str(python), "-m", "snakemake", "--cores", "2", "results/splits/folds.csv"],
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert marker in (workdir / "results/logs/folds.log").read_text()


# -- raw data -------------------------------------------------------------------------------


def _rewrite_mask_in_place(raw: Path) -> None:
    mask = sorted((raw / "train").glob("*_mask.tif"))[0]
    folder_times = os.stat(mask.parent)
    array = tifffile.imread(mask)
    array[:10, :10] = 255 - array[:10, :10]
    tifffile.imwrite(mask, array, compression="lzw")
    os.utime(mask.parent, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))


def _add_test_image(raw: Path) -> None:
    tifffile.imwrite(raw / "test" / "9999.tif", np.zeros((420, 580), np.uint8), compression="lzw")


def _remove_test_image(raw: Path) -> None:
    sorted((raw / "test").glob("*.tif"))[0].unlink()


@pytest.mark.parametrize("edit,manifest", [(_rewrite_mask_in_place, "manifest"), (_add_test_image, "manifest_test"),
                                           (_remove_test_image, "manifest_test")])
def test_raw_file_edit_reruns_ingest(tiny_copy, edit, manifest):
    """Finding 3: an in-place rewrite (folder mtime unchanged), an added or a removed file; each
    reruns the manifest job of its own image set (tests/test_test_set_reruns.py: exactly what)."""
    raw = tiny_copy / read_config(tiny_copy)["data"]["raw_dir"]
    assert planned_jobs(tiny_copy) == []
    edit(raw)
    jobs = planned_jobs(tiny_copy)
    assert (manifest, {}) in jobs
    assert "synthesize" not in rule_counts(jobs)  # the edit is not undone by regenerating


def test_readme_forced_ingest_and_resource_override(tiny_run):
    """The README's `snakemake -R ingest` (after an unnoticed rewrite) and `--set-resources`."""
    jobs = planned_jobs(tiny_run, "-R", "manifest")
    assert ("manifest", {}) in jobs and "train" in rule_counts(jobs) and "synthesize" not in rule_counts(jobs)
    out = snakemake(tiny_run, "-n", "-R", "train", "--set-resources", "train:runtime=600").stdout
    train_blocks = [block for block in out.split("rule ")[1:] if block.startswith("train:")]
    assert train_blocks and all("runtime=600" in block for block in train_blocks)


def test_unchanged_raw_data_is_not_ingested_again(tiny_copy):
    raw = tiny_copy / read_config(tiny_copy)["data"]["raw_dir"]
    for path in raw.rglob("*.tif"):
        os.utime(path.parent)  # folder mtimes move, file contents and mtimes do not
    assert planned_jobs(tiny_copy) == []


# -- configs --------------------------------------------------------------------------------


def _fake_kaggle_folder(raw: Path, subjects: int = 6, per_subject: int = 2, tests: int = 3) -> None:
    """Valid Kaggle-layout TIFFs, few and fast: 420x580 uint8, masks 0/255."""
    rng = np.random.default_rng(0)
    (raw / "train").mkdir(parents=True)
    (raw / "test").mkdir()
    for s in range(1, subjects + 1):
        for i in range(1, per_subject + 1):
            tifffile.imwrite(raw / "train" / f"{s}_{i}.tif", rng.integers(0, 256, (420, 580), np.uint8))
            mask = np.zeros((420, 580), np.uint8)
            if i % 2:
                mask[150:220, 200:300] = 255
            tifffile.imwrite(raw / "train" / f"{s}_{i}_mask.tif", mask)
    for n in range(1, tests + 1):
        tifffile.imwrite(raw / "test" / f"{n}.tif", rng.integers(0, 256, (420, 580), np.uint8))


def _expected_trained_runs(config: dict) -> Counter:
    """Independent count of training jobs per run name, straight from a config file."""
    folds = config["cv"]["n_folds"]
    runs = Counter({model: folds for model in config["models"]})
    robust = config["robustness"]
    if robust["noise"]["enabled"]:
        runs[f"{robust['model']}--noisy"] = folds
    if robust["train_size"]["enabled"]:
        for size in robust["train_size"]["sizes"]:
            for seed in robust["train_size"]["seeds"]:
                runs[f"{robust['model']}--n{size:g}-s{seed}"] = folds
    return runs


def test_kaggle_configfile_plans_exactly_its_own_models(tmp_path):
    """Finding 4: ``--configfile config/kaggle.yaml`` is not merged into the default config."""
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    kaggle = yaml.safe_load((workdir / "config/kaggle.yaml").read_text())
    _fake_kaggle_folder(workdir / kaggle["data"]["raw_dir"])
    jobs = planned_jobs(workdir, "--configfile", "config/kaggle.yaml")
    trained = Counter(w["run"] for rule, w in jobs if rule == "train")
    assert trained == _expected_trained_runs(kaggle)
    assert {w["ensemble"] for rule, w in jobs if rule == "submission"} == set(kaggle["ensembles"])
    assert {w["name"] for rule, w in jobs if rule == "tune"} == set(kaggle["models"]) | set(kaggle["ensembles"])
    assert {w["size"] for rule, w in jobs if rule == "preprocess"} == {
        f"{h}x{w}" for h, w in (m["input_size"] for m in kaggle["models"].values())}
    assert "synthesize" not in rule_counts(jobs)


def test_a_users_own_config_file_plans_exactly_its_content(tmp_path):
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    mine = read_config(workdir)
    mine["models"] = {"small": {**mine["models"]["unet"], "epochs": 1}}
    mine["ensembles"] = {"solo": ["small"]}
    mine["robustness"] = {"model": "small", "noise": {"enabled": False}, "train_size": {"enabled": False}}
    (workdir / "config/my_study.yaml").write_text(yaml.safe_dump(mine))
    jobs = planned_jobs(workdir, "--configfile", "config/my_study.yaml")  # the README's example
    assert Counter(w["run"] for rule, w in jobs if rule == "train") == Counter(small=mine["cv"]["n_folds"])
    assert {w["ensemble"] for rule, w in jobs if rule == "submission"} == {"solo"}


def test_kaggle_configfile_runs_the_real_data_path(tmp_path):
    """The README's real-data command on a tiny fake folder, through ingest, folds and preprocessing."""
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    kaggle = yaml.safe_load((workdir / "config/kaggle.yaml").read_text())
    raw = workdir / kaggle["data"]["raw_dir"]
    _fake_kaggle_folder(raw)
    before = {p: p.read_bytes() for p in raw.rglob("*.tif")}
    snakemake(workdir, "--configfile", "config/kaggle.yaml", "--cores", "2",
              "results/splits/folds.csv", "results/preprocessed/128x160/train.npz")
    folds = pd.read_csv(workdir / "results/splits/folds.csv")
    assert sorted(folds["fold"].unique()) == list(range(kaggle["cv"]["n_folds"]))
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()
    assert len(folds) == 12
    assert {p: p.read_bytes() for p in raw.rglob("*.tif")} == before  # raw data untouched
    assert not (raw / "train" / ".snakemake_timestamp").exists()


# -- training that diverges -----------------------------------------------------------------


def test_diverged_training_leaves_no_model(tmp_path):
    """Finding 5: lr 1e6 gives non-finite losses; the job fails naming model, fold and epoch."""
    workdir = make_workdir(tmp_path / "plexus", "tiny.yaml")
    config = read_config(workdir)
    config["models"]["unet"].update(lr=1e6)
    write_config(workdir, config)
    result = snakemake(workdir, "--cores", "2", "results/models/unet/fold0/model.pt", check=False)
    assert result.returncode != 0
    log = (workdir / "results/logs/train/unet/fold0.log").read_text()
    assert "diverged" in log and "unet" in log and "fold 0" in log and "epoch" in log
    assert not (workdir / "results/models/unet/fold0/model.pt").exists()
    assert not (workdir / "results/models/unet/fold0/history.csv").exists()


def test_fingerprint_records_every_raw_file(tiny_run):
    raw = tiny_run / read_config(tiny_run)["data"]["raw_dir"]
    for part in ("train", "test"):  # one record per image set
        record = json.loads((tiny_run / f"results/manifest/raw_fingerprint/{part}.json").read_text())
        assert record["files"] == len([p for p in raw.glob(f"{part}/*") if not p.name.startswith(".")])
