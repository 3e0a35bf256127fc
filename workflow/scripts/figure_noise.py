"""The noise-robustness figure."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import noise_stage

with logged(snakemake.log[0]):
    noise_stage(snakemake.input[0], [snakemake.output.png, snakemake.output.pdf], snakemake.params.style)
