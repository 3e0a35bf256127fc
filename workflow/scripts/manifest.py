"""Validate one image set of the raw dataset (any data format) and write its manifest (and, for the
training images, the summary and the format's files), or a labelled test set's masks."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.data import manifest_stage

with logged(snakemake.log[0]):
    p, i = snakemake.params, snakemake.input
    outputs = {key: snakemake.output[key] for key in snakemake.output.keys()}
    manifest_stage(p.data, p.classes, outputs, part=p.part, inputs=list(i.dataset), threads=snakemake.threads,
                   ignore=p.ignore, train_csv=i.get("train"), summary_json=i.get("summary"), test_csv=i.get("test"))
