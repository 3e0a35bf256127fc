"""Images (all channels) and class maps of the generic workflow at one model input size."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import preprocess_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    preprocess_stage(i.train, i.test, i.summary, snakemake.params.classes, snakemake.wildcards.size, o.train, o.test,
                     threads=snakemake.threads, ignore=snakemake.params.ignore)
