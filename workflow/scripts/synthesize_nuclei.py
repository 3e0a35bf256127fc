"""Write the synthetic nuclei dataset in the DSB2018 layout (stage1_train, stage1_test) and the raw fingerprint."""
from pathlib import Path

import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.instances import synthesize_stage

with logged(snakemake.log[0]):
    raw = Path(snakemake.output.train).parent  # raw_dir: stage1_train's folder
    synthesize_stage(raw, snakemake.params.settings, snakemake.output.fingerprint)
