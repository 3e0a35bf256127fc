"""Write the run-length encoded submission of one ensemble."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.submit import submission_stage

with logged(snakemake.log[0]):
    o = snakemake.output
    submission_stage(list(snakemake.input.means), snakemake.input.pipeline, o.csv, o.summary,
                     batch_size=snakemake.params.batch_size, manifest_csv=snakemake.input.manifest)
