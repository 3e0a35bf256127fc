"""Score the noise study at the main model's tuned post-processing."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.robustness import noise_scores_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i = snakemake.input
    predictions = {(condition, sigma): i[key] for key, condition, sigma in snakemake.params.entries}
    noise_scores_stage(predictions, i.folds, i.masks, i.best, snakemake.output[0])
