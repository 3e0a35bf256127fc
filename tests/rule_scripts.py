"""What the workflow's rule files say, read independently of the workflow: rule -> script."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULE = re.compile(r"^\s*rule (\w+):", re.M)
SCRIPT = re.compile(r'^\s*"\.\./scripts/(\w+)\.py"', re.M)
CODE = re.compile(r'code=(?:script_code\("(\w+)"\)|(?:lambda wildcards: )?task_code\((?:"\w+", script="(\w+)")?)')


def rule_blocks(rules_dir: Path = REPO / "workflow" / "rules") -> dict[str, str]:
    blocks = {}
    for smk in sorted(rules_dir.glob("*.smk")):
        text = smk.read_text()
        starts = [m.start() for m in RULE.finditer(text)] + [len(text)]
        for start, end in zip(starts, starts[1:]):
            block = text[start:end]
            blocks[RULE.match(block)[1]] = block
    return blocks


def rule_scripts() -> dict[str, str]:
    """Rule name -> the script (stem) its ``script:`` directive runs."""
    return {rule: m[1] for rule, block in rule_blocks().items() if (m := SCRIPT.search(block))}


def rule_code_params() -> dict[str, str]:
    """Rule name -> the script named in its ``code=script_code(...)`` param."""
    # a task stage's rule hashes task_stage.py (and the task's stage: plexus.codehash.task_code_version)
    return {rule: m[1] or m[2] or "task_stage" for rule, block in rule_blocks().items() if (m := CODE.search(block))}
