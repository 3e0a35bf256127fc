"""Figure and table stages: read files under ``results/``, render with :mod:`plexus.report.figures`.

Nothing here trains or predicts; every input is a CSV, JSON or NPZ that an
earlier stage wrote, so ``snakemake figures`` after deleting ``results/figures``
only redraws.
"""

from __future__ import annotations

import numpy as np

from plexus.io.contracts import read_json, read_npz, read_per_image, read_table
from plexus.report import figures


def tuning_stage(grid_csv, best_json, name, heatmap_paths, min_area_paths, style=None) -> None:
    """Heatmap and min-area curves; with a tuned presence gate, the slice at the chosen threshold."""
    grid, best = read_table(grid_csv), read_json(best_json)
    if "presence_threshold" in grid:
        grid = grid[np.isclose(grid["presence_threshold"], best["presence_threshold"])]
        name = f"{name} (presence ≥ {best['presence_threshold']:g})"
    figures.save(figures.tuning_heatmap(grid, best, name, style), heatmap_paths)
    figures.save(figures.score_vs_min_area(grid, best, name, style), min_area_paths)


def learning_curves_stage(history_csvs, name, paths, style=None, train_infos=None) -> None:
    """``train_infos``: the folds' ``train_info.json`` paths, whose collapse events are marked."""
    histories = {fold: read_table(path) for fold, path in enumerate(history_csvs)}
    infos = [read_json(path) for path in train_infos or []]
    events = {fold: info.get("collapse_events", []) for fold, info in enumerate(infos)}
    validation = infos[0].get("validation", "oof") if infos else "oof"
    figures.save(figures.learning_curves(histories, name, style, events, validation), paths)


def noise_stage(scores_csv, paths, style=None) -> None:
    figures.save(figures.noise_figure(read_table(scores_csv), style), paths)


def train_size_stage(scores_csv, paths, style=None) -> None:
    scores = read_table(scores_csv)
    figures.save(figures.train_size_figure(scores, style), paths)


def areas_stage(per_image_csv, best_json, name, paths, style=None) -> None:
    best = read_json(best_json)
    fig = figures.area_histogram(read_per_image(per_image_csv), best["min_area"], style,
                                 title=f"{name}: mask areas, true vs predicted (OOF)")
    figures.save(fig, paths)


def qualitative_stage(per_image_csv, best_json, train_npz, oof_npzs, name, paths, style=None) -> None:
    """Best, median and worst OOF images (with a nerve) of one model."""
    per_image, best = read_per_image(per_image_csv), read_json(best_json)
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
