"""The end-of-run summary: the best entry by its cross-fitted score, the baseline, and the warnings."""

import json

import pandas as pd
import pytest

from plexus.report.run_summary import baseline_score, run_summary, run_summary_stage


def _decision(score, ci, *candidates):
    return {"cross_fitted_score": score, "cross_fitted_ci": ci,
            "decisions": [{"candidate": c, "kept": kept, "difference": gain} for c, kept, gain in candidates]}


def test_best_entry_baseline_and_each_warning():
    decisions = {"unet": _decision(0.333, [0.20, 0.45], ("hysteresis", True, 0.0004), ("otsu", False, -0.01)),
                 "attn": _decision(0.71, [0.60, 0.80], ("fill_holes", True, 0.02)),
                 "main": _decision(0.78, [0.70, 0.85])}
    summary = pd.DataFrame({"name": ["unet", "attn", "main"], "empty_score": [0.333] * 3})
    infos = {"unet": [{"training_health": "ok"}, {"training_health": "recovered 1x (epoch 8)"}],
             "attn": [{"training_health": "ok"}] * 2}
    lines = run_summary(["unet", "attn", "main"], decisions, summary, infos)
    assert lines[0] == ("Best entry: **main**, cross-fitted score 0.780 (95% CI 0.700-0.850); "
                        "all-background baseline 0.333.")
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 3  # unet = baseline (0.333 both: the case the issue saw); its tiny kept gain; fold 1
    assert "unet: cross-fitted score 0.333 is no better than the all-background baseline 0.333" in warnings[0]
    assert "hysteresis was kept for a gain of +0.0004" in warnings[1]
    assert warnings[2].startswith("WARNING unet, fold 1: training recovered 1x (epoch 8)")
    assert lines[-1].endswith("`snakemake --report results/report.html`.")


def test_no_warnings_said_as_such_and_min_gain_raises_the_bar():
    decisions = {"m": _decision(0.9, [0.8, 0.95], ("tta", True, 0.004))}
    summary = pd.DataFrame({"name": ["m"], "empty_score": [0.5]})
    assert run_summary(["m"], decisions, summary, {"m": [{"training_health": "ok"}]})[1].startswith("No warnings")
    lines = run_summary(["m"], decisions, summary, {}, min_gain=0.01)
    assert any("tta was kept for a gain of +0.0040" in line for line in lines)


def test_the_baseline_of_each_table_kind():
    unit = pd.DataFrame({"name": ["all_background"] * 3 + ["m"], "scope": ["all", "all", "rated", "all"],
                         "class": ["a", "b", "a", "a"], "metric": "dice_cross_fitted", "mean": [0.4, 0.6, 0.9, 0.8]})
    assert baseline_score(unit) == pytest.approx(0.5)  # the mean over the classes, scope all only
    assert baseline_score(pd.DataFrame({"name": ["m"], "empty_score": [0.25]})) == 0.25
    assert baseline_score(pd.DataFrame({"name": ["m"], "ap": [0.7]})) is None  # instances: none
    lines = run_summary(["m"], {"m": _decision(0.7, [0.6, 0.8])}, pd.DataFrame({"name": ["m"], "ap": [0.7]}), {})
    assert "no all-background baseline for this task" in lines[0]


def test_the_stage_writes_what_it_prints(tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps(_decision(0.6, [0.5, 0.7])))
    pd.DataFrame({"name": ["m"], "empty_score": [0.7]}).to_csv(tmp_path / "summary.csv", index=False)
    (tmp_path / "info.json").write_text(json.dumps({"training_health": "ok"}))
    lines = run_summary_stage(["m"], [tmp_path / "m.json"], tmp_path / "summary.csv",
                              {"m": [tmp_path / "info.json"]}, tmp_path / "run_summary.md")
    text = (tmp_path / "run_summary.md").read_text()
    assert text.startswith("# End of run") and all(line in text for line in lines)
    assert "WARNING m: cross-fitted score 0.600 is no better" in capsys.readouterr().out
