"""Subject-grouped, stratified folds."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import folds_stage

with logged(snakemake.log[0]):
    folds_stage(snakemake.input[0], snakemake.output[0], snakemake.params.n_folds, snakemake.params.seed,
                snakemake.params.stratify)
