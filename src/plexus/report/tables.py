"""The results table: one row per model or ensemble, with its subject-level bootstrap CI."""


from __future__ import annotations

import numpy as np
import pandas as pd

from plexus.evaluation.bootstrap import bootstrap_ci

TABLE_COLUMNS = [
    "name", "kind", "members", "untuned_score", "tuned_score", "cutoff", "min_area",
    "ci_low", "ci_high", "postprocessed_score", "kept", "cross_fitted_score", "cf_ci_low", "cf_ci_high",
    "empty_score", "n_images", "n_subjects", "training_health",
]


def results_table(entries: dict[str, dict], *, n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """One row per model or ensemble, in the order of ``entries``.

    Each entry: ``{"kind": "model"|"ensemble", "members": [...], "best": best.json
    dict, "per_image": per_image.csv frame, "postprocess": results/postprocess/{name}.json
    dict (optional), "training_health": its cell (optional, :func:`training_health`)}``.
    ``cross_fitted_score`` (with ``cf_ci_*``) is the honest estimate: each fold scored by the
    setting chosen on the other folds. ``ci_low``/``ci_high`` are the subject-level bootstrap
    interval of the per-image Kaggle Dice
    (:func:`bootstrap_ci` with ``n_boot``, ``seed``, ``level``).
    """
    rows = []
    for name, entry in entries.items():
        best = entry["best"]
        per_image = entry["per_image"]
        members = entry.get("members") or best.get("members") or [name]
        if isinstance(members, str):
            members = [members]
        ci = bootstrap_ci(per_image, value="kaggle_dice", group="subject",
                          n_boot=n_boot, seed=seed, level=level)
        rows.append({
            "name": str(name),
            "kind": str(entry.get("kind", "model")),
            "members": "+".join(str(m) for m in members),
            "untuned_score": float(best["untuned_score"]),
            "tuned_score": float(best["score"]),
            "cutoff": float(best["cutoff"]),
            "min_area": int(best["min_area"]),
            "ci_low": ci["low"],
            "ci_high": ci["high"],
            **_postprocess_columns(entry.get("postprocess")),
            "empty_score": float(best["empty_score"]),
            "n_images": int(len(per_image)),
            "n_subjects": ci["n_groups"],
            "training_health": str(entry.get("training_health", "")),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def with_second_rater(table: pd.DataFrame, entries: dict[str, dict], rater2: pd.DataFrame) -> pd.DataFrame:
    """The results table with the second rater beside every entry on the images it rated: each
    entry's ``rated_score`` (the mean per-image Kaggle Dice of its tuned setting on those images) and a
    ``rater2`` row (kind ``human``) whose ``rated_score`` is the second rater's Kaggle Dice against
    the first; ``rated_images`` their count. ``rater2``: one row per rated image, its ``dice``
    (:func:`plexus.evaluation.raters.rater2_frame`). Unchanged when no image has a second rater."""
    if rater2.empty:
        return table
    rated = rater2["image_id"].astype(str).tolist()
    scores = []
    for name in table["name"]:
        per_image = entries[name]["per_image"].assign(image_id=lambda f: f["image_id"].astype(str))
        scores.append(float(per_image.set_index("image_id").loc[rated, "kaggle_dice"].mean()))
    out = table.assign(rated_images=len(rated), rated_score=scores)
    human = {column: np.nan for column in out.columns}
    human.update(name="rater2", kind="human", members="", kept="", training_health="",
                 n_images=len(rated), n_subjects=int(rater2["subject"].astype(str).nunique()),
                 rated_images=len(rated), rated_score=float(rater2["dice"].mean()))
    return pd.concat([out, pd.DataFrame([human])], ignore_index=True)


def _postprocess_columns(decided: dict | None) -> dict:
    """The post-processing columns: the kept candidates, their OOF score and the cross-fitted one."""
    if decided is None:
        return {"postprocessed_score": np.nan, "kept": "", "cross_fitted_score": np.nan,
                "cf_ci_low": np.nan, "cf_ci_high": np.nan}
    kept = [d["candidate"] for d in decided["decisions"] if d["kept"]]
    return {"postprocessed_score": float(decided["score"]), "kept": "+".join(kept) or "none",
            "cross_fitted_score": float(decided["cross_fitted_score"]),
            "cf_ci_low": float(decided["cross_fitted_ci"][0]), "cf_ci_high": float(decided["cross_fitted_ci"][1])}


def _cell(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """GitHub-flavoured Markdown table; floats with ``digits`` decimals, numbers right-aligned."""
    columns = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if num else ":---" for num in numeric) + "|",
    ]
    for row in table.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"


def fold_health(fold: int, info: dict) -> str:
    """One fold's collapse-guard record (``train_info.json``) as a phrase; ``ok`` without events."""
    if "training_health" not in info:
        return "unknown"  # written before the collapse guard
    events = info.get("collapse_events") or []
    if not events:
        return "ok" if info["training_health"] == "ok" else str(info["training_health"])
    epochs = ", ".join(str(e["epoch"]) for e in events)
    warned = [e for e in events if e["action"] == "warned"]
    if warned:
        return f"collapsed (warned; fold {fold}, epoch {epochs})"
    return f"recovered {len(events)}x (fold {fold}, epoch {epochs})"


def training_health(members: dict[str, list[dict]]) -> str:
    """The summary table's ``training_health`` cell of a model or ensemble.

    ``members`` maps each member model to its folds' ``train_info.json`` dicts (fold order).
    ``ok`` when no fold of any member had a collapse event, ``unguarded`` when the guard was
    off everywhere; else the folds' phrases (:func:`fold_health`), prefixed by the member
    for an ensemble.
    """
    phrases = {m: [fold_health(k, info) for k, info in enumerate(infos)] for m, infos in members.items()}
    flat = {p for ps in phrases.values() for p in ps}
    if flat <= {"ok"}:
        return "ok"
    if len(flat) == 1:
        return flat.pop()
    parts = []
    for member, ps in phrases.items():
        bad = [p for p in ps if p != "ok"]
        prefix = f"{member}: " if len(members) > 1 else ""
        parts += [prefix + p for p in bad]
    return "; ".join(parts)


#: the per-unit metrics of the classes and regions tasks' results tables, in order
UNIT_METRICS = ("dice_untuned", "dice", "iou", "sensitivity", "precision", "dice_cross_fitted")
#: the name of the second expert's row (the human reference) in a results table
RATER2_NAME = "rater2"


def unit_table(frames: dict[str, pd.DataFrame], units, unit: str, *, n_boot: int, seed: int,
               rater2: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (model or ensemble, unit, metric): the mean and subject-bootstrap 95% CI, where a unit is
    a class or a region (column ``unit`` of the per-image ``frames``), with the all-background
    baseline (Dice 1 on images without the unit, 0 on the others).

    ``rater2`` (the second expert's per-image scores against the first, on the images it rated)
    adds the human reference: rows of scope ``rated`` for it and for every model, ensemble and the
    baseline on the same images; the other rows have scope ``all``.
    """
    first = next(iter(frames.values()))
    empty = (first["true_area"] == 0).astype(float)
    baseline = first[["image_id", "subject", unit]].assign(dice=empty, dice_cross_fitted=empty)
    named = {**frames, "all_background": baseline}
    scopes = [("all", named)]
    if rater2 is not None and len(rater2):
        rated = set(rater2["image_id"].astype(str))
        scopes.append(("rated", {**{name: frame[frame["image_id"].astype(str).isin(rated)]
                                    for name, frame in named.items()}, RATER2_NAME: rater2}))
    rows = []
    for scope, entries in scopes:
        for name, frame in entries.items():
            for value in units:
                part = frame[frame[unit] == value]
                for metric in UNIT_METRICS:
                    if metric not in part:
                        continue
                    values = part.dropna(subset=[metric])
                    if values.empty:  # undefined on every image (never predicted: no precision): said, not dropped
                        rows.append({"name": name, unit: value, "scope": scope, "metric": metric, "mean": np.nan,
                                     "lo": np.nan, "hi": np.nan, "n_images": 0})
                        continue
                    ci = bootstrap_ci(values, value=metric, group="subject", n_boot=n_boot, seed=seed)
                    rows.append({"name": name, unit: value, "scope": scope, "metric": metric, "mean": ci["mean"],
                                 "lo": ci["low"], "hi": ci["high"], "n_images": ci["n_images"]})
    return pd.DataFrame(rows, columns=["name", unit, "scope", "metric", "mean", "lo", "hi", "n_images"])


def unit_markdown(table: pd.DataFrame, unit: str) -> str:
    """The unit table wide: one row per (scope, name, unit), one column per metric, ``mean (lo-hi)``."""
    cells = table.assign(value=["n/a" if np.isnan(m) else f"{m:.3f} ({lo:.3f}-{hi:.3f})" for m, lo, hi in
                                zip(table["mean"], table["lo"], table["hi"])])
    wide = cells.pivot_table(index=["scope", "name", unit], columns="metric", values="value", aggfunc="first",
                             sort=False)
    # every metric a column, always: a metric no entry defines reads n/a rather than vanishing
    return wide.reindex(columns=list(UNIT_METRICS)).fillna("n/a").reset_index().to_markdown(index=False) + "\n"
