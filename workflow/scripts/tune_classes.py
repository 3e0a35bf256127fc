"""Tune each class's minimum area on the OOF predictions of a model or ensemble."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import tune_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    member_oofs = {m: list(i[f"oof_{m}"]) for m in p.members}
    tune_stage(member_oofs, i.folds, i.train, p.classes, p.grid, grid_csv=o.grid, best_json=o.best,
               per_image_csv=o.per_image, ignore=p.ignore)
