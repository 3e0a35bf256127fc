"""Validate the raw folder and write the manifests."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import ingest_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    out = snakemake.output
    ingest_stage(Path(snakemake.input[0]).parent, out.train, out.test, out.masks, threads=snakemake.threads)
