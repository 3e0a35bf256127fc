"""Per-class figures: scores with CIs and each robustness study of the generic workflow."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.classes import class_figures_stage

with logged(snakemake.log[0]):
    inputs = {key: snakemake.input[key] for key in snakemake.input.keys()}
    outputs = {key: snakemake.output[key] for key in snakemake.output.keys()}
    class_figures_stage(inputs, outputs, snakemake.params.style)
