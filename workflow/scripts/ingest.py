"""Validate the raw folder and write the manifests."""
from pathlib import Path

import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import ingest_stage

with logged(snakemake.log[0]):
    out = snakemake.output
    ingest_stage(Path(snakemake.input.raw[0]).parent, out.train, out.test, out.masks, threads=snakemake.threads)
