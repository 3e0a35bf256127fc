"""Resize every image (and mask) to one model input size."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import preprocess_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    preprocess_stage(i.train, i.test, snakemake.wildcards.size, o.train, o.test, threads=snakemake.threads)
