"""Instance figures: tuning surfaces, AP vs IoU threshold, qualitative panels with instance outlines."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.instances import instance_figures_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    inputs = {key: snakemake.input[key] for key in snakemake.input.keys()}
    outputs = {key: snakemake.output[key] for key in snakemake.output.keys()}
    instance_figures_stage(p.names, p.members, inputs, outputs, p.classes, p.style)
