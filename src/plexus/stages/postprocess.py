"""Post-processing stage: candidates decided on OOF, with a cross-fitted (honest) estimate.

For one model or ensemble, starting from its tuned cutoff x minimum area, each
candidate of :mod:`plexus.postprocess.selection` is kept only when the subject
bootstrap CI of its paired gain lies above 0. The same whole procedure (grid tuning
from ``grid.csv``'s per-fold scores, then the candidate selection) is repeated with
each fold held out and applied to that fold: the mean of those held-out scores is an
estimate of the score on new subjects that did not choose the setting.

The per-image table also holds the chosen pipeline's Dice, IoU, sensitivity and
precision, the areas, and a presence score (for the "has a nerve" AUC of the
comparison table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from plexus import ORIGINAL_SHAPE
from plexus.data.ingest import LazyMasks, load_truth
from plexus.data.resize import upsample_mean
from plexus.evaluation.bootstrap import bootstrap_ci
from plexus.evaluation.metrics import per_image_metrics
from plexus.io import atomic
from plexus.io.contracts import load_members, read_json, read_manifest, read_table
from plexus.io.tiff import read_tiff
from plexus.postprocess.candidates import CRF_DEFAULTS, PostProcess
from plexus.postprocess.selection import Batch, ScoreCache, Selection, select_many
from plexus.postprocess.tuning import UNTUNED_CUTOFF, UNTUNED_PRESENCE

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


def _batch_source(arrays: dict[str, list[np.ndarray]], truth: LazyMasks, image_paths: list[str] | None):
    """``batches(needs)`` for the :class:`ScoreCache`: maps upsampled, masks decoded, images read per batch."""
    def mean_presence(key):
        return np.mean(arrays[key], axis=0) if arrays.get(key) else None

    presence, presence_tta = mean_presence("presence"), mean_presence("presence_tta")

    def batches(needs):
        if "tta" in needs and len(arrays.get("prob_tta") or []) != len(arrays["prob"]):
            raise ValueError("the tta candidate needs flip-averaged OOF maps (prob_tta) of every member: "
                             "predict.tta is empty, or some OOF files predate it")
        if "images" in needs and image_paths is None:
            raise ValueError("the crf candidate needs the images (the train manifest)")
        for lo in range(0, len(truth), BATCH):
            rows = np.arange(lo, min(lo + BATCH, len(truth)))
            batch = Batch(rows=rows, truths=truth[lo:lo + len(rows)].astype(bool))
            if "plain" in needs:
                batch.probs = upsample_mean([m[rows] for m in arrays["prob"]], ORIGINAL_SHAPE).numpy()
                batch.presence = None if presence is None else presence[rows]
            if "tta" in needs:
                batch.probs_tta = upsample_mean([m[rows] for m in arrays["prob_tta"]], ORIGINAL_SHAPE).numpy()
                batch.presence_tta = None if presence_tta is None else presence_tta[rows]
            if "images" in needs:
                batch.images = np.stack([read_tiff(image_paths[r]) for r in rows])
            yield batch
    return batches


def presence_score(arrays: dict[str, list[np.ndarray]], tta: bool) -> np.ndarray:
    """Per image, the score of "has a nerve": the members' mean presence probability when
    some have a presence head, else the maximum of the averaged (low-resolution) map."""
    suffix = "_tta" if tta else ""
    if arrays.get(f"presence{suffix}"):
        return np.mean(arrays[f"presence{suffix}"], axis=0).astype(np.float64)
    maps = arrays[f"prob{suffix}"]
    return np.mean([m.astype(np.float32).reshape(len(m), -1).max(axis=1) for m in maps], axis=0).astype(np.float64)


def postprocess_stage(member_oofs: dict[str, list], folds_csv, masks_csv, grid_csv, best_json, out_json,
                      decisions_csv, per_image_csv, options: dict, *, n_boot: int, seed: int,
                      manifest_csv=None) -> dict:
    folds, truth = load_truth(folds_csv, masks_csv, lazy=True)
    ids = folds["image_id"].astype(str).tolist()
    arrays = load_members(member_oofs, ids, ("prob", "presence", "prob_tta", "presence_tta"))
    image_paths = None
    if manifest_csv is not None:
        manifest = read_manifest(manifest_csv).set_index("image_id")
        image_paths = manifest.loc[ids, "image_path"].astype(str).tolist()
    best, grid = read_json(best_json), read_table(grid_csv)
    fold_of = folds["fold"].to_numpy()
    subjects = folds["subject"].to_numpy()
    fold_sizes = {int(k): int((fold_of == k).sum()) for k in np.unique(fold_of)}

    cache = ScoreCache(_batch_source(arrays, truth, image_paths), len(ids), crf_settings=options.get("crf"))
    rows = np.arange(len(ids))
    base = PostProcess(cutoff=float(best["cutoff"]), min_area=int(best["min_area"]),
                       presence_threshold=best.get("presence_threshold"))
    # the plain model output (tuning's untuned reference: the gate at 0.5 for two-head members)
    untuned = PostProcess(cutoff=UNTUNED_CUTOFF, presence_threshold=UNTUNED_PRESENCE if arrays["presence"] else None)
    selections = [Selection(rows, base)] + [
        Selection(rows[fold_of != k], PostProcess(**setting))
        for k, setting in fold_tuned_settings(grid, fold_sizes).items()]
    cache.ensure([untuned, *(s.current for s in selections)])  # one first pass for all of them
    select_many(cache, selections, subjects, options, n_boot=n_boot, seed=seed)
    final, held_out = selections[0], dict(zip(fold_sizes, selections[1:]))
    cache.ensure(s.current for s in held_out.values())

    honest = np.empty(len(ids))
    for k, selection in held_out.items():
        honest[fold_of == k] = cache.scores[selection.current][fold_of == k]
    counts = cache.counts[final.current]
    metrics = per_image_metrics(counts[:, 0], counts[:, 1], counts[:, 2])
    per_image = pd.DataFrame({"image_id": ids, "subject": subjects, "fold": fold_of,
                              "untuned": cache.scores[untuned], "tuned": cache.scores[base],
                              "postprocessed": cache.scores[final.current],
                              "cross_fitted": honest,
                              **{m: metrics[m] for m in ("dice", "iou", "sensitivity", "precision")},
                              "true_area": counts[:, 2], "pred_area": counts[:, 1],
                              "presence_score": presence_score(arrays, final.current.tta)})
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
        "crf_settings": {**CRF_DEFAULTS, **(options.get("crf") or {})} if final.current.crf else None,
        "passes": cache.passes,
    }
    atomic.write_json(out_json, result)
    atomic.write_csv(decisions_csv, pd.DataFrame(final.decisions, columns=[
        "candidate", "setting", "score_without", "score_with", "difference", "ci_low", "ci_high", "kept"]))
    atomic.write_csv(per_image_csv, per_image)
    print(f"post-processing {final.current}: {result['score']:.4f} (tuned {result['tuned_score']:.4f}); "
          f"cross-fitted {ci['mean']:.4f} [{ci['low']:.4f}, {ci['high']:.4f}]")
    return result
