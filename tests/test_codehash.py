"""Rule code versions are derived from the import closure of each rule's script.

The reference is :mod:`modulefinder` (the standard library's bytecode-level import
scanner), an implementation independent of :mod:`plexus.codehash`'s ``ast`` walk.
"""

from __future__ import annotations

import json
import modulefinder
import shutil
from functools import cache
from pathlib import Path

import pytest
from rule_scripts import REPO, rule_code_params, rule_scripts

from plexus.codehash import code_version, module_path, script_closure

SRC = REPO / "src"
SCRIPTS = REPO / "workflow" / "scripts"


def package_modules(src: Path = SRC) -> list[str]:
    names = []
    for path in sorted((src / "plexus").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@cache
def reference_closure(script: str) -> frozenset[str]:
    finder = modulefinder.ModuleFinder(path=[str(SRC)])
    finder.run_script(str(SCRIPTS / f"{script}.py"))
    return frozenset(name for name in finder.modules if name.split(".")[0] == "plexus")


def test_every_rule_hashes_the_script_it_runs():
    scripts = rule_scripts()
    assert len(scripts) >= 20
    assert rule_code_params() == scripts


@pytest.mark.parametrize("script", sorted(set(rule_scripts().values())))
def test_closure_matches_modulefinder(script):
    assert set(script_closure(SCRIPTS / f"{script}.py", SRC)) == reference_closure(script)


def test_noise_prediction_is_in_the_closure_of_predict_noisy():
    """Finding 2 of issue 9: the noise prediction's modules were missing from its rule's hash."""
    closure = script_closure(SCRIPTS / "predict_noisy.py", SRC)
    assert {"plexus.stages.predict", "plexus.inference.predict", "plexus.data.noise"} <= set(closure)


def test_editing_each_module_changes_exactly_the_scripts_that_import_it(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    scripts = sorted(set(rule_scripts().values()))
    before = {s: code_version(SCRIPTS / f"{s}.py", src) for s in scripts}
    modules = package_modules(src)
    assert len(modules) > 30
    for module in modules:
        path = module_path(src, module)
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        try:
            changed = {s for s in scripts if code_version(SCRIPTS / f"{s}.py", src) != before[s]}
        finally:
            path.write_bytes(original)
        assert changed == {s for s in scripts if module in reference_closure(s)}, module


def test_figures_and_tables_do_not_import_torch():
    """Light CPU rules stay light: no torch in the closure of the figure, table and scoring scripts."""
    for script in ("figure_learning_curves", "task_stage", "folds", "manifest"):  # tasks: tests/test_tasks.py
        closure = reference_closure(script)
        assert not {"plexus.models", "plexus.training.loop", "plexus.inference.predict"} & closure, script


def _copied_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return src


def test_kept_versions_are_served_only_for_the_exact_code_they_were_computed_from(tmp_path, monkeypatch):
    from plexus import codehash

    monkeypatch.setenv(codehash.CACHE_ENV, str(tmp_path / "cache"))
    src = _copied_src(tmp_path)
    script = SCRIPTS / "train.py"
    computed = codehash._code_version(script, src)  # the version, never kept
    assert code_version(script, src) == computed
    (kept_file,) = (tmp_path / "cache" / "code_versions").glob("*.json")
    assert kept_file.stem == codehash.package_digest(src)

    # a later start reads the kept value: shown by planting a wrong one
    kept = json.loads(kept_file.read_text())
    (key,) = [k for k in kept if k.endswith("::")]
    kept_file.write_text(json.dumps({key: "planted"}))
    codehash._kept.cache_clear()
    assert code_version(script, src) == "planted"

    # any edit of the package is another state: the planted value is not served for it
    path = module_path(src, "plexus.training.loop")
    path.write_bytes(path.read_bytes() + b"\n# an edit\n")
    assert code_version(script, src) == codehash._code_version(script, src) != computed
    path.write_bytes(path.read_bytes()[: -len(b"\n# an edit\n")])
    (src / "plexus" / "extra.py").write_text("x = 1\n")  # a new module, imported by nothing
    assert codehash.package_digest(src) != kept_file.stem
    assert code_version(script, src) == computed


def test_task_versions_are_kept_per_script_task_and_stage(tmp_path, monkeypatch):
    from plexus import codehash

    monkeypatch.setenv(codehash.CACHE_ENV, str(tmp_path / "cache"))
    script = SCRIPTS / "task_stage.py"
    wanted = {(task, stage): codehash._task_code_version(script, SRC, task, stage)
              for task in ("plexus.tasks.binary", "plexus.tasks.classes") for stage in ("tune", "figure_tuning")}
    assert len(set(wanted.values())) == 4
    for _ in range(2):  # computed and kept, then read back in a "new process"
        assert {k: codehash.task_code_version(script, SRC, *k) for k in wanted} == wanted
        codehash._kept.cache_clear()
    (kept_file,) = (tmp_path / "cache" / "code_versions").glob("*.json")
    assert sorted(json.loads(kept_file.read_text()).values()) == sorted(wanted.values())


def test_no_cache_an_unwritable_or_a_corrupt_one_only_costs_time(tmp_path, monkeypatch):
    from plexus import codehash

    script = SCRIPTS / "folds.py"
    wanted = codehash._code_version(script, SRC)
    monkeypatch.setenv(codehash.CACHE_ENV, "")  # none kept
    assert code_version(script, SRC) == wanted
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder would be\n")
    monkeypatch.setenv(codehash.CACHE_ENV, str(blocked))
    codehash._kept.cache_clear()
    assert code_version(script, SRC) == wanted
    monkeypatch.setenv(codehash.CACHE_ENV, str(tmp_path / "cache"))
    corrupt = tmp_path / "cache" / "code_versions" / f"{codehash.package_digest(SRC)}.json"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("{not json")
    codehash._kept.cache_clear()
    assert code_version(script, SRC) == wanted
    assert list(json.loads(corrupt.read_text()).values()) == [wanted]  # rewritten whole


def test_the_oldest_package_states_are_dropped(tmp_path, monkeypatch):
    from plexus import codehash

    monkeypatch.setenv(codehash.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(codehash, "CACHE_STATES", 3)
    src = _copied_src(tmp_path)
    digests = []
    for i in range(5):
        (src / "plexus" / "extra.py").write_text(f"x = {i}\n")
        digests.append(codehash.package_digest(src))
        code_version(SCRIPTS / "folds.py", src)
    kept = {p.stem for p in (tmp_path / "cache" / "code_versions").glob("*.json")}
    assert len(set(digests)) == 5 and kept == set(digests[-3:])
