"""Score the training-size study at the main model's tuned post-processing."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.robustness import train_size_scores_stage

with logged(snakemake.log[0]):
    i = snakemake.input
    runs = {(size, seed): list(i[key]) for key, size, seed in snakemake.params.entries}
    train_size_scores_stage(runs, list(i.full), i.folds, i.masks, i.best, snakemake.output[0])
