"""Decide the post-processing candidates of one model or ensemble on its OOF predictions."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.postprocess import postprocess_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    oofs = {member: list(i[f"oof_{member}"]) for member in p.members}
    postprocess_stage(oofs, i.folds, i.masks, i.grid, i.best, o.json, o.decisions, o.per_image, p.options,
                      n_boot=p.n_boot, seed=p.seed, manifest_csv=i.manifest)
