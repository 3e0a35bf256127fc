"""Predict with every fold's network of one run: its held-out images (predict_oof), or every test
image of a model (predict)."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.runlog import logged
from plexus.stages.predict import predict_folds_stage

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    oof = "oof" in o.keys()
    test = {"test_npz": i.test, "test_npzs": list(o.test)} if "test" in o.keys() else {}
    predict_folds_stage(list(i.models), p.folds, i.data if oof else None, i.folds if oof else None,
                        list(o.oof) if oof else [], batch_size=p.batch_size, threads=snakemake.threads,
                        flips=p.flips, **test)
