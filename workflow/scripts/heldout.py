"""A labelled test set scored: every model's and ensemble's held-out score (its submitted label maps,
or its decision's, against the test masks) beside its cross-fitted estimate, and the figure."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.study.heldout import heldout_stage

with logged(snakemake.log[0]):
    heldout_stage(snakemake)
