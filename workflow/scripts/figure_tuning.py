"""The tuning figures of one model or ensemble: the cutoff x minimum-area heatmap, the
score-vs-minimum-area plot and the histogram of predicted and true mask areas."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import areas_stage, tuning_stage

with logged(snakemake.log[0]):
    i, o, name, style = snakemake.input, snakemake.output, snakemake.wildcards.name, snakemake.params.style
    tuning_stage(i.grid, i.best, name, [o.heatmap, o.heatmap_pdf], [o.min_area, o.min_area_pdf], style)
    areas_stage(i.per_image, i.best, name, [o.areas, o.areas_pdf], style)
