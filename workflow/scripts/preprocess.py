"""Arrays of the train and test images (and masks) at one model input size."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import preprocess_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    preprocess_stage(p.format, snakemake.input, snakemake.output, snakemake.wildcards.size, classes=p.classes,
                     ignore=p.ignore, regions=p.regions, threads=snakemake.threads)
