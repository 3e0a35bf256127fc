"""Table stage: the results table (CSV and Markdown) with subject-level bootstrap CIs."""

from __future__ import annotations

import pandas as pd

from plexus.io import atomic
from plexus.io.contracts import read_json, read_per_image
from plexus.report import tables


def summary_stage(
    names, kinds, members, best_jsons, per_image_csvs, csv_path, md_path, *, n_boot, seed, postprocess_jsons=None,
    train_infos: dict[str, list] | None = None,
) -> pd.DataFrame:
    """``train_infos`` maps each model to its folds' ``train_info.json`` paths (the training-health column)."""
    postprocess_jsons = postprocess_jsons or [None] * len(names)
    infos = {model: [read_json(path) for path in paths] for model, paths in (train_infos or {}).items()}

    def health(member_list) -> str:
        if not all(m in infos for m in member_list):
            return ""
        return tables.training_health({m: infos[m] for m in member_list})

    entries = {
        name: {"kind": kind, "members": member_list, "best": read_json(best),
               "per_image": read_per_image(per_image),
               "postprocess": read_json(decided) if decided else None,
               "training_health": health(member_list)}
        for name, kind, member_list, best, per_image, decided in zip(
            names, kinds, members, best_jsons, per_image_csvs, postprocess_jsons)
    }
    table = tables.results_table(entries, n_boot=n_boot, seed=seed)
    atomic.write_csv(csv_path, table)
    atomic.write_text(md_path, tables.to_markdown(table) + "\n")
    print(tables.to_markdown(table))
    return table

