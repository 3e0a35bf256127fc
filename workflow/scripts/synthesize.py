"""Write the embedded synthetic dataset (data.synthetic.kind) into raw_dir, in its format's layout."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import synthesize_stage

with logged(snakemake.log[0]):
    p, o = snakemake.params, snakemake.output
    fingerprints = {part: (spec, o[f"fingerprint_{part}"]) for part, spec in p.parts.items()}
    synthesize_stage(p.kind, p.raw, p.settings, fingerprints, threads=snakemake.threads)
