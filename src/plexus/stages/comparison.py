"""Comparison stage: Table I of the models and ensembles, the paired tests, and their figures."""

from __future__ import annotations

import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import read_json, read_per_image
from plexus.report import comparison, figures, tables


def comparison_stage(names, kinds, members, per_image_csvs, train_infos: dict[str, str], paths: dict, *,
                     n_boot: int, seed: int, style=None) -> pd.DataFrame:
    """The comparison table and the paired tests (CSV + Markdown), and their two figures.

    ``train_infos`` maps each model to one fold's ``train_info.json`` (its parameter count).
    ``paths``: comparison_csv, comparison_md, pairwise_csv, pairwise_md, figure (PNG, PDF),
    pairwise_figure (PNG, PDF) and per_image_figure (PNG, PDF: every entry's per-image
    cross-fitted score side by side, :func:`plexus.report.figures.per_image_figure`).
    """
    per_image = {name: read_per_image(path) for name, path in zip(names, per_image_csvs)}
    params = {model: int(read_json(path)["n_parameters"]) for model, path in train_infos.items()}
    entries = {name: {"kind": kind, "members": list(member_list), "per_image": per_image[name],
                      "parameters": sum(params[m] for m in member_list)}
               for name, kind, member_list in zip(names, kinds, members)}
    table = comparison.comparison_table(entries, n_boot=n_boot, seed=seed)
    pairs = comparison.pairwise_table(per_image, n_boot=n_boot, seed=seed)
    atomic.write_csv(paths["comparison_csv"], table)
    atomic.write_text(paths["comparison_md"], tables.to_markdown(comparison.display_table(table)))
    atomic.write_csv(paths["pairwise_csv"], pairs)
    atomic.write_text(paths["pairwise_md"], tables.to_markdown(pairs))
    baselines = comparison.empty_baselines(next(iter(per_image.values())))
    figures.save(figures.comparison_figure(table, style, baselines=baselines), paths["figure"])
    figures.save(figures.pairwise_figure(pairs, style), paths["pairwise_figure"])
    figures.save(figures.per_image_figure(per_image, style), paths["per_image_figure"])
    print(tables.to_markdown(comparison.display_table(table)))
    print(tables.to_markdown(pairs))
    return table


def score_comparison_stage(job, score: str, *, draw_models: bool = True, baseline: float | None = None
                           ) -> pd.DataFrame:
    """The comparison stage of a task scored by one per-image ``score`` (mean Dice, mean AP): the
    table of :func:`plexus.report.comparison.score_table`, the paired tests, and their figures
    (``draw_models`` False: the task draws the models figure itself; ``baseline``: the all-background
    prediction's score, a line in every panel of the models figure)."""
    i, o, p = job.input, job.output, job.params
    params = {model: int(read_json(path)["n_parameters"]) for model, path in zip(p.models, i.train_info)}
    entries = {name: {"kind": kind, "members": list(member_list), "per_image": read_per_image(path),
                      "parameters": sum(params[m] for m in member_list)}
               for name, kind, member_list, path in zip(p.names, p.kinds, p.members, i.per_image)}
    table = comparison.score_table(entries, n_boot=p.settings["n_boot"], seed=p.settings["seed"])
    pairs = comparison.pairwise_table({name: e["per_image"] for name, e in entries.items()},
                                      n_boot=p.settings["n_boot"], seed=p.settings["seed"])
    shown = table[["name", "kind", "members", "parameters"]].copy()
    for column in ("untuned", "tuned", "postprocessed", "cross_fitted"):
        shown[f"{score} {column.replace('_', '-')}"] = [
            f"{m:.3f} ({lo:.3f}-{hi:.3f})" for m, lo, hi in
            zip(table[column], table[f"{column}_low"], table[f"{column}_high"])]
    atomic.write_csv(o.csv, table)
    atomic.write_text(o.md, tables.to_markdown(shown))
    atomic.write_csv(o.pairwise_csv, pairs)
    atomic.write_text(o.pairwise_md, tables.to_markdown(pairs))
    metrics = {c: f"{score}, {c.replace('_', '-')}" for c in ("untuned", "tuned", "cross_fitted")}
    if draw_models:
        baselines = {} if baseline is None else {column: baseline for column in metrics}
        figures.save(figures.comparison_figure(table, p.style, metrics, baselines=baselines,
                                               baseline_label="all-background prediction"), [o.png, o.pdf])
    figures.save(figures.pairwise_figure(pairs, p.style, score), [o.pairwise_png, o.pairwise_pdf])
    figures.save(figures.per_image_figure({name: e["per_image"] for name, e in entries.items()}, p.style, score),
                 [o.per_image_png, o.per_image_pdf])
    print(tables.to_markdown(shown))
    return table
