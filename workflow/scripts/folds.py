"""Subject-grouped, stratified folds."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import folds_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    folds_stage(snakemake.input[0], snakemake.output[0], snakemake.params.n_folds, snakemake.params.seed)
