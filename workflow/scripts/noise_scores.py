"""Score the noise study at the main model's tuned post-processing."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.robustness import noise_scores_stage

with logged(snakemake.log[0]):
    i = snakemake.input
    predictions = {(condition, sigma): i[key] for key, condition, sigma in snakemake.params.entries}
    noise_scores_stage(predictions, i.folds, i.masks, i.best, snakemake.output[0])
