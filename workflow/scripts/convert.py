"""The sample sheet of one image set of a DSB2018 folder: merged instance label maps and class-index
training targets (train), RGB copies of the images where needed (both)."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.data.dsb2018 import nuclei_sheet_stage
from plexus.runlog import logged

with logged(snakemake.log[0]):
    o, p = snakemake.output, snakemake.params
    nuclei_sheet_stage(p.raw, group=p.group, boundary=p.boundary, sheet_tsv=o.sheet, labels_dir=o.get("labels"),
                       targets_dir=o.get("targets"), images_dir=o.images, part=p.part)
