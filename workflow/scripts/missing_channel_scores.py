"""Per-class Dice of the OOF predictions with each input channel removed in turn."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import missing_channel_stage

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    missing_channel_stage(list(i.models), i.data, i.folds, i.train, i.summary, i.best, p.classes, snakemake.output[0],
                          batch_size=p.batch_size, threads=snakemake.threads, ignore=p.ignore)
