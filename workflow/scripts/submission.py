"""Write the run-length encoded submission of one ensemble."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import submission_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    o = snakemake.output
    submission_stage(list(snakemake.input.means), snakemake.input.best, o.csv, o.summary,
                     batch_size=snakemake.params.batch_size)
