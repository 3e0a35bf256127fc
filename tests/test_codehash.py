"""Rule code versions are derived from the import closure of each rule's script.

The reference is :mod:`modulefinder` (the standard library's bytecode-level import
scanner), an implementation independent of :mod:`plexus.codehash`'s ``ast`` walk.
"""

from __future__ import annotations

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
