"""Validate the dataset's sheet and every file it names; write the manifests."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import manifest_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    written = i.sheet[0] if p.data["format"] == "dsb2018" else None  # the sheet the nuclei rule wrote
    manifest_stage(p.data, p.classes, o.sheet, o.train, o.test, o.summary, threads=snakemake.threads,
                   ignore=p.ignore, written_sheet=written)
