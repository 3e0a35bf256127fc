"""Score the training-size study at the main model's tuned post-processing."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.robustness import train_size_scores_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i = snakemake.input
    runs = {(size, seed): list(i[key]) for key, size, seed in snakemake.params.entries}
    train_size_scores_stage(runs, list(i.full), i.folds, i.masks, i.best, snakemake.output[0])
