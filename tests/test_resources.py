"""Resources live in the rules; the profiles only place jobs (partition, account, GPU model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rule_scripts import rule_blocks

REPO = Path(__file__).resolve().parents[1]
GPU_RULES = {"train", "predict", "predict_oof", "predict_noisy", "missing_channel_scores"}
NUMBERS = {"runtime", "mem_mb", "mem", "gpu", "gpus", "cpus_per_task", "threads", "nodes", "tasks"}


def _resources(block: str) -> set[str]:
    match = re.search(r"^( +)resources:\n((?:\1    .*\n)+)", block, re.M)
    return set(re.findall(r"^\s+(\w+)=", match[2], re.M)) if match else set()


@pytest.mark.parametrize("rule", sorted(set(rule_blocks()) - {"all", "figures"}))
def test_every_rule_declares_its_runtime_and_memory(rule):
    declared = _resources(rule_blocks()[rule])
    assert {"runtime", "mem_mb"} <= declared
    assert ("gpu" in declared) == (rule in GPU_RULES)


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_profiles_do_not_override_the_rules_numbers(profile):
    config = yaml.safe_load((REPO / profile / "config.yaml").read_text())
    for rule, resources in config.get("set-resources", {}).items():
        assert not NUMBERS & set(resources), f"{profile} profile sets {NUMBERS & set(resources)} of {rule}"
    defaults = config.get("default-resources", {})
    assert not (NUMBERS - {"cpus_per_task"}) & set(defaults)
    assert defaults.get("cpus_per_task", "threads") == "threads"  # the rule's own threads


def test_the_slurm_profile_sends_exactly_the_gpu_rules_to_the_gpu_partition():
    """A renamed or new GPU rule must not fall back to the CPU partition (sbatch refuses it there)."""
    config = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    gpu_partition = config["set-resources"]["train"]["slurm_partition"]
    assert gpu_partition != config["default-resources"]["slurm_partition"]
    on_gpu = {rule for rule, resources in config["set-resources"].items()
              if resources.get("slurm_partition") == gpu_partition}
    assert on_gpu == GPU_RULES
    assert on_gpu <= set(rule_blocks())  # every name is a rule of the workflow
