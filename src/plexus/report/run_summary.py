"""What a finished run says at its end: the best entry, its honest score, the baseline, and what to look at.

:func:`run_summary` reads the files every task writes (``results/postprocess/{name}.json``: the
cross-fitted score with its CI and the candidates' decisions; ``results/tables/summary.csv``: the
all-background baseline; each fold's ``train_info.json``: its training health) and returns the
lines that the ``run_summary`` rule writes to ``results/run_summary.md`` (in the report) and the
workflow prints when it succeeds. Warnings:

* an entry whose cross-fitted score is no better than the all-background (all-empty) baseline;
* a kept post-processing candidate whose gain is below :data:`PRACTICAL_GAIN` (kept by the
  bootstrap rule, but too small to matter; ``postprocess.min_gain`` refuses such candidates);
* a fold whose training was not healthy (a collapse recovered from, or warned about).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

#: a gain below this (score units: Dice, AP) is reported as below a practical gain
PRACTICAL_GAIN = 0.001
BASELINE_NAME = "all_background"


def baseline_score(summary: pd.DataFrame) -> float | None:
    """The all-background (all-empty) prediction's score in a task's summary table, or None.

    Task ``binary``: its ``empty_score`` column; ``classes``, ``regions``: the mean over the units
    of the ``all_background`` rows' cross-fitted Dice (scope ``all``); ``instances`` has none.
    """
    if "empty_score" in summary:
        return float(summary["empty_score"].iloc[0])
    if {"name", "metric", "mean"} <= set(summary.columns):
        rows = summary[(summary["name"] == BASELINE_NAME) & (summary["metric"] == "dice_cross_fitted")]
        if "scope" in rows:
            rows = rows[rows["scope"] == "all"]
        return float(rows["mean"].mean()) if len(rows) else None
    return None


def run_summary(names: list[str], decisions: dict[str, dict], summary: pd.DataFrame,
                train_infos: dict[str, list[dict]], *, min_gain: float = 0.0, report: str = "results/report.html"
                ) -> list[str]:
    """The end-of-run lines (Markdown) of a finished run; see the module doc."""
    scores = {}
    for name in names:
        decided = decisions[name]
        low, high = decided.get("cross_fitted_ci") or (math.nan, math.nan)
        scores[name] = (float(decided["cross_fitted_score"]), float(low), float(high))
    best = max(names, key=lambda n: scores[n][0])
    baseline = baseline_score(summary)
    mean, low, high = scores[best]
    lines = [f"Best entry: **{best}**, cross-fitted score {mean:.3f} (95% CI {low:.3f}-{high:.3f}); "
             + (f"all-background baseline {baseline:.3f}." if baseline is not None else "no all-background baseline "
                "for this task.")]
    warnings = []
    for name in names:
        if baseline is not None and scores[name][0] <= baseline:
            warnings.append(f"{name}: cross-fitted score {scores[name][0]:.3f} is no better than the all-background "
                            f"baseline {baseline:.3f}: it has not learnt to find the foreground")
        for decision in decisions[name].get("decisions", []):
            gain = decision.get("difference")
            if decision.get("kept") and gain is not None and gain < max(PRACTICAL_GAIN, min_gain):
                warnings.append(f"{name}: post-processing candidate {decision.get('candidate')} was kept for a gain of "
                                f"{gain:+.4f}, below a practical gain of {PRACTICAL_GAIN:g} "
                                "(postprocess.min_gain refuses such candidates)")
    for model, infos in train_infos.items():
        for fold, info in enumerate(infos):
            health = info.get("training_health", "ok")
            if health not in ("ok", "unguarded"):
                warnings.append(f"{model}, fold {fold}: training {health} (train_info.json, the learning curves)")
    lines += [f"WARNING {w}" for w in warnings] or ["No warnings: every entry beats the baseline, every kept "
                                                    "candidate gains at least a practical amount, every fold "
                                                    "trained healthily."]
    lines.append(f"Tables: results/tables/; figures: results/figures/; the report: `snakemake --report {report}`.")
    return lines


def run_summary_stage(names, decision_jsons, summary_csv, train_info_paths: dict[str, list], out_md, *,
                      min_gain: float = 0.0) -> list[str]:
    """Read the files, write ``out_md`` (one line per paragraph) and print the lines."""
    from plexus.io import atomic

    decisions = {name: json.loads(Path(path).read_text()) for name, path in zip(names, decision_jsons, strict=True)}
    infos = {model: [json.loads(Path(p).read_text()) for p in paths] for model, paths in train_info_paths.items()}
    lines = run_summary(list(names), decisions, pd.read_csv(summary_csv), infos, min_gain=min_gain)
    atomic.write_text(out_md, "# End of run\n\n" + "\n\n".join(lines) + "\n")
    print("\n".join(lines))
    return lines
