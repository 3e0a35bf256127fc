"""Post-processing stage: candidates decided on OOF, with a cross-fitted (honest) estimate.

For one model or ensemble, starting from its tuned cutoff x minimum area, each
candidate of :mod:`plexus.postprocess.selection` is kept only when the subject
bootstrap CI of its paired gain lies above 0. The same whole procedure (grid tuning
from ``grid.csv``'s per-fold scores, then the candidate selection) is repeated with
each fold held out and applied to that fold: the mean of those held-out scores is an
estimate of the score on new subjects that did not choose the setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plexus import ORIGINAL_SHAPE
from plexus.data.ingest import load_masks
from plexus.data.resize import upsample_mean
from plexus.evaluation.bootstrap import bootstrap_ci
from plexus.io import atomic
from plexus.io.contracts import load_oof, member_presence, read_folds, read_json, read_masks_table
from plexus.postprocess.candidates import PostProcess
from plexus.postprocess.selection import ScoreCache, Selection, select_many

BATCH = 32


def fold_tuned_settings(grid: pd.DataFrame, fold_sizes: dict[int, int]) -> dict[int, dict]:
    """For each fold k, the grid row that is best on all the *other* folds (image-weighted)."""
    out = {}
    for k in fold_sizes:
        others = [j for j in fold_sizes if j != k]
        weights = np.array([fold_sizes[j] for j in others], dtype=np.float64)
        scores = grid[[f"score_fold{j}" for j in others]].to_numpy(np.float64) @ weights / weights.sum()
        row = grid.iloc[int(np.argmax(scores))]
        out[k] = {"cutoff": float(row["cutoff"]), "min_area": int(row["min_area"])}
        if "presence_threshold" in grid:
            out[k]["presence_threshold"] = float(row["presence_threshold"])
    return out


def cross_fitted_grid_score(grid: pd.DataFrame, fold_sizes: dict[int, int]) -> float:
    """The grid tuning alone, cross-fitted: fold k scored at the row chosen on the other folds."""
    chosen = fold_tuned_settings(grid, fold_sizes)
    total = 0.0
    for k, setting in chosen.items():
        row = np.isclose(grid["cutoff"], setting["cutoff"]) & (grid["min_area"] == setting["min_area"])
        if "presence_threshold" in setting:
            row &= np.isclose(grid["presence_threshold"], setting["presence_threshold"])
        total += fold_sizes[k] * float(grid.loc[row, f"score_fold{k}"].iloc[0])
    return total / sum(fold_sizes.values())


def _batches(members: list[np.ndarray], presence: np.ndarray | None, masks_table, ids):
    def batches():
        for lo in range(0, len(ids), BATCH):
            rows = np.arange(lo, min(lo + BATCH, len(ids)))
            probs = upsample_mean([m[rows] for m in members], ORIGINAL_SHAPE).numpy()
            truths = load_masks(masks_table, [ids[r] for r in rows], ORIGINAL_SHAPE).astype(bool)
            yield rows, probs, truths, None if presence is None else presence[rows]
    return batches


def postprocess_stage(member_oofs: dict[str, list], folds_csv, masks_csv, grid_csv, best_json, out_json,
                      decisions_csv, per_image_csv, options: dict, *, n_boot: int, seed: int) -> dict:
    folds = read_folds(folds_csv)
    ids = folds["image_id"].astype(str).tolist()
    members = [load_oof(paths, ids) for paths in member_oofs.values()]
    presence = member_presence(member_oofs, ids)
    best, grid = read_json(best_json), pd.read_csv(grid_csv)
    fold_of = folds["fold"].to_numpy()
    subjects = folds["subject"].to_numpy()
    fold_sizes = {int(k): int((fold_of == k).sum()) for k in np.unique(fold_of)}

    cache = ScoreCache(_batches(members, presence, read_masks_table(masks_csv), ids), len(ids))
    rows = np.arange(len(ids))
    base = PostProcess(cutoff=float(best["cutoff"]), min_area=int(best["min_area"]),
                       presence_threshold=best.get("presence_threshold"))
    selections = [Selection(rows, base)] + [
        Selection(rows[fold_of != k], PostProcess(**setting))
        for k, setting in fold_tuned_settings(grid, fold_sizes).items()]
    select_many(cache, selections, subjects, options, n_boot=n_boot, seed=seed)
    final, held_out = selections[0], dict(zip(fold_sizes, selections[1:]))
    cache.ensure(s.current for s in held_out.values())

    honest = np.empty(len(ids))
    for k, selection in held_out.items():
        honest[fold_of == k] = cache.scores[selection.current][fold_of == k]
    per_image = pd.DataFrame({"image_id": ids, "subject": subjects, "fold": fold_of,
                              "tuned": cache.scores[base], "postprocessed": cache.scores[final.current],
                              "cross_fitted": honest})
    ci = bootstrap_ci(per_image, value="cross_fitted", n_boot=n_boot, seed=seed)
    result = {
        "members": list(member_oofs),
        "pipeline": final.current.to_dict(),
        "needs_components": final.current.needs_components,
        "tuned_score": float(per_image["tuned"].mean()),
        "score": float(per_image["postprocessed"].mean()),
        "cross_fitted_score": ci["mean"], "cross_fitted_ci": [ci["low"], ci["high"]],
        "cross_fitted_grid_score": cross_fitted_grid_score(grid, fold_sizes),
        "rule": "a candidate is kept when the subject-bootstrap 95% CI of its paired per-image gain lies above 0",
        "decisions": final.decisions,
        "folds": {str(k): {"pipeline": s.current.to_dict(), "score": float(honest[fold_of == k].mean())}
                  for k, s in held_out.items()},
        "passes": cache.passes,
    }
    atomic.write_json(out_json, result)
    atomic.write_csv(decisions_csv, pd.DataFrame(final.decisions, columns=[
        "candidate", "setting", "score_without", "score_with", "difference", "ci_low", "ci_high", "kept"]))
    atomic.write_csv(per_image_csv, per_image)
    print(f"post-processing {final.current}: {result['score']:.4f} (tuned {result['tuned_score']:.4f}); "
          f"cross-fitted {ci['mean']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]")
    return result
