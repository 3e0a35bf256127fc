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


def planned_jobs(workdir: Path, *targets: str) -> list[tuple[str, dict]]:
    """The jobs ``snakemake -n`` would run: (rule, wildcards) pairs."""
    out = snakemake(workdir, "-n", *targets).stdout
    jobs: list[tuple[str, dict]] = []
    for line in out.splitlines():
        if match := JOB_HEADER.match(line.strip()):
            jobs.append((match[1], {}))
        elif jobs and line.strip().startswith("wildcards:"):
            pairs = line.strip()[len("wildcards:"):].split(",")
            jobs[-1][1].update(p.strip().split("=", 1) for p in pairs if "=" in p)
    return jobs


def rule_counts(jobs) -> Counter:
    return Counter(rule for rule, _ in jobs)


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "config.yaml").read_text())


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
