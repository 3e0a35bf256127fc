"""Per-class Dice of the training-size runs' OOF predictions."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import train_size_scores_stage

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    keys = [key for key, _, _ in p.entries] + ["full"]
    train_size_scores_stage(p.entries, {k: list(i[k]) for k in keys}, {k: list(i[f"info_{k}"]) for k in keys},
                            i.folds, i.train, i.best, p.classes, snakemake.output[0], ignore=p.ignore)
