"""Write the embedded synthetic dataset of the generic workflow (multiclass or multichannel) and its sheet."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.data.fingerprint import refresh
from plexus.stages.classes import synthesize_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    synthesize_stage(p.kind, p.settings, p.raw, snakemake.output.sheet)
    refresh(p.raw, snakemake.output.fingerprint, subfolders=None)  # what the manifest compares the folder with
