"""Run the real workflow on a copy of the repository, for the integration tests.

Each test run copies the workflow (Snakefile, rules, scripts, package, envs,
profiles) into a temporary folder and replaces ``config/config.yaml`` with a
complete test config, so the tests never touch the checkout's ``results/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).resolve().parent / "configs"
COPIED = ["Snakefile", "workflow", "config", "src", "envs", "slurm", "local"]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def make_workdir(target: Path, config_name: str) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target / name)
    shutil.copy2(CONFIGS / config_name, target / "config" / "config.yaml")
    return target


def snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


def planned_jobs(workdir: Path, *args: str) -> list[tuple[str, dict]]:
    """The jobs ``snakemake -n`` would run: (rule, wildcards) pairs."""
    return [(rule, wildcards) for rule, wildcards, _ in planned_jobs_with_reasons(workdir, *args)]


def planned_jobs_with_reasons(workdir: Path, *args: str) -> list[tuple[str, dict, str]]:
    """(rule, wildcards, reason) of every job ``snakemake -n`` would run."""
    out = snakemake(workdir, "-n", *args).stdout
    jobs: list[tuple[str, dict, str]] = []
    for line in out.splitlines():
        line = line.strip()
        if match := JOB_HEADER.match(line):
            jobs.append((match[1], {}, ""))
        elif jobs and line.startswith("wildcards:"):
            pairs = line[len("wildcards:"):].split(",")
            jobs[-1][1].update(p.strip().split("=", 1) for p in pairs if "=" in p)
        elif jobs and line.startswith("reason:"):
            jobs[-1] = (jobs[-1][0], jobs[-1][1], line[len("reason:"):].strip())
    return jobs


def copy_workdir(source: Path, target: Path) -> Path:
    """A copy of a workdir that has run, results and Snakemake's metadata included (mtimes kept)."""
    shutil.copytree(source, target, symlinks=True)
    return target


def rule_counts(jobs) -> Counter:
    return Counter(rule for rule, _ in jobs)


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "config.yaml").read_text())


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def rule_graph(workdir: Path) -> dict[str, set[str]]:
    """Rule -> the rules that consume its outputs (``snakemake --rulegraph``)."""
    dot = snakemake(workdir, "--rulegraph").stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    children: dict[str, set[str]] = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        children[names[src]].add(names[dst])
    return children


def downstream(graph: dict[str, set[str]], rules) -> set[str]:
    """``rules`` and every rule that (transitively) consumes their outputs."""
    seen, todo = set(), list(rules)
    while todo:
        rule = todo.pop()
        if rule not in seen:
            seen.add(rule)
            todo.extend(graph.get(rule, ()))
    return seen


def reuse_raw_data(source: Path, workdir: Path, raw: str) -> Path:
    """Copy ``source``'s generated ``raw`` folder into ``workdir`` and switch its synthesis off.

    The copy can then be edited (a bad mask, overlapping nuclei) as if it were a user's data.
    """
    shutil.copytree(source / raw, workdir / raw)
    config = workdir / "config" / "config.yaml"
    config.write_text(config.read_text().replace("synthetic: {enabled: true", "synthetic: {enabled: false"))
    return workdir / raw


# -- a finished study of a `folders` dataset (images/, masks/, test/): tiny_ids.yaml's one model and
# ensemble on 12 training images of 4 subjects and 3 test images; the session fixture folders_run

FOLDERS_TRAIN_STEMS = [f"p{s}_{i}" for s in range(1, 5) for i in range(1, 4)]
FOLDERS_TEST_STEMS = ["q1_1", "q1_2", "q2_1"]


def folders_study(target: Path) -> Path:
    """Write the folders dataset into a workdir at ``target`` and run its whole DAG."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(28)
    workdir = make_workdir(target, "tiny_ids.yaml")
    raw = workdir / "results/raw/folders"
    for folder in ("images", "masks", "test"):
        (raw / folder).mkdir(parents=True)
    for i, stem in enumerate(FOLDERS_TRAIN_STEMS):
        Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(raw / "images" / f"{stem}.png")
        mask = np.zeros((20, 24), np.uint8)
        mask[3 + i % 6:11 + i % 6, 4:13] = 255
        Image.fromarray(mask).save(raw / "masks" / f"{stem}.png")
    for stem in FOLDERS_TEST_STEMS:
        Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(raw / "test" / f"{stem}.png")
    config = read_config(workdir)
    config["data"] = {"format": "folders", "raw_dir": "results/raw/folders",
                      "folders": {"subject_pattern": r"(?P<subject>[pq]\d+)_.*"}}
    config["classes"], config["ignore"] = {"background": 0, "lesion": 255}, []
    # two classes default to task binary (binary_folders_study); this study exercises the classes task
    config["task"] = "classes"
    write_config(workdir, config)
    snakemake(workdir, "--cores", "2")
    return workdir


#: the binary folders study's images: (stem, (height, width), RGB?) -- two sizes, gray and RGB
BINARY_TRAIN = [(f"{subject}_{k}", (24, 32) if k % 2 else (30, 36), k % 3 == 0)
                for subject in ("s1", "s2", "s3", "s4") for k in range(4)]
BINARY_TEST = [("0007", (24, 32)), ("case_b", (30, 36)), ("1e5", (30, 36))]


def write_binary_folders(raw: Path, seed: int = 5) -> None:
    """A two-class ``folders`` dataset (images/, masks/ 0/255, test/ with test_masks/) of two image
    sizes, gray and RGB images, a quarter of the masks empty, and test ids that look like numbers."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for folder in ("images", "masks", "test"):
        (raw / folder).mkdir(parents=True, exist_ok=True)
    for i, (stem, (h, w), rgb) in enumerate(BINARY_TRAIN):
        mask = np.zeros((h, w), np.uint8)
        if i % 4:
            mask[4 + i % 5:14 + i % 5, 6:18] = 255
        image = np.clip(rng.normal(90, 20, (h, w)) + (mask > 0) * 80, 0, 255).astype(np.uint8)
        Image.fromarray(np.repeat(image[..., None], 3, axis=2) if rgb else image).save(raw / "images" / f"{stem}.png")
        Image.fromarray(mask).save(raw / "masks" / f"{stem}.png")
    (raw / "test_masks").mkdir(exist_ok=True)
    for k, (stem, (h, w)) in enumerate(BINARY_TEST):
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(raw / "test" / f"{stem}.png")
        Image.fromarray(binary_test_mask(k, (h, w))).save(raw / "test_masks" / f"{stem}.png")


def binary_test_mask(k: int, size: tuple[int, int]):
    """The mask of the binary folders dataset's ``k``-th test image (data.test_masks), 0/255."""
    import numpy as np

    mask = np.zeros(size, np.uint8)
    if k:
        mask[3 + k:12 + k, 4:15] = 255
    return mask


def binary_folders_config(config: dict) -> dict:
    """``config`` with only its ``data:`` section set to the binary folders dataset (its task, the
    default of two classes, is binary)."""
    return {**config, "data": {"format": "folders", "raw_dir": "results/raw/binary",
                               "folders": {"subject_pattern": r"(?P<subject>s\d+)_.*"}, "color": "gray"}}


def binary_folders_study(target: Path) -> Path:
    """The binary folders dataset through the whole DAG with config/kaggle.yaml's models (shrunk to
    a few pixels and 20 epochs) and every post-processing candidate."""
    workdir = make_workdir(target, "tiny_binary.yaml")
    write_binary_folders(workdir / "results/raw/binary")
    snakemake(workdir, "--cores", "2")
    return workdir



def assert_one_record_schema(results: Path, task: str) -> int:
    """Every tuning record (``tuning/*/best.json``) and decision record (``postprocess/*.json``) of a
    finished run has the keys every task's has (``plexus.tasks.base``), names ``task`` and holds its
    scores as the per-image tables say; returns how many records were checked."""
    import json

    import pandas as pd

    from plexus.tasks.base import DECISION_KEYS, TUNING_KEYS

    checked = 0
    for best_json in sorted(results.glob("tuning/*/best.json")):
        best = json.loads(best_json.read_text())
        assert set(TUNING_KEYS) <= set(best), (best_json, sorted(set(TUNING_KEYS) - set(best)))
        assert best["task"] == task and best["members"] and best["n_images"] > 0, best_json
        checked += 1
    for decision_json in sorted(p for p in results.glob("postprocess/*.json")):
        decision = json.loads(decision_json.read_text())
        assert set(DECISION_KEYS) <= set(decision), (decision_json, sorted(set(DECISION_KEYS) - set(decision)))
        assert decision["task"] == task and not set(TUNING_KEYS[:3]) & set(decision["pipeline"]), decision_json
        per_image = pd.read_csv(decision_json.with_name(f"{decision_json.stem}_per_image.csv"))
        for key, column in (("untuned_score", "untuned"), ("tuned_score", "tuned"), ("score", "postprocessed"),
                            ("cross_fitted_score", "cross_fitted")):
            assert abs(decision[key] - per_image[column].mean()) < 1e-9, (decision_json, key)
        checked += 1
    assert checked, f"no tuning or decision record under {results}"
    return checked
