"""Run-level provenance: code version, config hash, software and training devices.

Written to ``results/provenance.json`` after every successful Snakemake run (an
``onsuccess`` handler, not a job, so it never makes a stage rerun). Beside it, ``results/config.yaml``
records the config the run used (defaults filled in, keys in their order: the order of ``classes``
and ``regions`` is their index), which ``plexus predict`` reads to apply the study; its
``config_hash`` is the record's ``config_sha256``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from plexus.io import atomic

PACKAGES = ["plexus", "torch", "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "tifffile",
            "imagecodecs", "snakemake", "snakemake-executor-plugin-slurm"]


def config_hash(config: dict) -> str:
    """SHA-256 of the config as canonical JSON (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_state(repo_dir) -> dict:
    """Commit and dirtiness of the checkout; ``None`` values outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def training_devices(results_dir) -> dict:
    """``{run/foldK: {device, cuda_device_name, slurm_job_partition, ...}}`` from train_info.json files."""
    devices = {}
    for info_path in sorted(Path(results_dir, "models").glob("*/fold*/train_info.json")):
        info = json.loads(info_path.read_text())
        key = f"{info_path.parent.parent.name}/{info_path.parent.name}"
        devices[key] = {k: info.get(k) for k in
                        ("device", "cuda_device_name", "torch_version", "amp", "slurm_job_id",
                                     "slurm_job_partition", "hostname")}
    return devices


def collect(repo_dir, config: dict, results_dir="results") -> dict:
    trained = training_devices(results_dir)
    return {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_state(repo_dir),
        "config_sha256": config_hash(config),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "training_devices": sorted({d["device"] for d in trained.values() if d["device"]}),
        "training": trained,
    }


#: the config the run used, beside ``provenance.json``
CONFIG_FILE = "config.yaml"


def write(path, repo_dir, config: dict, results_dir="results") -> dict:
    import yaml

    record = collect(repo_dir, config, results_dir)
    plain = json.loads(json.dumps(config, default=str))  # plain types, the keys' order kept
    atomic.write_text(Path(path).with_name(CONFIG_FILE), yaml.safe_dump(plain, sort_keys=False))
    atomic.write_json(path, record)
    return record
