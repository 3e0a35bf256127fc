"""The results table (CSV and Markdown) with subject-level bootstrap CIs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)
from plexus.paper import summary_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    p = snakemake.params
    summary_stage(p.names, p.kinds, p.members, list(snakemake.input.best), list(snakemake.input.per_image),
                  snakemake.output.csv, snakemake.output.md, n_boot=p.n_boot, seed=p.seed)
