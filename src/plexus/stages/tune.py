"""Tuning stage: cutoff x minimum area on the (averaged) out-of-fold probabilities."""

from __future__ import annotations

import numpy as np

from plexus.data.ingest import load_truth
from plexus.io import atomic
from plexus.io.contracts import load_members


def tune_stage(member_oofs: dict[str, list], folds_csv, masks_csv, cutoffs, min_areas,
               grid_csv, best_json, per_image_csv, presence_thresholds=None) -> dict:
    """Tune cutoff x min-area (x presence threshold, when a member has a presence head) on
    the (averaged) OOF probabilities of one or more models; true masks are decoded per batch."""
    from plexus.postprocess.tuning import tune

    folds, truth = load_truth(folds_csv, masks_csv, lazy=True)
    ids = folds["image_id"].astype(str).tolist()
    arrays = load_members(member_oofs, ids, ("prob", "presence"))
    members, presences = arrays["prob"], arrays["presence"]
    presence = np.mean(presences, axis=0) if presences else None
    grid, best, per_image = tune(members, truth, cutoffs, min_areas, folds["fold"].to_numpy(), presence=presence,
                                 presence_thresholds=presence_thresholds)
    best["members"] = list(member_oofs)
    per_image.insert(0, "fold", folds["fold"].to_numpy())
    per_image.insert(0, "subject", folds["subject"].to_numpy())
    per_image.insert(0, "image_id", ids)
    atomic.write_csv(grid_csv, grid)
    atomic.write_csv(per_image_csv, per_image)
    atomic.write_json(best_json, best)
    gate = f" presence>={best['presence_threshold']:.2f}" if "presence_threshold" in best else ""
    print(f"tuned cutoff={best['cutoff']:.3f} min_area={best['min_area']}{gate}: {best['score']:.4f} "
          f"(untuned {best['untuned_score']:.4f}, all-empty {best['empty_score']:.4f})")
    return best
