"""Test label maps of an ensemble and its per-class run-length table."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import labelmaps_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    labelmaps_stage(list(i.means), i.test, i.best, snakemake.params.classes, o.maps, o.table)
