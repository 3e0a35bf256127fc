"""Train one (run, fold)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import train_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    p = snakemake.params
    train_stage(
        snakemake.input.data,
        snakemake.input.folds,
        int(snakemake.wildcards.fold),
        p.settings,
        Path(snakemake.output.model).parent,
        p.checkpoint,
        threads=snakemake.threads,
        noise=p.noise,
        subset=p.subset,
    )
