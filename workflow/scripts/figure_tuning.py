"""The tuning heatmap and the score-vs-minimum-area plot of one model or ensemble."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import tuning_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    tuning_stage(i.grid, i.best, snakemake.wildcards.name, [o.heatmap, o.heatmap_pdf], [o.min_area, o.min_area_pdf],
                 snakemake.params.style)
