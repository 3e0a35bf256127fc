"""Write the embedded synthetic dataset (data.synthetic.kind) into raw_dir, in its format's layout."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import synthesize_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    synthesize_stage(p.kind, p.raw, p.settings, snakemake.output.fingerprint, threads=snakemake.threads)
