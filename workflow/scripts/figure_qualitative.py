"""Qualitative panel: best, typical and worst out-of-fold predictions of one model."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import qualitative_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    qualitative_stage(i.per_image, i.best, i.data, list(i.oof), snakemake.wildcards.model, [o.png, o.pdf],
                      snakemake.params.style)
