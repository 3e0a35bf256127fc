"""Predict every fold's held-out images with added Gaussian noise."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.robustness import noise_predict_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    noise_predict_stage(list(i.models), i.data, i.folds, p.sigma, p.seed, snakemake.output[0],
                        batch_size=p.batch_size, threads=snakemake.threads)
