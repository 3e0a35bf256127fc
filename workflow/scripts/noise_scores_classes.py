"""Per-class Dice of the noisy OOF predictions."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import noise_scores_stage

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    files = {key: (i[key], condition, sigma) for key, condition, sigma in p.entries}
    noise_scores_stage(files, i.folds, i.train, i.best, p.classes, snakemake.output[0], ignore=p.ignore)
