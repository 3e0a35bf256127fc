"""The tuning heatmap and the score-vs-minimum-area plot of one model or ensemble."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)
import json  # noqa: E402

import pandas as pd  # noqa: E402

from plexus import figures  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    grid = pd.read_csv(snakemake.input.grid)
    best = json.loads(Path(snakemake.input.best).read_text())
    name, style = snakemake.wildcards.name, snakemake.params.style
    figures.save(figures.tuning_heatmap(grid, best, name, style), [snakemake.output.heatmap, snakemake.output.heatmap_pdf])
    figures.save(figures.score_vs_min_area(grid, best, name, style), [snakemake.output.min_area, snakemake.output.min_area_pdf])
