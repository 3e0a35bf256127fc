"""The sample sheet of a DSB2018 folder: merged instance label maps and class-index training targets."""
from pathlib import Path

import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.data.dsb2018 import nuclei_sheet_stage
from plexus.runlog import logged

with logged(snakemake.log[0]):
    o, p = snakemake.output, snakemake.params
    raw = Path(snakemake.input.train).parent  # raw_dir: stage1_train's folder
    nuclei_sheet_stage(raw, group=p.group, boundary=p.boundary, sheet_tsv=o.sheet, labels_dir=o.labels,
                       targets_dir=o.targets, images_dir=o.images)
