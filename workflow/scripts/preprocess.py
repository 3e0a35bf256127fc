"""Resize every image (and mask) to one model input size."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import preprocess_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    preprocess_stage(i.train, i.test, snakemake.wildcards.size, o.train, o.test, threads=snakemake.threads)
