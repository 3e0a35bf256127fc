"""Histogram of predicted and true mask areas with the tuned minimum area."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import areas_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    areas_stage(i.per_image, i.best, snakemake.wildcards.name, [o.png, o.pdf], snakemake.params.style)
