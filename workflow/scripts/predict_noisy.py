"""Predict every fold's held-out images with added Gaussian noise, for each training condition."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.predict import noise_predict_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    noise_predict_stage({c: list(i[c]) for c in p.conditions}, i.data, i.folds, p.sigma, p.seed,
                        {c: o[c] for c in p.conditions}, batch_size=p.batch_size, threads=snakemake.threads)
