"""Per-fold learning curves of one model."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.figures import learning_curves_stage

with logged(snakemake.log[0]):
    o = snakemake.output
    learning_curves_stage(list(snakemake.input.histories), snakemake.wildcards.model, [o.png, o.pdf],
                          snakemake.params.style, train_infos=list(snakemake.input.train_infos))
