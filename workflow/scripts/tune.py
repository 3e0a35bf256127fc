"""Tune cutoff x minimum area on out-of-fold probabilities."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import tune_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    oofs = {member: list(i[f"oof_{member}"]) for member in p.members}
    tune_stage(oofs, i.folds, i.masks, p.cutoffs, p.min_areas, o.grid, o.best, o.per_image)
