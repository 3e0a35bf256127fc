"""The end-of-run summary: best entry, cross-fitted score, baseline, warnings."""
import _plexus_checkout  # noqa: F401  (this checkout's plexus first on sys.path)

from plexus.report.run_summary import run_summary_stage
from plexus.runlog import logged

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    per_model = len(i.train_info) // len(p.models)  # expand() order: model-major, then fold
    infos = {m: list(i.train_info)[k * per_model:(k + 1) * per_model] for k, m in enumerate(p.models)}
    run_summary_stage(p.names, list(i.decisions), i.summary, infos, snakemake.output[0], min_gain=p.min_gain)
