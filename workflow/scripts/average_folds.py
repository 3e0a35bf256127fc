"""Average a model's test probabilities over its folds."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.predict import average_stage

with logged(snakemake.log[0]):
    average_stage(list(snakemake.input), snakemake.output[0])
