"""Predict one fold's held-out (out-of-fold) images with that fold's model."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.predict import predict_stage

with logged(snakemake.log[0]):
    i = snakemake.input
    predict_stage(i.model, i.data, snakemake.output[0], folds_csv=i.folds, fold=int(snakemake.wildcards.fold),
                  batch_size=snakemake.params.batch_size, threads=snakemake.threads,
                  flips=snakemake.params.flips)
