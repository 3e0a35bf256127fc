"""Train one (run, fold)."""
from pathlib import Path

import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.train import train_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    train_stage(
        snakemake.input.data,
        snakemake.input.folds,
        int(snakemake.wildcards.fold),
        p.settings,
        Path(snakemake.output.model).parent,
        p.checkpoint,
        run_name=snakemake.wildcards.run,
        threads=snakemake.threads,
        noise=p.noise,
        subset=p.subset,
        output=p.output,
    )
