"""Per-class scores of every model and ensemble with subject-bootstrap CIs, and the all-background baseline."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import class_table_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    class_table_stage(dict(zip(p.names, i.per_image)), i.train, p.classes, o.csv, o.md,
                      n_boot=p.bootstrap["bootstrap_samples"], seed=p.bootstrap["seed"])
