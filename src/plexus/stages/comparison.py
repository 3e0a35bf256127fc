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
    pairwise_figure (PNG, PDF).
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
    figures.save(figures.comparison_figure(table, style), paths["figure"])
    figures.save(figures.pairwise_figure(pairs, style), paths["pairwise_figure"])
    print(tables.to_markdown(comparison.display_table(table)))
    print(tables.to_markdown(pairs))
    return table
