"""Predict probabilities: a fold's held-out images (OOF) or every test image."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # plexus without installing it (conda envs)

from plexus.pipeline import predict_stage  # noqa: E402
from plexus.runlog import logged  # noqa: E402

with logged(snakemake.log[0]):
    i = snakemake.input
    held_out = "folds" in i.keys()
    predict_stage(
        i.model,
        i.data,
        snakemake.output[0],
        folds_csv=i.folds if held_out else None,
        fold=int(snakemake.wildcards.fold) if held_out else None,
        noise=snakemake.params.get("noise"),
        batch_size=snakemake.params.batch_size,
        threads=snakemake.threads,
    )
