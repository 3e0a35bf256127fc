"""Arrays of one image set (train: images and masks; test: images) at one model input size."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import preprocess_stage

with logged(snakemake.log[0]):
    p, i, w = snakemake.params, snakemake.input, snakemake.wildcards
    preprocess_stage(w.part, i.manifest, i.summary, w.size, snakemake.output[0], classes=p.classes,
                     ignore=p.ignore, regions=p.regions, threads=snakemake.threads)
