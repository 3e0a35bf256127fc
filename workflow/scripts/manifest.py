"""Validate the raw dataset (any data format) and write its manifests and summary."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import manifest_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    outputs = {key: snakemake.output[key] for key in snakemake.output.keys()}
    manifest_stage(p.data, p.classes, outputs, inputs=list(snakemake.input.dataset), threads=snakemake.threads,
                   ignore=p.ignore)
