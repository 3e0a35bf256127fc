"""Table I of every model and ensemble, the paired tests between them, and their figures."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.comparison import comparison_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    infos = dict(zip(p.models, i.train_info))
    paths = {"comparison_csv": o.csv, "comparison_md": o.md, "pairwise_csv": o.pairwise_csv,
             "pairwise_md": o.pairwise_md, "figure": [o.png, o.pdf],
             "pairwise_figure": [o.pairwise_png, o.pairwise_pdf]}
    comparison_stage(p.names, p.kinds, p.members, list(i.per_image), infos, paths, n_boot=p.n_boot, seed=p.seed,
                     style=p.style)
