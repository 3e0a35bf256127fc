"""The learning curves of every model's folds (any task): its figure stage reads ``history.csv``
and ``train_info.json`` under ``results/`` and only draws. The tasks' own figures are theirs
(:mod:`plexus.tasks`).
"""

from __future__ import annotations

from plexus.io.contracts import read_json, read_table
from plexus.report import figures


def learning_curves_stage(history_csvs, name, paths, style=None, train_infos=None) -> None:
    """``train_infos``: the folds' ``train_info.json`` paths, whose collapse events are marked."""
    histories = {fold: read_table(path) for fold, path in enumerate(history_csvs)}
    infos = [read_json(path) for path in train_infos or []]
    events = {fold: info.get("collapse_events", []) for fold, info in enumerate(infos)}
    first = infos[0] if infos else {}
    figures.save(figures.learning_curves(histories, name, style, events, first.get("validation", "oof"),
                                         first.get("validation_read_by"), first.get("weights", "final")), paths)
