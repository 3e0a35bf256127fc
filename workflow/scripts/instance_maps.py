"""Test instance label maps of an ensemble and its DSB2018 submission."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.instances import instance_maps_stage

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    instance_maps_stage(list(i.means), i.test, i.best, snakemake.params.classes, o.maps, o.submission,
                        threads=snakemake.threads)
