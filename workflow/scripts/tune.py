"""Tune cutoff x minimum area on out-of-fold probabilities."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.tune import tune_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    oofs = {member: list(i[f"oof_{member}"]) for member in p.members}
    tune_stage(oofs, i.folds, i.masks, p.cutoffs, p.min_areas, o.grid, o.best, o.per_image,
               presence_thresholds=p.presence_thresholds)
