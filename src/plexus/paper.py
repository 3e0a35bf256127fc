"""Figure and table stages: read files under ``results/``, render with :mod:`plexus.figures`.

Nothing here trains or predicts; every input is a CSV, JSON or NPZ that an
earlier stage wrote, so ``snakemake figures`` after deleting ``results/figures``
only redraws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from plexus import atomic, figures, summary
from plexus.atomic import read_npz


def _json(path) -> dict:
    return json.loads(Path(path).read_text())


def tuning_stage(grid_csv, best_json, name, heatmap_paths, min_area_paths, style=None) -> None:
    grid, best = pd.read_csv(grid_csv), _json(best_json)
    figures.save(figures.tuning_heatmap(grid, best, name, style), heatmap_paths)
    figures.save(figures.score_vs_min_area(grid, best, name, style), min_area_paths)


def learning_curves_stage(history_csvs, name, paths, style=None) -> None:
    histories = {fold: pd.read_csv(path) for fold, path in enumerate(history_csvs)}
    figures.save(figures.learning_curves(histories, name, style), paths)


def noise_stage(scores_csv, paths, style=None) -> None:
    figures.save(figures.noise_figure(pd.read_csv(scores_csv), style), paths)


def train_size_stage(scores_csv, paths, style=None) -> None:
    scores = pd.read_csv(scores_csv, dtype={"size": str})
    figures.save(figures.train_size_figure(scores, style), paths)


def areas_stage(per_image_csv, best_json, name, paths, style=None) -> None:
    best = _json(best_json)
    fig = figures.area_histogram(pd.read_csv(per_image_csv), best["min_area"], style,
                                 title=f"{name}: mask areas, true vs predicted (OOF)")
    figures.save(fig, paths)


def qualitative_stage(per_image_csv, best_json, train_npz, oof_npzs, name, paths, style=None) -> None:
    """Best, median and worst OOF images (with a nerve) of one model."""
    per_image, best = pd.read_csv(per_image_csv, dtype={"image_id": str}), _json(best_json)
    picks = figures.pick_examples(per_image)
    data = read_npz(train_npz)
    row_of = {image_id: row for row, image_id in enumerate(data["image_id"].astype(str))}
    prob_of = {}
    for path in oof_npzs:
        oof = read_npz(path)
        prob_of.update(zip(oof["image_id"].astype(str), oof["prob"].astype(np.float32)))
    ids = [i for label in picks for i in picks[label]]
    labels = [label for label in picks for _ in picks[label]]
    dice_of = dict(zip(per_image["image_id"], per_image["kaggle_dice"]))
    rows = [row_of[i] for i in ids]
    fig = figures.qualitative_panel(data["images"][rows], data["masks"][rows], np.stack([prob_of[i] for i in ids]),
                                    [dice_of[i] for i in ids], ids, labels, best["cutoff"], style,
                                    title=f"{name}: best, median and worst OOF images with a nerve")
    figures.save(fig, paths)


def summary_stage(names, kinds, members, best_jsons, per_image_csvs, csv_path, md_path, *, n_boot, seed) -> pd.DataFrame:
    entries = {
        name: {"kind": kind, "members": member_list, "best": _json(best),
               "per_image": pd.read_csv(per_image, dtype={"image_id": str})}
        for name, kind, member_list, best, per_image in zip(names, kinds, members, best_jsons, per_image_csvs)
    }
    table = summary.results_table(entries, n_boot=n_boot, seed=seed)
    atomic.write_csv(csv_path, table)
    atomic.write_text(md_path, summary.to_markdown(table) + "\n")
    print(summary.to_markdown(table))
    return table
