"""Mean AP (baseline, tuned, cross-fitted), F1@0.5 and pixel Dice of every model and ensemble, with CIs."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.instances import instance_table_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    instance_table_stage(dict(zip(p.names, snakemake.input.per_image)), dict(zip(p.names, p.kinds)),
                         snakemake.output.csv, snakemake.output.md, n_boot=p.bootstrap["bootstrap_samples"],
                         seed=p.bootstrap["seed"])
