"""Predict every fold's held-out images with added Gaussian noise."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.predict import noise_predict_stage

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    noise_predict_stage(list(i.models), i.data, i.folds, p.sigma, p.seed, snakemake.output[0],
                        batch_size=p.batch_size, threads=snakemake.threads)
