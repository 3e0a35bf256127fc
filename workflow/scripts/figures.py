"""Render one figure rule's PNG and PDF from files under results/ (see plexus.paper)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)
from plexus import paper  # noqa: E402
from plexus.runlog import logged  # noqa: E402

i, o, w, style = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params.style

with logged(snakemake.log[0]):
    if snakemake.rule == "figure_tuning":
        paper.tuning_stage(i.grid, i.best, w.name, [o.heatmap, o.heatmap_pdf], [o.min_area, o.min_area_pdf], style)
    elif snakemake.rule == "figure_areas":
        paper.areas_stage(i.per_image, i.best, w.name, [o.png, o.pdf], style)
    elif snakemake.rule == "figure_learning_curves":
        paper.learning_curves_stage(list(i.histories), w.model, [o.png, o.pdf], style)
    elif snakemake.rule == "figure_qualitative":
        paper.qualitative_stage(i.per_image, i.best, i.data, list(i.oof), w.model, [o.png, o.pdf], style)
    elif snakemake.rule == "figure_noise":
        paper.noise_stage(i[0], [o.png, o.pdf], style)
    elif snakemake.rule == "figure_train_size":
        paper.train_size_stage(i[0], [o.png, o.pdf], style)
    else:
        raise ValueError(f"figures.py does not render rule {snakemake.rule!r}")
